"""W3C Data Integrity proofs with the `eddsa-rdfc-2022` cryptosuite
("Data Integrity EdDSA Cryptosuites v1.0", §3.3), the proof any VC library
and Open Badges 3.0 conformance accept.

The algorithm, both ways: the document without its `proof` (a proof set
signs the document without any of its proofs, so Attest's anchor proof and
this one are independent) and the proof options without `proofValue`, read
with the document's `@context`, are each canonicalized with RDFC-1.0;
hashData = SHA-256(canonical proof options) || SHA-256(canonical document);
the 64-byte Ed25519 signature over hashData is the `proofValue`, multibase
base58btc.

Canonicalization goes through `rdfc.ShapeCanonicalizer` (one per process):
JSON-LD expansion once per document shape, byte-identical to plain pyld.
`sign_many` spreads a batch over worker processes, one per core.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import re
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pyld.jsonld import JsonLdError

from credentials import jsonld
from credentials.ed25519 import (
    Ed25519KeyError,
    assertion_key,
    load_public_key,
    public_key_multibase,
    seed_bytes,
    sign,
    verify_signature,
)
from credentials.multibase import MultibaseError, decode_base58btc, encode_base58btc
from credentials.rdfc import ShapeCanonicalizer

log = logging.getLogger(__name__)

PROOF_TYPE = "DataIntegrityProof"
CRYPTOSUITE = "eddsa-rdfc-2022"
ASSERTION = "assertionMethod"
# XML Schema dateTimeStamp: a dateTime with its time zone.
_DATE_TIME_STAMP = re.compile(r"-?\d{4,}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})\Z")

_canonicalizer = ShapeCanonicalizer()


def canonicalizer() -> ShapeCanonicalizer:
    """This process's canonicalizer (its stats show fast and plain counts)."""
    return _canonicalizer


def unsecured(document: dict) -> dict:
    """The document without its proof set."""
    return {k: v for k, v in document.items() if k != "proof"}


def proof_options(verification_method: str, created: str, proof_purpose: str = ASSERTION) -> dict:
    """The proof before its signature: type, cryptosuite, created,
    verificationMethod, proofPurpose."""
    if not _DATE_TIME_STAMP.match(created):
        raise ValueError(f"created must be an XML Schema dateTimeStamp such as 2026-01-31T12:00:00Z, "
                         f"found {created!r}")
    return {"type": PROOF_TYPE, "cryptosuite": CRYPTOSUITE, "created": created,
            "verificationMethod": verification_method, "proofPurpose": proof_purpose}


@lru_cache(maxsize=64)
def _options_hash(config_json: str) -> bytes:
    """SHA-256 of the canonical proof options: a batch shares one set
    (same key, same moment), so it is canonicalized once."""
    return hashlib.sha256(jsonld.canonize(json.loads(config_json)).encode()).digest()


def hash_data(document: dict, options: dict) -> bytes:
    """hashData: SHA-256(canonical proof options with the document's
    @context) || SHA-256(canonical document without its proofs)."""
    config = {k: v for k, v in options.items() if k != "proofValue"}
    config["@context"] = document.get("@context")
    # The cache key is the standard library's text, which parses back to the same
    # options: orjson would write an infinite float as null, and JSON-LD drops nulls,
    # so a member the proof carries would go unsigned.
    config_hash = _options_hash(json.dumps(config, sort_keys=True, ensure_ascii=False))
    document_hash = hashlib.sha256(_canonicalizer.canonize(unsecured(document)).encode()).digest()
    return config_hash + document_hash


def sign_eddsa_rdfc_2022(document: dict, signing_key: Ed25519PrivateKey, verification_method: str,
                         created: str, proof_purpose: str = ASSERTION) -> dict:
    """The `DataIntegrityProof` for `document` (which may already carry other
    proofs: they are not signed). Raises jsonld.UnsafeJsonLd, ContextRefused
    or NotPortable, naming the problem, for a document that cannot be signed
    so that every verifier agrees."""
    options = proof_options(verification_method, created, proof_purpose)
    signature = sign(signing_key, hash_data(document, options))
    return {**options, "proofValue": encode_base58btc(signature)}


def add_proof(document: dict, proof: dict) -> dict:
    """A copy of `document` with `proof` added to its proof set."""
    existing = document.get("proof")
    proofs = [] if existing is None else list(existing) if isinstance(existing, list) else [existing]
    return {**document, "proof": [*proofs, proof] if proofs else proof}


def proof_set(document: dict) -> list:
    """The document's proofs as a list (none, one or many)."""
    proofs = document.get("proof")
    return [] if proofs is None else list(proofs) if isinstance(proofs, list) else [proofs]


def find_proofs(document: dict) -> list[dict]:
    """The eddsa-rdfc-2022 DataIntegrityProofs in the document's proof set."""
    return [p for p in proof_set(document) if isinstance(p, dict) and p.get("type") == PROOF_TYPE
            and p.get("cryptosuite") == CRYPTOSUITE]


@dataclass(frozen=True)
class ProofCheck:
    """The outcome of checking one proof; `reason` is a sentence a person can read."""

    verified: bool
    reason: str

    def __bool__(self) -> bool:
        return self.verified


def _fail(reason: str) -> ProofCheck:
    return ProofCheck(False, reason)


def verify_eddsa_rdfc_2022(document: dict, proof: dict,
                           public_key: Ed25519PublicKey | bytes | str) -> ProofCheck:
    """Check one eddsa-rdfc-2022 proof of `document` against `public_key`
    (an Ed25519PublicKey, its 32 bytes, or a publicKeyMultibase). Which key
    the proof's verificationMethod names, and whether it is trusted, is the
    caller's question."""
    if not isinstance(proof, dict):
        return _fail(f"the proof must be an object, found {type(proof).__name__}")
    if proof.get("type") != PROOF_TYPE:
        return _fail(f"the proof type must be {PROOF_TYPE}, found {proof.get('type')!r}")
    if proof.get("cryptosuite") != CRYPTOSUITE:
        return _fail(f"the cryptosuite must be {CRYPTOSUITE}, found {proof.get('cryptosuite')!r}")
    for member in ("verificationMethod", "proofPurpose"):
        if not isinstance(proof.get(member), str):
            return _fail(f"the proof has no {member}")
    created = proof.get("created")
    if created is not None and not (isinstance(created, str) and _DATE_TIME_STAMP.match(created)):
        return _fail(f"the proof's created must be an XML Schema dateTimeStamp, found {created!r}")
    try:
        signature = decode_base58btc(proof.get("proofValue"), "proofValue")
    except MultibaseError as exc:
        return _fail(str(exc))
    if len(signature) != 64:
        return _fail(f"proofValue must hold a 64-byte Ed25519 signature, found {len(signature)} bytes")
    try:
        key = load_public_key(public_key)  # refuses what is not an Ed25519 key, in its own words
    except (Ed25519KeyError, ValueError) as exc:
        return _fail(f"the verification key is unusable: {exc}")
    if not isinstance(document, dict):
        return _fail("the credential must be a JSON object")
    if "@context" in proof:
        # vc-di-eddsa 3.3.2: a proof that carries its own @context must name
        # the document's leading contexts, and is then read with those.
        stated = proof["@context"] if isinstance(proof["@context"], list) else [proof["@context"]]
        contexts = document.get("@context")
        contexts = contexts if isinstance(contexts, list) else [contexts]
        if contexts[:len(stated)] != stated:
            return _fail("the proof's @context does not match the start of the document's @context")
        document = {**document, "@context": proof["@context"]}
    try:
        data = hash_data(document, proof)
    except (jsonld.ContextRefused, jsonld.UnsafeJsonLd, jsonld.NotPortable) as exc:
        return _fail(f"the credential cannot be canonicalized: {exc}")
    except JsonLdError as exc:
        return _fail(f"the credential is not valid JSON-LD: {str(exc)[:200]}")
    if not verify_signature(key, signature, data):
        return _fail("the signature does not match: the credential or its proof options changed after "
                     "signing, or another key signed it")
    return ProofCheck(True, f"the {CRYPTOSUITE} proof verifies with the key {proof['verificationMethod']}")


def verify_credential_proof(credential: dict, did_document: dict) -> ProofCheck:
    """The whole Data Integrity check of an issued credential against its
    issuer's DID document (resolved or pinned by the caller): one
    eddsa-rdfc-2022 proof, for assertionMethod, by a key of the credential's
    issuer that the DID document lists under assertionMethod, and valid."""
    proofs = find_proofs(credential)
    if len(proofs) != 1:
        return _fail(f"the credential must carry one {CRYPTOSUITE} DataIntegrityProof, found {len(proofs)}")
    proof = proofs[0]
    if proof.get("proofPurpose") != ASSERTION:
        return _fail(f"the proof's purpose must be {ASSERTION}, found {proof.get('proofPurpose')!r}")
    issuer = credential.get("issuer")
    issuer_id = issuer.get("id") if isinstance(issuer, dict) else issuer
    method = proof.get("verificationMethod")
    if not isinstance(method, str) or method.split("#", 1)[0] != issuer_id:
        return _fail(f"the proof's key {method!r} does not belong to the issuer {issuer_id!r}")
    key = assertion_key(did_document, method)
    if key is None:
        return _fail(f"the issuer's DID document does not list {method} as an assertion key")
    return verify_eddsa_rdfc_2022(credential, proof, key)


# ----- batches on every core ------------------------------------------------------------

_worker: dict = {}


def _start_worker(seed: bytes) -> None:
    _worker["key"] = Ed25519PrivateKey.from_private_bytes(seed)


def _sign_chunk(documents: list[dict], options: dict) -> list[str]:
    key = _worker["key"]
    return [encode_base58btc(sign(key, hash_data(d, options))) for d in documents]


@dataclass
class PendingProofs:
    """Proofs being made by a SigningPool; `result()` waits for them."""

    options: dict
    futures: list[Future]

    def result(self) -> list[dict]:
        return [{**self.options, "proofValue": value} for future in self.futures for value in future.result()]


class SigningPool:
    """Worker processes holding one institution key, kept warm across
    batches (starting a worker costs about as much as signing a few hundred
    credentials). Use as a context manager, or call close(). As with any
    pool that does not fork the caller, workers import the caller's main
    module, which must keep its work under `if __name__ == "__main__"`."""

    def __init__(self, signing_key: Ed25519PrivateKey, processes: int | None = None):
        self.processes = processes or min(2, os.cpu_count() or 1)
        self.public_key_multibase = public_key_multibase(signing_key)
        # forkserver: workers fork from a clean single-threaded server, never
        # from the caller (a web or job worker with threads of its own).
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["credentials.dataintegrity"])
        self._executor = ProcessPoolExecutor(self.processes, mp_context=context, initializer=_start_worker,
                                             initargs=(seed_bytes(signing_key),))

    def sign(self, documents: Sequence[dict], verification_method: str, created: str,
             proof_purpose: str = ASSERTION, chunk: int = 250) -> list[dict]:
        """One proof per document, in order (the documents are not changed)."""
        return self.submit(documents, verification_method, created, proof_purpose, chunk).result()

    def submit(self, documents: Sequence[dict], verification_method: str, created: str,
               proof_purpose: str = ASSERTION, chunk: int = 250) -> PendingProofs:
        """Start signing and return at once, so the caller can do the rest of
        a batch (fingerprints, EIP-712, Merkle tree) while the workers sign:
        neither proof depends on the other. `.result()` gives the proofs."""
        options = proof_options(verification_method, created, proof_purpose)
        futures = [self._executor.submit(_sign_chunk, list(documents[i:i + chunk]), options)
                   for i in range(0, len(documents), chunk)]
        return PendingProofs(options, futures)

    def close(self) -> None:
        self._executor.shutdown()

    def __enter__(self) -> SigningPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def sign_many(documents: Sequence[dict], signing_key: Ed25519PrivateKey, verification_method: str,
              created: str, *, processes: int | None = None, pool: SigningPool | None = None) -> list[dict]:
    """`sign_eddsa_rdfc_2022` for a batch, across worker processes (a
    temporary pool unless `pool` is given). Proofs come back in order."""
    if pool is not None:
        if pool.public_key_multibase != public_key_multibase(signing_key):
            raise ValueError("the signing pool holds another key than the one given")
        return pool.sign(documents, verification_method, created)
    with SigningPool(signing_key, processes) as temporary:
        return temporary.sign(documents, verification_method, created)
