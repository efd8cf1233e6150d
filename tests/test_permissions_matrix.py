"""Every route of the plugin as admin, support, viewer, a member of another company,
signed out, and on a company whose plugin is disabled: the answer each cell expects
(PRODUCT.md §5, issue 6): 404 where the company is not theirs or the plugin is off,
403 where the role is missing, the login page when signed out."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shipgear_exchange_plugin.devhost.models import db
from shipgear_exchange_plugin.models import StoreAccount, Writeback

from .conftest import login

VIEW, ACT, MANAGE = "view", "act", "manage"
#: (method, path below /companies/<id>/ecommerce, permission needed)
ROUTES = [
    ("GET", "/", VIEW),
    ("GET", "/status", VIEW),
    ("GET", "/status.json", VIEW),
    ("GET", "/orders.json", VIEW),
    ("GET", "/orders/{writeback}", VIEW),
    ("GET", "/orders/export.csv", VIEW),
    ("GET", "/products", VIEW),
    ("GET", "/products.json", VIEW),
    ("GET", "/openapi.json", VIEW),
    ("GET", "/orders/export-amazon.txt", VIEW),
    ("GET", "/accounts", MANAGE),
    ("POST", "/accounts/{account}/credentials", MANAGE),
    ("POST", "/accounts/{account}/test", MANAGE),
    ("POST", "/accounts/alerts", MANAGE),
    ("GET", "/accounts/connect/shopify", MANAGE),
    ("POST", "/accounts/connect/shopify", MANAGE),
    ("GET", "/accounts/{account}/settings", MANAGE),
    ("POST", "/accounts/{account}/settings", MANAGE),
    ("POST", "/products/sync", MANAGE),
    ("POST", "/orders/{writeback}/retry", ACT),
    ("POST", "/orders/retry", ACT),
    ("POST", "/orders/{writeback}/mark-confirmed", ACT),
]
ROLES = {"admin": {VIEW, ACT, MANAGE}, "support": {VIEW, ACT}, "viewer": {VIEW}}


def _ids(app, company_id: int) -> dict[str, int]:
    with app.app_context():
        writeback = db.session.execute(sa.select(Writeback.id).where(
            Writeback.company_id == company_id, Writeback.status == "failed")).scalars().first()
        account = db.session.execute(sa.select(StoreAccount.id).where(
            StoreAccount.company_id == company_id)).scalars().first()
    return {"writeback": writeback or 999_999, "account": account or 999_999}


def _call(client, method: str, company_id: int, path: str, ids: dict[str, int]):
    url = f"/companies/{company_id}/ecommerce" + path.format(**ids)
    data = {"ids": str(ids["writeback"])} if path == "/orders/retry" else {}
    answer = client.open(url, method=method, data=data, headers={"Accept": "application/json"})
    answer.get_data()  # read streamed bodies (the export) to the end
    answer.close()
    return answer


@pytest.mark.parametrize(("method", "path", "needs"), ROUTES,
                         ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_permission_matrix(seeded, method, path, needs):
    company_1, company_2, company_3 = _ids(seeded, 1), _ids(seeded, 2), _ids(seeded, 3)
    signed_out = seeded.test_client()
    answer = _call(signed_out, method, 1, path, company_1)
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]
    for username, granted in ROLES.items():
        client = seeded.test_client()
        assert login(client, username).status_code == 302
        answer = _call(client, method, 1, path, company_1)
        if needs in granted:
            assert answer.status_code not in (403, 404, 500), (username, answer.status_code)
            assert "/login" not in answer.headers.get("Location", ""), username
        else:
            assert answer.status_code == 403, (username, answer.status_code)
        # company 3 has the plugin disabled: 404 even for the host admin
        assert _call(client, method, 3, path, company_3).status_code == 404, username
        if username != "admin":  # support and viewer are not members of company 2
            assert _call(client, method, 2, path, company_2).status_code == 404, username
    admin = seeded.test_client()
    login(admin, "admin")
    # company 2's ids addressed through company 1: never found there
    if "{" in path:
        assert _call(admin, method, 1, path, company_2).status_code in (400, 404)


def test_the_matrix_covers_every_route_of_the_plugin(app):
    """A route added later must be added above, so that it is checked too."""
    mounted = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("shipgear_ecommerce.") and "static" not in rule.endpoint:
            path = rule.rule.split("/ecommerce", 1)[1] or "/"
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                mounted.add((method, path))
    listed = set()
    for method, path, _ in ROUTES:
        for name, converter in (("{writeback}", "<int:writeback_id>"),
                                ("{account}", "<int:account_id>"), ("shopify", "<platform>")):
            path = path.replace(name, converter)
        listed.add((method, path))
    assert mounted - listed == set()
