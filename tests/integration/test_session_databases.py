"""A test session on someone else's Postgres (`DATABASE_URL`) works in databases of its own
there and drops them when it ends, and only them: a database it did not make stays, even one
named like a test session's (another session's, running beside it)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from pinworks_devtools import Endpoint, drop_database, fresh_database

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SESSION = '''
import os
from pathlib import Path


def test_works_in_its_own_databases(database, own_database):
    Path(os.environ["MADE"]).write_text(database.admin_url + "\\n" + own_database.admin_url)
'''


async def database_names(server_url: str) -> set[str]:
    url = make_url(server_url).set(drivername="postgresql")
    conn = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        return {row["datname"] for row in await conn.fetch("SELECT datname FROM pg_database")}
    finally:
        await conn.close()


def test_a_session_drops_the_databases_it_made_and_no_other(
        database_endpoint: Endpoint, tmp_path: Path) -> None:
    server = database_endpoint.url
    beside = asyncio.run(fresh_database(server))  # another session's, at work meanwhile
    try:
        (tmp_path / "test_session.py").write_text(SESSION)
        made = tmp_path / "made"
        env = {**os.environ, "DATABASE_URL": server, "MADE": str(made),
               "PINWORKS_ALLOW_DOCKER": "0"}
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
             "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_session.py")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
        assert run.returncode == 0, run.stdout + run.stderr
        used = {make_url(url).database for url in made.read_text().split()}
        assert len(used) == 2 and make_url(server).database not in used
        left = asyncio.run(database_names(server))
        assert not used & left, "the session's own databases outlived it"
        assert make_url(beside).database in left, "a database the session did not make was dropped"
    finally:
        asyncio.run(drop_database(server, beside))
