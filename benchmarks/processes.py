"""Process and database helpers shared by the benchmarks and the tests: a free port,
stopping a process group, a redis-server of one's own that can be killed and restarted
empty, and dropping the plugin's tables.

The benchmarks run as scripts with this folder on ``sys.path`` (``import processes``);
the tests import it as ``benchmarks.processes``. It imports nothing of the plugin at
module level, so either can load it first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(process: subprocess.Popen, sig: int = signal.SIGKILL, wait: float = 10) -> None:
    """Signal a process started with ``start_new_session`` and everything it forked (a
    worker's scheduler child); if it is still there after ``wait`` seconds, SIGKILL it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


class RedisProcess:
    """A redis-server that keeps nothing on disk, on a free port: a test or the chaos
    benchmark kills it and starts it again empty without touching the shared Redis."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        import redis

        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed")
        log_path = self.workdir / f"redis-{self.restarts}.log"
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(  # noqa: S603 - redis-server from PATH
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.workdir), "--loglevel", "warning"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 20
        try:
            while True:
                try:
                    client.ping()
                    return self
                except redis.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server on port {self.port} did not start: "
                                           f"{log_path.read_text()}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        if self.process is not None:
            stop_group(self.process)
            self.process = None

    def restart_empty(self) -> None:
        self.kill()
        self.restarts += 1
        self.start()


def drop_plugin_tables(url: str, *, create_database: bool = False) -> None:
    """Drop every table of the plugin (``sgx_``) and the reference host (``host_``) in a
    PostgreSQL database, so that migrations start from nothing; with ``create_database``,
    create the database first when it is missing."""
    import sqlalchemy as sa

    from shipgear_exchange_plugin.devhost import normalise_database_url

    url = normalise_database_url(url)
    if create_database:
        target = sa.make_url(url)
        admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            exists = conn.execute(sa.text("select 1 from pg_database where datname = :name"),
                                  {"name": target.database}).scalar()
            if not exists:
                conn.execute(sa.text(f'create database "{target.database}"'))
        admin.dispose()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        names = conn.execute(sa.text(
            "select tablename from pg_tables where schemaname = current_schema() "
            "and (tablename like 'sgx\\_%' or tablename like 'host\\_%')")).scalars().all()
        for name in names:
            conn.execute(sa.text(f'drop table if exists "{name}" cascade'))
    engine.dispose()
