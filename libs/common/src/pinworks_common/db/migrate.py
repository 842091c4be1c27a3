"""Alembic upgrade to head, callable from code (`upgrade(url)`) or `python -m pinworks_common.db.migrate`."""

from __future__ import annotations

import os
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


def main() -> None:
    upgrade(os.environ["DATABASE_URL"])


if __name__ == "__main__":
    main()
