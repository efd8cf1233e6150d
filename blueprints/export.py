"""The orders grid's downloads: ``orders/export.csv`` and ``orders/export-amazon.txt``.

Both take the grid's parameters (filters and sort; the page cursor ``after`` is ignored:
a download is every matching row, not one page) and answer a bad filter with the same
400 JSON error as ``orders.json``. Access is the page's: the blueprint's
``before_request`` (ecommerce.py) has already refused strangers with a 404. The bytes
come from :mod:`shipgear_exchange_plugin.export`, streamed as they are produced.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, g, jsonify, request, stream_with_context

from .. import export, orders
from .ecommerce import _parse_filters, _session


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
        return jsonify({"error": f"Invalid filter: {query.error_message()}"}), 400
    company = g.sgx_company
    flt: orders.OrderFilter = query.flt
    session = _session()
    today = dt.datetime.now(ZoneInfo(company.timezone)).date()
    name = export.file_name(company.name, kind, today, extension)
    current_app.logger.info("%s export for company %s", kind, company.id)
    return Response(
        stream_with_context(chunks(session, company.id, flt)),
        content_type=content_type,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            # Orders are private to the company: no shared or browser cache keeps them.
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
