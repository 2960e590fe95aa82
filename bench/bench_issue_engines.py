"""Issuing on SQLite and on PostgreSQL, beside OpenAttestation, in one run.

    .venv/bin/python bench/bench_issue_engines.py [--count 10000] [--runs 3] [--no-files]
        [--pg-setting NAME=VALUE ...]

The same N records (bench_issue.make_csv) are issued from CSV to signed,
anchored credentials (files written, unless --no-files) by Attest on SQLite and on PostgreSQL
(Debian's postgresql 15, a throw-away cluster on loopback, fsync on as a
production server has it), and wrapped by OpenAttestation's `wrapDocuments`
(npm `@govtechsg/open-attestation`: per-field salts, a Merkle tree, no
signatures, no database, no chain) in a Node process. Runs are interleaved
(SQLite, PostgreSQL, OpenAttestation, again) so a noisy neighbour on the
shared cores hurts all three alike; best of --runs each. Prints the rates, the
PostgreSQL/SQLite ratio (target >= 0.9) and Attest/OpenAttestation, with the
load average; writes bench/results/bench_issue_engines.txt.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import re
import subprocess
import tempfile
import time
from pathlib import Path

from app import open_database
from bench.bench_issue import make_csv
from credentials.chain import open_registry
from credentials.csvimport import parse_csv
from credentials.issuance import issue_batch, issuer_profile
from kernel.settings import ROOT, Settings

STAGE_NAMES = {"signing": "build + JCS + keccak + EIP-712 sign", "saving": "Merkle tree + proofs + DB insert",
               "anchoring": "anchor transaction", "finishing": "batch anchored (DB) + files"}

OA_SCRIPT = r"""
import { wrapDocuments } from "@govtechsg/open-attestation";
import { readFileSync } from "node:fs";
const records = JSON.parse(readFileSync(0, "utf-8"));
const t0 = performance.now();
const docs = records.map((r) => ({
  $template: { name: "main", type: "EMBEDDED_RENDERER", url: "https://renderer.example.edu" },
  issuers: [{ name: "Example University", documentStore: "0x9178F546D3FF57D7A6352bD61B80cCCD46199C2d",
              identityProof: { type: "DNS-TXT", location: "example.edu" } }],
  recipient: { name: r.recipient_name, email: r.recipient_email },
  achievement: { name: r.achievement_name, type: r.achievement_type, description: r.description },
  awardedOn: r.awarded_on, ...(r.valid_until ? { validUntil: r.valid_until } : {}), ...(r.grade ? { grade: r.grade } : {}),
}));
const t1 = performance.now();
const wrapped = wrapDocuments(docs);
const t2 = performance.now();
const root = wrapped[0].signature.merkleRoot;
if (!wrapped.every((w) => w.signature.merkleRoot === root)) throw new Error("not one batch");
process.stdout.write(JSON.stringify({ build: (t1 - t0) / 1000, wrap: (t2 - t1) / 1000, count: wrapped.length, root }));
"""


def issue_once(data: bytes, settings: Settings, registry, out_dir: Path | None) -> dict:
    """parse_csv + issue_batch(out_dir=...), as `credentials issue` runs them; seconds per stage."""
    database = open_database(settings.sqlalchemy_url)  # opened at start-up in the CLI: not timed
    marks: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    parsed = parse_csv(data)
    assert not parsed.errors, parsed.errors[:3]
    marks.append(("parse CSV", time.perf_counter()))

    def progress(stage, _done, _total) -> None:
        if marks[-1][0] != str(stage):
            marks.append((str(stage), time.perf_counter()))

    with database.session() as session:
        issue_batch(session, registry, issuer_profile(session, registry, settings), parsed.requests, "bench",
                    progress=progress, out_dir=out_dir)
    end = time.perf_counter()
    database.engine.dispose()
    stages = [("parse CSV", marks[0][1] - t0)]
    stages += [(STAGE_NAMES.get(stage, stage), nxt - at)
               for (stage, at), (_, nxt) in zip(marks[1:], [*marks[2:], ("end", end)], strict=True)
               if stage != "done"]
    return {"elapsed": end - t0, "stages": stages,
            "files": len(list(out_dir.glob("*.json"))) if out_dir is not None else None}


def oa_wrap(records: list[dict]) -> dict:
    """OpenAttestation's wrapDocuments on the records, in Node; seconds building and wrapping."""
    script = ROOT / "bench" / "results" / "oa_wrap.tmp.mjs"  # inside the repo, so node_modules resolves
    script.write_text(OA_SCRIPT)
    try:
        done = subprocess.run(["node", str(script)], input=json.dumps(records), capture_output=True, text=True,
                              cwd=ROOT, timeout=600)
    finally:
        script.unlink(missing_ok=True)
    if done.returncode != 0:
        raise SystemExit(f"OpenAttestation failed (npm ci installs it from package.json): {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def _setting(text: str) -> tuple[str, str]:
    """NAME=VALUE as the server's `-c` option. pg_ctl hands its options to a
    shell, so both sides are kept to letters, digits and . _ : - (8MB, 0.5, off)."""
    name, sep, value = text.partition("=")
    if not sep or not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or not re.fullmatch(r"[A-Za-z0-9._:-]+", value):
        raise SystemExit(f"--pg-setting wants NAME=VALUE (letters, digits, . _ : -), e.g. autovacuum=off; "
                         f"got {text!r}")
    return name, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-files", action="store_true", help="no --out: the credentials stored, no files")
    parser.add_argument("--pg-setting", action="append", default=[], metavar="NAME=VALUE",
                        help="a PostgreSQL server setting for the run, e.g. autovacuum=off (repeatable)")
    args = parser.parse_args()
    server_settings = dict(_setting(text) for text in args.pg_setting)
    os.environ.pop("ATTEST_RPC_URL", None)
    os.environ.pop("ATTEST_DATABASE_URL", None)
    data = make_csv(args.count)
    records = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    load_before = os.getloadavg()
    from tests.servers import PostgresServer

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pg_folder = tmp / "postgres"
        server = PostgresServer(pg_folder, durable=True, settings=server_settings)
        try:
            sqlite_settings = Settings.from_env(data_dir=tmp / "sqlite", rpc_url=None)
            with open_registry(sqlite_settings) as registry:
                pg_settings = Settings.from_env(data_dir=tmp / "postgresql", rpc_url=registry.rpc_url,
                                                database_url=server.create_database("attest_bench"))
                runs: dict[str, list[float]] = {"sqlite": [], "postgresql": [], "oa": []}
                stages: dict[str, list] = {}
                for i in range(args.runs):
                    for engine, settings in (("sqlite", sqlite_settings), ("postgresql", pg_settings)):
                        out = None if args.no_files else tmp / f"{engine}-out{i}"
                        run = issue_once(data, settings, registry, out)
                        assert run["files"] == (None if args.no_files else args.count)
                        if not runs[engine] or run["elapsed"] < min(runs[engine]):
                            stages[engine] = run["stages"]
                        runs[engine].append(run["elapsed"])
                    oa = oa_wrap(records)
                    assert oa["count"] == args.count
                    runs["oa"].append(oa["wrap"])
        finally:
            server.stop()
    best = {k: min(v) for k, v in runs.items()}
    files = "stored, no files" if args.no_files else "files written"
    rate = {k: args.count / v for k, v in best.items()}
    lines = [
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
        f"Node {subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip()}; "
        f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
        f"after {' '.join(format(x, '.2f') for x in os.getloadavg())} (other work shares the cores)",
        f"{args.count:,} records, best of {args.runs} interleaved runs each:",
        f"  Attest on SQLite      (CSV to signed, anchored credentials, {files}): "
        f"{best['sqlite']:.2f} s = {rate['sqlite']:,.0f}/s (runs {', '.join(f'{x:.2f}' for x in runs['sqlite'])} s)",
        f"  Attest on PostgreSQL  (the same, PostgreSQL 15 on loopback, fsync on"
        f"{''.join(f', {k}={v}' for k, v in server_settings.items())}): "
        f"{best['postgresql']:.2f} s = {rate['postgresql']:,.0f}/s "
        f"(runs {', '.join(f'{x:.2f}' for x in runs['postgresql'])} s)",
        f"  OpenAttestation wrapDocuments (salts + Merkle tree; no signature, database, chain or files): "
        f"{best['oa']:.2f} s = {rate['oa']:,.0f}/s (runs {', '.join(f'{x:.2f}' for x in runs['oa'])} s)",
        f"PostgreSQL / SQLite: {rate['postgresql'] / rate['sqlite']:.2f} (target >= 0.9)",
        f"Attest (SQLite) / OpenAttestation: {rate['sqlite'] / rate['oa']:.2f}; "
        f"Attest (PostgreSQL) / OpenAttestation: {rate['postgresql'] / rate['oa']:.2f}",
    ]
    for engine in ("sqlite", "postgresql"):
        lines.append(f"stages on {engine} (best run):")
        lines += [f"  {name:<44} {seconds * 1000:8.1f} ms" for name, seconds in stages[engine]]
    text = "\n".join(lines)
    print(text)
    if args.count == 10_000:
        name = "bench_issue_engines_no_files.txt" if args.no_files else "bench_issue_engines.txt"
        (ROOT / "bench" / "results" / name).write_text(text + "\n")


if __name__ == "__main__":
    main()
