"""The plugin's Alembic migrations (own version table ``sgx_alembic_version``)."""
