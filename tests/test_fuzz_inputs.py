"""Property-based fuzzing (hypothesis) of the orders grid's input, on both backends:

- the filter form: any mix of valid, boundary and arbitrary values for every grid
  parameter, sent to the page, ``orders.json`` and the CSV export, is a 200 whose rows obey
  the filter or a 400 that says which parameter was refused and why;
- the sort parser: any text is a valid sort or a ValueError naming the sorts;
- cursor decoding: any token is a cursor or a CursorError, and whatever a *signed*
  payload decodes to can be run against the database (the signature only proves that we
  made it, not that it is a cursor of ours).

Every run is derandomized and bounded. The cases the fuzzing found are kept at the end as
plain regression tests with their concrete input.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from shipgear_exchange_plugin import orders
from shipgear_exchange_plugin.devhost.models import Company, db
from shipgear_exchange_plugin.models import StoreAccount, Writeback, WritebackStatus

BASE = "/companies/1/ecommerce"
STATUSES = [s.value for s in WritebackStatus]
SORT_VALUES = [s for key in orders.SORTS for s in (key, f"-{key}")]
#: Text a browser can send (no lone surrogates: they cannot be UTF-8 encoded).
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
EXTREME_DATES = [dt.date.min, dt.date.max, dt.date(1, 1, 2), dt.date(9999, 12, 30),
                 dt.date(1970, 1, 1), dt.date(2000, 2, 29)]


def fuzz_settings(max_examples: int):
    return settings(max_examples=max_examples, deadline=None, derandomize=True,
                    database=None, suppress_health_check=list(HealthCheck))


# -- the filter form, through every route that reads it ----------------------------------
def query_strategy(accounts: list[int], foreign: list[int], prefixes: list[str]):
    """Query arguments of the grid: a filter a user could build (each parameter there or
    not, boundary values included), then in about half of the cases one or two parameters
    given odd values (anything at all, out of range, repeated)."""
    def comma(values):
        return st.lists(st.sampled_from(values), min_size=1, max_size=3).map(
            lambda vs: ", ".join(str(v) for v in vs))

    day = st.one_of(st.sampled_from([dt.date.min, dt.date.max]),
                    st.sampled_from(EXTREME_DATES), st.dates()).map(dt.date.isoformat)
    valid = {
        "status": comma(STATUSES),
        "date_from": day,
        "date_to": day,
        "account": comma(accounts),
        "q": st.one_of(st.sampled_from(prefixes), TEXT.map(
            lambda t: "".join(c for c in t if ord(c) >= 32))),
        "sort": st.sampled_from(SORT_VALUES),
        "limit": st.integers(1, orders.MAX_PAGE_SIZE).map(str),
        "selected": st.integers(0, 2**31 - 1).map(str),
    }
    odd = {
        "status": TEXT,
        "date_from": TEXT,
        "date_to": TEXT,
        "account": st.one_of(comma(foreign + [0, 2**31, 10**30]), TEXT),
        "q": st.one_of(TEXT, st.text(min_size=95, max_size=105)),
        "sort": st.one_of(TEXT, st.sampled_from(SORT_VALUES).map(lambda s: f" -{s} ")),
        "limit": st.one_of(st.integers(), TEXT.map(str)).map(str),
        "after": TEXT,
        "selected": st.one_of(st.integers().map(str), TEXT, st.just("²")),
        "page": TEXT,  # not a parameter of the grid: ignored
    }
    base = st.fixed_dictionaries({}, optional={k: v.map(lambda x: [x])
                                               for k, v in valid.items()})
    spoiled = st.lists(st.sampled_from(sorted(odd)), min_size=0, max_size=2, unique=True)

    @st.composite
    def build(draw):
        args = draw(base)
        for name in draw(spoiled):
            values = draw(st.lists(odd[name], min_size=1, max_size=2))
            args[name] = values if draw(st.booleans()) else args.get(name, []) + values
        return MultiDict([(k, v) for k, vs in args.items() for v in vs])

    return build()


def joined(args: MultiDict, name: str) -> list[str]:
    return [v.strip() for raw in args.getlist(name) for v in raw.split(",") if v.strip()]


def check_rows_obey(args: MultiDict, items: list[dict], timezone: str) -> None:
    """What a 200 from orders.json promises about its rows, given the filter it accepted."""
    zone = ZoneInfo(timezone)
    statuses = joined(args, "status")
    accounts = {int(v) for v in joined(args, "account")}
    # As WTForms reads them: no date when the first value is blank, else all values joined.
    days = {name: dt.datetime.strptime(" ".join(args.getlist(name)), "%Y-%m-%d").date()
            for name in ("date_from", "date_to") if args.get(name, "").strip()}
    search = (args.get("q") or "").strip().lower()
    limit = int(args["limit"]) if args.get("limit", "").strip() else orders.PAGE_SIZE
    assert len(items) <= limit
    for item in items:
        local_day = dt.datetime.fromisoformat(item["ship_date"]).astimezone(zone).date()
        assert not statuses or item["status"] in statuses, (item, statuses)
        assert not accounts or item["account_id"] in accounts, (item, accounts)
        assert days.get("date_from", dt.date.min) <= local_day <= days.get("date_to",
                                                                            dt.date.max)
        assert not search or item["order_id"].lower().startswith(search) or item[
            "tracking_number"].lower().startswith(search), (item, search)


def refused_with_message(answer, where: str) -> str:
    """A 400's message: JSON ``error`` for the JSON routes, the alert in the page."""
    if where == "page":
        alerts = re.findall(r'role="alert">([^<]+)<', answer.get_data(as_text=True))
        assert alerts, "a refused filter shows no message in the page"
        return " ".join(alerts)
    message = answer.get_json()["error"]
    assert isinstance(message, str)
    return message


LABELS = {"status": "Status", "date_from": "From", "date_to": "To", "account": "Account",
          "q": "Search", "sort": "Sort", "after": "Page", "limit": "Rows"}


def test_any_grid_filter_is_a_200_that_obeys_it_or_a_400_that_says_why(seeded, client_as):
    client = client_as("viewer")
    with seeded.app_context():
        accounts = db.session.execute(sa.select(StoreAccount.id).where(
            StoreAccount.company_id == 1)).scalars().all()
        foreign = db.session.execute(sa.select(StoreAccount.id).where(
            StoreAccount.company_id != 1)).scalars().all()
        rows = db.session.execute(sa.select(Writeback.order_id, Writeback.tracking_number)
                                  .where(Writeback.company_id == 1).limit(20)).all()
        timezone = db.session.get(Company, 1).timezone
    prefixes = [text[:n] for row in rows for text in row for n in (3, 6)]
    seen = {"page": set(), "json": set(), "csv": set()}

    @fuzz_settings(100)
    @given(args=query_strategy(accounts, foreign, prefixes))
    @example(args=MultiDict({"date_to": "9999-12-31"}))
    @example(args=MultiDict({"date_from": "0001-01-01", "date_to": "0001-01-01"}))
    @example(args=MultiDict({"selected": "²"}))
    def run(args):
        page = client.get(f"{BASE}/", query_string=args)
        listed = client.get(f"{BASE}/orders.json", query_string=args)
        export = client.get(f"{BASE}/orders/export.csv", query_string=args)
        body = export.get_data(as_text=True)  # the CSV streams: read it all
        for where, answer in (("page", page), ("json", listed), ("csv", export)):
            assert answer.status_code in (200, 400), (where, args, answer.status_code)
            seen[where].add(answer.status_code)
        # One parser behind the three: they agree on accepting the filter.
        assert page.status_code == listed.status_code == export.status_code, (
            args, page.status_code, listed.status_code, export.status_code)
        if listed.status_code == 400:
            message = refused_with_message(listed, "json")
            assert any(f"{label}: " in message for label in LABELS.values()), message
            assert len(message) < 2000  # says why without echoing a huge input
        else:
            check_rows_obey(args, listed.get_json()["items"], timezone)
        if page.status_code == 400:
            assert refused_with_message(page, "page")
        if export.status_code == 400:
            assert export.get_json()["error"].startswith("Invalid filter: ")
        else:
            assert "order_id" in body.split("\n", 1)[0]  # the header row comes first

    run()
    assert seen == {"page": {200, 400}, "json": {200, 400}, "csv": {200, 400}}


# -- the sort parser -----------------------------------------------------------------------
@fuzz_settings(300)
@given(raw=st.one_of(TEXT, st.none(), st.sampled_from(SORT_VALUES),
                     st.tuples(st.sampled_from(["", "-", "--", " ", "+"]),
                               st.sampled_from(list(orders.SORTS)),
                               st.sampled_from(["", " ", "-", "x"])).map("".join)))
def test_any_sort_text_is_a_sort_or_says_which_sorts_exist(raw):
    try:
        value = orders.parse_sort(raw)
    except ValueError as exc:
        assert "sort by one of: " + ", ".join(orders.SORTS) in str(exc)
        assert len(str(exc)) < 400  # the refused text is cut, not echoed whole
        return
    assert value in SORT_VALUES
    assert value == ((raw or "").strip() or orders.DEFAULT_SORT)


# -- cursors -------------------------------------------------------------------------------
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=2),
    max_leaves=6)
#: Strings a cursor value may hold: text, NUL, too long, dates in and out of range.
ODD_STRINGS = st.sampled_from([
    "a\x00b", "x" * 201, "2026-01-01", "2026-01-01T00:00:00", "2026-01-01T00:00:00+00:00",
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-13-45T00:00:00+00:00"])
MOMENTS = st.datetimes(timezones=st.one_of(st.none(), st.sampled_from(
    [dt.UTC, ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York")]))).map(dt.datetime.isoformat)
#: Any value at all, for a column of any type.
ANY_VALUE = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                      TEXT, ODD_STRINGS, MOMENTS)


def value_for(column) -> st.SearchStrategy:
    """A value of the column's kind (in range or not), or now and then any value."""
    kind = orders._python_type(column)
    typed = {int: st.one_of(st.integers(-2**31, 2**31 - 1), st.integers(),
                            st.integers(2**31 - 2, 2**63 + 2)),
             str: st.one_of(TEXT, ODD_STRINGS),
             dt.datetime: st.one_of(MOMENTS, ODD_STRINGS)}[kind]
    if column.nullable:
        typed = st.one_of(typed, st.none())
    return st.one_of(typed, typed, typed, ANY_VALUE)


def cursor_payload(sort: str) -> st.SearchStrategy:
    """What a signed cursor may hold for ``sort``: [sort, values] with one value per
    column (of the column's kind or not), a list of another length, or any JSON."""
    columns = (*orders.SORTS[sort.lstrip("-")], Writeback.id)
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=2),
        max_leaves=6)
    return st.one_of(
        st.tuples(*(value_for(c) for c in columns)).map(lambda vs: [sort, list(vs)]),
        st.tuples(*(value_for(c) for c in columns)).map(lambda vs: [sort, list(vs)]),
        st.lists(ANY_VALUE, max_size=4).map(lambda vs: [sort, vs]),
        st.tuples(st.sampled_from(SORT_VALUES), json_values).map(list),
        json_values)


def test_any_signed_cursor_is_refused_or_pages_on_the_database(seeded):
    codec = orders.CursorCodec(seeded.config["SECRET_KEY"])
    outcomes = set()

    @fuzz_settings(250)
    @given(sort_and_payload=st.sampled_from(SORT_VALUES).flatmap(
        lambda sort: st.tuples(st.just(sort), cursor_payload(sort))))
    @example(sort_and_payload=("qty", ["qty", [2**70, 1]]))
    @example(sort_and_payload=("order", ["order", ["a\x00", 1]]))
    @example(sort_and_payload=("ship_date", ["ship_date", ["2024-01-01T00:00:00", 1]]))
    @example(sort_and_payload=("-ship_date", ["-ship_date", ["0001-01-01T00:00:00+01:00", 1]]))
    @example(sort_and_payload=("last_attempt", ["last_attempt", [None, 2**63]]))
    def run(sort_and_payload):
        sort, payload = sort_and_payload
        flt = orders.OrderFilter(sort=sort)
        token = codec.serializer.dumps(payload)
        try:
            values = codec.decode(flt, token)
        except orders.CursorError as exc:
            assert str(exc).endswith("start again.")
            outcomes.add("refused")
            return
        with seeded.app_context():
            rows, _ = orders.page(db.session, 1, flt, 5, values)
        assert len(rows) <= 5 and all(row.company_id == 1 for row in rows)
        outcomes.add("paged")

    run()
    assert outcomes == {"refused", "paged"}


@fuzz_settings(300)
@given(token=st.one_of(TEXT, st.text(min_size=1990, max_size=2010),
                       st.from_regex(r"[A-Za-z0-9_\-]{4,60}\.[A-Za-z0-9_\-]{10,40}",
                                     fullmatch=True)),
       sort=st.sampled_from(SORT_VALUES))
def test_any_unsigned_token_is_refused_as_a_damaged_page_link(token, sort):
    codec = orders.CursorCodec("test-secret")
    with pytest.raises(orders.CursorError, match="start again"):
        codec.decode(orders.OrderFilter(sort=sort), token)


def test_real_cursors_round_trip_and_any_tampering_is_refused(seeded):
    codec = orders.CursorCodec(seeded.config["SECRET_KEY"])
    with seeded.app_context():
        rows = db.session.execute(sa.select(Writeback).where(Writeback.company_id == 1)
                                  .limit(40)).scalars().all()
        tokens = [(sort, row, codec.encode(orders.OrderFilter(sort=sort), row))
                  for sort in SORT_VALUES for row in rows[:4]]

        @fuzz_settings(200)
        @given(case=st.sampled_from(tokens), position=st.integers(0, 10_000),
               replacement=st.sampled_from("AZaz09-_."))
        def run(case, position, replacement):
            sort, row, token = case
            flt = orders.OrderFilter(sort=sort)
            values = codec.decode(flt, token)
            assert values[-1] == row.id
            index = position % len(token)
            tampered = token[:index] + replacement + token[index + 1:]
            if tampered == token:
                return
            try:
                decoded = codec.decode(flt, tampered)
            except orders.CursorError:
                return
            # itsdangerous may accept an equivalent base64 spelling: same content only.
            assert decoded == values

        run()


# -- regression tests: the concrete inputs the fuzzing found --------------------------------
def test_a_to_date_of_9999_12_31_lists_every_row_instead_of_a_500(seeded, client_as):
    """date_to=9999-12-31: the day after it overflowed datetime (500 on the page, in
    orders.json and in the export)."""
    client = client_as("viewer")
    everything = client.get(f"{BASE}/orders.json", query_string={"limit": 500}).get_json()
    assert everything["items"] and everything["next"] is None
    answer = client.get(f"{BASE}/orders.json",
                        query_string={"date_to": "9999-12-31", "limit": 500})
    assert answer.status_code == 200
    assert answer.get_json()["items"] == everything["items"]
    assert client.get(f"{BASE}/", query_string={"date_to": "9999-12-31"}).status_code == 200
    export = client.get(f"{BASE}/orders/export.csv", query_string={"date_to": "9999-12-31"})
    assert export.status_code == 200
    assert len(export.get_data(as_text=True).strip().splitlines()) == len(
        everything["items"]) + 1


def test_a_from_date_of_0001_01_01_east_of_utc_lists_every_row_instead_of_a_500(
        seeded, client_as):
    """date_from=0001-01-01 for a company east of UTC: its start is before datetime.min
    in UTC (OverflowError, a 500)."""
    with seeded.app_context():
        db.session.get(Company, 1).timezone = "Asia/Tokyo"
        db.session.commit()
    client = client_as("viewer")
    everything = client.get(f"{BASE}/orders.json", query_string={"limit": 500}).get_json()
    for query in ({"date_from": "0001-01-01"}, {"date_from": "0001-01-01",
                                                "date_to": "9999-12-31"}):
        answer = client.get(f"{BASE}/orders.json", query_string={**query, "limit": 500})
        assert answer.status_code == 200, query
        assert answer.get_json()["items"] == everything["items"]
        assert client.get(f"{BASE}/", query_string=query).status_code == 200
    only_day_one = client.get(f"{BASE}/orders.json", query_string={
        "date_from": "0001-01-01", "date_to": "0001-01-01"})
    assert only_day_one.status_code == 200 and only_day_one.get_json()["items"] == []


@pytest.mark.parametrize(("sort", "values"), [
    ("qty", [2**70, 1]),                                   # past INTEGER: DataError / Overflow
    ("last_attempt", [None, 2**63]),                       # the id past BIGINT even
    ("order", ["a\x00", 1]),                               # NUL: PostgreSQL refuses the text
    ("ship_date", ["2024-01-01T00:00:00", 1]),             # naive: refused by the column type
    ("-ship_date", ["0001-01-01T00:00:00+01:00", 1]),      # before datetime.min in UTC
])
def test_a_signed_cursor_no_row_could_have_made_is_a_400(seeded, client_as, sort, values):
    """Signed by us (so the signature passes) but not a row's values: these reached the
    database and failed there (a 500). Only the secret's holder could make them, but the
    answer must still be a 400 with the usual message."""
    codec = orders.CursorCodec(seeded.config["SECRET_KEY"])
    after = codec.serializer.dumps([sort, values])
    answer = client_as("viewer").get(f"{BASE}/orders.json",
                                     query_string={"sort": sort, "after": after})
    assert answer.status_code == 400
    assert answer.get_json() == {"error": "Page: This page link is damaged; start again."}


NOTHING_SELECTED = "Select an order in the grid to see its shipment."


def test_a_selected_id_that_is_a_digit_but_not_a_number_shows_the_page(seeded, client_as):
    """?selected=² passed str.isdigit() and then int() refused it (a 500); a huge id hit
    the database's INTEGER range."""
    client = client_as("viewer")
    for selected in ("²", "٣", "99999999999999999999", "2147483648"):
        answer = client.get(f"{BASE}/", query_string={"selected": selected})
        assert answer.status_code == 200, selected
        assert NOTHING_SELECTED in answer.get_data(as_text=True)
    with seeded.app_context():
        first = db.session.execute(sa.select(sa.func.min(Writeback.id)).where(
            Writeback.company_id == 1)).scalar_one()
    padded = client.get(f"{BASE}/", query_string={"selected": f"000{first}"})
    assert padded.status_code == 200
    assert NOTHING_SELECTED not in padded.get_data(as_text=True)
