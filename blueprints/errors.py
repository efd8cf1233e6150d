"""The plugin's 400, 403 and 404 pages for a person in a browser.

A link someone followed (an edited export URL, an order id that is not the company's, a
page their role may not open) gets a page in the host's layout that says what happened
and leads back, instead of the framework's bare error page or raw JSON. Anything else
keeps the answer it had: JSON clients and scripts (no ``text/html`` in ``Accept``),
htmx requests (the page shows their errors in place) and answers a view built itself.
"""

from __future__ import annotations

from flask import Blueprint, render_template, request
from werkzeug.exceptions import HTTPException

HEADINGS = {400: "This link is not valid", 403: "You may not open this page",
            404: "Not found"}
#: Said when a view gave no reason of its own.
DEFAULT_MESSAGES = {
    400: "Something in the address is not valid. Go back and try again.",
    403: "Your role in this company cannot open this page. Ask a company admin if you "
         "need it.",
    404: "There is no such order or page for this company, or you may not see it.",
}


def register(bp: Blueprint) -> None:
    for code in HEADINGS:
        bp.register_error_handler(code, page_for_people)


def wants_json() -> bool:
    return request.path.endswith(".json") or (
        request.accept_mimetypes.best == "application/json")


def wants_page() -> bool:
    """A browser navigation: a page is the answer (not JSON, not an htmx swap)."""
    return ("text/html" in request.headers.get("Accept", "")
            and request.headers.get("HX-Request") != "true" and not wants_json())


def page_for_people(error: HTTPException):
    if error.response is not None or not wants_page():
        return error
    from ..host_contract import get_host

    host = get_host()
    own = error.description != type(error).description  # a view's own words
    context = {"code": error.code, "heading": HEADINGS[error.code],
               "message": error.description if own else DEFAULT_MESSAGES[error.code]}
    try:
        context["exit_url"] = host.my_companies_url()
    except Exception:  # noqa: BLE001 - no host link: the site's root
        context["exit_url"] = "/"
    return render_template("shipgear_exchange/error.html", base_template=host.base_template,
                           **context), error.code
