"""Telling a lost or full database apart from every other error (issue #6, item 5).

Pages answer these with a 503 that says what happened instead of a 500, and workers wait
and retry instead of failing the job: the write-back rows are in the database, so nothing
is lost while it is away, only delayed. Anything else is a bug or bad data, and keeps
failing loudly.
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa

#: The database cannot be reached (refused, cut off, shutting down, out of connections).
UNREACHABLE = "unreachable"
#: The database server has no disk space left for the statement (a big sort's temp files).
OUT_OF_SPACE = "out_of_space"

#: PostgreSQL SQLSTATEs: class 08 (connection exception) and these.
_PG_UNREACHABLE = {
    "57P01",  # admin_shutdown: terminated by an administrator, or the server is stopping
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now: starting up or in recovery
    "53300",  # too_many_connections
}
_PG_OUT_OF_SPACE = {
    "53100",  # disk_full
    "53400",  # configuration_limit_exceeded: temp files over temp_file_limit
}
#: SQLite result codes (Python 3.11+ ``sqlite_errorcode``), primary code in the low byte.
_SQLITE_UNREACHABLE = {5, 6, 10, 14}  # BUSY, LOCKED, IOERR, CANTOPEN
_SQLITE_OUT_OF_SPACE = {13}  # FULL

MESSAGES = {
    UNREACHABLE: "The database cannot be reached right now. Nothing recorded is lost; "
                 "try again in a minute.",
    OUT_OF_SPACE: "The database server ran out of disk space for this request. Nothing was "
                  "changed or lost; try again later, or export fewer rows with a narrower "
                  "filter.",
}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo += [getattr(item, "orig", None), item.__cause__, item.__context__]


def classify(exc: BaseException) -> str | None:
    """:data:`UNREACHABLE`, :data:`OUT_OF_SPACE` or None (not the database's absence)."""
    for item in _chain(exc):
        if isinstance(item, sa.exc.DBAPIError) and item.connection_invalidated:
            return UNREACHABLE
        if isinstance(item, sa.exc.TimeoutError):  # no pooled connection came free
            return UNREACHABLE
        found = _classify_driver_error(item)
        if found:
            return found
    return None


def _classify_driver_error(item: BaseException) -> str | None:
    module = type(item).__module__ or ""
    if module.startswith("psycopg"):
        import psycopg

        if not isinstance(item, (psycopg.OperationalError, psycopg.InterfaceError)):
            return None
        state = getattr(item, "sqlstate", None)
        if state is None or state.startswith("08") or state in _PG_UNREACHABLE:
            # No SQLSTATE: libpq itself failed (refused, reset, closed, timed out).
            return UNREACHABLE
        if state in _PG_OUT_OF_SPACE:
            return OUT_OF_SPACE
        return None
    if module == "sqlite3":
        import sqlite3

        if not isinstance(item, sqlite3.OperationalError):
            return None
        code = getattr(item, "sqlite_errorcode", None)
        if code is None:
            return None
        code &= 0xFF
        if code in _SQLITE_OUT_OF_SPACE:
            return OUT_OF_SPACE
        if code in _SQLITE_UNREACHABLE:
            return UNREACHABLE
    return None


def summary(exc: BaseException) -> str:
    """The error's first line, for a log line without the whole traceback."""
    for item in _chain(exc):
        if type(item).__module__.split(".")[0] in ("psycopg", "sqlite3"):
            exc = item
            break
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
