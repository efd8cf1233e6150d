"""What the browser tests share besides their fixtures (tests/browser_fixtures.py): the
Chromium to drive (Debian's; never ``playwright install``), the host served over real HTTP,
a watched tab on which an uncaught JavaScript error or a Content-Security-Policy violation
fails the test, and the steps to sign in and open the plugin's page.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from werkzeug.serving import make_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
IN_CI = os.environ.get("CI", "").lower() == "true"
VIEWPORT = {"width": 1440, "height": 900}
TIMEOUT_MS = 10_000


def require_chromium(path: str = CHROMIUM, in_ci: bool = IN_CI) -> None:
    """Fail under CI, else skip, when the browser is not installed."""
    if Path(path).is_file():
        return
    message = f"Chromium not found at {path}"
    if in_ci:
        pytest.fail(f"{message}; CI=true requires the browser tests to run.", pytrace=False)
    pytest.skip(f"{message}; install it with `apt-get install -y chromium`.")


@contextmanager
def serve(app) -> Iterator[str]:
    """``app`` over HTTP on a free port of this machine; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@contextmanager
def watched_page(browser: Browser, base_url: str) -> Iterator[Page]:
    """A fresh, signed-out tab in its own context (downloads accepted). On leaving the
    block, any uncaught JavaScript error or Content-Security-Policy violation seen on it
    fails the test."""
    context = browser.new_context(base_url=base_url, viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text)
            if "Content Security Policy" in message.text else None)
    try:
        yield page
    finally:
        context.close()
    assert not problems, f"uncaught JavaScript errors or CSP violations: {problems}"


def sign_in(page: Page, username: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def company_row(page: Page, name: str):
    return page.locator("tbody tr").filter(
        has=page.get_by_role("cell", name=name, exact=True))


def open_acme(page: Page) -> None:
    """From My Companies to Acme Outfitters' View eCommerce page."""
    company_row(page, "Acme Outfitters").get_by_role("link", name="View eCommerce").click()
    expect(page.get_by_role("heading", name="View eCommerce")).to_be_visible()


def as_user(page: Page, username: str) -> Page:
    """Signed in as ``username`` (password demo), on Acme Outfitters' View eCommerce."""
    sign_in(page, username, "demo")
    expect(page.get_by_role("heading", name="My Companies")).to_be_visible()
    open_acme(page)
    return page
