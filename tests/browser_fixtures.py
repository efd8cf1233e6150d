"""The browser tests' fixtures, loaded as a plugin by each browser test module:
``pytest_plugins = ["tests.browser_fixtures"]`` (tests/conftest.py stays as it is).

- ``browser``: one headless Chromium per module, Debian's (``/usr/bin/chromium``); under
  ``CI=true`` a missing browser fails the run, elsewhere it skips;
- ``page``: a fresh signed-out tab on the module's ``site_url``, downloads accepted; an
  uncaught JavaScript error or a Content-Security-Policy violation fails the test.

The module supplies ``site_url`` (the base URL of the host it serves, see
``browser_helpers.serve``) and ``backend`` returning ``"embedded"``: browser tests run on
the embedded backend only, and conftest's parametrised ``backend`` would win over a
plugin's. Helpers to import (sign-in, serving, the watched tab) are in
tests/browser_helpers.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from .browser_helpers import CHROMIUM, CHROMIUM_ARGS, require_chromium, watched_page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module."""
    require_chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, site_url) -> Iterator[Page]:
    """A signed-out tab on the module's ``site_url``; uncaught JS errors and CSP
    violations fail the test."""
    with watched_page(browser, site_url) as page:
        yield page
