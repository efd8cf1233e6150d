"""/metrics: off by default, bearer-token protected, and reporting what a scraper needs."""

from __future__ import annotations

import re

from shipgear_exchange_plugin.devhost.seed import seed


def test_metrics_are_off_unless_a_token_is_configured(seeded):
    assert seeded.test_client().get("/metrics").status_code == 404


def test_metrics_need_the_token_and_report_writebacks_queues_and_statuses(make_app):
    app = make_app(WTF_CSRF_ENABLED=False, SHIPGEAR_METRICS_TOKEN="s3cret-scrape")
    with app.app_context():
        seed(app, companies=2, shipments=100)
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    answer = client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    counts = {m.group(1): float(m.group(2)) for m in re.finditer(
        r'^shipgear_writebacks\{status="(\w+)"\} ([\d.e+]+)$', text, re.MULTILINE)}
    assert set(counts) >= {"success", "failed", "pending"} and sum(counts.values()) >= 100
    assert 'shipgear_queue_jobs{queue="shipgear-writeback"}' in text
    assert re.search(r'shipgear_api_status\{account_id="\d+",api="orders",platform="amazon"\} 0',
                     text)
    assert "shipgear_status_store_up 1.0" in text
    assert re.search(r'^shipgear_attempts\{outcome="accepted"\} \d', text, re.MULTILINE)
