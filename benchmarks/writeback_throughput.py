"""Write-back throughput against RQ's own no-op job throughput (PRODUCT.md §6, issue 4).

Both rates come from the same run, the same ``shipgear-exchange worker`` command (the
plugin's AppWorker, RQ's scheduler and the periodic sweeper beside it) and the same
number of worker processes, against PostgreSQL, Redis and the marketplace sandbox over
real HTTP with no injected latency:

1. **baseline**: N no-op jobs on the write-back queue, worked by fresh workers;
2. **write-backs**: the host processes N shipments (the outbox hook enqueues each first
   attempt after commit) while no worker runs, then fresh workers write them all back
   (send, then verification) until every row is success or failed.

Rates are taken from the jobs' and rows' own timestamps (first start to last finish), so
worker start-up is not counted. The sandbox runs in a process of its own and counts every
429 it answers: the stores' rate limits must never be exceeded.

Run (PostgreSQL and Redis on this machine; see benchmarks/README.md)::

    .venv/bin/python benchmarks/writeback_throughput.py --shipments 10000

The benchmark owns its database (created when missing; its tables are dropped and made
again) and empties the Redis database it is given.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import pstats
import resource
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:  # imported by benchmarks/load.py from tests/test_load.py
    sys.path.append(str(HERE))

from processes import (  # noqa: E402 - shared with the tests
    RedisProcess,
    drop_plugin_tables,
    free_port,
    stop_group,
)

SCRIPT = str(Path(sys.executable).parent / "shipgear-exchange")
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/shipgear_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
QUEUE = "shipgear-writeback"
#: Queues of the periodic jobs (sweeper, snapshot, health probes): not write-back work.
OTHER_QUEUES = ("shipgear-maintenance", "shipgear-status")


def noop() -> None:
    """The baseline job: RQ's own cost per job, and nothing else."""
    return None


# -- the sandbox, in a process of its own ---------------------------------------------------
def serve_sandbox(port: int) -> None:
    """The marketplace sandbox, counting every status it answers per store account (the
    429s are the rate limits it enforced) and serving the counts at /_bench/answered."""
    from flask import jsonify, request

    from shipgear_exchange_plugin.sandbox import SandboxStore, create_app
    from shipgear_exchange_plugin.sandbox.store import PLATFORMS

    app = create_app(SandboxStore())
    answered: Counter[str] = Counter()
    lock = threading.Lock()

    @app.after_request
    def _count(response):
        parts = request.path.split("/")
        if len(parts) > 2 and parts[1] in PLATFORMS:
            with lock:
                answered[f"{parts[1]}/{parts[2]}/{response.status_code}"] += 1
        return response

    @app.get("/_bench/answered")
    def _answered():
        with lock:
            return jsonify(dict(answered))

    # Waitress, not the Werkzeug server of the tests: Werkzeug closes the connection after
    # every answer and starts a thread per connection, and the stores it stands in for
    # keep connections open. Both cost CPU on the machine the workers run on.
    import waitress

    waitress.serve(app, host="127.0.0.1", port=port, threads=4, _quiet=True)


# -- processes and measurements -------------------------------------------------------------
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_by_process(wanted) -> dict[int, float]:
    """User + system CPU seconds (with reaped children) of every process for which
    ``wanted(pid, process group, command line)`` is true."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        pid = int(entry.name)
        if wanted(pid, int(fields[2]), cmdline):
            found[pid] = sum(int(f) for f in fields[11:15]) / CLOCK_TICKS
    return found


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def own_cpu_seconds() -> float:
    """This script's CPU (enqueueing the no-op jobs, polling the rows' states), which the
    whole machine's figures leave out; redis-server's share of the enqueueing stays in."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_cpu_seconds() -> float:
    """CPU time every core of the machine spent busy (not idle, not waiting for I/O)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / CLOCK_TICKS


class Workers:
    """``count`` worker processes of the plugin's own command, each in a session of its
    own (the worker and the scheduler process RQ forks)."""

    def __init__(self, env: dict[str, str], logdir: Path, count: int,
                 profile_dir: Path | None = None, label: str = "w") -> None:
        self.env, self.logdir, self.profile_dir, self.label = env, logdir, profile_dir, label
        self.processes: list[subprocess.Popen] = []
        self.started = self.killed = self.exited = 0
        for _ in range(count):
            self.start_one()

    def start_one(self) -> None:
        command = [SCRIPT, "worker"]
        if self.profile_dir is not None:
            command = [sys.executable, "-m", "cProfile", "-o",
                       str(self.profile_dir / f"{self.label}-{self.started}.prof"), *command]
        with open(self.logdir / f"{self.label}-{self.started}.log", "w") as log:
            self.processes.append(subprocess.Popen(  # noqa: S603 - our own command
                command, env=self.env, cwd=self.logdir, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True))
        self.started += 1

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def check(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise SystemExit(f"a worker stopped (exit {process.returncode}); see its log")

    def keep(self, count: int) -> None:
        """Replace workers that stopped by themselves (RQ quits when Redis goes away)."""
        for process in list(self.processes):
            if process.poll() is not None:
                self.processes.remove(process)
                stop_group(process, signal.SIGKILL)
                self.exited += 1
        if self.exited > 50:
            raise SystemExit("workers keep stopping by themselves; see their logs")
        while len(self.processes) < count:
            self.start_one()

    def kill_oldest(self) -> None:
        stop_group(self.processes.pop(0), signal.SIGKILL)
        self.killed += 1

    def stop(self) -> None:
        for process in self.processes:
            stop_group(process, signal.SIGTERM, wait=30)


def worker_counters(connection) -> tuple[int, float]:
    """Jobs done and seconds spent inside jobs by every registered worker."""
    from rq import Worker

    workers = Worker.all(connection=connection)
    return (sum(w.successful_job_count + w.failed_job_count for w in workers),
            sum(w.total_working_time for w in workers))


WORKERS = "workers (+ scheduler)"


def wait_until_idle(workers, connection, count: int, groups: dict, seconds: float = 180
                    ) -> tuple[float, dict[str, dict[int, float]]]:
    """Wait for ``count`` registered workers whose CPU has settled (their first health
    probes done). Returns the workers' CPU seconds when they had registered (what
    starting cost them) and every process group's CPU seconds once settled."""
    from rq import Worker

    deadline = time.monotonic() + seconds
    started_up = last = None
    while time.monotonic() < deadline:
        workers.check()
        now = {name: cpu_by_process(wanted) for name, wanted in groups.items()}
        spent = sum(now[WORKERS].values())
        if started_up is None and len(Worker.all(connection=connection)) >= count:
            started_up = spent
        elif started_up is not None and spent - last < 0.05:
            return started_up, now
        last = spent
        time.sleep(0.5)
    raise SystemExit(f"the workers did not start and settle within {seconds:.0f} s")


def job_span(connection, ids: list[str]) -> tuple[float, Counter[str]]:
    """Seconds from the first job's start to the last job's end, and their results."""
    from rq.job import Job

    starts, ends, results = [], [], Counter()
    for at in range(0, len(ids), 1000):
        for job in Job.fetch_many(ids[at:at + 1000], connection=connection):
            if job is None or job.started_at is None or job.ended_at is None:
                results["missing"] += 1
                continue
            starts.append(job.started_at)
            ends.append(job.ended_at)
            results[job.get_status(refresh=False)] += 1
    return (max(ends) - min(starts)).total_seconds(), results


# -- set-up ---------------------------------------------------------------------------------
def prepare_database(url: str) -> None:
    """Create the benchmark's database when missing and drop every table of ours in it."""
    drop_plugin_tables(url, create_database=True)


def make_shipments(app, sandbox_url: str, accounts: list[tuple[int, str, str]],
                   count: int) -> float:
    """Register ``count`` orders with their stores, then process one shipment each through
    the host (the plugin's hook stores the write-back and enqueues it after commit).
    Returns the seconds the shipping took."""
    from shipgear_exchange_plugin.devhost.models import db
    from shipgear_exchange_plugin.devhost.simulate import ship_spread

    started = time.monotonic()
    with app.app_context():
        ship_spread(app.extensions["exchange.host"], sandbox_url, accounts, count,
                    progress=lambda done: print(f"  {done} shipments processed", flush=True))
        db.session.remove()
    return time.monotonic() - started


# -- the benchmark --------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shipments", type=int, default=10000)
    parser.add_argument("--noop-jobs", type=int, default=None,
                        help="baseline jobs (default: twice --shipments, about as many "
                             "jobs as the write-backs take)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--companies", type=int, default=125,
                        help="companies, each with one store account per platform")
    parser.add_argument("--platforms", default="amazon,shopify,woocommerce,bigcommerce")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                                 DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL",
                                                              DEFAULT_REDIS_URL))
    parser.add_argument("--verify-schedule", default="1,2,4,8",
                        help="SHIPGEAR_VERIFY_SCHEDULE of the workers (seconds)")
    parser.add_argument("--sweep-interval", default="5",
                        help="SHIPGEAR_SWEEP_INTERVAL of the workers (seconds)")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="run the write-back workers under cProfile, stats into DIR")
    parser.add_argument("--logs", type=Path, default=Path("/tmp/sgx-bench"),
                        help="worker and sandbox logs")
    parser.add_argument("--chaos", action="store_true",
                        help="PRODUCT.md §7 at full size instead of throughput: 30%% store "
                             "errors, workers SIGKILLed every few seconds, a private "
                             "redis-server restarted empty twice; checks every row ends "
                             "success or failed, <= 5 attempts, no duplicate on any store")
    parser.add_argument("--serve-sandbox", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sandbox is not None:
        serve_sandbox(args.serve_sandbox)
        return 0
    noop_jobs = args.noop_jobs or 2 * args.shipments
    platforms = tuple(p.strip() for p in args.platforms.split(",") if p.strip())

    import redis
    import requests
    import rq
    import sqlalchemy as sa
    from rq import Queue

    from shipgear_exchange_plugin.crypto import generate_key
    from shipgear_exchange_plugin.devhost import create_app, init_db
    from shipgear_exchange_plugin.devhost.models import db
    from shipgear_exchange_plugin.devhost.seed import seed
    from shipgear_exchange_plugin.devhost.simulate import load_accounts
    from shipgear_exchange_plugin.models import Attempt, Writeback
    from shipgear_exchange_plugin.ratelimit import DEFAULT_LIMITS

    args.logs.mkdir(parents=True, exist_ok=True)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    private = RedisProcess(args.logs).start() if args.chaos else None
    if private is not None:
        args.redis_url = private.url
    connection = redis.Redis.from_url(args.redis_url)
    prepare_database(args.database_url)  # before the version is asked of it
    pg_version = sa.create_engine(args.database_url.replace("postgresql://",
                                                            "postgresql+psycopg://"))
    print(f"# Write-back throughput, {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"machine: {os.cpu_count()} cores, {platform.platform()}, Python "
          f"{platform.python_version()}, rq {rq.__version__}, Redis "
          f"{connection.info()['redis_version']}, PostgreSQL "
          f"{pg_version.connect().execute(sa.text('show server_version')).scalar()}")
    pg_version.dispose()
    print(f"load average before: {os.getloadavg()[0]:.2f}")

    connection.flushdb()
    sandbox_port = free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    with open(args.logs / "sandbox.log", "w") as log:
        sandbox = subprocess.Popen(  # noqa: S603 - this script, in its sandbox mode
            [sys.executable, __file__, "--serve-sandbox", str(sandbox_port)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    workers: Workers | None = None
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{sandbox_url}/_sandbox/health", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                if time.monotonic() > deadline or sandbox.poll() is not None:
                    raise SystemExit("the sandbox did not start; see its log") from None
                time.sleep(0.2)

        key = generate_key()
        app = create_app({"DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
                          "SECRET_KEY": "bench", "SHIPGEAR_ENCRYPTION_KEY": key,
                          "SHIPGEAR_SANDBOX_URL": sandbox_url, "TESTING": True,
                          "INSTANCE_PATH": str(args.logs / "instance")})
        init_db(app)
        with app.app_context():
            seed(app, companies=args.companies, shipments=0, enabled=args.companies)
            accounts = load_accounts(platforms)
            db.session.remove()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SHIPGEAR") and k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(DATABASE_URL=args.database_url, REDIS_URL=args.redis_url,
                   SECRET_KEY="bench", SHIPGEAR_ENCRYPTION_KEY=key,
                   SHIPGEAR_SANDBOX_URL=sandbox_url,  # store calls may go to it
                   PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]),
                   EXCHANGE_INSTANCE_PATH=str(args.logs / "instance"),
                   SHIPGEAR_VERIFY_SCHEDULE=args.verify_schedule,
                   SHIPGEAR_SWEEP_INTERVAL=args.sweep_interval)
        per_account = args.shipments / len(accounts)
        print(f"\nstores: {len(accounts)} sandbox accounts ({args.companies} companies x "
              f"{', '.join(platforms)}), {per_account:.1f} write-backs each; store limits at "
              "the sandbox's defaults (the stores' published ones).")
        print("our rate budgets (ratelimit.DEFAULT_LIMITS, per account, a little under "
              "the stores' published limits; the load is spread over many accounts "
              "rather than raising them with SHIPGEAR_RATE_LIMITS): " + "; ".join(
                  f"{p} " + ", ".join(f"{a or 'all'} {r:g}/s burst {b:g}"
                                      for a, (r, b) in DEFAULT_LIMITS[p].items())
                  for p in platforms))
        print(f"workers: {args.workers} x `shipgear-exchange worker` (AppWorker, SimpleWorker "
              f"+ Flask app context per job, RQ scheduler, periodic sweeper every "
              f"{args.sweep_interval}s); SHIPGEAR_VERIFY_SCHEDULE={args.verify_schedule}")

        if private is not None:
            return chaos(app, env, args, sandbox_url, accounts, private)

        database = sa.make_url(args.database_url).database
        port = str(connection.connection_pool.connection_kwargs.get("port", 6379))
        groups = {  # what to count: the benchmark's own processes, and its database's
            WORKERS: lambda pid, group, cmd: group in workers.pids,
            f"postgres backends of {database}":
                lambda pid, group, cmd: cmd.startswith("postgres:") and f" {database} " in cmd,
            "redis-server": lambda pid, group, cmd: "redis-server" in cmd and f":{port}" in cmd,
            "sandbox": lambda pid, group, cmd: group == sandbox.pid,
        }

        # 1. RQ's own no-op throughput, same command and worker class.
        queue = Queue(QUEUE, connection=connection)
        ids = [f"noop-{n}" for n in range(noop_jobs)]
        # The workers start on an empty queue: the CPU they spend starting (imports, the
        # scheduler's fork) is measured apart and left out of both phases' costs, and so
        # are their first health probes here.
        workers = Workers(env, args.logs, args.workers, label="noop")
        startup, cpu_before = wait_until_idle(workers, connection, args.workers, groups)
        machine_before = machine_cpu_seconds() - own_cpu_seconds()
        _, idle_working = worker_counters(connection)  # RQ counts some of the idle wait
        for at in range(0, noop_jobs, 1000):
            with connection.pipeline() as pipe:
                queue.enqueue_many([Queue.prepare_data(
                    "writeback_throughput.noop", job_id=job, result_ttl=600, failure_ttl=600)
                    for job in ids[at:at + 1000]], pipeline=pipe)
                pipe.execute()
        while queue.count or queue.started_job_registry.count:
            workers.check()
            time.sleep(0.2)
        noop_jobs_done, noop_working = worker_counters(connection)
        noop_working -= idle_working
        noop_cpu = {name: cpu_used(cpu_before[name], cpu_by_process(wanted))
                    for name, wanted in groups.items()}
        noop_cpu["whole machine"] = machine_cpu_seconds() - own_cpu_seconds() - machine_before
        workers.stop()
        workers = None
        noop_span, noop_results = job_span(connection, ids)
        noop_rate = noop_jobs / noop_span
        print(f"\nRQ no-op jobs: {noop_jobs} in {noop_span:.2f}s = {noop_rate:.0f} jobs/s "
              f"({dict(noop_results)}; {noop_working / noop_span / args.workers:.0%} of "
              "worker time inside the job function)")
        connection.flushdb()

        # 2. Write-backs: the host ships while no worker runs, then the workers start.
        print(f"\nprocessing {args.shipments} shipments (no worker running)...", flush=True)
        shipping = make_shipments(app, sandbox_url, accounts, args.shipments)
        print(f"  {args.shipments} shipments in {shipping:.1f}s "
              f"({args.shipments / shipping:.0f}/s, outbox rows and first jobs included); "
              f"{queue.count} send jobs queued")
        calls_before = sum(requests.get(f"{sandbox_url}/_bench/answered",
                                        timeout=30).json().values())
        machine_before = machine_cpu_seconds() - own_cpu_seconds()
        workers = Workers(env, args.logs, args.workers, profile_dir=args.profile, label="wb")
        cpu_before = {name: cpu_by_process(wanted) for name, wanted in groups.items()}
        started = time.monotonic()
        last_report = started
        while True:
            workers.check()
            with app.app_context():
                counts = dict(db.session.execute(sa.select(
                    Writeback.status, sa.func.count()).group_by(Writeback.status)).all())
                db.session.remove()
            if not {"pending", "submitted"} & set(counts):
                break
            if time.monotonic() - last_report > 15:
                print(f"  {time.monotonic() - started:.0f}s: {counts}", flush=True)
                last_report = time.monotonic()
            time.sleep(0.5)
        jobs_done, working = worker_counters(connection)
        cpu = {name: cpu_used(cpu_before[name], cpu_by_process(wanted))
               for name, wanted in groups.items()}
        cpu["whole machine"] = machine_cpu_seconds() - own_cpu_seconds() - machine_before
        cpu[WORKERS] -= startup  # as measured in the no-op phase, as is the machine's
        cpu["whole machine"] -= startup
        status_jobs = sum(Queue(name, connection=connection).finished_job_registry.count
                          + Queue(name, connection=connection).failed_job_registry.count
                          for name in OTHER_QUEUES)
        workers.stop()
        workers = None
        with app.app_context():
            first = db.session.execute(sa.select(sa.func.min(Attempt.started_at))).scalar()
            last = db.session.execute(sa.select(sa.func.max(Writeback.updated_at))).scalar()
            attempts = db.session.execute(sa.select(sa.func.count()).select_from(Attempt)).scalar()
            checks = db.session.execute(sa.select(sa.func.sum(Writeback.verify_checks))).scalar()
            db.session.remove()
        span = (last - first).total_seconds()
        wb_jobs = jobs_done - status_jobs
        job_rate, row_rate = wb_jobs / span, args.shipments / span
        answered = requests.get(f"{sandbox_url}/_bench/answered", timeout=30).json()
        calls = sum(answered.values()) - calls_before  # the write-back phase's
        throttled = sum(n for k, n in answered.items() if k.endswith("/429"))
        print(f"\nwrite-backs: {args.shipments} in {span:.2f}s, final {counts}")
        print(f"  {wb_jobs} write-back jobs = {job_rate:.1f} jobs/s: {attempts} send attempts "
              f"and {wb_jobs - attempts} verification or idle jobs ({checks} checks in all: "
              "Shopify, WooCommerce and BigCommerce are read back inside the send job, "
              "Amazon by a later verification job; an idle job ran before its row was due "
              f"or was held by the rate limit); plus {status_jobs} sweeper and health-probe "
              f"jobs on {', '.join(OTHER_QUEUES)}")
        print(f"  {row_rate:.1f} write-backs/s")
        print(f"  {working / span / args.workers:.0%} of the workers' wall time inside job "
              "functions")
        print(f"  store calls in the write-back phase: {calls} ({calls / args.shipments:.1f} "
              "per write-back, the health probes' and product syncs' included); answered "
              f"429 (a store's rate limit exceeded) in the whole run: {throttled}")
        print("  CPU seconds during the write-back phase: " + ", ".join(
            f"{k} {v:.0f}" for k, v in cpu.items()) + f" (of {span * os.cpu_count():.0f} "
            "available; redis-server and the machine include other clients)")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        print(f"  (the workers' start-up, {startup:.1f} CPU s, and this script's own CPU are "
              "left out of both phases; the write-back phase's figures include its sweeper "
              "and health-probe jobs)")
        print_cost(noop_cpu, noop_jobs, cpu, args.shipments)
        ratio = job_rate / noop_rate
        print(f"\nratio, write-back jobs/s to no-op jobs/s: {ratio:.3f} (target >= 0.5: "
              f"{'met' if ratio >= 0.5 else 'MISSED'})")
        print(f"ratio, write-backs/s to no-op jobs/s: {row_rate / noop_rate:.3f}")
        print(f"store rate limits exceeded: {throttled} times "
              f"({'never' if throttled == 0 else 'EXCEEDED'})")
        summary = {"noop_jobs_per_s": round(noop_rate, 1),
                   "writeback_jobs_per_s": round(job_rate, 1),
                   "writebacks_per_s": round(row_rate, 1), "ratio_jobs": round(ratio, 3),
                   "ratio_writebacks": round(row_rate / noop_rate, 3), "store_429": throttled,
                   "shipments": args.shipments, "workers": args.workers}
        print("json: " + json.dumps(summary))
        if args.profile:
            print_profile(args.profile)
        return 0
    finally:
        if workers is not None:
            workers.stop()
        stop_group(sandbox, signal.SIGKILL)
        if private is not None:
            private.kill()


def print_cost(noop_cpu: dict[str, float], noop_jobs: int, cpu: dict[str, float],
               shipments: int) -> None:
    """CPU milliseconds per no-op job and per write-back, by process group. With every
    core busy, write-backs/s to no-op jobs/s would be the inverse of a write-back's cost
    counted in no-op jobs; taking out the sandbox's share estimates it with the stores on
    other machines, as in production. Estimates only: the target is the ratio of the
    measured rates."""
    per_job = {k: v * 1000 / noop_jobs for k, v in noop_cpu.items() if v >= 0.05}
    per_row = {k: v * 1000 / shipments for k, v in cpu.items()}
    print("  CPU ms per no-op job: " + ", ".join(f"{k} {v:.2f}" for k, v in per_job.items()))
    print("  CPU ms per write-back: " + ", ".join(f"{k} {v:.2f}" for k, v in per_row.items()))
    machine, stores = per_row["whole machine"], per_row["sandbox"]
    noop = per_job["whole machine"]
    print(f"  a write-back costs the machine the CPU of {machine / noop:.1f} no-op jobs (with "
          f"the cores kept busy, write-backs/s to no-op jobs/s of about {noop / machine:.2f}); "
          f"the stores' share (the sandbox) taken out, {(machine - stores) / noop:.1f}: about "
          f"{noop / (machine - stores):.2f} with the stores on other machines, as in "
          "production (estimates, not the target's measure)")


#: The workers' clock in chaos mode: the same code paths, seconds instead of minutes.
CHAOS_SETTINGS = {
    "SHIPGEAR_RETRY_SCHEDULE": "0.2,0.4,0.6,0.8", "SHIPGEAR_VERIFY_SCHEDULE": "0.2,0.5,1,2",
    "SHIPGEAR_SWEEP_INTERVAL": "1", "SHIPGEAR_CLAIM_STALE_AFTER": "10",
    "SHIPGEAR_HTTP_TIMEOUT": "1,3", "SHIPGEAR_FEED_POLL_EVERY": "1",
}


def chaos(app, env: dict[str, str], args, sandbox_url: str,
          accounts: list[tuple[int, str, str]], private: RedisProcess) -> int:
    """The reliability proof at full size (tests/test_chaos.py runs it at CI size)."""
    import requests
    import sqlalchemy as sa

    from shipgear_exchange_plugin.devhost.models import db
    from shipgear_exchange_plugin.models import Attempt, StoreAccount, Writeback

    env = {**env, **CHAOS_SETTINGS}
    for _, platform_name, key in accounts:
        requests.put(f"{sandbox_url}/_sandbox/{platform_name}/{key}/faults", timeout=10,
                     json={"error_rate": 0.3, "error_status": 503}).raise_for_status()
    print(f"\nchaos: {args.shipments} shipments, 30% of store calls answered 503, "
          f"{args.workers} workers, one SIGKILLed every 5 s, Redis restarted empty at 25% and "
          f"60% done; workers' settings {CHAOS_SETTINGS}", flush=True)
    make_shipments(app, sandbox_url, accounts, args.shipments)

    def not_final() -> int:
        with app.app_context():
            count = db.session.execute(sa.select(sa.func.count()).select_from(Writeback).where(
                Writeback.status.in_(["pending", "submitted"]))).scalar()
            db.session.remove()
        return count

    workers = Workers(env, args.logs, args.workers, label="chaos")
    started = last_kill = last_report = time.monotonic()
    restarts_at = [0.25, 0.60]
    events = []
    try:
        while (left := not_final()) and time.monotonic() - started < 7200:
            workers.keep(args.workers)
            done = 1 - left / args.shipments
            if restarts_at and done >= restarts_at[0]:
                restarts_at.pop(0)
                private.restart_empty()
                events.append(f"Redis restarted at {time.monotonic() - started:.0f}s "
                              f"({left} rows not final)")
            elif time.monotonic() - last_kill >= 5:
                workers.kill_oldest()
                last_kill = time.monotonic()
            if time.monotonic() - last_report >= 30:
                print(f"  {time.monotonic() - started:.0f}s: {left} rows not final; workers "
                      f"killed {workers.killed}", flush=True)
                last_report = time.monotonic()
            time.sleep(0.5)
    finally:
        workers.stop()
    elapsed = time.monotonic() - started
    with app.app_context():
        rows = db.session.execute(sa.select(
            Writeback.id, Writeback.order_id, Writeback.tracking_number, Writeback.status,
            Writeback.error_count, StoreAccount.platform).join(StoreAccount)).all()
        attempts = dict(db.session.execute(sa.select(
            Attempt.writeback_id, sa.func.count()).group_by(Attempt.writeback_id)).all())
        db.session.remove()
    statuses = Counter(r.status for r in rows)
    over = [r.id for r in rows if attempts.get(r.id, 0) > 5 or r.error_count > 5]
    early = [r.id for r in rows if r.status == "failed" and r.error_count != 5]
    duplicates, on_store = 0, set()
    for _, platform_name, key in accounts:
        base = f"{sandbox_url}/_sandbox/{platform_name}/{key}"
        duplicates += sum(requests.get(f"{base}/duplicates", timeout=30).json()
                          ["duplicates"].values())
        on_store |= {(platform_name, w["order_id"], w["tracking_number"])
                     for w in requests.get(f"{base}/writes", timeout=30).json()["writes"]}
    missing = [r.id for r in rows if r.status == "success"
               and (r.platform, r.order_id, r.tracking_number) not in on_store]
    print(f"\nchaos: {len(rows)} write-backs in {elapsed:.0f}s: {dict(statuses)}")
    print(f"  workers SIGKILLed {workers.killed}, stopped by themselves {workers.exited}; "
          + "; ".join(events))
    print(f"  most attempts of one row: {max(attempts.values(), default=0)}; rows over 5: "
          f"{len(over)}; failed before their 5th attempt: {len(early)}")
    print(f"  duplicate confirmations on the stores: {duplicates}; success rows not on their "
          f"store: {len(missing)}")
    ok = (set(statuses) <= {"success", "failed"} and not over and not early
          and duplicates == 0 and not missing and private.restarts == 2)
    print("chaos: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


def print_profile(directory: Path) -> None:
    """Where the write-back workers' time went, from their cProfile stats."""
    files = sorted(str(p) for p in directory.glob("wb-*.prof"))
    if not files:
        print("no profile written (a worker did not exit cleanly)")
        return
    stats = pstats.Stats(*files)
    total = stats.total_tt
    wanted = {
        "job functions (send/verify/sweep)": ("jobs/writeback.py", ("send", "verify", "sweep")),
        "  engine: claim (transaction)": ("writeback.py", ("_claim",)),
        "  engine: record the outcome (transaction)": ("writeback.py", ("_record_send",)),
        "  connector calls (HTTP, classification)": ("http.py", ("request",)),
        "  of which waiting for the shared rate limit": ("http.py", ("_wait_for_rate_limit",)),
        "  credentials (Fernet decrypt)": ("credentials.py", ("read_credentials",)),
        "  enqueue the next step": ("dispatch.py", ("follow",)),
        "RQ: dequeue": ("queue.py", ("dequeue_any",)),
        "RQ: perform_job": ("base.py", ("perform_job",)),
        "SQLAlchemy Session.execute": ("orm/session.py", ("execute",)),
        "SQLAlchemy Session.commit": ("orm/session.py", ("commit",)),
        "requests Session.request": ("requests/sessions.py", ("request",)),
        "redis-py execute_command": ("redis/client.py", ("execute_command",)),
        "time.sleep": ("~", ("<built-in method time.sleep>",)),
    }
    rows = []
    for label, (path, names) in wanted.items():
        cumulative = 0.0
        for (filename, _, name), (_, _, _, ct, _) in stats.stats.items():
            if filename.endswith(path) and name in names:
                cumulative += ct
        rows.append((label, cumulative))
    print(f"\nprofile of the write-back workers ({len(files)} processes, "
          f"{total:.1f}s profiled):")
    for label, cumulative in rows:
        print(f"  {label:<48} {cumulative:8.1f}s  {cumulative / total:6.1%}")
    print("\ntop functions by own time:")
    stats.sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    sys.exit(main())
