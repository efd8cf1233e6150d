"""A person who follows a bad link gets a page in the host's layout that says what went
wrong and leads back; JSON clients, scripts and htmx keep the answers they had."""

from __future__ import annotations

BASE = "/companies/1/ecommerce"
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def test_an_order_that_is_not_the_companys_is_a_404_page(client_as):
    client = client_as("viewer")
    answer = client.get(f"{BASE}/orders/999999", headers=BROWSER)
    text = answer.get_data(as_text=True)
    assert answer.status_code == 404
    assert "<h1 id=\"sgx-error-title\">Not found</h1>" in text
    assert "There is no such order or page for this company" in text
    assert "Back to My Companies" in text and "Sign out" in text  # the host's layout
    # Scripts and htmx keep the plain answer (htmx shows its errors in place).
    for headers in ({}, {**BROWSER, "HX-Request": "true"}):
        plain = client.get(f"{BASE}/orders/999999", headers=headers)
        assert plain.status_code == 404 and "sgx-error-title" not in plain.get_data(as_text=True)


def test_a_page_the_role_may_not_open_is_a_403_page(client_as):
    answer = client_as("support").get(f"{BASE}/accounts", headers=BROWSER)
    assert answer.status_code == 403
    text = answer.get_data(as_text=True)
    assert "You may not open this page" in text and "Ask a company admin" in text


def test_an_edited_export_link_is_a_400_page_and_json_for_scripts(client_as):
    client = client_as("viewer")
    url = f"{BASE}/orders/export.csv?date_from=2026-02-30"
    answer = client.get(url, headers=BROWSER)
    assert answer.status_code == 400
    text = answer.get_data(as_text=True)
    assert "This link is not valid" in text
    assert "Invalid filter: From: Not a valid date value. Correct the filters" in text
    script = client.get(url)
    assert script.status_code == 400
    assert script.get_json()["error"].startswith("Invalid filter: From")
