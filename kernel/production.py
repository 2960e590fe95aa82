"""The production shape on one machine: `make serve-prod`.

    gunicorn (web workers: they only read, write small things, and enqueue)
      + N `flask jobs worker` processes (they run every long job)
      + Redis from Debian's redis-server on loopback (the queue and the shared
        rate-limit counters), unless ATTEST_QUEUE_URL names a broker already
      + whatever services the domains need first (the embedded chain, unless
        ATTEST_RPC_URL is set)

Nothing here is special to one machine: point ATTEST_QUEUE_URL at a shared
Redis (or PostgreSQL), ATTEST_DATABASE_URL at PostgreSQL and ATTEST_RPC_URL at
a node, and run gunicorn and `jobs worker` on as many machines as you like.

The launcher supervises: a job worker that dies is started again (its job is
taken up by the others meanwhile); SIGTERM or Ctrl-C stops the web workers
and the job workers gracefully (running jobs hand back at their next step),
then the broker and the node.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kernel.settings import ROOT, Settings, private_dir

# A service a domain starts before the workers: it returns the environment the
# workers need (e.g. ATTEST_RPC_URL) and a function that stops it.
Service = Callable[[Settings, dict], tuple[dict, Callable[[], None]]]


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_service(settings: Settings, env: dict) -> tuple[dict, Callable[[], None]]:
    """Debian's redis-server on 127.0.0.1, its files under the data dir (0700)."""
    if env.get("ATTEST_QUEUE_URL"):
        return {}, lambda: None
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("error: redis-server is not installed; `make serve-prod` installs Debian's redis-server "
                         "(or set ATTEST_QUEUE_URL to a broker)")
    folder = private_dir(settings.data_dir / "redis")
    port = free_port()
    log = open(folder / "redis.log", "ab")
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder),
                             "--appendonly", "yes", "--protected-mode", "yes"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    deadline = time.monotonic() + 20
    while True:
        try:
            if redis.Redis.from_url(url, socket_timeout=0.5).ping():
                break
        except redis.RedisError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"error: redis-server did not start (see {folder / 'redis.log'})") from None
            time.sleep(0.05)

    def stop() -> None:
        _stop(proc, 10)
        log.close()

    return {"ATTEST_QUEUE_URL": url, "ATTEST_RATE_LIMIT_STORAGE": url}, stop


def _stop(proc: subprocess.Popen, timeout: float, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


WORKER_CLASS = "kernel.gunicorn_worker.PromptThreadWorker"


def gunicorn_command(port: int, workers: int, threads: int, app_spec: str = "app:create_app()",
                     worker_class: str = WORKER_CLASS) -> list[str]:
    """gthread, for keep-alive (an API client keeps its connection), in the
    variant that serves a kept-alive connection's next request on the same
    thread when it comes promptly (kernel.gunicorn_worker)."""
    gunicorn = Path(sys.executable).with_name("gunicorn")
    return [str(gunicorn), "--config", str(Path(__file__).with_name("gunicorn_config.py")),
            "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
            "--worker-class", worker_class, "--keep-alive", "5",
            "--timeout", "60", "--graceful-timeout", "30", "--log-level", "warning", app_spec]


@dataclass
class Production:
    """The processes of one machine's production shape, started and supervised."""

    port: int = 8000
    web_workers: int = 2
    threads: int = 4
    job_workers: int = 2
    services: list[Service] = field(default_factory=list)
    quiet: bool = False
    env: dict = field(default_factory=lambda: dict(os.environ))
    web: subprocess.Popen | None = None
    jobs: list[subprocess.Popen] = field(default_factory=list)
    _stops: list[Callable[[], None]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _out(self):
        return subprocess.DEVNULL if self.quiet else None

    def start(self) -> Production:
        settings = Settings.from_env(self.env)
        try:
            for service in [redis_service, *self.services]:
                extra, stop = service(settings, self.env)
                self.env.update(extra)
                self._stops.append(stop)
            self.port = self.port or free_port()
            self.env.setdefault("ATTEST_SERVE_URL", self.url)
            # Migrate and run the start-up hooks once, here: workers starting
            # together would race on a fresh database.
            subprocess.run([sys.executable, "-m", "flask", "--app", "app", "prepare"], cwd=ROOT, env=self.env,
                           check=True, stdout=self._out())
            self.web = subprocess.Popen(gunicorn_command(self.port, self.web_workers, self.threads), cwd=ROOT,
                                        env=self.env, stdout=self._out(), stderr=self._out(), start_new_session=True)
            self.jobs = [self._job_worker() for _ in range(self.job_workers)]
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _job_worker(self) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "jobs", "worker", "--workers", "2"],
                                cwd=ROOT, env=self.env, stdout=self._out(), stderr=self._out(),
                                start_new_session=True)

    def wait_ready(self, timeout: float = 90) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.web.poll() is not None:
                raise RuntimeError(f"gunicorn exited with code {self.web.returncode}")
            try:
                if requests.get(self.url + "/api/v1/openapi.json", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer at {self.url} within {timeout:.0f} s")

    def supervise(self) -> None:
        """Until gunicorn stops (or a signal): restart job workers that die."""
        while self.web is not None and self.web.poll() is None:
            for i, proc in enumerate(self.jobs):
                if proc.poll() is not None:
                    print(f"job worker {proc.pid} exited ({proc.returncode}); starting another", file=sys.stderr)
                    self.jobs[i] = self._job_worker()
            time.sleep(1.0)

    def stop(self) -> None:
        """Gracefully: job workers hand back their jobs, web workers finish their requests."""
        for proc in self.jobs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        if self.web is not None:
            _stop(self.web, 40)
        for proc in self.jobs:
            _stop(proc, 130)
        for stop in reversed(self._stops):
            stop()
        self._stops.clear()


def serve(port: int, web_workers: int, threads: int, job_workers: int, services: list[Service]) -> None:
    prod = Production(port, web_workers, threads, job_workers, services).start()
    print(f"serving  {prod.url}/   (gunicorn {web_workers} x {threads} threads, {job_workers} job workers, "
          f"queue {prod.env.get('ATTEST_QUEUE_URL')}; Ctrl-C to stop)", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        prod.supervise()
    except KeyboardInterrupt:
        pass
    finally:
        prod.stop()
