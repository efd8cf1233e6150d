"""Fuzzing the JSON surfaces with schemathesis, on both backends.

The OpenAPI 3.1 description the plugin serves (``openapi.json``) is read through a
signed-in support session (a role with ``ecommerce.act``, so the actions run their real
code paths) and loaded with schemathesis' Python API; every operation in it is then sent
valid and invalid data (schemathesis' positive and negative generation, driven by a
bounded, derandomized hypothesis run) in-process on the same WSGI app and session. Every
answer is checked:

- no 5xx (with TESTING on, a server error raises out of the test client);
- its status is documented for the operation and its body matches the schema;
- data that breaks the description is refused with a 4xx;
- every 4xx says why: a JSON body with a non-empty ``error`` / ``message`` or, for an HTML
  answer, a page with a readable sentence.

(``schemathesis.pytest.from_fixture`` is not used: with pytest 9 it fails on the removed
``Node._nodeid``; ``APIOperation.as_strategy`` under our own ``@given`` is the same
generation without the pytest plumbing.)

The cases the fuzzing found are kept below as plain regression tests.
"""

from __future__ import annotations

import html
import re

import jsonschema
import pytest
import schemathesis
import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis import GenerationMode

from shipgear_exchange_plugin.devhost.models import db
from shipgear_exchange_plugin.models import Writeback
from shipgear_exchange_plugin.paths import OPENAPI_PATH

BASE = "/companies/1/ecommerce"
JSON = {"Accept": "application/json"}
#: Every operation of the description, read from the packaged file so that each is its own
#: test; the served document must list exactly these (test below).
OPERATIONS = [(method.upper(), path) for path, item in
              yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))["paths"].items()
              for method in item]
#: Left out: "schema-valid data is accepted". Some refusals of data the description allows
#: depend on the state, not on the shape: a cursor this app did not sign, another
#: company's account id, 'To' before 'From'. They are still checked: documented 400,
#: JSON error body, readable message.
STATEFUL_REFUSALS = [schemathesis.checks.positive_data_acceptance]
#: Statuses each operation's fuzz run must have seen (else it tested less than it claims).
REACHED = {
    ("GET", "/status.json"): {200},
    ("GET", "/orders.json"): {200, 400},
    ("GET", "/products.json"): {200, 400},
    ("POST", "/orders/{writeback_id}/retry"): {200, 404, 409},
    ("POST", "/orders/retry"): {200, 400},
    ("POST", "/orders/{writeback_id}/mark-confirmed"): {200, 400, 404},
}
#: Bounded and reproducible: the same cases on every run, in well under a minute.
EXAMPLES = 100


def fuzz_settings(max_examples: int = EXAMPLES):
    return settings(max_examples=max_examples, deadline=None, derandomize=True,
                    database=None, suppress_health_check=list(HealthCheck))


def message_of(content_type: str, body) -> str:
    """The human message of a 4xx answer, whatever its kind ('' when there is none)."""
    if "json" in content_type:
        if not isinstance(body, dict):
            return ""
        text = body.get("error") or body.get("message") or ""
        return text if isinstance(text, str) else ""
    # HTML: the paragraphs (werkzeug's error pages) or the plugin's alert.
    parts = re.findall(r"<p[^>]*>(.*?)</p>", body, flags=re.S) or re.findall(
        r'role="alert"[^>]*>(.*?)</(?:div|p|section)>', body, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", p)).strip() for p in parts)


def readable(message: str) -> bool:
    """At least ten characters, two words of them."""
    return len(message.strip()) >= 10 and bool(re.search(r"[A-Za-z]{2,}\W+[A-Za-z]{2,}",
                                                          message))


def four_xx_says_why(ctx, response, case):
    """schemathesis check: a refusal carries a sentence the user can act on."""
    if 400 <= response.status_code < 500:
        content_type = response.headers.get("content-type", [""])[0]
        body = response.json() if "json" in content_type else response.text
        assert readable(message_of(content_type, body)), (
            f"{case.method} {case.formatted_path} answered {response.status_code} "
            f"without a readable message: {response.text[:300]!r}")


@pytest.fixture
def fuzz_client(client_as):
    return client_as("support")


@pytest.fixture
def served_schema(seeded, fuzz_client):
    """The description the plugin serves, read through the signed-in session; its
    operations are called in-process on the same WSGI app with that session."""
    answer = fuzz_client.get(f"{BASE}/openapi.json")
    assert answer.status_code == 200
    schema = schemathesis.openapi.from_dict(answer.get_json())
    schema.app = seeded
    return schema


def company_rows(app) -> list[int]:
    """A few real write-backs of company 1 in every status (for the action operations)."""
    with app.app_context():
        ids = []
        for status in ("pending", "submitted", "success", "failed", "manual"):
            ids += db.session.execute(sa.select(Writeback.id).where(
                Writeback.company_id == 1, Writeback.status == status)
                .order_by(Writeback.id).limit(3)).scalars().all()
        return ids


def test_the_served_description_lists_the_fuzzed_operations(served_schema):
    served = sorted((op.ok().method.upper(), op.ok().path)
                    for op in served_schema.get_all_operations())
    assert served == sorted(OPERATIONS)
    assert served_schema.raw_schema["servers"] == [{"url": BASE}]


@pytest.mark.parametrize(("method", "path"), OPERATIONS,
                         ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_fuzz_operation(served_schema, fuzz_client, seeded, method, path):
    operation = served_schema[path][method]
    strategies = [operation.as_strategy(GenerationMode.POSITIVE),
                  operation.as_strategy(GenerationMode.NEGATIVE)]
    if "{writeback_id}" in path:  # also on real rows, not only on ids that do not exist
        strategies.append(st.sampled_from(company_rows(seeded)).flatmap(
            lambda wid: operation.as_strategy(GenerationMode.POSITIVE,
                                              path_parameters={"writeback_id": wid})))
    seen = set()

    @fuzz_settings()
    @given(case=st.one_of(strategies))
    def run(case):
        response = case.call_and_validate(session=fuzz_client, app=seeded, headers=JSON,
                                          additional_checks=[four_xx_says_why],
                                          excluded_checks=STATEFUL_REFUSALS)
        seen.add(response.status_code)

    run()
    # The run reached both the accepting and the refusing code paths of the operation.
    assert REACHED.get((method, path), set()) <= seen and seen, sorted(seen)


# -- regression tests: the concrete inputs the fuzzing found --------------------------------
def replay(schema, client, app, method: str, path: str, **data):
    """Send one concrete case of an operation and check its answer against the served
    description and the checks above (5xx, documented status and body, readable 4xx)."""
    case = schema[path][method].Case(**data)
    return case.call_and_validate(session=client, app=app, headers=JSON,
                                  additional_checks=[four_xx_says_why])


def row_state(app, writeback_id: int) -> tuple[str, int]:
    with app.app_context():
        row = db.session.get(Writeback, writeback_id)
        return row.status, row.error_count


def first_row(app, status: str) -> int:
    with app.app_context():
        return db.session.execute(sa.select(Writeback.id).where(
            Writeback.company_id == 1, Writeback.status == status)
            .order_by(Writeback.id)).scalars().first()


def test_an_id_past_the_id_column_is_a_404_not_a_database_error(served_schema, fuzz_client,
                                                                seeded):
    """POST orders/2147483648/retry (and mark-confirmed): the id went to the database,
    which refused it (PostgreSQL: integer out of range; SQLite: OverflowError): a 500."""
    for action in ("retry", "mark-confirmed"):
        for writeback_id in (2**31, 2**63):
            answer = replay(served_schema, fuzz_client, seeded, "POST",
                            f"/orders/{{writeback_id}}/{action}",
                            path_parameters={"writeback_id": writeback_id})
            assert answer.status_code == 404, (action, writeback_id)
            assert answer.json() == {"ok": False,
                                     "message": "No such write-back in this company."}
            page = fuzz_client.post(f"{BASE}/orders/{writeback_id}/{action}")  # HTML client
            assert page.status_code == 404
            assert "No such write-back in this company." in page.get_data(as_text=True)


def test_retry_selected_with_ids_no_row_can_have_retries_the_others(served_schema,
                                                                   fuzz_client, seeded):
    """POST orders/retry ids=3000000000: the same database error through the bulk form
    (and an id of 5,000 digits is past what int() reads at all)."""
    failed = first_row(seeded, "failed")
    for ids in ("3000000000", "10000000000000000000", "0", "1" + "0" * 5000):
        answer = replay(served_schema, fuzz_client, seeded, "POST", "/orders/retry",
                        body={"ids": f"{ids},{failed}"},
                        media_type="application/x-www-form-urlencoded")
        assert answer.status_code == 200, ids[:30]
        assert answer.json() == {"ok": True, "retried": [failed],
                                 "message": "1 of 1 selected orders queued for retry."}
        assert row_state(seeded, failed) == ("pending", 0)


def test_retry_selected_with_digits_that_are_not_numbers_is_a_400(served_schema,
                                                                  fuzz_client, seeded):
    """ids=²: str.isdigit() let it through and int() refused it (a 500)."""
    for ids in ("²", "1,²", "٣"):
        answer = replay(served_schema, fuzz_client, seeded, "POST", "/orders/retry",
                        body={"ids": ids}, media_type="application/x-www-form-urlencoded")
        assert answer.status_code == 400, ids
        assert answer.json() == {"ok": False,
                                 "message": "Select orders by their ids (whole numbers)."}


def test_a_note_too_long_is_a_json_400_for_a_json_client(served_schema, fuzz_client, seeded):
    """mark-confirmed with a 501-character note answered an HTML 400 to a JSON client,
    a status and a content type the description did not have."""
    failed = first_row(seeded, "failed")
    answer = replay(served_schema, fuzz_client, seeded, "POST",
                    "/orders/{writeback_id}/mark-confirmed",
                    path_parameters={"writeback_id": failed}, body={"note": "n" * 501},
                    media_type="application/x-www-form-urlencoded")
    assert answer.status_code == 400
    assert answer.json() == {"ok": False, "message": (
        "The form expired or the note is too long; reload and try again.")}
    assert row_state(seeded, failed)[0] == "failed"  # nothing was changed
    page = fuzz_client.post(f"{BASE}/orders/{failed}/mark-confirmed", data={"note": "n" * 501})
    assert page.status_code == 400 and "the note is too long" in page.get_data(as_text=True)
    done = replay(served_schema, fuzz_client, seeded, "POST",
                  "/orders/{writeback_id}/mark-confirmed",
                  path_parameters={"writeback_id": failed}, body={"note": "n" * 500},
                  media_type="application/x-www-form-urlencoded")
    assert done.status_code == 200 and row_state(seeded, failed)[0] == "manual"


def test_a_viewer_gets_a_json_403_that_says_why(served_schema, client_as, seeded):
    failed = first_row(seeded, "failed")
    viewer = client_as("viewer")
    for path, data in (("/orders/{writeback_id}/retry", {}),
                       ("/orders/{writeback_id}/mark-confirmed", {}),
                       ("/orders/retry", {"body": {"ids": str(failed)},
                                          "media_type": "application/x-www-form-urlencoded"})):
        answer = replay(served_schema, viewer, seeded, "POST", path,
                        path_parameters={"writeback_id": failed} if "{" in path else {},
                        **data)
        assert answer.status_code == 403, path
        assert "may not retry or confirm" in answer.json()["message"]
    assert row_state(seeded, failed)[0] == "failed"


def test_blank_parameters_count_as_not_given(served_schema, fuzz_client, seeded):
    """``date_from=&sort=&limit=`` (what an HTML form sends for empty fields) is accepted
    as no filter; the description said these had to be a date, a sort and a number (so
    schemathesis' negative data "date_to=" was "accepted")."""
    document = served_schema.raw_schema
    registry = Registry().with_resource("urn:openapi", Resource.from_contents(
        document, default_specification=DRAFT202012))
    for path in ("/orders.json", "/products.json"):
        for parameter in document["paths"][path]["get"]["parameters"]:
            schema = parameter["schema"]
            if "$ref" in schema:
                schema = {"$ref": "urn:openapi" + schema["$ref"]}
            validator = jsonschema.Draft202012Validator(
                schema, registry=registry, format_checker=jsonschema.FormatChecker())
            assert validator.is_valid(""), f"{path} {parameter['name']}: blank is refused"
    plain = replay(served_schema, fuzz_client, seeded, "GET", "/orders.json")
    blank = replay(served_schema, fuzz_client, seeded, "GET", "/orders.json", query={
        "date_from": "", "date_to": "", "sort": "", "limit": "", "status": "",
        "account": "", "q": "", "after": ""})
    assert blank.status_code == plain.status_code == 200
    assert blank.json() == plain.json() and len(plain.json()["items"]) == 50
    products = replay(served_schema, fuzz_client, seeded, "GET", "/products.json",
                      query={"limit": "", "q": "", "account": "", "after": ""})
    assert products.status_code == 200


@pytest.mark.parametrize("text_with_nul", ['[1, "a\\u0000"]'])
def test_a_products_page_link_with_a_nul_is_a_400(served_schema, fuzz_client, seeded,
                                                   text_with_nul):
    """A signed-looking products cursor carrying NUL (a SKU PostgreSQL could never have
    stored) was a database error on PostgreSQL; it is a damaged page link like any other."""
    import base64

    after = base64.urlsafe_b64encode(text_with_nul.encode()).decode().rstrip("=")
    answer = replay(served_schema, fuzz_client, seeded, "GET", "/products.json",
                    query={"after": after})
    assert answer.status_code == 400
    assert "page link is not valid" in str(answer.json())
