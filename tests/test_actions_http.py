"""Retry now, Retry selected and Mark confirmed over HTTP: permissions, company
isolation, CSRF and the audit trail (PRODUCT.md B8, §5)."""

from __future__ import annotations

import sqlalchemy as sa

from shipgear_exchange_plugin.devhost.models import db
from shipgear_exchange_plugin.models import AuditEvent, Writeback

from .conftest import csrf_token_from


def _row(app, company_id: int, status: str) -> Writeback:
    with app.app_context():
        row = db.session.execute(sa.select(Writeback).where(
            Writeback.company_id == company_id, Writeback.status == status)
            .order_by(Writeback.id).limit(1)).scalar_one()
        db.session.expunge(row)
        return row


def _status(app, writeback_id: int) -> tuple[str, int]:
    with app.app_context():
        row = db.session.get(Writeback, writeback_id)
        return row.status, row.error_count


JSON = {"Accept": "application/json"}


def test_support_retries_a_failed_row_and_it_starts_a_new_round(seeded, client_as):
    failed = _row(seeded, 1, "failed")
    answer = client_as("support").post(f"/companies/1/ecommerce/orders/{failed.id}/retry",
                                       headers=JSON)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["ok"] is True
    assert _status(seeded, failed.id) == ("pending", 0)
    with seeded.app_context():
        event = db.session.execute(sa.select(AuditEvent).where(
            AuditEvent.action == "writeback.retry_now")).scalar_one()
        assert (event.username, event.detail["previous_error_count"]) == ("support", 5)


def test_retrying_a_successful_row_is_refused_with_a_reason(seeded, client_as):
    done = _row(seeded, 1, "success")
    answer = client_as("support").post(f"/companies/1/ecommerce/orders/{done.id}/retry",
                                       headers=JSON)
    assert answer.status_code == 409
    assert "Nothing to retry" in answer.get_json()["message"]


def test_mark_confirmed_sets_manual_and_records_who(seeded, client_as):
    failed = _row(seeded, 1, "failed")
    client = client_as("support")
    answer = client.post(f"/companies/1/ecommerce/orders/{failed.id}/mark-confirmed",
                         data={"note": "Confirmed in Seller Central"}, headers=JSON)
    assert answer.status_code == 200
    assert _status(seeded, failed.id)[0] == "manual"
    with seeded.app_context():
        event = db.session.execute(sa.select(AuditEvent).where(
            AuditEvent.action == "writeback.mark_confirmed")).scalar_one()
        assert event.detail["note"] == "Confirmed in Seller Central"
        assert event.username == "support"


def test_viewers_may_not_act_and_other_companies_rows_are_404(seeded, client_as):
    failed = _row(seeded, 1, "failed")
    other = _row(seeded, 2, "failed")
    viewer = client_as("viewer")
    assert viewer.post(f"/companies/1/ecommerce/orders/{failed.id}/retry").status_code == 403
    assert viewer.post(f"/companies/1/ecommerce/orders/{failed.id}/mark-confirmed"
                       ).status_code == 403
    admin = client_as("admin")
    # company 2's row addressed through company 1's URL
    assert admin.post(f"/companies/1/ecommerce/orders/{other.id}/retry").status_code == 404
    assert admin.post(f"/companies/1/ecommerce/orders/{other.id}/mark-confirmed"
                      ).status_code == 404
    assert client_as("support").post(f"/companies/2/ecommerce/orders/{other.id}/retry"
                                     ).status_code == 404
    assert _status(seeded, other.id) == ("failed", 5)


def test_retry_selected_takes_only_this_companys_rows(seeded, client_as):
    mine = _row(seeded, 1, "failed")
    other = _row(seeded, 2, "failed")
    answer = client_as("admin").post("/companies/1/ecommerce/orders/retry",
                                     data={"ids": [str(mine.id), str(other.id)]}, headers=JSON)
    assert answer.status_code == 200
    assert answer.get_json()["retried"] == [mine.id]
    assert _status(seeded, other.id) == ("failed", 5)


def test_retry_selected_refuses_bad_ids_with_a_message(seeded, client_as):
    client = client_as("admin")
    for ids, words in ((["abc"], "whole numbers"), ([], "Select at least one"),
                       ([",".join(str(n) for n in range(1, 1100))], "at most 1000")):
        answer = client.post("/companies/1/ecommerce/orders/retry", data={"ids": ids},
                             headers=JSON)
        assert answer.status_code == 400
        assert words in answer.get_json()["message"]


def test_actions_need_the_csrf_token(make_app):
    from shipgear_exchange_plugin.devhost.seed import seed

    app = make_app()  # CSRF on
    with app.app_context():
        seed(app, companies=2, shipments=60)
    failed = _row(app, 1, "failed")
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    assert client.post("/login", data={"username": "support", "password": "demo",
                                       "csrf_token": csrf_token_from(page)}).status_code == 302
    url = f"/companies/1/ecommerce/orders/{failed.id}/retry"
    assert client.post(url).status_code == 400
    assert _status(app, failed.id)[0] == "failed"
    html = client.get(f"/companies/1/ecommerce/?selected={failed.id}").get_data(as_text=True)
    assert "Retry now" in html and "Mark confirmed manually" in html
    answer = client.post(url, headers={"X-CSRFToken": csrf_token_from(html), "HX-Request": "true",
                                       "HX-Target": "shipment-region"})
    assert answer.status_code == 200
    assert "Retry queued" in answer.get_data(as_text=True)
    assert _status(app, failed.id) == ("pending", 0)


def test_viewers_do_not_see_the_action_buttons(seeded, client_as):
    failed = _row(seeded, 1, "failed")
    html = client_as("viewer").get(f"/companies/1/ecommerce/?selected={failed.id}"
                                   ).get_data(as_text=True)
    assert "Shipment Information" in html and failed.tracking_number in html
    assert "Retry now" not in html and "Mark confirmed manually" not in html


def test_every_state_change_of_the_plugin_needs_the_csrf_token(make_app):
    """Each POST route the plugin mounts (found in the URL map, so a new one is covered
    too) refuses a request without the token and changes nothing, and accepts the token
    the way htmx sends it, in the X-CSRFToken header."""
    from shipgear_exchange_plugin.devhost.seed import seed
    from shipgear_exchange_plugin.models import StoreAccount

    app = make_app()  # CSRF on
    with app.app_context():
        seed(app, companies=2, shipments=60)
        account = db.session.execute(sa.select(StoreAccount.id).where(
            StoreAccount.company_id == 1).limit(1)).scalar_one()
    failed = _row(app, 1, "failed")
    values = {"company_id": 1, "writeback_id": failed.id, "account_id": account,
              "platform": "shopify"}
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    assert client.post("/login", data={"username": "admin", "password": "demo",
                                       "csrf_token": csrf_token_from(page)}).status_code == 302
    token = csrf_token_from(client.get("/companies/1/ecommerce/").get_data(as_text=True))

    def audited() -> int:
        with app.app_context():
            return db.session.execute(sa.select(sa.func.count()).select_from(AuditEvent)
                                      ).scalar_one()

    rules = [rule for rule in app.url_map.iter_rules()
             if rule.endpoint.startswith("shipgear_ecommerce.") and "POST" in rule.methods]
    assert {rule.endpoint.split(".")[1] for rule in rules} >= {
        "retry_one", "retry_many", "mark_confirmed", "set_credentials", "test_connection",
        "save_alerts", "products_sync"}
    before = audited()
    with app.test_request_context():
        from flask import url_for
        urls = [url_for(rule.endpoint, **{k: values[k] for k in rule.arguments})
                for rule in rules]
    for url in urls:
        refused = client.post(url, data={"ids": str(failed.id)})
        assert refused.status_code == 400, url
        assert "CSRF" in refused.get_data(as_text=True), url
    assert audited() == before and _status(app, failed.id)[0] == "failed"
    for url in urls:
        taken = client.post(url, data={"ids": str(failed.id)},
                            headers={"X-CSRFToken": token, "HX-Request": "true"})
        assert taken.status_code < 500 and "CSRF" not in taken.get_data(as_text=True), url
    assert audited() > before


def test_retry_now_says_when_a_package_waits_for_an_amazon_feed(seeded, client_as):
    """A failed row whose last attempt went in an Amazon feed of unknown fate: Retry now
    starts a new round, but the answer says the attempt waits for the feed."""
    import datetime as dt

    from shipgear_exchange_plugin.models import utcnow
    from shipgear_exchange_plugin.writeback import FEED_UNKNOWN

    failed = _row(seeded, 1, "failed")
    plain = [r.id for r in _rows(seeded, 1, "failed", 3)[1:]]
    with seeded.app_context():
        db.session.execute(sa.update(Writeback).where(Writeback.id == failed.id).values(
            feed_id=FEED_UNKNOWN, last_attempt_at=utcnow() - dt.timedelta(minutes=10)))
        db.session.commit()
    support = client_as("support")
    answer = support.post(f"/companies/1/ecommerce/orders/{failed.id}/retry", headers=JSON)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    message = answer.get_json()["message"]
    assert "may be in an Amazon feed that Amazon is still processing" in message
    assert "waits about 20 minutes" in message
    assert _status(seeded, failed.id) == ("pending", 0)
    bulk = support.post("/companies/1/ecommerce/orders/retry", headers=JSON,
                        data={"ids": [str(i) for i in (failed.id, *plain)]})
    assert bulk.status_code == 200, bulk.get_data(as_text=True)
    assert bulk.get_json()["message"] == (
        "3 of 3 selected orders queued for retry. 1 of them may be in an Amazon feed that "
        "Amazon is still processing: they wait for it, then ask Amazon first.")


def _rows(app, company_id: int, status: str, count: int) -> list[Writeback]:
    with app.app_context():
        rows = db.session.execute(sa.select(Writeback).where(
            Writeback.company_id == company_id, Writeback.status == status)
            .order_by(Writeback.id).limit(count)).scalars().all()
        db.session.expunge_all()
        return rows


def test_the_shipment_panel_says_who_retried_and_who_confirmed_by_hand(seeded, client_as):
    """B8's audit is visible where support looks: the row's shipment panel."""
    failed = _row(seeded, 1, "failed")
    support = client_as("support")
    base = f"/companies/1/ecommerce/orders/{failed.id}"
    assert support.post(f"{base}/retry", headers=JSON).status_code == 200
    assert support.post(f"{base}/mark-confirmed", headers=JSON,
                        data={"note": "Seen on <b>Seller Central</b>"}).status_code == 200
    panel = client_as("viewer").get(base, headers={"HX-Request": "true"})
    assert panel.status_code == 200
    text = panel.get_data(as_text=True)
    assert "Actions by people" in text
    assert "support clicked Retry now on a failed row: a new round of 5 attempts " \
           "(error count was 5)" in " ".join(text.split())
    assert "support marked it confirmed by hand: “Seen on &lt;b&gt;Seller Central&lt;/b&gt;”" \
        in text
    assert "Last error before it was confirmed by hand" in text
    other = _row(seeded, 1, "success")
    untouched = client_as("viewer").get(f"/companies/1/ecommerce/orders/{other.id}",
                                        headers={"HX-Request": "true"})
    assert "Actions by people" not in untouched.get_data(as_text=True)
