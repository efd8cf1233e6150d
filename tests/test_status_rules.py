"""PRODUCT.md §3's API status rules, table-driven with an injected clock, and the call
recorder they read (real Redis on the services backend, the in-process one otherwise)."""

from __future__ import annotations

import datetime as dt

import pytest

from shipgear_exchange_plugin import callstats
from shipgear_exchange_plugin.callstats import RedisCallRecorder, WindowStats
from shipgear_exchange_plugin.connectors import Api, CallRecord, Outcome
from shipgear_exchange_plugin.status import Thresholds, evaluate, statuses

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
RULES = Thresholds()


def stats(calls=0, failed=0, throttled=0, slow=0, ago=30, recent="", error="HTTP 503"):
    return WindowStats(calls=calls, failed=failed, throttled=throttled, slow=slow,
                       last_at=None if ago is None else NOW - dt.timedelta(seconds=ago),
                       last_error=error if failed or throttled else None,
                       recent_hard=recent)


@pytest.mark.parametrize(("case", "window", "colour", "words"), [
    ("never called", stats(ago=None), "none", "No calls recorded yet"),
    ("stale: 601 s ago", stats(calls=5, ago=601), "none", "No calls in the last 10 min"),
    ("fresh: 599 s ago", stats(calls=5, ago=599), "green", "5 calls in 15 min"),
    ("one good call", stats(calls=1), "green", "1 call in 15 min"),
    ("2 calls both failed: below the minimum", stats(calls=2, failed=2, recent="oo"),
     "green", "2 failed"),
    ("3 calls, 2 failed: 66%", stats(calls=3, failed=2), "red", "2 of 3 calls failed"),
    ("50% exactly is red", stats(calls=20, failed=10), "red", "10 of 20 calls failed"),
    ("just under 50% is yellow", stats(calls=21, failed=10), "yellow", "10 of 21"),
    ("5% exactly is yellow", stats(calls=20, failed=1), "yellow", "1 of 20 calls failed"),
    ("just under 5% is green", stats(calls=21, failed=1), "green", "21 calls in 15 min, 1 failed"),
    ("green still names its last failure", stats(calls=21, failed=1), "green",
     "1 failed; last failure: HTTP 503."),
    ("throttling counts for yellow", stats(calls=20, throttled=1), "yellow",
     "1 of 20 throttled (HTTP 429)"),
    ("throttling is not failure for red", stats(calls=10, throttled=9), "yellow", "throttled"),
    ("last 3 hard failures is red", stats(calls=40, failed=3, recent="HHH"), "red",
     "The last 3 calls failed; last: HTTP 503"),
    ("2 hard then a good one is not", stats(calls=40, failed=2, recent="oHH"), "yellow",
     "2 of 40"),
    ("median over 5 s is yellow", stats(calls=4, slow=3), "yellow", "median latency over 5 s"),
    ("half slow is not over the median", stats(calls=4, slow=2), "green", "4 calls"),
])
def test_rules(case, window, colour, words):
    result = evaluate(window, NOW, RULES)
    assert result.status == colour, case
    assert words in result.info, (case, result.info)


def test_every_threshold_comes_from_configuration():
    rules = Thresholds.from_config({
        "SHIPGEAR_STATUS_WINDOW": 600, "SHIPGEAR_STATUS_STALE_AFTER": "120",
        "SHIPGEAR_STATUS_MIN_CALLS": 1, "SHIPGEAR_STATUS_YELLOW_RATE": 0.2,
        "SHIPGEAR_STATUS_RED_RATE": 0.9, "SHIPGEAR_STATUS_RED_CONSECUTIVE": 2,
        "SHIPGEAR_STATUS_SLOW_MS": 1000})
    assert evaluate(stats(calls=10, failed=1), NOW, rules).status == "green"
    assert evaluate(stats(calls=10, failed=2), NOW, rules).info.endswith("in 10 min; last: "
                                                                         "HTTP 503.")
    assert evaluate(stats(calls=10, failed=8, recent="HH"), NOW, rules).status == "red"
    assert evaluate(stats(calls=1, ago=121), NOW, rules).status == "none"
    with pytest.raises(ValueError, match="SHIPGEAR_STATUS_RED_RATE"):
        Thresholds.from_config({"SHIPGEAR_STATUS_RED_RATE": 5})


def call(at, outcome=Outcome.OK, status=200, latency=100, throttled=False, api=Api.WRITEBACK):
    return CallRecord(account_id=7, api=api, outcome=outcome, latency_ms=latency,
                      http_status=status, throttled=throttled, at=at)


def test_the_recorder_counts_per_minute_and_the_rules_read_it(app):
    connection = app.extensions["exchange.host"].redis()
    recorder = RedisCallRecorder(connection)
    start = NOW - dt.timedelta(minutes=14)
    for n in range(14):
        recorder.record(call(start + dt.timedelta(minutes=n)))
    for n in range(3):
        recorder.record(call(NOW - dt.timedelta(seconds=3 - n), Outcome.RETRYABLE, 503))
    recorder.record(call(NOW, Outcome.RETRYABLE, 429, throttled=True))
    found = statuses(connection, [7], RULES, NOW)
    assert found[(7, "writeback")].status == "yellow"
    assert found[(7, "writeback")].info.startswith("3 of 18 calls failed; 1 of 18 throttled")
    assert found[(7, "orders")].status == "none"
    recorder.record(call(NOW, Outcome.RETRYABLE, None))
    assert statuses(connection, [7], RULES, NOW)[(7, "writeback")].info.endswith(
        "last: no answer (timeout or connection error).")


def test_old_minutes_fall_out_and_the_read_stays_the_same_size(app):
    """Reading a status costs one hash of at most ~16 minutes, however long the history."""
    connection = app.extensions["exchange.host"].redis()
    recorder = RedisCallRecorder(connection)
    for n in range(0, 24 * 60 - 20, 7):  # a day of failing calls, until 20 minutes ago
        recorder.record(call(NOW - dt.timedelta(minutes=24 * 60 - n), Outcome.RETRYABLE, 500))
    for n in range(5):
        recorder.record(call(NOW - dt.timedelta(seconds=n)))
    fields = connection.hkeys(callstats.key(7, Api.WRITEBACK))
    minutes = [k for k in fields if k.startswith(b"m")]
    assert len(minutes) <= 17
    assert statuses(connection, [7], RULES, NOW)[(7, "writeback")].status == "green"


def test_a_jobs_calls_are_counted_together_even_after_redis_lost_its_scripts(app):
    """A write-back job counts its calls in one pipeline of EVALSHA. A Redis that restarted
    has no scripts: the pipeline is sent again after loading it, and nothing counts twice."""
    connection = app.extensions["exchange.host"].redis()
    recorder = RedisCallRecorder(connection)
    connection.script_flush()
    batch = recorder.batch()
    for n in range(3):
        batch.record(call(NOW - dt.timedelta(seconds=n)))
    batch.record(call(NOW, Outcome.RETRYABLE, 503, api=Api.ORDERS))
    batch.flush()
    found = statuses(connection, [7], RULES, NOW)
    assert found[(7, "writeback")].info.startswith("3 calls")
    assert found[(7, "orders")].info == "1 call in 15 min, 1 failed; last failure: HTTP 503."
    batch.record(call(NOW))
    batch.record(call(NOW))
    real_redis = not app.config["REDIS_URL"].startswith("memory://")
    script_commands = _script_commands(connection) if real_redis else 0
    batch.flush()  # the script is loaded now: one round trip
    assert statuses(connection, [7], RULES, NOW)[(7, "writeback")].info.startswith("5 calls")
    if real_redis:  # the server counts commands (fakeredis has no INFO)
        assert _script_commands(connection) == script_commands  # no SCRIPT EXISTS first


def _script_commands(connection) -> int:
    """SCRIPT commands the server has run (Redis 7 counts each subcommand apart)."""
    stats = connection.info("commandstats")
    return sum(value.get("calls", 0) for name, value in stats.items()
               if name == "cmdstat_script" or name.startswith("cmdstat_script|"))
