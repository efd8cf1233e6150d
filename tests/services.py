"""Processes and network pieces of a test's own, for the failure tests (test_failures.py):
a gate in front of PostgreSQL that the test closes and opens, a redis-server it kills and
starts, and ``shipgear-exchange worker`` processes it watches.

Nothing here touches the shared servers: the gate is a TCP relay on a free port of this
machine, so closing it cuts only the connections of the apps and workers pointed at it,
exactly as a database host going away would (new connections refused, open ones reset).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from benchmarks.processes import REDIS_SERVER, RedisProcess, free_port, stop_group

from .conftest import ROOT

__all__ = ["REDIS_SERVER", "SCRIPT", "PgGate", "RedisProcess", "WorkerProcess", "free_port",
           "stop_group", "worker_env"]

SCRIPT = str(Path(sys.executable).parent / "shipgear-exchange")


class PgGate:
    """A TCP relay to PostgreSQL on a free port. Open, it forwards both ways; ``close()``
    stops listening (new connections are refused) and resets every open connection."""

    def __init__(self, upstream_url: str) -> None:
        url = sa.engine.make_url(upstream_url)
        self.upstream = (url.host or "127.0.0.1", url.port or 5432)
        self.port = free_port()
        self.url = url.set(host="127.0.0.1", port=self.port).render_as_string(
            hide_password=False)
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.accepted = 0
        self._budget: int | None = None

    @property
    def is_open(self) -> bool:
        return self._listener is not None

    def open(self) -> PgGate:
        listener = socket.create_server(("127.0.0.1", self.port), backlog=64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True,
                         name="pg-gate").start()
        return self

    def close(self) -> None:
        """Refuse new connections and cut the open ones."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() below on Linux
            listener.close()
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:  # wakes both pumps of each pair; the last one closes them
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut_after(self, nbytes: int) -> None:
        """Close the gate once ``nbytes`` more bytes came from PostgreSQL (mid-answer)."""
        with self._lock:
            self._budget = nbytes

    def _spend(self, nbytes: int) -> bool:
        """False when this answer's bytes run over the budget (the gate then closes)."""
        with self._lock:
            if self._budget is None:
                return True
            self._budget -= nbytes
            if self._budget > 0:
                return True
            self._budget = None
        self.close()
        return False

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # closed meanwhile
                    client.close()
                    upstream.close()
                    return
                self._open.update((client, upstream))
                self.accepted += 1
            pair = [client, upstream, 2]  # the sockets and how many pumps still run
            for source, target, counted in ((client, upstream, False),
                                            (upstream, client, True)):
                threading.Thread(target=self._pump, args=(source, target, pair, counted),
                                 daemon=True, name="pg-gate-pump").start()

    def _pump(self, source: socket.socket, target: socket.socket, pair: list,
              counted: bool) -> None:
        try:
            while data := source.recv(65536):
                if counted and not self._spend(len(data)):
                    break
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with self._lock:
            pair[2] -= 1
            last = pair[2] == 0
            if last:
                self._open.difference_update(pair[:2])
        if last:
            for sock in pair[:2]:
                sock.close()


def worker_env(app, redis_url: str, database_url: str, tmp_path: Path,
               **settings: str) -> dict[str, str]:
    """The environment of a ``shipgear-exchange worker`` for this test's app."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SHIPGEAR") and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(settings, DATABASE_URL=database_url, REDIS_URL=redis_url,
               SECRET_KEY="test-secret",
               SHIPGEAR_ENCRYPTION_KEY=app.config["SHIPGEAR_ENCRYPTION_KEY"],
               SHIPGEAR_SANDBOX_URL=app.config["SHIPGEAR_SANDBOX_URL"],
               PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1",
               EXCHANGE_INSTANCE_PATH=str(tmp_path / "instance"))
    return env


class WorkerProcess:
    """One ``shipgear-exchange worker`` in its own process group, its output in a file."""

    def __init__(self, env: dict[str, str], log_path: Path, *args: str) -> None:
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own console script
                [SCRIPT, "worker", *args], env=env, cwd=log_path.parent, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def cpu_seconds(self) -> float:
        """User and system CPU time the worker process has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_for_log(self, text: str, seconds: float, after: int = 0) -> str:
        """Until ``text`` shows in the log after offset ``after``; the log then."""
        deadline = time.monotonic() + seconds
        while True:
            log = self.log()
            if text in log[after:]:
                return log
            assert self.alive(), f"the worker exited ({self.process.returncode}):\n{log[-3000:]}"
            assert time.monotonic() < deadline, f"no {text!r} in the worker log:\n{log[-3000:]}"
            time.sleep(0.1)

    def stop(self) -> int | None:
        """SIGTERM (warm shutdown), then SIGKILL for the whole group if it lingers."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=15)
        code = self.process.poll()  # None: it ignored SIGTERM
        stop_group(self.process)  # its scheduler child too, whatever happened
        return code
