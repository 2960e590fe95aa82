"""Which queue engine carries Attest's jobs: Huey on SQLite, Redis and PostgreSQL,
and RQ on Redis, measured in one run on this machine.

    .venv/bin/python bench/bench_queue.py [--jobs 2000]

For each engine: the cost of one enqueue (what a web worker pays), the time to
drain N no-op jobs with two worker processes, the latency from enqueue to start
(p50/p99, 200 jobs 10 ms apart, workers idle), and what happens to a job whose
worker is killed with -9 while it runs (redelivered or lost). Redis and
PostgreSQL come from Debian's packages, started on loopback by the bench.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis

from tests.servers import PostgresServer, RedisServer

RESULTS = Path(__file__).with_name("results") / "bench_queue.txt"
COUNTER_ENV = "BENCH_QUEUE_COUNTER"  # every task reports to this Redis


def _report(kind: str, sent: float | None = None) -> None:
    r = redis.Redis.from_url(os.environ[COUNTER_ENV])
    if kind == "done":
        r.incr("done")
    elif kind == "latency":
        r.rpush("latency", time.time() - sent)
    elif kind == "slow":
        r.incr("slow_started")
        time.sleep(3)
        r.incr("slow_done")


# ----- engines -----------------------------------------------------------------------

class HueyEngine:
    def __init__(self, name: str, make):
        self.name, self.make = name, make
        self.huey = make()
        self.task = self.huey.task(name="report")(_report)

    def enqueue(self, *args) -> None:
        self.task(*args)

    def start_workers(self) -> mp.Process:
        def run():
            from huey.consumer import Consumer

            huey = self.make()
            huey.task(name="report")(_report)
            Consumer(huey, workers=2, worker_type="process", initial_delay=0.01, max_delay=0.1).run()

        proc = mp.get_context("fork").Process(target=run, daemon=False)
        proc.start()
        return proc

    def flush(self) -> None:
        self.huey.flush()


class RqEngine:
    name = "RQ 2 (Redis, fork per job)"

    def __init__(self, url: str):
        import rq

        self.url = url
        self.conn = redis.Redis.from_url(url)
        self.queue = rq.Queue("bench", connection=self.conn)

    def enqueue(self, *args) -> None:
        self.queue.enqueue("bench.bench_queue._report", *args)

    def start_workers(self) -> mp.Process:
        def run():
            import rq

            conn = redis.Redis.from_url(self.url)
            children = []
            for _ in range(2):
                pid = os.fork()
                if pid == 0:
                    rq.Worker([rq.Queue("bench", connection=conn)], connection=conn).work(logging_level="ERROR")
                    os._exit(0)
                children.append(pid)
            signal.signal(signal.SIGTERM, lambda *_: [os.kill(c, signal.SIGKILL) for c in children] and os._exit(0))
            for c in children:
                os.waitpid(c, 0)

        proc = mp.get_context("fork").Process(target=run, daemon=False)
        proc.start()
        return proc

    def flush(self) -> None:
        self.queue.empty()


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def measure(engine, jobs: int, counter: redis.Redis) -> dict:
    counter.flushdb()
    engine.flush()
    t = time.perf_counter()
    for _ in range(jobs):
        engine.enqueue("done")
    enqueue_us = (time.perf_counter() - t) / jobs * 1e6
    start = time.perf_counter()
    workers = engine.start_workers()
    try:
        while int(counter.get("done") or 0) < jobs:
            if time.perf_counter() - start > 300:
                raise RuntimeError(f"{engine.name}: only {counter.get('done')} of {jobs} done in 300 s")
            time.sleep(0.01)
        drain = time.perf_counter() - start
        time.sleep(0.5)
        for _ in range(200):
            engine.enqueue("latency", time.time())
            time.sleep(0.01)
        deadline = time.monotonic() + 60
        while counter.llen("latency") < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        lat = sorted(float(x) * 1000 for x in counter.lrange("latency", 0, -1))
        # A job whose worker dies with -9 while it runs.
        engine.enqueue("slow")
        deadline = time.monotonic() + 20
        while int(counter.get("slow_started") or 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in children_of(workers.pid):
            for grandchild in children_of(pid):
                os.kill(grandchild, signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
        os.kill(workers.pid, signal.SIGKILL)
        workers.join()
        workers = engine.start_workers()
        time.sleep(8)
        redelivered = int(counter.get("slow_started") or 0) > 1 or int(counter.get("slow_done") or 0) >= 1
    finally:
        for pid in children_of(workers.pid):
            for grandchild in children_of(pid):
                os.kill(grandchild, signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
        os.kill(workers.pid, signal.SIGKILL)
        workers.join()
    return {"engine": engine.name, "enqueue_us": enqueue_us, "drain_s": drain, "rate": jobs / drain,
            "p50": statistics.median(lat), "p99": lat[int(len(lat) * 0.99) - 1],
            "after_kill": "redelivered" if redelivered else "lost"}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    args = parser.parse_args()
    from huey import PriorityRedisHuey, SqliteHuey
    from huey.api import Huey
    from huey.storage import PostgresStorage

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rs, pg = RedisServer(tmp / "redis"), PostgresServer(tmp / "pg")
        try:
            os.environ[COUNTER_ENV] = rs.url.rsplit("/", 1)[0] + "/1"
            counter = redis.Redis.from_url(os.environ[COUNTER_ENV])
            engines = [
                HueyEngine("Huey 3.5 (SQLite)", lambda: SqliteHuey("bench", filename=str(tmp / "q.db"))),
                HueyEngine("Huey 3.5 (Redis)", lambda: PriorityRedisHuey("bench", url=rs.url)),
                HueyEngine("Huey 3.5 (PostgreSQL)", lambda: Huey("bench", storage_class=PostgresStorage,
                                                              dsn=pg.dsn)),
                RqEngine(rs.url),
            ]
            rows = [measure(e, args.jobs, counter) for e in engines]
        finally:
            rs.stop()
            pg.stop()
    load = os.getloadavg()
    lines = [f"queue engines, {args.jobs} no-op jobs, 2 worker processes, load average "
             f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
             f"{'engine':32} {'enqueue':>10} {'drain':>8} {'jobs/s':>8} {'p50 ms':>8} {'p99 ms':>8}  after kill -9"]
    for r in rows:
        lines.append(f"{r['engine']:32} {r['enqueue_us']:8.0f}us {r['drain_s']:7.2f}s {r['rate']:8.0f} "
                     f"{r['p50']:8.1f} {r['p99']:8.1f}  {r['after_kill']}")
    text = "\n".join(lines)
    print(text)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
