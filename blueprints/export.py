"""The orders grid's downloads: ``orders/export.csv`` and ``orders/export-amazon.txt``.

Both take the grid's parameters (filters and sort; the page cursor ``after`` is ignored:
a download is every matching row, not one page) and answer a bad filter with the same
400 JSON error as ``orders.json``. Access is the page's: the blueprint's
``before_request`` (ecommerce.py) has already refused strangers with a 404. The bytes
come from :mod:`shipgear_exchange_plugin.export`, streamed as they are produced.

Nothing is written to disk on this side: the only disk an export needs is the database
server's, for the sort. The first block is read before the status line goes out, so that
the database's whole share of the work (a sorted export's sort, and its failure: the
server out of disk space or unreachable) happens while a clear 503 page can still be
answered (blueprints/__init__.py). A failure after that cuts the connection, so the
browser shows a failed download rather than a file that looks complete.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    request,
    stream_with_context,
)
from sqlalchemy.orm import Session

from .. import dberrors, export, orders
from .ecommerce import _parse_filters, _session
from .errors import wants_page


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/orders/export.csv", "export_csv", export_csv)
    bp.add_url_rule("/orders/export-amazon.txt", "export_amazon", export_amazon)


def export_csv():
    """Every row matching the grid's filters, in the grid's order, as CSV (S7)."""
    return _download(export.csv_chunks, "ecommerce-orders", "csv", "text/csv; charset=utf-8")


def export_amazon():
    """The failed Amazon rows matching the grid's filters, in Amazon's shipping-confirmation
    flat-file layout, for upload in Seller Central (B9). A status filter is ignored: this
    file is always the failed list (only failed rows need confirming by hand), so a view
    filtered on, say, Pending still downloads its failed Amazon rows."""
    return _download(export.amazon_chunks, "amazon-shipping-confirmation", "txt",
                     "text/tab-separated-values; charset=utf-8")


def _download(chunks: Callable[..., Iterator[bytes]], kind: str, extension: str,
              content_type: str):
    query = _parse_filters(request.args)
    if query.flt is None:
        message = f"Invalid filter: {query.error_message()}"
        if wants_page():  # a person followed an edited link: a page, not JSON
            abort(400, message.rstrip(".") + ". Correct the filters on the page, then export "
                  "again.")
        return jsonify({"error": message}), 400
    company = g.sgx_company
    flt: orders.OrderFilter = query.flt
    engine = _session().get_bind()
    # Done with the request's session: ending it now leaves the teardown, which runs when
    # the view returns, nothing to roll back on a connection that may die meanwhile.
    _session().close()
    today = dt.datetime.now(ZoneInfo(company.timezone)).date()
    name = export.file_name(company.name, kind, today, extension)
    current_app.logger.info("%s export for company %s", kind, company.id)
    return Response(
        stream_with_context(_primed(chunks, engine, company.id, flt, kind)),
        content_type=content_type,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            # Orders are private to the company: no shared or browser cache keeps them.
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


def _primed(chunks: Callable[..., Iterator[bytes]], engine, company_id: int,
            flt: orders.OrderFilter, kind: str) -> Iterator[bytes]:
    """The file's blocks with the first one already read (its errors raised here, in the
    view). They are read on a connection of the export's own: the request's teardown runs
    when the view returns, before the body streams, and must not close a running COPY."""
    connection = engine.connect()
    session = Session(bind=connection)
    blocks = chunks(session, company_id, flt)
    try:
        first = next(blocks, b"")
    except BaseException as exc:
        _close(blocks, session, connection, exc)
        raise
    return _rest(first, blocks, session, connection, company_id, kind)


def _rest(first: bytes, blocks: Iterator[bytes], session: Session, connection,
          company_id: int, kind: str) -> Iterator[bytes]:
    sent, error = len(first), None
    try:
        yield first
        for block in blocks:
            yield block
            sent += len(block)
    except Exception as exc:
        # The status line is out: the server cuts the connection on this error, and the
        # browser shows the download as failed (no complete-looking, short file).
        error = exc
        reason = dberrors.classify(exc) or "error"
        current_app.logger.error("%s export for company %s stopped after %d bytes: %s (%s)",
                                 kind, company_id, sent, reason.replace("_", " "),
                                 dberrors.summary(exc))
        raise
    finally:
        _close(blocks, session, connection, error)


def _close(blocks: Iterator[bytes], session: Session, connection,
           error: BaseException | None = None) -> None:
    """Every step, even when one fails. COPY's errors come from psycopg unseen by
    SQLAlchemy: when they say the database dropped us, the pool's other connections are
    as dead as this one, so they are all let go (as SQLAlchemy does on a disconnect it
    sees), and the next request connects afresh instead of failing once more."""
    lost = error is not None and dberrors.classify(error) == dberrors.UNREACHABLE
    if lost:
        with contextlib.suppress(Exception):
            connection.invalidate(error)
    for step in (getattr(blocks, "close", None), session.close, connection.close):
        if step is not None:
            with contextlib.suppress(Exception):
                step()
    if lost:
        with contextlib.suppress(Exception):
            connection.engine.dispose()
