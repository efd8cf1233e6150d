"""HTTP for connectors: one ``requests.Session`` per account over one connection pool per
process (connections outlive the job), a timeout on every call, no transport retries,
every answer classified and every call reported to the recorder.

Connectors call :meth:`StoreHttp.request` and get a :class:`Reply`. When
``reply.error`` is set the call failed and that :class:`~.base.Result` is what the
connector returns; otherwise ``reply.json`` holds the parsed body.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .. import __version__
from ..addresses import AddressRules
from ..models import utcnow
from .base import (
    AccountRef,
    Api,
    CallRecord,
    CallRecorder,
    Connector,
    NullRecorder,
    Outcome,
    Result,
    Throttle,
    clip,
)

#: (connect, read) seconds. A store that accepts the connection and then says nothing
#: for ``read`` seconds is treated as a retryable error that may have landed; so is one
#: whose answer's body is still coming connect + read seconds after the call began.
DEFAULT_TIMEOUT = (3.05, 15.0)
#: Bodies larger than this are not read: a store never answers these calls with more.
MAX_BODY = 4 * 1024 * 1024
USER_AGENT = f"ShipGear-Exchange-Plugin/{__version__} (+requests)"
#: Longest a call waits here for the shared rate limit before it is deferred instead.
MAX_THROTTLE_WAIT = 1.0

RetryHint = Callable[[requests.Response], float | None]


@functools.lru_cache(maxsize=512)
def _proxies_for(origin: str) -> dict[str, str]:
    """The environment's proxies for a store's origin (``HTTPS_PROXY``, ``NO_PROXY``...),
    looked up once per process. With ``trust_env`` on, requests repeats this lookup and a
    search for ``~/.netrc`` on every call: a third of a millisecond each, as long as the
    sandbox takes to answer."""
    return requests.utils.get_environ_proxies(origin)


#: Stores whose connections a worker process keeps open, and connections per store.
POOLS, POOL_SIZE = 100, 10


@functools.cache
def _shared_adapter(addresses: AddressRules | None = None) -> HTTPAdapter:
    """One connection pool per process (and address rules), shared by every connector: a
    job builds its connector afresh, and without this each job paid a new TCP (and, with
    real stores, a TLS) handshake. Thread-safe (urllib3's pools are). No retries: attempts
    belong to the write-back engine. With ``addresses``, each new connection is checked
    against the address it reached before anything is sent on it."""
    adapter = HTTPAdapter(pool_connections=POOLS, pool_maxsize=POOL_SIZE, max_retries=0)
    if addresses is not None:
        adapter.poolmanager.pool_classes_by_scheme = _guarded_pools(addresses)
    return adapter


class AddressRefused(urllib3.exceptions.NewConnectionError):
    """A connection reached an address that store calls may not go to; nothing was sent."""

    def __init__(self, conn: HTTPConnection | None, message: str, host: str = "",
                 ip: str = "") -> None:
        super().__init__(conn, message)  # type: ignore[arg-type]
        self.host, self.ip = host, ip

    def __reduce__(self):
        return self.__class__, (None, self._message, self.host, self.ip)


class _PeerCheck:
    """Connection mixin: refuse a socket whose peer the address rules do not admit (a
    public name that resolves to this machine or the private network). A connection
    through a proxy is left to the proxy, which the operator configured."""

    addresses: AddressRules

    def _new_conn(self):
        sock = super()._new_conn()  # type: ignore[misc]
        if self._tunnel_host or self.proxy:  # type: ignore[attr-defined]
            return sock
        ip = sock.getpeername()[0]
        scheme = "https" if isinstance(self, HTTPSConnection) else "http"
        if not self.addresses.admits_peer(scheme, self.host, self.port, ip):  # type: ignore[attr-defined]
            sock.close()
            raise AddressRefused(self, f"{self.host} is at {ip}, a private address",  # type: ignore[arg-type,attr-defined]
                                 host=self.host, ip=ip)  # type: ignore[attr-defined]
        return sock


def _guarded_pools(addresses: AddressRules) -> dict[str, type[HTTPConnectionPool]]:
    """urllib3 pool classes whose connections check their peer against ``addresses``."""
    classes: dict[str, type[HTTPConnectionPool]] = {}
    for scheme, pool, connection in (("http", HTTPConnectionPool, HTTPConnection),
                                     ("https", HTTPSConnectionPool, HTTPSConnection)):
        checked = type(f"Checked{connection.__name__}", (_PeerCheck, connection),
                       {"addresses": addresses})
        classes[scheme] = type(f"Checked{pool.__name__}", (pool,), {"ConnectionCls": checked})
    return classes


def _origin(url: str) -> str:
    return "/".join(url.split("/", 3)[:3])


@dataclass
class Reply:
    """A store's answer, read and parsed, or the error Result that replaces it."""

    status: int | None
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    text: str = ""
    content: bytes = b""
    latency_ms: int = 0
    request_id: str | None = None
    error: Result | None = None

    def result(self, outcome: Outcome, message: str = "", data: Any = None) -> Result:
        """A Result for this reply's successful call."""
        return Result(outcome, message, http_status=self.status, request_id=self.request_id,
                      latency_ms=self.latency_ms, data=data)


def store_error_text(body: Any) -> str:
    """The store's own error message from the shapes the four stores use."""
    if isinstance(body, list) and body and isinstance(body[0], Mapping):  # BigCommerce v2
        return "; ".join(str(e.get("message") or e.get("details") or e) for e in body[:3])
    if not isinstance(body, Mapping):
        return ""
    errors = body.get("errors")
    if isinstance(errors, list):  # Amazon {"errors":[{code,message,details}]}, GraphQL
        parts = []
        for err in errors[:3]:
            if isinstance(err, Mapping):
                code, message = err.get("code"), err.get("message")
                details = err.get("details")
                text = f"{code}: {message}" if code and message else str(message or code)
                if details and isinstance(details, str):
                    text += f" ({details})"
                parts.append(text)
            else:
                parts.append(str(err))
        return "; ".join(parts)
    if isinstance(errors, Mapping):  # Shopify REST {"errors": {"field": ["msg"]}}
        return "; ".join(f"{k} {', '.join(map(str, v)) if isinstance(v, list) else v}"
                         for k, v in list(errors.items())[:3])
    if isinstance(errors, str):
        return errors
    for key in ("message", "detail", "title", "error_description", "error"):  # Woo, BC v3, LWA
        if isinstance(body.get(key), str):
            return body[key]
    return ""


def _retry_after_header(response: requests.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


class StoreHttp:
    """HTTP to one store account. ``retry_hint`` reads the store's rate-limit headers."""

    def __init__(self, account: AccountRef, recorder: CallRecorder | None = None, *,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 request_id_headers: tuple[str, ...] = ("X-Request-Id",),
                 retry_hint: RetryHint | None = None,
                 max_body: int = MAX_BODY,
                 throttle: Throttle | None = None,
                 session: requests.Session | None = None,
                 addresses: AddressRules | None = None) -> None:
        self.account = account
        self.throttle = throttle
        self.recorder = recorder or NullRecorder()
        self.timeout = timeout
        self.request_id_headers = request_id_headers
        self.retry_hint = retry_hint or _retry_after_header
        self.max_body = max_body
        self.session = session or requests.Session()
        adapter = _shared_adapter(addresses)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.trust_env = False  # the environment is read once: see _proxies_for
        self.session.verify = (os.environ.get("REQUESTS_CA_BUNDLE")
                               or os.environ.get("CURL_CA_BUNDLE") or True)

    def close(self) -> None:
        """Forget the session but keep its connections: they belong to the process's pool
        (``Session.close`` would close every pooled connection of every store)."""
        for prefix in ("http://", "https://"):
            self.session.adapters.pop(prefix, None)
        self.session.close()

    def url(self, path: str) -> str:
        return self.account.endpoint.rstrip("/") + path

    def request(self, api: Api, method: str, url: str, *, record: bool = True,
                check: Callable[[Reply], Result | None] | None = None,
                rate_limited: bool = True, **kwargs: Any) -> Reply:
        """One HTTP call with the account's timeouts; never raises for network or store
        trouble. ``url`` may be a path below the account's endpoint.

        ``check`` looks at a successful reply and may turn it into an error Result (a
        GraphQL ``THROTTLED`` error arrives with HTTP 200); the recorder sees that outcome.
        ``record=False`` leaves reporting to the caller (:meth:`record`, once the outcome
        is final); ``rate_limited=False`` skips the shared limiter for calls outside the
        store's API budget (a login, a presigned upload).
        """
        if url.startswith("/"):
            url = self.url(url)
        held = self._wait_for_rate_limit(api) if rate_limited else None
        if held is not None:
            return held
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("proxies", _proxies_for(_origin(url)))
        # A store's API does not redirect; following one would carry the credential
        # headers (X-Auth-Token, X-Shopify-Access-Token...) to whatever host it names.
        kwargs.setdefault("allow_redirects", False)
        started = time.perf_counter()
        try:
            response = self.session.request(method, url, stream=True, **kwargs)
        except requests.exceptions.RequestException as exc:
            reply = self._network_error(exc, started)
        else:
            try:
                reply = self._read(response, started)
            finally:
                response.close()
            if reply.error is None and check is not None:
                reply.error = check(reply)
        if record:
            self.record(api, reply)
        return reply

    def _wait_for_rate_limit(self, api: Api) -> Reply | None:
        """Sleep briefly for the shared rate limit, or defer the call (not sent)."""
        if self.throttle is None:
            return None
        for _ in range(3):
            wait = self.throttle.wait_for(self.account.id, self.account.platform, api)
            if wait <= 0:
                return None
            if wait > MAX_THROTTLE_WAIT:
                break
            time.sleep(wait)
        return Reply(status=None, error=Result(
            Outcome.RETRYABLE, "Held back to stay under the store's rate limit",
            retry_after=max(wait, 0.1), throttled=True, deferred=True))

    def _elapsed(self, started: float) -> int:
        return int((time.perf_counter() - started) * 1000)

    def _network_error(self, exc: requests.exceptions.RequestException, started: float) -> Reply:
        latency = self._elapsed(started)
        connect, read = self.timeout
        refused = _address_refused(exc)
        if refused is not None:
            where = (f"The store's address {refused.host} is" if refused.host == refused.ip
                     else f"The store's address {refused.host} leads to {refused.ip},")
            result = Result(Outcome.NEEDS_FIXING, (
                f"{where} on this machine or a private network; store calls go only to "
                "public addresses, so nothing was sent. Correct the account's API address "
                "(the operator of this installation can allow private addresses: "
                "SHIPGEAR_ALLOW_PRIVATE_ENDPOINTS)."), latency_ms=latency)
        elif isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                            requests.exceptions.InvalidSchema)):
            result = Result(Outcome.NEEDS_FIXING,
                            f"The account's API address is not a valid URL: {clip(str(exc), 120)}",
                            latency_ms=latency)
        elif isinstance(exc, requests.exceptions.ConnectTimeout):
            result = Result(Outcome.RETRYABLE,
                            f"Could not connect to the store within {connect:g} s",
                            latency_ms=latency)
        elif isinstance(exc, requests.exceptions.ReadTimeout):
            result = Result(Outcome.RETRYABLE,
                            f"No answer from the store within {read:g} s; it may have received "
                            "the request", latency_ms=latency, maybe_applied=True)
        elif isinstance(exc, requests.exceptions.ConnectionError) and _not_sent(exc):
            result = Result(Outcome.RETRYABLE, "Could not connect to the store (connection "
                            "refused or name not found)", latency_ms=latency)
        else:
            result = Result(Outcome.RETRYABLE,
                            f"Connection to the store broke: {clip(type(exc).__name__, 60)}",
                            latency_ms=latency, maybe_applied=True)
        return Reply(status=None, latency_ms=latency, error=result)

    def _read(self, response: requests.Response, started: float) -> Reply:
        status = response.status_code
        request_id = next((response.headers[h] for h in self.request_id_headers
                           if h in response.headers), None)
        try:
            body = self._body(response, started)
        except (urllib3.exceptions.HTTPError, OSError, _TooSlow) as exc:
            latency = self._elapsed(started)
            message = ("The store's answer broke off midway" if not isinstance(exc, _TooSlow)
                       else f"The store was still sending its answer after "
                            f"{sum(self.timeout):g} s; it may have received the request")
            return Reply(status, response.headers, latency_ms=latency, request_id=request_id,
                         error=Result(Outcome.RETRYABLE, message, http_status=status,
                                      request_id=request_id, latency_ms=latency,
                                      maybe_applied=True))
        latency = self._elapsed(started)
        reply = Reply(status, response.headers, latency_ms=latency, request_id=request_id)
        if body is None:
            reply.error = Result(Outcome.RETRYABLE, f"The store's answer (HTTP {status}) was "
                                 f"larger than {self.max_body // 1024} KB; not read",
                                 http_status=status, request_id=request_id, latency_ms=latency)
            return reply
        reply.content = body
        reply.text = body.decode(response.encoding or "utf-8", errors="replace")
        parsed, parse_error = _parse_json(response, body)
        reply.json = parsed
        if 200 <= status < 300:
            if parse_error:
                reply.error = Result(
                    Outcome.RETRYABLE,
                    f"The store answered HTTP {status} with {parse_error}: {clip(reply.text, 120)}",
                    http_status=status, request_id=request_id, latency_ms=latency)
            return reply
        reply.error = self._classify_error(response, reply)
        return reply

    def _body(self, response: requests.Response, started: float) -> bytes | None:
        """The body, or None when larger than ``max_body``, read as it arrives so that a
        trickle no single read times out on ends at the call's deadline (connect + read
        seconds from the start). Each socket read's wait is cut to the time left. One
        read of a compressed answer may take several socket reads (until the decoder
        has output) and only the first is cut, so such a call may run over its deadline
        by a few read timeouts; without a socket to reach, the deadline is checked
        between reads."""
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.max_body:
            return None
        deadline = started + sum(self.timeout)
        chunks, size = [], 0
        while True:
            left = deadline - time.perf_counter()
            try:
                cut = _wait_at_most(response, min(left, self.timeout[1]))
                if left <= 0 and not cut:
                    raise _TooSlow
                chunk = response.raw.read1(64 * 1024, decode_content=True)
            except (urllib3.exceptions.ReadTimeoutError, OSError):
                if time.perf_counter() >= deadline:
                    raise _TooSlow from None
                raise
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)

    def _classify_error(self, response: requests.Response, reply: Reply) -> Result:
        status = reply.status or 0
        store_text = store_error_text(reply.json) or _plain(reply.text)
        detail = f": {clip(store_text, 240)}" if store_text else ""
        common = {"http_status": status, "request_id": reply.request_id,
                  "latency_ms": reply.latency_ms}
        if status == 429:
            hint = self.retry_hint(response)
            when = f"; retry in {hint:g} s" if hint is not None else ""
            return Result(Outcome.RETRYABLE, f"HTTP 429: throttled by the store{when}",
                          retry_after=hint, throttled=True, **common)
        if 300 <= status < 400:
            where = urlsplit(response.headers.get("Location") or "")
            target = f" to {where.scheme}://{where.netloc}" if where.netloc else ""
            return Result(Outcome.NEEDS_FIXING,
                          f"HTTP {status}: the store redirects{target}. Redirects are not "
                          "followed, so that the credentials only go to the account's API "
                          "address: check that address.", **common)
        if status in (401, 403):
            return Result(Outcome.NEEDS_REAUTH,
                          f"HTTP {status}: the store refused the credentials"
                          f"{detail.rstrip('.')}. Reconnect the account.", **common)
        if status >= 500 or status in (408, 425):
            return Result(Outcome.RETRYABLE, f"HTTP {status}{detail}",
                          retry_after=self.retry_hint(response), **common)
        return Result(Outcome.NEEDS_FIXING, f"HTTP {status}{detail}", **common)

    def record(self, api: Api, reply: Reply) -> None:
        """Report one call to the recorder (never raises)."""
        outcome = reply.error.outcome if reply.error else Outcome.OK
        throttled = bool(reply.error and reply.error.throttled)
        try:
            self.recorder.record(CallRecord(
                account_id=self.account.id, api=api, outcome=outcome,
                latency_ms=reply.latency_ms, http_status=reply.status, throttled=throttled,
                at=utcnow()))
        except Exception:  # noqa: BLE001 - recording must never fail a call
            import logging

            logging.getLogger(__name__).exception("call recorder failed")


class _TooSlow(Exception):
    """The answer was still coming at the call's deadline."""


def _wait_at_most(response: requests.Response, seconds: float) -> bool:
    """Let the next read of the answer wait ``seconds`` at most (1 ms when the time is
    up, so that what has already arrived is still read). False when the socket cannot
    be reached. urllib3 sets a kept connection's timeout again for its next request."""
    sock = getattr(response.raw.connection, "sock", None)
    if sock is None:
        # A store that closes the connection after this answer: http.client has handed
        # the socket over to the response's reader (CPython's SocketIO keeps it there).
        reader = getattr(getattr(response.raw, "_fp", None), "fp", None)
        sock = getattr(getattr(reader, "raw", None), "_sock", None)
    if sock is None:
        return False
    sock.settimeout(max(seconds, 0.001))
    return True


def _address_refused(exc: BaseException) -> AddressRefused | None:
    """The AddressRefused behind a requests error (requests wraps urllib3's MaxRetryError,
    whose ``reason`` it is), or None."""
    seen: list[BaseException] = []
    queue: list[Any] = [exc]
    while queue:
        item = queue.pop()
        if isinstance(item, AddressRefused):
            return item
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        queue.extend([*item.args, getattr(item, "reason", None), item.__cause__,
                      item.__context__])
    return None


def _not_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the connection was never made (refused, DNS): nothing reached the store."""
    text = repr(exc)
    return any(marker in text for marker in (
        "NewConnectionError", "Connection refused", "Name or service not known",
        "nodename nor servname", "Failed to resolve", "Failed to establish"))


def _plain(text: str) -> str:
    """Text of an HTML error page without its tags, for a readable message."""
    if "<" in text and ">" in text:
        import re

        text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", text)
        text = re.sub(r"(?s)<[^>]+>", " ", text)
    return text


def _parse_json(response: requests.Response, body: bytes) -> tuple[Any, str | None]:
    if not body.strip():
        return None, None
    content_type = response.headers.get("Content-Type", "")
    if "json" not in content_type.lower():
        return None, f"a {content_type.split(';')[0] or 'untyped'} body instead of JSON"
    try:
        return json.loads(body), None
    except ValueError:
        return None, "JSON that does not parse (cut off?)"


class HttpConnector(Connector):
    """Base of the four store connectors: credentials checked, one StoreHttp per account.

    Subclasses set ``request_id_headers`` and may override :meth:`retry_hint` to read
    their store's rate-limit headers.
    """

    request_id_headers: tuple[str, ...] = ("X-Request-Id",)

    def __init__(self, account: AccountRef, credentials: Mapping[str, Any], *,
                 recorder: CallRecorder | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 throttle: Throttle | None = None,
                 addresses: AddressRules | None = None) -> None:
        self.account = account
        self.credentials = dict(credentials)
        self.options = dict(account.options or {})
        self.http = StoreHttp(account, recorder, timeout=timeout,
                              request_id_headers=self.request_id_headers,
                              retry_hint=self.retry_hint, throttle=throttle,
                              addresses=addresses)

    def retry_hint(self, response: requests.Response) -> float | None:
        return _retry_after_header(response)

    def missing_credentials(self) -> Result | None:
        """NEEDS_REAUTH naming the missing fields, or None when all are present."""
        missing = [name for name in self.credential_fields if not self.credentials.get(name)]
        if not missing:
            return None
        return Result(Outcome.NEEDS_REAUTH,
                      f"The account has no {', '.join(missing)} stored. Reconnect it.")

    def close(self) -> None:
        self.http.close()
