"""Load in CI (issue 6, item 6): ``benchmarks/load.py`` shortened, on the services backend.

The script's own code, not a copy: signed-in users (each its own session, the host's
login and CSRF token) browse every surface of View eCommerce against the reference host
served by ``shipgear-exchange demo`` in a process of its own, while real
``shipgear-exchange worker`` processes write back to the marketplace sandbox and the
host's shipping desk keeps processing new shipments. Not a timed test: it asserts that no
request failed and that write-backs progressed during the run; the latencies are printed.
"""

from __future__ import annotations

from benchmarks import load

from .conftest import NEEDS_SERVICES, PG_URL, REDIS_URL

# Real processes against PostgreSQL and Redis (the script's own database set-up, not the
# backend fixture).
pytestmark = NEEDS_SERVICES


def test_users_browse_while_workers_write_back(tmp_path):
    args = load.parse_args([
        "--users", "5", "--seconds", "6", "--workers", "2", "--companies", "3",
        "--shipments", "400", "--ship-every", "0.5", "--timeout", "20",
        "--database-url", PG_URL, "--redis-url", REDIS_URL, "--logs", str(tmp_path)])
    result = load.run(args, out=lambda *_: None)
    print(load.report(result))

    assert result.errors == 0, "\n".join(result.error_samples)
    assert result.login.requests == 5
    # Every user took the tour first, so every surface was requested.
    assert set(result.endpoints) == set(load.ENDPOINTS)
    assert all(stats.requests > 0 for stats in result.endpoints.values())
    figures = result.writebacks
    assert figures["new_shipments"] > 0, figures  # the host kept shipping
    assert figures["send_attempts"] > 0 and figures["completed"] > 0, figures
