"""The OpenAPI 3.1 description is served, valid, and every JSON answer the plugin gives
in these scenarios matches it (a response that does not match fails the suite)."""

from __future__ import annotations

import jsonschema
import pytest
import sqlalchemy as sa
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from shipgear_exchange_plugin.devhost.models import db
from shipgear_exchange_plugin.models import Writeback

BASE = "/companies/1/ecommerce"
JSON = {"Accept": "application/json"}


class Contract:
    def __init__(self, document: dict) -> None:
        self.document = document
        self.registry = Registry().with_resource(
            "urn:openapi", Resource.from_contents(document, default_specification=DRAFT202012))

    def check(self, method: str, path: str, answer) -> None:
        """The answer's status is documented for this operation and its body matches."""
        operation = self.document["paths"][path][method.lower()]
        documented = operation["responses"].get(str(answer.status_code))
        assert documented, f"{method} {path}: status {answer.status_code} is not documented"
        content = documented.get("content", {}).get("application/json")
        if content is None:
            return
        schema = {"$ref": "urn:openapi" + content["schema"]["$ref"].replace("#", "#", 1)}
        validator = jsonschema.Draft202012Validator(
            schema, registry=self.registry, format_checker=jsonschema.FormatChecker())
        errors = sorted(validator.iter_errors(answer.get_json()), key=str)
        assert not errors, f"{method} {path} {answer.status_code}: {errors[0].message}"


@pytest.fixture
def contract(client_as) -> Contract:
    answer = client_as("viewer").get(f"{BASE}/openapi.json")
    assert answer.status_code == 200
    document = answer.get_json()
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": BASE}]
    jsonschema.Draft202012Validator.check_schema(
        {"$defs": document["components"]["schemas"]})
    return Contract(document)


def test_status_orders_and_products_answers_match(contract, client_as):
    client = client_as("viewer")
    contract.check("GET", "/status.json", client.get(f"{BASE}/status.json"))
    for query in ({}, {"status": "failed", "sort": "-errors", "limit": 5},
                  {"sort": "last_attempt", "limit": 3}, {"q": "1Z"}):
        answer = client.get(f"{BASE}/orders.json", query_string=query)
        contract.check("GET", "/orders.json", answer)
        if answer.get_json()["next"]:
            contract.check("GET", "/orders.json", client.get(
                f"{BASE}/orders.json", query_string={**query, "after": answer.get_json()["next"]}))
    for query in ({"sort": "bogus"}, {"limit": 9999}, {"after": "x"}, {"status": "lost"}):
        contract.check("GET", "/orders.json", client.get(f"{BASE}/orders.json",
                                                         query_string=query))
    contract.check("GET", "/products.json", client.get(f"{BASE}/products.json"))
    contract.check("GET", "/products.json", client.get(f"{BASE}/products.json",
                                                       query_string={"after": "x"}))


def test_action_answers_match(contract, client_as, seeded):
    with seeded.app_context():
        failed, done = (db.session.execute(sa.select(Writeback.id).where(
            Writeback.company_id == 1, Writeback.status == status)).scalars().first()
            for status in ("failed", "success"))
    client = client_as("support")
    contract.check("POST", "/orders/{writeback_id}/retry",
                   client.post(f"{BASE}/orders/{failed}/retry", headers=JSON))
    contract.check("POST", "/orders/{writeback_id}/retry",
                   client.post(f"{BASE}/orders/{done}/retry", headers=JSON))
    contract.check("POST", "/orders/retry",
                   client.post(f"{BASE}/orders/retry", data={"ids": str(failed)}, headers=JSON))
    contract.check("POST", "/orders/retry",
                   client.post(f"{BASE}/orders/retry", data={"ids": "x"}, headers=JSON))
    contract.check("POST", "/orders/{writeback_id}/mark-confirmed",
                   client.post(f"{BASE}/orders/{failed}/mark-confirmed", headers=JSON))
    contract.check("POST", "/orders/{writeback_id}/retry",
                   client_as("viewer").post(f"{BASE}/orders/{failed}/retry", headers=JSON))
