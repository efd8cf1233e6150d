"""Faults the control API sets, applied before a platform handles a store call (and,
for ``trickle_ms``, to its answer).

Each platform module passes its own ``error`` builder so that a refused credential or an
injected 503 looks exactly like that store's error body.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Response, g, request

from .store import Account

ErrorBuilder = Callable[[int, str, str], Response]

OUTAGE_PAGE = """<!DOCTYPE html>
<html><head><title>503 Service Unavailable</title></head>
<body><h1>Service Unavailable</h1><p>The server is temporarily unable to service your
request. Please try again later.</p></body></html>
"""


def apply(account: Account, error: ErrorBuilder,
          throttled: Callable[[], Response]) -> Response | None:
    """The response a fault forces for this call, or None to handle it normally. Every
    store call is counted first, whatever happens to it."""
    with account.lock:
        account.requests.append({"at": account.clock(), "method": request.method,
                                 "path": request.path})
    faults = account.faults
    g.faulted_account = account  # a store call: its answer may be trickled (see trickle)
    if faults.outage == "hang":
        time.sleep(float(faults.hang_seconds))
        return Response("upstream timed out", status=504, mimetype="text/plain")
    if faults.outage == "down":
        return Response(OUTAGE_PAGE, status=503, mimetype="text/html")
    if faults.latency_ms:
        time.sleep(int(faults.latency_ms) / 1000)
    if faults.write_latency_ms and request.method in ("POST", "PUT", "PATCH", "DELETE"):
        time.sleep(int(faults.write_latency_ms) / 1000)  # then handled: it lands
    if faults.auth_refused:
        return error(401, "Unauthorized", "Access to requested resource is denied.")
    if faults.throttle:
        return throttled()
    if faults.error_rate and account.rng.random() < float(faults.error_rate):
        status = int(faults.error_status)
        return error(status, "InternalFailure" if status >= 500 else "InvalidInput",
                     f"Injected error {status} from the sandbox's fault settings.")
    return None


def trickle(response: Response) -> Response:
    """With ``trickle_ms`` set, the answer to a store call that :func:`apply` saw (not a
    login or a document: no fault applies to those) sends its body one byte every
    ``trickle_ms``: a store that keeps sending, too slowly for any single read to time
    out."""
    account = g.get("faulted_account")
    delay = int(account.faults.trickle_ms) / 1000 if account is not None else 0
    if not delay or response.is_streamed:
        return response
    body = response.get_data()

    def drip():
        for at in range(len(body)):
            time.sleep(delay)
            yield body[at:at + 1]

    response.response = drip()
    response.headers["Content-Length"] = str(len(body))
    return response
