"""Alembic environment for the plugin's tables only.

Run through :mod:`shipgear_exchange_plugin.migrate`, which passes the host's connection
in ``config.attributes["connection"]``. ``include_name`` keeps autogenerate away from
every table that is not the plugin's, so it can never touch the host's tables.
"""

from alembic import context

from shipgear_exchange_plugin.migrate import VERSION_TABLE, include_name
from shipgear_exchange_plugin.models import Base


def run_migrations_online() -> None:
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        include_name=include_name,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():  # pragma: no cover
    raise SystemExit("offline migrations are not supported; run `shipgear-exchange db upgrade`")
run_migrations_online()
