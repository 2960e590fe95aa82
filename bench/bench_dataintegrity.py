"""Data Integrity (eddsa-rdfc-2022) signing speed: plain pyld against the
per-shape fast path, and sign_many on worker processes.

    .venv/bin/python bench/bench_dataintegrity.py [--count 10000] [--plain 300] [--processes 2] [--profile]

Makes --count credentials of Attest's shape (build_credential with VC 2.0 +
OB 3.0.3 + extensions + Attest contexts, a did:web issuer and a status
entry; names and descriptions with non-ASCII text, optional grade and
expiry). Then, in this process: the per-credential cost of a proof with
plain pyld canonicalization (--plain credentials), and with the fast path
(all of them, after one warm-up per shape); the ratio. Then sign_many over
all of them: on a warm SigningPool (workers already started, the way a job
worker keeps one), and with a temporary pool, start-up included. Every
proof of the batch is checked against the single-process result. Prints the
figures with the load average and writes bench/results/bench_dataintegrity.txt.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import multiprocessing
import os
import platform
import pstats
import time
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from pyld import jsonld as pyld  # noqa: E402

from credentials import dataintegrity, jsonld, statuslist  # noqa: E402
from credentials.canonical import fingerprint, to_hex  # noqa: E402
from credentials.document import CredentialRequest, IssuerProfile, build_credential, make_proof  # noqa: E402
from credentials.ed25519 import verification_method_id  # noqa: E402
from credentials.merkle import MerkleTree  # noqa: E402
from credentials.signing import Eip712Domain, Signer  # noqa: E402

FIRST = ["Ada", "Alan", "Grace", "Zoë", "José", "Søren", "Aiko", "Chidi", "Łucja", "Mei", "Olúmídé", "Ingrid"]
LAST = ["Lovelace", "Turing", "Hopper", "Ñúñez", "García", "Kierkegaard", "Tanaka", "Okafor", "Wójcik", "李"]
PROGRAMMES = [("BSc Mathematics", "BachelorDegree"), ("MSc Data Science", "MasterDegree"),
              ("Diploma in Nursing", "Diploma"), ("Introduction to Logic", "CertificateOfCompletion")]
PUBLIC_URL = "https://uni.example.edu"
DID = "did:web:uni.example.edu"


def make_credentials(n: int) -> list[dict]:
    issuer = IssuerProfile("University of Testing", "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", 31337, PUBLIC_URL)
    docs = []
    for i in range(n):
        programme, kind = PROGRAMMES[i % len(PROGRAMMES)]
        request = CredentialRequest(
            recipient_name=f"{FIRST[i % len(FIRST)]} {LAST[(i // 7) % len(LAST)]} {i}",
            recipient_email=f"student{i}@example.edu", achievement_name=programme, achievement_type=kind,
            description=f"Awarded for completing “{programme}” with honours.", awarded_on=date(2025, 6, 30),
            valid_until=date(2030, 6, 30) if i % 3 == 0 else None, grade=("First", "2:1", None)[i % 3])
        doc = build_credential(request, issuer, credential_id=f"urn:uuid:{uuid.uuid4()}")
        doc["@context"] = jsonld.credential_contexts(PUBLIC_URL)
        doc["issuer"]["id"] = DID
        doc["credentialStatus"] = statuslist.status_entry(f"{PUBLIC_URL}/status/1", i)
        docs.append(doc)
    return docs


def both_proofs(pool: dataintegrity.SigningPool, n: int, method: str, created: str) -> float:
    """What issuance will do for a batch, minus the chain and the database:
    the anchor proof's work here, the Data Integrity proofs on the pool at the
    same time (neither depends on the other). Returns seconds."""
    signer = Signer(bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"))
    domain = Eip712Domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
    start = time.perf_counter()
    docs = make_credentials(n)
    pending = pool.submit(docs, method, created)
    leaves = [fingerprint(d) for d in docs]
    tree = MerkleTree(leaves)
    root = to_hex(tree.root)
    anchors = [make_proof(fingerprint=to_hex(leaf), signature=to_hex(signer.sign(leaf, domain)), signer=signer.address,
                          chain_id=31337, registry=domain.verifying_contract, merkle_root=root,
                          merkle_path=[to_hex(p) for p in tree.path(i)], created=created)
               for i, leaf in enumerate(leaves)]
    signed = [dict(d, proof=[di, anchor]) for d, di, anchor in zip(docs, pending.result(), anchors, strict=True)]
    elapsed = time.perf_counter() - start
    assert len(signed) == n
    return elapsed


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def parallel_calibration(processes: int) -> float:
    """How much faster `processes` CPU-bound Python processes finish
    `processes` equal jobs than one process finishes one, right now: 2.0 on
    two idle cores, less when other work shares them. The peer that says
    what sign_many's figure can be on this machine at this moment."""
    n = 3_000_000
    start = time.perf_counter()
    _spin(n)
    one = time.perf_counter() - start
    with multiprocessing.get_context("forkserver").Pool(processes) as pool:
        pool.map(_spin, [1000] * processes)  # workers up before timing
        start = time.perf_counter()
        pool.map(_spin, [n] * processes)
        many = time.perf_counter() - start
    return processes * one / many


def per_credential(fn, docs) -> float:
    start = time.perf_counter()
    for doc in docs:
        fn(doc)
    return (time.perf_counter() - start) / len(docs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--plain", type=int, default=300)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    key = Ed25519PrivateKey.generate()
    method = verification_method_id(DID, key)
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    docs = make_credentials(args.count)
    options = dataintegrity.proof_options(method, created)

    normalize = {"algorithm": "URDNA2015", "format": "application/n-quads", "documentLoader": jsonld.document_loader}

    def sign_plain(doc):
        """The plain way: pyld normalize of the proof options and of the
        document for every credential (no safe-mode check, no caching)."""
        config = dict(options, **{"@context": doc["@context"]})
        data = (hashlib.sha256(pyld.normalize(config, normalize).encode()).digest()
                + hashlib.sha256(pyld.normalize(doc, normalize).encode()).digest())
        return key.sign(data)

    def sign_fast(doc):
        return dataintegrity.sign_eddsa_rdfc_2022(doc, key, method, created)

    if args.profile:
        cProfile.runctx("for d in docs[:3000]: sign_fast(d)", globals(), locals(), "/tmp/bench_di.prof")
        pstats.Stats("/tmp/bench_di.prof").sort_stats("tottime").print_stats(20)
        return

    for doc in docs[:3]:  # one warm-up per shape (grade and expiry vary)
        sign_fast(doc)
        sign_plain(doc)
    plain = per_credential(sign_plain, docs[3:3 + args.plain])
    fast = per_credential(sign_fast, docs)
    stats = dict(dataintegrity.canonicalizer().stats)
    expected = [sign_fast(d)["proofValue"] for d in docs]

    with dataintegrity.SigningPool(key, args.processes) as pool:
        pool.sign(docs[:200], method, created)  # workers up, one template per shape each
        start = time.perf_counter()
        proofs = pool.sign(docs, method, created)
        warm = time.perf_counter() - start
        pipeline = both_proofs(pool, args.count, method, created)
    assert [p["proofValue"] for p in proofs] == expected, "sign_many differs from one-by-one signing"
    start = time.perf_counter()
    cold_proofs = dataintegrity.sign_many(docs, key, method, created, processes=args.processes)
    cold = time.perf_counter() - start
    assert [p["proofValue"] for p in cold_proofs] == expected

    calibration = parallel_calibration(args.processes)
    load = os.getloadavg()
    lines = [
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1, 5, 15 min) at the end of the run",
        f"credentials: {args.count:,} of Attest's shape (3 shapes: grade/expiry present or not)",
        f"one proof, plain pyld (normalize of proof options and document per credential, {args.plain} credentials): "
        f"{plain * 1000:.2f} ms",
        f"one proof, per-shape fast path ({args.count:,} credentials): {fast * 1000:.3f} ms "
        f"({fast and plain / fast:.1f}x faster; canonicalizations fast/plain: {stats['fast']}/{stats['plain']})",
        f"sign_many, warm pool of {args.processes} processes: {args.count:,} in {warm:.2f} s = "
        f"{args.count / warm:,.0f} credentials/s",
        f"calibration: {args.processes} CPU-bound Python processes ran {calibration:.2f}x one process's speed "
        f"(2.00 on two idle cores)",
        f"sign_many, temporary pool of {args.processes} (start-up included): {args.count:,} in {cold:.2f} s = "
        f"{args.count / cold:,.0f} credentials/s",
        f"both proofs, no chain and no database ({args.count:,} credentials: build, JCS fingerprint, EIP-712 "
        f"signature, Merkle tree and paths in this process while the pool signs Data Integrity): "
        f"{pipeline:.2f} s = {args.count / pipeline:,.0f} credentials/s",
        "every batch proof equals the one-by-one proof",
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "bench_dataintegrity.txt").write_text(text)


if __name__ == "__main__":
    main()
