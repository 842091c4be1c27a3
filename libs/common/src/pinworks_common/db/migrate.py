"""Alembic upgrade to head, callable from code (`upgrade(url)`) or `python -m pinworks_common.db.migrate`;
`provision` also gives every role its login (`make run`, the chaos platform, test sessions)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


async def _logins(admin_url: str, passwords: Mapping[str, str]) -> None:
    from pinworks_common.db.engine import create_engine
    from pinworks_common.db.roles import set_passwords

    engine = create_engine(admin_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(set_passwords, passwords)
    finally:
        await engine.dispose()


async def _apply_grants(database_url: str) -> None:
    from pinworks_common.db.engine import create_engine
    from pinworks_common.db.roles import apply_grants

    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(apply_grants)
    finally:
        await engine.dispose()


def apply_roles(database_url: str) -> None:
    """Make the roles and grants match `roles.GRANTS` (as the owner or a superuser)."""
    asyncio.run(_apply_grants(database_url))


def provision(admin_url: str, passwords: Mapping[str, str]) -> dict[str, str]:
    """Migrate as `admin_url` (a superuser), give each role of `passwords` a login with its
    password, and return each role's URL."""
    from pinworks_common.db.roles import role_url

    upgrade(admin_url)
    asyncio.run(_logins(admin_url, passwords))
    return {role: role_url(admin_url, role, password) for role, password in passwords.items()}


def provision_platform(admin_url: str, credentials: Path) -> dict[str, str]:
    """`provision` with the passwords kept in `credentials` (generated on first use, mode 0600);
    each login's URL by its name: the five services, `console`, `operator`, `reports` and
    `migrations`."""
    from pinworks_common.db.roles import ROLES, load_or_create_credentials

    urls = provision(admin_url, load_or_create_credentials(credentials))
    return {role.removeprefix("pinworks_"): urls[role] for role in ROLES}


def main(argv: list[str] | None = None) -> None:
    """Migrate DATABASE_URL (or the URL in DATABASE_URL_FILE); with `--passwords FILE` (JSON
    role -> password, as `pinworks_common.deployment_secrets` writes it) that URL is a
    superuser's and every role gets its login too (compose's migrate container)."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m pinworks_common.db.migrate")
    parser.add_argument("--passwords", type=Path, default=None)
    args = parser.parse_args(argv)
    url_file = os.environ.get("DATABASE_URL_FILE")
    url = Path(url_file).read_text().strip() if url_file else os.environ["DATABASE_URL"]
    if args.passwords is None:
        upgrade(url)
        return
    passwords = json.loads(args.passwords.read_text())
    logins = provision(url, passwords)
    print(f"migrated; logins: {', '.join(sorted(logins))}")


if __name__ == "__main__":
    main()
