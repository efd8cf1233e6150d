"""StoreHttp against a misbehaving store over real sockets: every answer becomes a
classified Result with a readable, bounded message, and nothing raises."""

from __future__ import annotations

import time

import pytest
from flask import Flask, Response, request

from shipgear_exchange_plugin.addresses import AddressRules
from shipgear_exchange_plugin.connectors import AccountRef, Api, ListRecorder, Outcome
from shipgear_exchange_plugin.connectors.base import MESSAGE_LIMIT
from shipgear_exchange_plugin.connectors.http import StoreHttp
from shipgear_exchange_plugin.sandbox import SandboxServer

HTML_ERROR = ("<!DOCTYPE html><html><head><title>502 Bad Gateway</title><style>body{}</style>"
              "</head><body><h1>Bad Gateway</h1><p>The proxy got an invalid answer.</p>"
              + "<p>padding</p>" * 400 + "</body></html>")


#: Credential headers the /echo-token route received, in order.
HEARD: list[str | None] = []


def bad_store() -> Flask:
    app = Flask("bad_store")

    @app.get("/html-200")
    def html_200():
        return Response("<html><body>Maintenance</body></html>", mimetype="text/html")

    @app.get("/truncated")
    def truncated():
        return Response('{"order": {"orderId": "1', mimetype="application/json")

    @app.get("/text-json")
    def text_json():
        return Response('{"ok": true}', mimetype="text/plain")

    @app.get("/huge")
    def huge():
        return Response(b'{"x": "' + b"a" * (5 * 1024 * 1024) + b'"}',
                        mimetype="application/json")

    @app.get("/html-502")
    def html_502():
        return Response(HTML_ERROR, status=502, mimetype="text/html")

    @app.get("/throttled")
    def throttled():
        return Response('{"errors": "Exceeded 2 calls per second"}', status=429,
                        mimetype="application/json", headers={"Retry-After": "2.5"})

    @app.get("/unauthorised")
    def unauthorised():
        return Response('{"errors":[{"code":"Unauthorized","message":"Access denied"}]}',
                        status=403, mimetype="application/json")

    @app.get("/invalid")
    def invalid():
        body = ('{"errors":[{"code":"InvalidInput","message":"carrierCode is not valid",'
                '"details":"Use a code from the list"}]}')
        return Response(body, status=400, mimetype="application/json",
                        headers={"x-amzn-RequestId": "req-123"})

    @app.get("/slow")
    def slow():
        time.sleep(1.5)
        return {"ok": True}

    @app.get("/ok")
    def ok():
        return {"ok": True}

    @app.get("/moved")
    def moved():  # to where the token would be collected
        return Response("", status=302, headers={"Location": "http://127.0.0.1:1/collect"})

    @app.get("/echo-token")
    def echo_token():
        HEARD.append(request.headers.get("X-Auth-Token"))
        return {"token": request.headers.get("X-Auth-Token")}

    @app.get("/moved-here")
    def moved_here():
        return Response("", status=301, headers={"Location": "/echo-token"})

    @app.get("/trickle")
    def trickle():  # a byte every 0.6 s: no single read waits long enough to time out
        body = b'{"ok": true, "padding": "' + b"x" * 50 + b'"}'

        def drip():
            for at in range(len(body)):
                time.sleep(0.6)
                yield body[at:at + 1]

        return Response(drip(), mimetype="application/json",
                        headers={"Content-Length": str(len(body))})

    return app


@pytest.fixture(scope="module")
def store():
    server = SandboxServer(bad_store()).start()
    yield server
    server.stop()


def http(url: str, recorder=None, **kwargs) -> StoreHttp:
    return StoreHttp(AccountRef(7, "amazon", url), recorder or ListRecorder(),
                     timeout=kwargs.pop("timeout", (1, 3)),
                     request_id_headers=("x-amzn-RequestId",), **kwargs)


@pytest.mark.parametrize(("path", "words"), [
    ("/html-200", "text/html body instead of JSON"),
    ("/truncated", "does not parse"),
    ("/text-json", "text/plain body instead of JSON"),
    ("/huge", "larger than 4096 KB"),
])
def test_garbled_success_answers_are_retryable_with_a_readable_message(store, path, words):
    reply = http(store.url).request(Api.ORDERS, "GET", path)
    assert reply.error is not None
    assert reply.error.outcome is Outcome.RETRYABLE
    assert words in reply.error.message
    assert len(reply.error.message) <= MESSAGE_LIMIT


def test_an_html_error_page_becomes_one_short_line_of_its_text(store):
    result = http(store.url).request(Api.WRITEBACK, "GET", "/html-502").error
    assert result.outcome is Outcome.RETRYABLE
    assert result.http_status == 502
    assert result.message.startswith("HTTP 502: 502 Bad Gateway Bad Gateway The proxy")
    assert "<" not in result.message and "body{}" not in result.message
    assert len(result.message) <= MESSAGE_LIMIT


def test_429_is_throttled_and_carries_the_stores_retry_hint(store):
    recorder = ListRecorder()
    result = http(store.url, recorder).request(Api.WRITEBACK, "GET", "/throttled").error
    assert (result.outcome, result.throttled, result.retry_after) == (
        Outcome.RETRYABLE, True, 2.5)
    assert recorder.calls[-1].throttled is True


def test_refused_credentials_need_reauthorising(store):
    result = http(store.url).request(Api.ORDERS, "GET", "/unauthorised").error
    assert result.outcome is Outcome.NEEDS_REAUTH
    assert "Unauthorized: Access denied" in result.message


def test_a_redirect_is_not_followed_so_the_credentials_stay_with_the_store(store):
    """A store's API does not redirect; one that does (a moved shop, a hostile address)
    needs its address fixed, and its target never sees the credential header."""
    for path, status in (("/moved", 302), ("/moved-here", 301)):
        reply = http(store.url).request(Api.ORDERS, "GET", path,
                                        headers={"X-Auth-Token": "tok-secret"})
        assert reply.status == status and reply.json is None
        assert reply.error.outcome is Outcome.NEEDS_FIXING
        assert f"HTTP {status}: the store redirects" in reply.error.message
        assert "check that address" in reply.error.message
    assert "to http://127.0.0.1:1" in http(store.url).request(
        Api.ORDERS, "GET", "/moved").error.message
    # The same request without the redirect reaches the route that echoes the header.
    direct = http(store.url).request(Api.ORDERS, "GET", "/echo-token",
                                     headers={"X-Auth-Token": "tok-secret"})
    assert direct.json == {"token": "tok-secret"}


def test_a_name_that_leads_to_this_machine_gets_nothing_unless_allowed(store):
    """The form refuses private addresses as typed, but a public name may resolve to
    one (at once, or later: DNS rebinding). So each connection is checked against the
    address it reached, before the request and its credentials go out. "localhost"
    stands in for such a name here: the sandbox has no DNS of its own."""
    port = store.url.rsplit(":", 1)[1]
    by_name = f"http://localhost:{port}"
    token = {"X-Auth-Token": "tok-secret"}
    HEARD.clear()
    # Without rules (a connector built by hand) the call goes, and its connection is
    # kept: a checked connector must not be handed that connection either.
    assert http(by_name).request(Api.ORDERS, "GET", "/echo-token", headers=token).json
    for rules in (AddressRules(), AddressRules(sandbox_url=store.url)):
        reply = http(by_name, addresses=rules).request(Api.ORDERS, "GET", "/echo-token",
                                                        headers=token)
        assert reply.status is None and reply.error.outcome is Outcome.NEEDS_FIXING
        assert "address localhost leads to 127.0.0.1" in reply.error.message
        assert "nothing was sent" in reply.error.message
        assert "SHIPGEAR_ALLOW_PRIVATE_ENDPOINTS" in reply.error.message
    literal = http(store.url, addresses=AddressRules()).request(Api.ORDERS, "GET", "/echo-token")
    assert "address 127.0.0.1 is on this machine" in literal.error.message
    assert HEARD == ["tok-secret"]  # only the unchecked call arrived
    # The configured sandbox, and any address once the operator allows private ones.
    for rules, url in ((AddressRules(sandbox_url=by_name + "/"), by_name),
                       (AddressRules(allow_private=True), by_name),
                       (AddressRules(sandbox_url=store.url), store.url)):
        reply = http(url, addresses=rules).request(Api.ORDERS, "GET", "/echo-token",
                                                    headers=token)
        assert reply.error is None and reply.json == {"token": "tok-secret"}, rules
    assert len(HEARD) == 4


def test_validation_errors_need_fixing_and_quote_the_store(store):
    result = http(store.url).request(Api.WRITEBACK, "GET", "/invalid").error
    assert result.outcome is Outcome.NEEDS_FIXING
    assert result.request_id == "req-123"
    assert "InvalidInput: carrierCode is not valid (Use a code from the list)" in result.message


def test_a_read_timeout_may_have_landed_a_refused_connection_did_not(store):
    slow = http(store.url, timeout=(1, 0.3)).request(Api.WRITEBACK, "GET", "/slow").error
    assert slow.outcome is Outcome.RETRYABLE and slow.maybe_applied is True
    assert "No answer from the store within 0.3 s" in slow.message
    refused = http("http://127.0.0.1:9").request(Api.WRITEBACK, "GET", "/ok").error
    assert refused.outcome is Outcome.RETRYABLE and refused.maybe_applied is False


def test_an_invalid_endpoint_needs_fixing():
    result = http("not a url").request(Api.ORDERS, "GET", "/ok").error
    assert result.outcome is Outcome.NEEDS_FIXING
    assert "not a valid URL" in result.message


def test_every_call_is_recorded_with_its_api_and_a_failing_recorder_fails_nothing(store):
    recorder = ListRecorder()
    client = http(store.url, recorder)
    assert client.request(Api.PRODUCTS, "GET", "/ok").json == {"ok": True}
    client.request(Api.ORDERS, "GET", "/html-502")
    assert [(c.api, c.outcome, c.http_status, c.account_id) for c in recorder.calls] == [
        (Api.PRODUCTS, Outcome.OK, 200, 7), (Api.ORDERS, Outcome.RETRYABLE, 502, 7)]

    class Broken:
        def record(self, call):
            raise ConnectionError("status store down")

    assert http(store.url, Broken()).request(Api.ORDERS, "GET", "/ok").json == {"ok": True}


@pytest.fixture
def environment(monkeypatch):
    """Proxy variables as an operator sets them; the per-origin lookup starts afresh."""
    from shipgear_exchange_plugin.connectors import http as http_module

    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    http_module._proxies_for.cache_clear()
    yield monkeypatch
    http_module._proxies_for.cache_clear()


def test_the_environments_proxy_is_used_and_no_proxy_is_honoured(store, environment):
    """The environment is read once per store origin (not on every call), but the proxy
    settings an operator gives still apply: here the store itself plays the proxy for a
    host name that does not resolve."""
    environment.setenv("HTTP_PROXY", store.url)
    through_proxy = http("http://store.invalid").request(Api.ORDERS, "GET", "/ok")
    assert through_proxy.error is None and through_proxy.json == {"ok": True}

    environment.setenv("NO_PROXY", "store.invalid")
    from shipgear_exchange_plugin.connectors import http as http_module

    http_module._proxies_for.cache_clear()
    direct = http("http://store.invalid").request(Api.ORDERS, "GET", "/ok")
    assert direct.error is not None and direct.error.outcome is Outcome.RETRYABLE


@pytest.fixture
def keep_alive_store():
    """The bad store behind waitress, which keeps connections open as real stores do
    (Werkzeug's server closes each one). The app notes each call's client port."""
    import threading

    import waitress.server

    app = bad_store()
    ports: list[str] = []

    @app.before_request
    def _note_port():
        from flask import request

        ports.append(request.environ["REMOTE_PORT"])

    server = waitress.server.create_server(app, host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}", ports

    def close_all():  # run by the server's own loop: it ends once nothing is left open
        for channel in list(server._map.values()):
            channel.close()

    server.trigger.pull_trigger(close_all)
    thread.join(timeout=5)
    server.task_dispatcher.shutdown()
    assert not thread.is_alive()


def test_connections_outlive_a_job_and_a_broken_answer_does_not_reuse_its_own(
        keep_alive_store):
    """Each job builds and closes its connector; the TCP (with a real store, TLS)
    connection stays in the worker's pool for the next job. An answer left unread (too
    large) closes its connection instead of handing a half-read socket to the next call."""
    url, ports = keep_alive_store
    for _job in range(3):
        store_http = http(url)
        for _ in range(2):
            assert store_http.request(Api.ORDERS, "GET", "/ok").json == {"ok": True}
        store_http.close()
    assert len(ports) == 6 and len(set(ports)) == 1

    huge = http(url)
    assert "larger than" in huge.request(Api.ORDERS, "GET", "/huge").error.message
    assert huge.request(Api.ORDERS, "GET", "/ok").json == {"ok": True}
    huge.close()
    assert ports[-1] != ports[-2]


def test_a_trickled_answer_on_a_kept_connection_ends_at_the_deadline_and_is_not_reused(
        keep_alive_store):
    """A store that keeps the connection open while it trickles: the call ends at connect
    + read seconds (the last read waits only for the time left), counts as possibly
    landed, and the half-read connection is not handed to the next call."""
    url, ports = keep_alive_store
    store_http = http(url, timeout=(0.5, 1))
    assert store_http.request(Api.ORDERS, "GET", "/ok").json == {"ok": True}
    started = time.monotonic()
    reply = store_http.request(Api.ORDERS, "GET", "/trickle")
    assert time.monotonic() - started < 1.7  # 1.5 s; a whole last read would end at 1.8
    assert reply.error.outcome is Outcome.RETRYABLE and reply.error.maybe_applied
    assert "still sending its answer after 1.5 s" in reply.error.message
    assert store_http.request(Api.ORDERS, "GET", "/ok").json == {"ok": True}
    store_http.close()
    assert ports[0] == ports[1] != ports[2]  # kept for the trickle, then a fresh one
