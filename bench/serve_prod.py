"""Serve Attest in its production shape (kernel.production) for the benchmarks:
gunicorn, job workers, Redis and, unless ATTEST_RPC_URL is set, the embedded
node, all on 127.0.0.1.

    .venv/bin/python -m bench.serve_prod [--port 8000] [--workers 2] [--threads 4]
"""

from __future__ import annotations

import argparse
import os

from credentials.runtime import embedded_chain_service
from kernel.production import Production


def start(port: int = 0, workers: int = 2, threads: int = 4, env: dict | None = None, quiet: bool = False,
          job_workers: int = 1) -> Production:
    """The running shape (see kernel.production.Production); `.url`, `.stop()`."""
    prod = Production(port, workers, threads, job_workers, [embedded_chain_service], quiet,
                      dict(os.environ if env is None else env))
    return prod.start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    from kernel.production import serve

    serve(args.port, args.workers, args.threads, 2, [embedded_chain_service])


if __name__ == "__main__":
    main()
