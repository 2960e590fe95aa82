"""Where a verification's CPU goes, in one process: no server, no client.

    .venv/bin/python bench/verify_cost.py [--credentials 6000] [--rounds 5]

Starts a throw-away embedded Anvil, issues credentials with both proofs as
the service issues them (bench_verify.issue), and measures the thread CPU of
one verification of a new credential four ways, round after round on fresh
credentials (nothing verified before, so nothing is replayed), the ways
interleaved within each round so a slow minute hurts them alike:

  answer      credentials.web.api.answer() in one app context, back to back;
  wsgi        the whole WSGI app (VerifyFastPath, its app context, the rate
              limit), one environ a request, back to back;
  wsgi+idle   the same with a 100 us, then a 500 us, sleep between requests:
              the thread gives up its core as a server's thread does while
              it waits for the next request, and the code comes back cold.

Beside them, each part timed alone and hot (the same document again and
again): what the parts would cost if nothing were ever evicted. Prints the
medians over the rounds with the load average; writes
bench/results/verify_cost.txt. bench_verify.py gives the server's figure.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WAYS = ("answer", "wsgi", "wsgi+idle 100 us", "wsgi+idle 500 us")
PAUSES = {"wsgi+idle 100 us": 100e-6, "wsgi+idle 500 us": 500e-6}


def per_request(run, items, pause: float = 0.0) -> float:
    """Thread CPU seconds per item of `run(item)`; a pause sleeps between items (not counted)."""
    started = time.thread_time()
    for item in items:
        run(item)
        if pause:
            time.sleep(pause)
    return (time.thread_time() - started) / len(items)


def hot_parts(body: bytes) -> list[tuple[str, float]]:
    """Each part of a verification alone, on one document over and over (microseconds)."""
    import orjson

    from credentials import dataintegrity
    from credentials.canonical import fingerprint
    from credentials.ed25519 import verify_signature
    from credentials.multibase import decode_base58btc
    from credentials.validate import load_document, validate_document
    from credentials.verification import read_proof

    doc = load_document(body, wrapped_ok=True)
    proof = dataintegrity.find_proofs(doc)[0]
    key = proof["verificationMethod"].split("#", 1)[1]
    signature = decode_base58btc(proof["proofValue"])
    data = dataintegrity.hash_data(doc, proof)
    parts = [("the Data Integrity check (all of it)", lambda: dataintegrity.verify_eddsa_rdfc_2022(doc, proof, key)),
             ("  its hash (RDFC + SHA-256)", lambda: dataintegrity.hash_data(doc, proof)),
             ("  its Ed25519 signature (libsodium)", lambda: verify_signature(key, signature, data)),
             ("the format rules (validate_document)", lambda: validate_document(doc)),
             ("parsing, strict (load_document)", lambda: load_document(body, wrapped_ok=True)),
             ("  orjson.loads alone, for scale", lambda: orjson.loads(body)),
             ("reading the anchor proof", lambda: read_proof(doc)),
             ("the JCS fingerprint", lambda: fingerprint(doc))]
    n = 3000
    return [(name, timeit.timeit(fn, number=n) / n * 1e6) for name, fn in parts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--credentials", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.pop("ATTEST_RPC_URL", None)
    # One client address: lift the verify limit for the run, as bench_verify does.
    os.environ["ATTEST_VERIFY_RATE_LIMIT"] = "10000000/minute"
    from werkzeug.test import EnvironBuilder

    from app import create_app
    from bench.bench_verify import PATH, issue
    from credentials.chain import open_registry
    from credentials.verification import PROVEN
    from credentials.web.api import answer
    from kernel.settings import Settings

    load_before = os.getloadavg()
    warm = 50
    chunk = (args.credentials - warm) // (args.rounds * len(WAYS))
    if chunk < 50:
        raise SystemExit("--credentials is too small for --rounds: each way needs 50 or more a round")
    results: dict[str, list[float]] = {way: [] for way in WAYS}
    with tempfile.TemporaryDirectory() as tmp:
        with open_registry(Settings.from_env(data_dir=Path(tmp), rpc_url=None)) as registry:
            bodies = issue(Settings.from_env(data_dir=Path(tmp), rpc_url=registry.rpc_url), args.credentials, set())
            app = create_app({"data_dir": Path(tmp), "rpc_url": registry.rpc_url})

            def environ(body: bytes) -> dict:
                env = EnvironBuilder(path=PATH, method="POST", data=body,
                                     content_type="application/json").get_environ()
                env["REMOTE_ADDR"] = "127.0.0.1"
                return env

            def served(env: dict) -> None:
                statuses = []
                b"".join(app(env, lambda status, headers, exc=None: statuses.append(status)))
                assert statuses[0].startswith("200"), statuses

            def answered(body: bytes) -> None:
                status, result, _ = answer(body)
                assert status == 200 and result["valid"], result

            for env in map(environ, bodies[:warm]):  # imports, caches, the shape's template
                served(env)
            PROVEN.clear()
            rest = iter(bodies[warm:])
            with app.app_context():
                for _ in range(args.rounds):
                    for way in WAYS:
                        batch = [next(rest) for _ in range(chunk)]
                        if way == "answer":
                            results[way].append(per_request(answered, batch))
                        else:
                            results[way].append(per_request(served, [environ(b) for b in batch],
                                                            PAUSES.get(way, 0.0)))
            hot = hot_parts(bodies[0])
    median = {way: statistics.median(values) * 1e6 for way, values in results.items()}
    lines = [
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}; load average "
        f"{' '.join(f'{x:.2f}' for x in load_before)} before, {' '.join(f'{x:.2f}' for x in os.getloadavg())} after",
        f"thread CPU of one verification of a new credential (both proofs, status list), median of {args.rounds} "
        f"rounds of {chunk} credentials each way, the ways interleaved:",
    ]
    for way in WAYS:
        spread = ", ".join(f"{v * 1e6:.0f}" for v in results[way])
        lines.append(f"  {way:<18} {median[way]:6.0f} us  (rounds: {spread})")
    lines.append(f"  the idle gaps cost {median['wsgi+idle 100 us'] / median['wsgi']:.2f}x and "
                 f"{median['wsgi+idle 500 us'] / median['wsgi']:.2f}x the back-to-back figure")
    lines.append("each part alone, hot (the same document 3,000 times):")
    lines += [f"  {name:<40} {us:6.1f} us" for name, us in hot]
    text = "\n".join(lines)
    print(text)
    if args.credentials == 6000 and args.rounds == 5:
        (ROOT / "bench" / "results" / "verify_cost.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
