"""The fault cases every connector shares, for each of the four stores: the real connector
over real HTTP against the marketplace sandbox on a free port, the faults set through the
sandbox's control API.

- a throttled store (every call 429) and a store answering 503 are retryable, the first
  with the store's wait, the second without one;
- an outage page (HTML 503) is retryable with a readable message;
- a store that hangs times out and the write may have landed; a closed port is retryable
  and nothing was sent;
- refused credentials need the account reconnected.

Throttle, 503, outage and refused credentials are met by every operation (write-back,
verification, product fetch), each recorded under its API. What differs by store (its
own words, its wait, which store it is) is in ``STORES``; each store's own cases (rate
limit buckets, validation, Amazon's token exchange...) stay in
``tests/test_connector_<platform>.py``.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import requests

from shipgear_exchange_plugin.connectors import (
    AccountRef,
    Api,
    Connector,
    Item,
    ListRecorder,
    Outcome,
    Package,
    Result,
    connector_for,
)
from shipgear_exchange_plugin.connectors.amazon import AmazonConnector

OPERATIONS: dict[str, Api] = {
    "write_back": Api.WRITEBACK, "verify": Api.ORDERS, "fetch_products": Api.PRODUCTS}


class Between:
    """Equal to any number in (low, high]."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def __eq__(self, other) -> bool:
        return other is not None and self.low < other <= self.high

    def __repr__(self) -> str:
        return f"a number in ({self.low}, {self.high}]"


@dataclass(frozen=True)
class Store:
    """What the shared cases need to know of one platform."""

    platform: str
    credentials: Callable[[], dict[str, str]]
    package: Package
    #: Retry-After the throttle fault yields, by operation.
    throttle_wait: dict[str, object]
    #: The store's words for an injected 503, and for refused credentials.
    server_error: str
    refused: str
    #: Amazon: a connector gets its Login with Amazon token first, so the fault meets
    #: the SP-API call (the token exchange has its own cases in test_connector_amazon).
    token_first: bool = False


def _ship_date(day: int, hour: int, minute: int) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=dt.UTC)


STORES = [
    Store("shopify", lambda: {"access_token": "shpat_test"},
          Package(order_id="5001", package_key="77", tracking_number="1Z999AA10123456784",
                  carrier="UPS", service="Ground", ship_date=_ship_date(20, 15, 30),
                  items=(Item(2, "11", "SKU-1000"),)),
          throttle_wait=dict.fromkeys(OPERATIONS, 2.0),
          server_error="Injected error 503",
          refused="Invalid API key or access token"),
    Store("woocommerce", lambda: {"consumer_key": "ck_test", "consumer_secret": "cs_test"},
          Package(order_id="4501", package_key="78", tracking_number="9400111899560000000000",
                  carrier="USPS", service="Ground Advantage", ship_date=_ship_date(20, 15, 30),
                  items=(Item(1, "45011", "SKU-1000"),)),
          throttle_wait=dict.fromkeys(OPERATIONS, 2.0),
          server_error="Injected error 503",
          refused="Consumer key is invalid."),
    Store("bigcommerce", lambda: {"access_token": "t"},
          Package(order_id="1013", package_key="41", tracking_number="1ZFAULT0001",
                  carrier="UPS", service="Ground", ship_date=_ship_date(27, 9, 30),
                  items=(Item(1, None, "SKU-1000"),)),
          # BigCommerce says when its 30-second quota window resets.
          throttle_wait=dict.fromkeys(OPERATIONS, Between(0, 30)),
          server_error="Injected error 503",
          refused="Access to requested resource is denied."),
    Store("amazon", lambda: {"client_id": f"amzn1.application-oa2-client.{uuid.uuid4().hex}",
                             "client_secret": "secret", "refresh_token": "Atzr|refresh-token"},
          Package(order_id="111-0000001-0000001", package_key="101",
                  tracking_number="1Z999AA10000000001", carrier="UPS", service="Ground",
                  ship_date=_ship_date(27, 10, 0), items=(Item(2, "5551", "SKU-1000"),)),
          # 1 / the operation's rate in x-amzn-RateLimit-Limit (confirmShipment 2/s,
          # getOrder 0.5/s, the catalogue 2/s).
          throttle_wait={"write_back": pytest.approx(0.5), "verify": pytest.approx(2.0),
                         "fetch_products": pytest.approx(0.5)},
          server_error="InternalFailure: Injected error 503",
          refused="Login with Amazon refused", token_first=True),
]


class Account:
    """One store account in the sandbox: connectors for it, their calls, its control API."""

    def __init__(self, store: Store, sandbox_url: str) -> None:
        self.store = store
        self.package = store.package
        self.endpoint = f"{sandbox_url}/{store.platform}/c1"
        self.control = f"{sandbox_url}/_sandbox/{store.platform}/c1"
        self.credentials = store.credentials()  # Amazon: a client id of its own, no cache
        self.recorder = ListRecorder()
        self.made: list[Connector] = []

    def connector(self, *, endpoint: str | None = None,
                  timeout: tuple[float, float] = (1, 2)) -> Connector:
        """A connector as a job builds it; for Amazon already holding its token, unless
        ``endpoint`` points elsewhere."""
        endpoint = endpoint or self.endpoint
        options = (AmazonConnector.default_options(endpoint)
                   if self.store.platform == "amazon" else {})
        connector = connector_for(AccountRef(1, self.store.platform, endpoint, options),
                                  self.credentials, recorder=self.recorder, timeout=timeout)
        self.made.append(connector)
        if self.store.token_first and endpoint == self.endpoint:
            warm = connector.probe(Api.WRITEBACK)
            assert warm.outcome is Outcome.OK, warm.message
        return connector

    def faults(self, **values) -> None:
        requests.put(f"{self.control}/faults", json=values, timeout=5).raise_for_status()

    def writes(self) -> list[dict]:
        return requests.get(f"{self.control}/writes", timeout=5).json()["writes"]

    def each_operation(self, connector: Connector):
        """(operation, its result) for write-back, verification and product fetch, each
        checked to be recorded under its own API with the status it ended with."""
        for name, api in OPERATIONS.items():
            seen = len(self.recorder.calls)
            call = getattr(connector, name)
            result: Result = call() if name == "fetch_products" else call(self.package)
            calls = self.recorder.calls[seen:]
            assert calls and {c.api for c in calls} == {api}, (name, calls)
            last = calls[-1]
            assert (last.outcome, last.http_status, last.throttled) == (
                result.outcome, result.http_status, result.throttled), (name, last, result)
            yield name, result


@pytest.fixture(params=STORES, ids=lambda store: store.platform)
def account(request, sandbox):
    account = Account(request.param, sandbox.url)
    yield account
    for connector in account.made:
        connector.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_throttled_store_is_retryable_with_the_stores_wait(account):
    connector = account.connector()
    account.faults(throttle=True)
    for name, result in account.each_operation(connector):
        assert result.outcome is Outcome.RETRYABLE and result.throttled, (name, result.message)
        assert result.http_status == 429, name
        assert result.retry_after == account.store.throttle_wait[name], name
        assert account.recorder.calls[-1].throttled
    assert account.writes() == []


def test_server_errors_are_retryable_without_a_wait(account):
    connector = account.connector()
    account.faults(error_rate=1.0, error_status=503)
    for name, result in account.each_operation(connector):
        assert result.outcome is Outcome.RETRYABLE and result.http_status == 503, name
        assert not result.throttled and result.retry_after is None, name  # no quota matter
        assert account.store.server_error in result.message, (name, result.message)
    assert account.writes() == []


def test_outage_page_is_retryable_with_a_readable_message(account):
    connector = account.connector()
    account.faults(outage="down")
    for name, result in account.each_operation(connector):
        assert result.outcome is Outcome.RETRYABLE and result.http_status == 503, name
        assert "Service Unavailable" in result.message, (name, result.message)
        assert "<" not in result.message, (name, result.message)
    assert account.writes() == []


def test_hanging_store_times_out_and_may_have_applied(account):
    connector = account.connector(timeout=(1, 1))
    account.faults(outage="hang", hang_seconds=3)
    started = time.monotonic()
    result = connector.write_back(account.package)
    assert time.monotonic() - started < 2.5
    assert result.outcome is Outcome.RETRYABLE and result.maybe_applied, result.message
    assert result.http_status is None


def test_a_store_sending_its_answer_a_byte_at_a_time_is_cut_off_at_the_deadline(account):
    """Each byte comes within the read timeout, so no single read times out; the call
    still ends at connect + read seconds, as one that may have landed: the last read
    waits only for the time left, not a whole read timeout. (Amazon answers
    confirmShipment with no body: its order read is the slow one.)"""
    connector = account.connector(timeout=(1, 1))
    account.faults(trickle_ms=900)  # a store answer of 200 bytes would take 3 minutes
    call = connector.verify if account.store.platform == "amazon" else connector.write_back
    started = time.monotonic()
    result = call(account.package)
    assert time.monotonic() - started < 2.5  # 2 s; a whole last read would make it 2.9
    assert result.outcome is Outcome.RETRYABLE and result.maybe_applied, result.message
    assert "still sending its answer after 2 s" in result.message
    assert account.recorder.calls[-1].outcome is Outcome.RETRYABLE


def test_closed_port_is_retryable_and_nothing_was_sent(account):
    endpoint = f"http://127.0.0.1:{closed_port()}/{account.store.platform}/c1"
    result = account.connector(endpoint=endpoint).write_back(account.package)
    assert result.outcome is Outcome.RETRYABLE and not result.maybe_applied, result.message
    assert result.http_status is None
    assert [c.http_status for c in account.recorder.calls] == [None]


def test_refused_credentials_need_reauthorising(account):
    connector = account.connector()
    account.faults(auth_refused=True)
    for name, result in account.each_operation(connector):
        assert result.outcome is Outcome.NEEDS_REAUTH and result.http_status == 401, (
            name, result.message)
        assert account.store.refused.rstrip(".") in result.message, (name, result.message)
        assert ".." not in result.message, result.message
    assert account.writes() == []
