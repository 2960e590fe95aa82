"""Real Redis and PostgreSQL servers from Debian's packages, and `flask serve`
itself, started on 127.0.0.1 and a free port, and stopped by whoever started
them (a fixture, a benchmark, `.ci/run`).

PostgreSQL refuses to run as root, so when the tests run as root the cluster
is made and run as the `postgres` user (in a folder that user can enter).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import requests

from credentials.node import free_port, terminate
from kernel.settings import ROOT

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class ServerError(RuntimeError):
    pass


def _wait(check, what: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            raise ServerError(f"{what} exited with code {proc.returncode} before answering")
        time.sleep(0.05)
    raise ServerError(f"{what} did not answer within {timeout:.0f} s")


class FlaskServe:
    """`flask --app app serve` as a real process with its embedded chain, on
    127.0.0.1:<free port>, in a session of its own, its output in `log`."""

    def __init__(self, env: dict, data_dir: Path, log: Path, timeout: float = 120.0):
        self.data_dir, self.port = data_dir, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = open(log, "ab")
        flask = ROOT / ".venv" / "bin" / "flask"
        self.proc = subprocess.Popen([str(flask), "--app", "app", "serve", "--port", str(self.port)], cwd=ROOT,
                                     env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

        def answers() -> bool:
            try:
                return requests.get(self.url + "/", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        try:
            _wait(answers, "flask serve", timeout, self.proc)
        except ServerError as exc:
            self.stop()
            raise ServerError(f"{exc}:\n{self.output()}") from None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def node(self) -> dict:
        """The embedded node's record (pid, url, owner)."""
        return json.loads((self.data_dir / "chain" / "node.json").read_text())

    def post_credential(self, document: bytes) -> requests.Response:
        return requests.post(self.url + "/api/v1/credentials/verify", data=document,
                             headers={"Content-Type": "application/json"}, timeout=60)

    def kill(self) -> None:
        """`kill -9` of the server alone (its node, in a session of its own, lives on)."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._log.close()

    def stop(self) -> None:
        terminate(self.proc, timeout=60)
        if not self._log.closed:
            self._log.close()


class RedisServer:
    """redis-server on 127.0.0.1:<free port>, no persistence, in `folder`."""

    def __init__(self, folder: Path):
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerError("redis-server is not installed: `make test` installs Debian's redis-server")
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._log = open(folder / "redis.log", "ab")
        self.proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(folder), "--protected-mode", "yes"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

        def answers() -> bool:
            import redis

            try:
                return redis.Redis.from_url(self.url, socket_timeout=0.5).ping()
            except redis.RedisError:
                return False

        _wait(answers, f"redis-server on port {self.port}", proc=self.proc)

    def stop(self) -> None:
        terminate(self.proc, timeout=10)
        self._log.close()


class PostgresServer:
    """A PostgreSQL 15 cluster in `folder`, listening on 127.0.0.1:<free port>
    only, trusting local connections (it is a test cluster on loopback).
    `durable=False` (the tests) turns fsync off; benchmarks keep it on, as a
    production server has it."""

    def __init__(self, folder: Path, durable: bool = False, settings: dict[str, str] | None = None):
        if not (PG_BIN / "initdb").exists():
            raise ServerError("PostgreSQL 15 is not installed: `make test` installs Debian's postgresql")
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.data = folder / "pgdata"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            # The postgres user must be able to enter every folder up to its cluster.
            for parent in [folder, *folder.parents]:
                if parent == Path("/"):
                    break
                parent.chmod(parent.stat().st_mode | 0o011)
            shutil.chown(folder, "postgres", "postgres")
        self._run([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                   "--no-sync", "--locale=C.UTF-8"])
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={folder} "
                   "-c max_connections=200")
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        # Server settings a benchmark varies (e.g. {"autovacuum": "off"}), as `-c name=value`.
        options += "".join(f" -c {name}={value}" for name, value in (settings or {}).items())
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(folder / "postgres.log"), "-o", options,
                   "-w", "-t", "60", "start"])
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, cmd: list[str]) -> None:
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.folder)
        if proc.returncode != 0:
            raise ServerError(f"{cmd[-1]} failed: {proc.stderr.strip() or proc.stdout.strip()}")

    def create_database(self, name: str) -> str:
        """A new, empty database; returns its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        try:
            self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])
        except ServerError:
            pass
