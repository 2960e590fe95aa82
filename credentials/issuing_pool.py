"""Issuing on every core: the per-credential work of a batch in worker processes.

What each credential costs is pure computation that needs nothing from the
others: build the document, its JCS fingerprint (keccak256), the EIP-712
signature, the Data Integrity proof (eddsa-rdfc-2022) when asked, and the
JSON text. Only the Merkle tree joins them, and a credential's Merkle path
(with the root) is the one part of its text that depends on the rest of the
batch. So a worker returns each credential's text in two pieces, `head` and
`tail`, split exactly where the anchor proof's `merkleRoot` and `merklePath`
go, and the issuing process assembles `head + root + path + tail` once the
tree is known (`assemble`): no document is parsed or serialised twice.
`assemble` gives byte for byte what `document.document_json` gives for the
whole document (tests/test_issuing_pool.py proves it on generated requests).

The keys reach the workers once, when the pool starts (the EIP-712 key as
32 bytes, the Ed25519 key as its seed), over the forkserver's pipe; they are
never written anywhere. The pool is kept warm per process and per pair of
keys (`shared_issuing_pool`), since starting workers costs about as much as
issuing a few thousand credentials on a loaded machine; a pool holding an
Ed25519 key also issues anchor-only batches for the same EIP-712 key (it
just does not use that key), so switching between the two does not restart
it. The workers import only this module and what it needs (not
credentials.issuance, whose web3 and SQLAlchemy imports took seconds).
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import secrets
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields
from functools import cached_property
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from credentials import dataintegrity, statuslist
from credentials.canonical import fingerprint as credential_fingerprint
from credentials.canonical import plain_fingerprint, to_hex
from credentials.document import CredentialRequest, IssuerProfile, build_credential, document_json, make_proof
from credentials.ed25519 import public_key_multibase, seed_bytes
from credentials.signing import Eip712Domain, Signer

log = logging.getLogger(__name__)

# Where the text is cut: the anchor proof is serialised with these stand-ins
# for its root and path. The quotes in it are bare, so no string value of the
# document (whose quotes JSON escapes) can contain it.
_ROOT, _PATH = "@@merkle-root@@", "@@merkle-path@@"
_CUT = f'{_ROOT}","merklePath":["{_PATH}"]'


@dataclass(frozen=True)
class BatchTerms:
    """What every credential of a batch shares."""

    profile: IssuerProfile
    chain_id: int
    registry: str
    created: str
    batch_id: str
    hash_emails: bool = False
    verification_method: str | None = None  # with an Ed25519 key: the Data Integrity proof's method

    @cached_property
    def domain(self) -> Eip712Domain:
        """One per batch (and per worker chunk): its separator is hashed once."""
        return Eip712Domain(self.chain_id, self.registry)


class Issued(NamedTuple):
    """One credential as a worker made it (see the module doc). A tuple:
    10,000 of them cross the pipe per batch, and a tuple pickles in a fifth
    of the time of a dataclass. The signature is in `head` already."""

    id: str
    leaf: bytes
    head: str
    tail: str


def assemble(item: Issued, root_hex: str, path_text: str) -> str:
    """The credential's stored JSON text, its Merkle root and path filled in
    (the path written as the inside of its JSON array, as
    `MerkleTree.path_texts` gives it)."""
    return f'{item.head}{root_hex}","merklePath":[{path_text}]{item.tail}'


def _all_strings(request: CredentialRequest, profile: IssuerProfile) -> bool:
    return (type(request.recipient_name) is str and type(request.recipient_email) is str
            and type(request.achievement_name) is str and type(request.achievement_type) is str
            and type(request.description) is str and (request.grade is None or type(request.grade) is str)
            and type(profile.name) is str and type(profile.did) is str
            and (profile.url is None or type(profile.url) is str)
            and (profile.image is None or type(profile.image) is str))


def issue_one(request: CredentialRequest, status: tuple[str, int], terms: BatchTerms, signer: Signer,
              ed_key: Ed25519PrivateKey | None) -> Issued:
    """Everything about one credential that does not need the others
    (with `ed_key`, the Data Integrity proof too)."""
    salt = secrets.token_hex(16) if terms.hash_emails else None
    credential = build_credential(request, terms.profile, hash_email_salt=salt,
                                  status=statuslist.status_entry(*status))
    # build_credential puts only literal ASCII keys, booleans and strings in a
    # document: with every string it copies from the request and the issuer
    # really a string, the fingerprint can skip the shape check.
    leaf = plain_fingerprint(credential) if _all_strings(request, terms.profile) else credential_fingerprint(credential)
    signature = to_hex(signer.sign(leaf, terms.domain))
    anchor = make_proof(fingerprint=to_hex(leaf), signature=signature, signer=signer.address,
                        chain_id=terms.chain_id, registry=terms.registry, merkle_root=_ROOT,
                        merkle_path=[_PATH], created=terms.created, batch=terms.batch_id)
    if ed_key is not None:
        di = dataintegrity.sign_eddsa_rdfc_2022(credential, ed_key, terms.verification_method, terms.created)
        credential["proof"] = [di, anchor]
    else:
        credential["proof"] = anchor
    head, tail = document_json(credential).split(_CUT)
    return Issued(credential["id"], leaf, head, tail)


_worker: dict = {}


def _start_worker(eth_key: bytes, ed_seed: bytes | None) -> None:
    _worker["signer"] = Signer(eth_key)
    _worker["ed"] = Ed25519PrivateKey.from_private_bytes(ed_seed) if ed_seed else None


def _issue_chunk(rows: list[tuple], statuses: list[tuple[str, int]], terms: BatchTerms) -> list[Issued]:
    """A chunk of requests, sent as plain tuples of their fields (they
    pickle several times faster than the dataclasses)."""
    signer = _worker["signer"]
    ed_key = _worker["ed"] if terms.verification_method is not None else None  # an anchor-only batch
    return [issue_one(CredentialRequest(*row), s, terms, signer, ed_key)
            for row, s in zip(rows, statuses, strict=True)]


def _fields(request: CredentialRequest) -> tuple:
    return tuple(getattr(request, name) for name in _REQUEST_FIELDS)


_REQUEST_FIELDS = tuple(f.name for f in fields(CredentialRequest))


class IssuingPool:
    """Worker processes holding the issuer's keys (see the module doc)."""

    def __init__(self, eth_key: bytes, ed_key: Ed25519PrivateKey | None, processes: int | None = None):
        self.processes = processes or min(2, os.cpu_count() or 1)
        self.address = Signer(eth_key).address
        self.ed_public = public_key_multibase(ed_key) if ed_key is not None else None
        # forkserver: workers fork from a clean single-threaded server, never
        # from the caller (a web or job worker with threads of its own).
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["credentials.issuing_pool"])
        self._executor = ProcessPoolExecutor(self.processes, mp_context=context, initializer=_start_worker,
                                             initargs=(bytes(eth_key), seed_bytes(ed_key) if ed_key else None))

    def issue(self, requests: Sequence[CredentialRequest], statuses: Sequence[tuple[str, int]], terms: BatchTerms,
              chunk: int = 250) -> Iterator[list[Issued]]:
        """The batch's credentials, chunk by chunk in order, as workers finish
        them (the caller builds the Merkle tree meanwhile)."""
        rows = [_fields(r) for r in requests]
        futures = [self._executor.submit(_issue_chunk, rows[i:i + chunk], list(statuses[i:i + chunk]), terms)
                   for i in range(0, len(rows), chunk)]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        self._executor.shutdown(cancel_futures=True)

    def __enter__(self) -> IssuingPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_shared: dict[tuple, IssuingPool] = {}
_shared_lock = threading.Lock()


def shared_issuing_pool(eth_key: bytes, ed_key: Ed25519PrivateKey | None) -> IssuingPool | None:
    """This process's warm pool for these keys (made on first use, closed at
    exit; other keys get a new one), or None where worker processes cannot
    be started (a daemonic process): the caller then issues in-process.
    Without `ed_key` (anchor-only), a pool for the same EIP-712 key that also
    holds an Ed25519 key will do."""
    address = Signer(eth_key).address
    ed_public = public_key_multibase(ed_key) if ed_key is not None else None
    with _shared_lock:
        pool = next((p for (a, e), p in _shared.items() if a == address and (e == ed_public or ed_public is None)),
                    None)
        if pool is None:
            for old in _shared.values():
                old.close()
            _shared.clear()
            try:
                pool = IssuingPool(eth_key, ed_key)
            except (AssertionError, OSError) as exc:  # multiprocessing's "daemonic processes" refusal
                log.warning("issuing in this process: no worker processes (%s)", exc)
                return None
            _shared[(address, ed_public)] = pool
        return pool


@atexit.register
def _close_shared() -> None:
    with _shared_lock:
        for pool in _shared.values():
            pool.close()
        _shared.clear()
