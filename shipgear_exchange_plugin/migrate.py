"""Apply the plugin's Alembic migrations to the host's database.

The plugin owns its migrations and its version table; ``shipgear-exchange db upgrade``
and the host's install hook both come here.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from .models import TABLE_PREFIX

VERSION_TABLE = "sgx_alembic_version"
SCRIPT_LOCATION = str(Path(__file__).resolve().parent / "migrations")


def include_name(name: str | None, type_: str, parent_names) -> bool:
    """Autogenerate's filter: the plugin's tables only, never the host's."""
    if type_ == "table":
        return bool(name) and name.startswith(TABLE_PREFIX)
    return True


def alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the plugin's tables to ``revision`` (idempotent)."""
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory(SCRIPT_LOCATION).get_current_head()
