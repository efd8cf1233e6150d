"""The orders grid's exports: every matching row as CSV, and the failed Amazon rows as
Amazon's shipping-confirmation flat file (PRODUCT.md S7 and B9).

Both take the grid's own query (:func:`orders.filtered`: same filters, same order, same
company scope), so a file always lists what the grid lists, in the order it lists it, and
never another company's row. Both stream: memory stays flat whatever the row count.

CSV on PostgreSQL is PostgreSQL's own ``COPY (SELECT ...) TO STDOUT WITH (FORMAT csv,
HEADER)``, read through psycopg 3's ``cursor.copy()`` and passed on in blocks: the server
writes CSV several times faster than Python's csv module (NOTES.md: 1.76M against 311k
rows/s with neutralising), so the formatting rules (formula neutralising, UTC times,
empty cells) are SQL expressions too, applied by the server. The SELECT is compiled by
SQLAlchemy from the grid's query; its parameters are merged in by psycopg (COPY has no
server-side parameters), so no user text is ever pasted into SQL here. Other databases
(SQLite) get the same bytes from the csv module, cell by cell, by the same rules.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from . import orders
from .connectors.amazon import amazon_carrier, fulfillment_feed_text, fulfillment_rows, iso_utc
from .connectors.base import Item, Package
from .models import Platform, StoreAccount, UTCDateTime, Writeback, WritebackStatus

#: The CSV's columns, in order (the header row). ``account`` is the store account's name.
CSV_COLUMNS: tuple[str, ...] = (
    "order_id", "account", "platform", "ship_date", "carrier", "service", "tracking_number",
    "shipped_quantity", "status", "error_count", "last_attempt_at", "last_error",
)
#: A cell a spreadsheet would run as a formula (or whose leading tab/CR some spreadsheets
#: drop before doing so) gets a leading apostrophe: shown as text, never evaluated.
FORMULA_START = re.compile(r"^[=+\-@\t\r]")
#: The same rule as a PostgreSQL regular expression (ARE: ``\t``, ``\r`` and ``\-`` mean
#: what they mean above, also inside brackets).
FORMULA_START_SQL = r"^[=+\-@\t\r]"
#: ISO 8601 in UTC to the second (``2026-11-27T10:00:00Z``), as :func:`iso_utc` writes.
TIME_FORMAT_SQL = 'YYYY-MM-DD"T"HH24:MI:SS"Z"'
#: Bytes handed to the web server at a time: big enough that the per-chunk cost vanishes,
#: small enough that memory stays flat.
CHUNK_BYTES = 64 * 1024
#: Rows fetched per round trip where the database, not COPY, streams (SQLite, Amazon).
FETCH_ROWS = 2000


# -- file names ------------------------------------------------------------------------
def file_name(company_name: str, kind: str, day: dt.date, extension: str) -> str:
    """``{kind}-{company}-{YYYY-MM-DD}.{extension}``, ASCII only: accents are dropped
    rather than the whole word, so "Café Ünion" becomes ``cafe-union``, and a header
    needs no RFC 5987 encoding."""
    ascii_name = unicodedata.normalize("NFKD", company_name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", ascii_name).strip("-").lower() or "company"
    return f"{kind}-{slug[:60].strip('-')}-{day.isoformat()}.{extension}"


# -- CSV -------------------------------------------------------------------------------
def _plain_columns() -> list[sa.ColumnElement]:
    """The CSV's values as stored, labelled as the header names them."""
    return [
        Writeback.order_id.label("order_id"), StoreAccount.name.label("account"),
        StoreAccount.platform.label("platform"), Writeback.ship_date.label("ship_date"),
        Writeback.carrier.label("carrier"), Writeback.service.label("service"),
        Writeback.tracking_number.label("tracking_number"),
        Writeback.shipped_quantity.label("shipped_quantity"),
        Writeback.status.label("status"), Writeback.error_count.label("error_count"),
        Writeback.last_attempt_at.label("last_attempt_at"),
        Writeback.last_error.label("last_error"),
    ]


def _with_account(query: sa.Select, columns: Sequence[sa.ColumnElement]) -> sa.Select:
    """The grid's query (its WHERE and ORDER BY kept) selecting ``columns``, with the
    account joined for its name and platform."""
    return (query.with_only_columns(*columns, maintain_column_froms=False)
            .select_from(Writeback)
            .join(StoreAccount, StoreAccount.id == Writeback.account_id))


def csv_query(company_id: int, flt: orders.OrderFilter) -> sa.Select:
    """The export's rows, plain values, in the grid's order (the csv-module path)."""
    return _with_account(orders.filtered(company_id, flt), _plain_columns())


def _sql_text_cell(value: sa.ColumnElement) -> sa.ColumnElement:
    """A text cell as the CSV shows it: formula-looking text neutralised, and an empty
    string sent as NULL (COPY writes ``""`` for an empty string, and nothing for NULL,
    which is what the csv module writes for both)."""
    return sa.case((value.regexp_match(FORMULA_START_SQL), sa.literal("'") + value),
                   else_=sa.func.nullif(value, ""))


def _sql_number_cell(value: sa.ColumnElement) -> sa.ColumnElement:
    """A whole number: only a negative one looks like a formula (``-1``)."""
    text = sa.cast(value, sa.Text)
    return sa.case((value < 0, sa.literal("'") + text), else_=text)


def _sql_time_cell(value: sa.ColumnElement) -> sa.ColumnElement:
    """ISO 8601 in UTC to the second; NULL stays NULL (an empty cell). A time never
    starts like a formula, so it skips the test (and to_char runs once per cell)."""
    return sa.func.to_char(sa.func.timezone("UTC", value), TIME_FORMAT_SQL)


def copy_query(company_id: int, flt: orders.OrderFilter) -> sa.Select:
    """The export's rows with every cell formatted by PostgreSQL (the COPY path): the
    same text, cell for cell, as :func:`csv_cell` makes of the plain values."""
    cells = []
    for column in _plain_columns():
        inner = column.element
        if isinstance(inner.type, (UTCDateTime, sa.DateTime)):
            cell = _sql_time_cell(inner)
        elif isinstance(inner.type, sa.Integer):
            cell = _sql_number_cell(inner)
        else:
            cell = _sql_text_cell(inner)
        cells.append(cell.label(column.name))
    return _with_account(orders.filtered(company_id, flt), cells)


def compile_for_driver(session: Session, query: sa.Select) -> tuple[str, dict[str, Any]]:
    """``query`` as the driver's SQL text (``%(name)s`` placeholders, IN lists expanded)
    and its parameters, each passed through its type's bind processor as SQLAlchemy
    would. COPY takes no server-side parameters: psycopg merges these client-side, with
    its own quoting, so no value is ever pasted into the SQL by this module."""
    dialect = session.get_bind().dialect
    compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params = dict(compiled.params)
    for name, bind in compiled.binds.items():
        process = bind.type.bind_processor(dialect)
        if process is None:
            continue
        keys = ([k for k in params if re.fullmatch(rf"{re.escape(name)}_\d+", k)]
                if bind.expanding else [name] if name in params else [])
        for key in keys:
            params[key] = process(params[key])
    return str(compiled), params


def copy_statement(session: Session, company_id: int, flt: orders.OrderFilter):
    """``COPY (<the export's SELECT>) TO STDOUT WITH (FORMAT csv, HEADER)`` as a psycopg
    ``sql.Composed`` and its parameters (see :func:`compile_for_driver`)."""
    from psycopg import sql

    select_sql, params = compile_for_driver(session, copy_query(company_id, flt))
    statement = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER)").format(
        sql.SQL(select_sql))
    return statement, params


def csv_chunks(session: Session, company_id: int, flt: orders.OrderFilter,
               chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The CSV file in blocks of UTF-8 bytes: header row, then every row matching
    ``flt`` in the grid's order. ``after`` (the grid's cursor) plays no part here."""
    if session.get_bind().dialect.name == "postgresql":
        return _copy_chunks(session, company_id, flt, chunk_bytes)
    return csv_module_chunks(session, company_id, flt, chunk_bytes)


def _copy_chunks(session: Session, company_id: int, flt: orders.OrderFilter,
                 chunk_bytes: int) -> Iterator[bytes]:
    statement, params = copy_statement(session, company_id, flt)
    raw = session.connection().connection.driver_connection
    encoding = (raw.info.encoding or "utf-8").lower().replace("_", "-")
    transcode = encoding not in ("utf-8", "utf8")
    with raw.cursor() as cursor, cursor.copy(statement, params) as copy:
        buffer = bytearray()
        for data in copy:  # one row per block: COPY sends whole rows
            buffer += data
            if len(buffer) >= chunk_bytes:
                yield _utf8(buffer, encoding) if transcode else bytes(buffer)
                buffer.clear()
        if buffer:
            yield _utf8(buffer, encoding) if transcode else bytes(buffer)


def _utf8(data: bytes | bytearray, encoding: str) -> bytes:
    return bytes(data).decode(encoding).encode("utf-8")


def csv_cell(value: Any) -> str:
    """One cell as the COPY path writes it (see :func:`copy_query`)."""
    if value is None:
        return ""
    text = iso_utc(value) if isinstance(value, dt.datetime) else str(value)
    return "'" + text if FORMULA_START.match(text) else text


def csv_module_chunks(session: Session, company_id: int, flt: orders.OrderFilter,
                      chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The CSV file written by Python's csv module: the path of databases without COPY,
    and on PostgreSQL the reference its COPY output is tested against (same bytes)."""
    buffer = io.StringIO()
    # COPY quotes minimally, a cell holding \r or \n among others, and ends lines with \n.
    # The csv module quotes \r only when it is part of the line terminator: so rows are
    # written with \r\n, whose \r is then dropped.
    writer = csv.writer(buffer, lineterminator="\r\n")

    def write(cells: Sequence[str]) -> None:
        writer.writerow(cells)
        buffer.seek(buffer.tell() - 2)
        buffer.write("\n")
        buffer.truncate()

    write(CSV_COLUMNS)
    rows = session.execute(csv_query(company_id, flt).execution_options(yield_per=FETCH_ROWS))
    for row in rows:
        write([csv_cell(value) for value in row])
        if buffer.tell() >= chunk_bytes:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


# -- Amazon flat file (B9) -------------------------------------------------------------
def amazon_filter(flt: orders.OrderFilter) -> orders.OrderFilter:
    """The grid's filter with the status forced to failed: the Amazon file is for the
    packages that support confirms by hand in Seller Central."""
    return dataclasses.replace(flt, statuses=(WritebackStatus.FAILED.value,))


def amazon_query(company_id: int, flt: orders.OrderFilter) -> sa.Select:
    """Failed write-backs of the company's Amazon accounts matching ``flt`` (whatever
    its status filter says), in the grid's order."""
    columns = [Writeback.order_id, Writeback.package_key, Writeback.tracking_number,
               Writeback.carrier, Writeback.service, Writeback.ship_date, Writeback.items]
    return _with_account(orders.filtered(company_id, amazon_filter(flt)), columns).where(
        StoreAccount.platform == Platform.AMAZON.value)


def amazon_carrier_cells(carrier: str | None) -> tuple[str, str | None]:
    """(carrier-code, carrier-name): Amazon's code where it has one; otherwise ``Other``
    with the carrier's own name, which Seller Central accepts for any carrier. (The
    write-back path is stricter, see ``amazon_carrier``: there a typo sent as Other would
    go out unseen; here a person reads the file before uploading it.)"""
    mapped = amazon_carrier(carrier)
    return mapped if mapped is not None else ("Other", (carrier or "").strip())


def _flat_cell(value: Any) -> str:
    """A flat-file value on one line (as ``fulfillment_feed_text`` writes it), then
    neutralised like a CSV cell: nothing Amazon accepts starts with ``= + - @``, and the
    file is often opened in a spreadsheet before it is uploaded."""
    text = " ".join(str(value or "").split())
    return "'" + text if FORMULA_START.match(text) else text


def amazon_lines(rows: Iterable[Any]) -> list[dict[str, str]]:
    """Flat-file rows (one per item of each package) for rows of :func:`amazon_query`."""
    lines = []
    for row in rows:
        package = Package(
            order_id=row.order_id, package_key=row.package_key,
            tracking_number=row.tracking_number, carrier=row.carrier, service=row.service,
            ship_date=row.ship_date,
            items=tuple(Item.from_dict(raw) for raw in row.items or ()))
        code, name = amazon_carrier_cells(row.carrier)
        lines += [{key: _flat_cell(value) for key, value in line.items()}
                  for line in fulfillment_rows(package, code, name)]
    return lines


def amazon_chunks(session: Session, company_id: int, flt: orders.OrderFilter
                  ) -> Iterator[bytes]:
    """Amazon's shipping-confirmation flat file (tab-separated, UTF-8, header first) for
    the failed Amazon packages matching ``flt``, in blocks of bytes."""
    result = session.execute(amazon_query(company_id, flt).execution_options(
        yield_per=FETCH_ROWS))
    header = True
    for part in result.partitions():
        text = fulfillment_feed_text(amazon_lines(part))
        yield (text if header else text.partition("\n")[2]).encode("utf-8")
        header = False
    if header:  # no rows: the header alone, still a valid (empty) file
        yield fulfillment_feed_text([]).encode("utf-8")
