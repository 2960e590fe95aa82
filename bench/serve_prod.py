"""Serve Attest under gunicorn (a production WSGI server), on 127.0.0.1.

    .venv/bin/python bench/serve_prod.py [--port 8000] [--workers 2] [--threads 4]

If ATTEST_RPC_URL is unset, this process starts the embedded Anvil node (and
deploys the registry) once, and hands its URL to the workers through
ATTEST_RPC_URL, so the workers share one node instead of racing to start it;
the node stops when gunicorn does. `--port 0` picks a free port. The workers
keep no state of their own (see DESIGN.md), so `--workers` can grow with cores.
This file is also gunicorn's config file (for its `post_worker_init` hook).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from credentials.chain import Registry, open_registry  # noqa: E402
from credentials.node import free_port  # noqa: E402
from kernel.settings import Settings  # noqa: E402


def gunicorn_command(port: int, workers: int, threads: int) -> list[str]:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    return [str(gunicorn), "--config", str(Path(__file__).resolve()), "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
            "--worker-class", "gthread" if threads > 1 else "sync", "--keep-alive", "5",
            "--timeout", "60", "--graceful-timeout", "10", "--log-level", "warning", "app:create_app()"]


def post_worker_init(worker) -> None:
    """gunicorn hook (gunicorn reads this file as its config, too): move the
    start-up heap (~140,000 objects: web3, numpy, SQLAlchemy, the app) out of
    the collector's reach. A full collection over it takes 30-130 ms, which
    showed up as the p99 of the verification benchmark."""
    import gc

    gc.collect()
    gc.freeze()


def start(port: int = 0, workers: int = 2, threads: int = 4, env: dict | None = None,
          quiet: bool = False) -> tuple[subprocess.Popen, str, Registry | None]:
    """Start gunicorn (and the embedded node if no ATTEST_RPC_URL); return
    (process, base URL, the node's registry handle or None). Waits until the
    app answers."""
    env = dict(os.environ if env is None else env)
    registry = None
    if not env.get("ATTEST_RPC_URL"):
        registry = open_registry(Settings.from_env(data_dir=env.get("ATTEST_DATA_DIR") or None, rpc_url=None))
        env["ATTEST_RPC_URL"] = registry.rpc_url
    port = port or free_port()
    out = subprocess.DEVNULL if quiet else None
    # Migrate once, here: workers starting together would race on a fresh database.
    subprocess.run([sys.executable, "-c", "from app import create_app; create_app()"], cwd=ROOT, env=env,
                   check=True, stdout=out, stderr=out)
    proc = subprocess.Popen(gunicorn_command(port, workers, threads), cwd=ROOT, env=env, stdout=out, stderr=out,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    return proc, url, registry


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with code {proc.returncode}")
        try:
            if requests.get(url + "/api/v1/openapi.json", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer at {url} within {timeout:.0f} s")


def stop(proc: subprocess.Popen, registry: Registry | None) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if registry is not None:
        registry.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    proc, url, registry = start(args.port, args.workers, args.threads)
    print(f"serving  {url}/   (gunicorn, {args.workers} workers x {args.threads} threads; Ctrl-C to stop)",
          flush=True)
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop(proc, registry)


if __name__ == "__main__":
    main()
