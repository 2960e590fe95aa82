"""Credentials of the shape Attest will issue (VC 2.0 + OB 3.0.3 + OB
extensions + Attest's context, a did:web issuer, a Bitstring Status List
entry, a Data Integrity proof and an anchor proof), and the bridge to the
Node harnesses in tests/js/ that check them with other people's code.

The anchor proof carries placeholder values (a real one needs the chain):
what the third-party checks test is that its terms are defined, that it does
not disturb the Data Integrity proof beside it, and that it expands safely.
"""

from __future__ import annotations

import json
import subprocess
from datetime import date, datetime, timezone
from pathlib import Path

from credentials import dataintegrity, statuslist
from credentials.document import CredentialRequest, IssuerProfile, build_credential, make_proof
from credentials.ed25519 import KeyRing
from credentials.jsonld import credential_contexts

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "tests" / "js"
PUBLIC_URL = "https://uni.example.edu"
DID = "did:web:uni.example.edu"
STATUS_URL = f"{PUBLIC_URL}/status/1"
REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
SIGNER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
CREATED = "2026-01-15T09:30:00Z"


def node(script: str, request: dict, timeout: float = 120) -> dict:
    """Run tests/js/<script> with one JSON request; its JSON answer."""
    done = subprocess.run(["node", str(JS / script)], input=json.dumps(request), capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{script} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def did_document(ring: KeyRing, did: str = DID) -> dict:
    """The institution's DID document as far as Data Integrity needs it."""
    entries = ring.did_document_entries(did)
    return {"@context": entries["@context"], "id": did, "verificationMethod": entries["verificationMethod"],
            "assertionMethod": entries["assertionMethod"]}


def unsigned_credential(name: str = "Zoë \"Quinn\" O'Brien \\ 李雷", *, grade: str | None = "First Class",
                        index: int = 7, valid_until: date | None = date(2031, 6, 30)) -> dict:
    """build_credential's document with Attest's contexts, a did:web issuer
    and a revocation entry: what issuance will produce."""
    request = CredentialRequest(
        recipient_name=name, recipient_email="zoe@example.edu", achievement_name="BSc Computer Science",
        achievement_type="BachelorDegree", description="Three-year honours programme.\nWith distinction.",
        awarded_on=date(2025, 6, 30), valid_until=valid_until, grade=grade)
    issuer = IssuerProfile("University of Testing", SIGNER, 31337, PUBLIC_URL)
    doc = build_credential(request, issuer)
    doc["@context"] = credential_contexts(PUBLIC_URL)
    doc["issuer"]["id"] = DID
    doc["credentialStatus"] = statuslist.status_entry(STATUS_URL, index)
    return doc


def anchor_proof() -> dict:
    """A make_proof() anchor proof with placeholder values."""
    return make_proof(fingerprint="0x" + "ab" * 32, signature="0x" + "cd" * 65, signer=SIGNER, chain_id=31337,
                      registry=REGISTRY, merkle_root="0x" + "ef" * 32,
                      merkle_path=["0x" + "01" * 32, "0x" + "02" * 32], created=CREATED,
                      transaction_hash="0x" + "03" * 32, batch="batch-1")


def signed_credential(ring: KeyRing, **kwargs) -> dict:
    """An Attest credential with both proofs: Data Integrity, then anchor."""
    doc = unsigned_credential(**kwargs)
    proof = dataintegrity.sign_eddsa_rdfc_2022(doc, ring.signing_key, ring.verification_method(DID), CREATED)
    return dataintegrity.add_proof(dataintegrity.add_proof(doc, proof), anchor_proof())


def status_list_credential(ring: KeyRing, revoked: list[int] = ()) -> dict:
    """The signed status list credential, with `revoked` indexes set."""
    bits = statuslist.StatusList()
    for index in revoked:
        bits.set(index)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    unsigned = statuslist.status_list_credential(STATUS_URL, DID, bits, "2025-01-01T00:00:00Z")
    proof = dataintegrity.sign_eddsa_rdfc_2022(unsigned, ring.signing_key, ring.verification_method(DID), now)
    return dataintegrity.add_proof(unsigned, proof)


def openbadgeslib_verify(credential: dict, public_key: str | bytes | object, *, full: bool = False) -> str | None:
    """Check `credential` with PyPI's openbadgeslib, offline: None if it
    verifies, else its error. openbadgeslib never fetches contexts; its
    bundled allowlist has the official ones, and the low-level
    `verify_data_integrity_proof` takes Attest's context as `extra_contexts`.
    Its full `OB3LdpVerifier` (`full=True`, with OB 3.0 model, validity and
    recipient checks) takes no extra contexts, so it refuses any credential
    whose @context names one it does not bundle."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    from openbadgeslib.ob3.ldp import OB3LdpVerifier, OB3VerificationError, verify_data_integrity_proof

    from credentials.ed25519 import load_public_key
    from credentials.jsonld import attest_context_url, context_document

    pem = load_public_key(public_key).public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    try:
        if full:
            OB3LdpVerifier(pubkey_pem=pem).verify(credential)
        else:
            url = attest_context_url(PUBLIC_URL)
            verify_data_integrity_proof(credential, pem, extra_contexts={url: context_document(url)})
    except OB3VerificationError as exc:
        return str(exc)
    return None
