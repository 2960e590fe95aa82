"""Gas per anchor and anchors per second on the embedded Anvil node.

    .venv/bin/python bench/bench_chain.py [--anchors 200]

Starts a throw-away embedded node in a temp data dir, deploys the registry,
anchors N random roots one after another (each waits for its receipt, as
issuance does), and prints the figures. Also writes bench/results/bench_chain.txt.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from credentials.chain import open_registry  # noqa: E402
from kernel.settings import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anchors", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env(data_dir=Path(tmp), rpc_url=None)
        os.environ.pop("ATTEST_RPC_URL", None)
        t0 = time.perf_counter()
        with open_registry(settings) as reg:
            startup = time.perf_counter() - t0
            gas_by_size = {n: reg.anchor(os.urandom(32), n).gas_used for n in (1, 1_000, 10_000, 1_000_000)}
            gas = []
            t0 = time.perf_counter()
            for _ in range(args.anchors):
                gas.append(reg.anchor(os.urandom(32), 10_000).gas_used)
            elapsed = time.perf_counter() - t0
    lines = [
        f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}",
        f"embedded node start + deploy + authorise: {startup:.2f} s",
        "gas per anchor by batch size: " + ", ".join(f"{n:,}: {g:,}" for n, g in gas_by_size.items()),
        f"gas per credential at 10,000 per batch: {statistics.mean(gas) / 10_000:.2f}",
        f"anchors: {args.anchors} sequential, {args.anchors / elapsed:.1f} anchors/s "
        f"({elapsed / args.anchors * 1000:.1f} ms each, receipt awaited)",
    ]
    text = "\n".join(lines)
    print(text)
    out = Path(__file__).resolve().parent / "results" / "bench_chain.txt"
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
