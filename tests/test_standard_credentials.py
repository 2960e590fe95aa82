"""Credentials as Attest issues them now, end to end: issued through the real
pipeline (embedded Anvil, the app's database, its Ed25519 key ring), served
by the app (DID document, Attest's context, status lists), and checked by
other people's code (Digital Bazaar's @digitalbazaar/vc and
vc-bitstring-status-list through node, jsonld.js safe mode, PyPI's
openbadgeslib) and by Attest's own verifier. Another issuer's credential,
made with Digital Bazaar's libraries alone, verifies in Attest.

No network: the node harnesses load only the shipped contexts and the
documents the test hands them; HTTP servers bind 127.0.0.1 on free ports.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from app import create_app
from credentials import dataintegrity, jsonld, status_store, statuslist, storage
from credentials.document import anchor_proof
from credentials.node import free_port
from credentials.reader import ChainReader
from credentials.runtime import get_keyring, get_registry, get_status_lists, get_trust_policy
from credentials.statusclient import StatusListClient
from credentials.trust import StaticSource, TrustPolicy, parse_trust_list
from credentials.validate import validate_document
from credentials.verification import verify_credential
from kernel.web.extensions import limiter
from tests.helpers_credentials import issue_stored
from tests.helpers_dataintegrity import node


@pytest.fixture
def issuer(app):
    limiter.reset()
    app.config["VERIFY_RATE_LIMIT"] = "100000/minute"
    return app


def served(app, path: str) -> dict:
    response = app.test_client().get(path)
    assert response.status_code == 200, (path, response.data[:200])
    return response.get_json(force=True)


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def world_for(app, doc: dict) -> dict:
    """What an offline third-party verifier is handed: the DID document and
    the status list credential, both as the app serves them."""
    url = doc["credentialStatus"]["statusListCredential"]
    return {"didDocuments": [served(app, "/.well-known/did.json")], "documents": {url: served(app, path_of(url))}}


def digital_bazaar(app, doc: dict) -> dict:
    return node("verify_credential.mjs", {"credential": doc, **world_for(app, doc)})


def openbadgeslib(app, doc: dict) -> str | None:
    """openbadgeslib's Data Integrity verifier, given Attest's context (it
    bundles only the official ones) and the key the DID document lists."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    from openbadgeslib.ob3.ldp import OB3VerificationError, verify_data_integrity_proof

    from credentials.ed25519 import load_public_key

    method = dataintegrity.find_proofs(doc)[0]["verificationMethod"]
    did_doc = served(app, "/.well-known/did.json")
    key = next(m["publicKeyMultibase"] for m in did_doc["verificationMethod"] if m["id"] == method)
    pem = load_public_key(key).public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    url = next(c for c in doc["@context"] if jsonld.is_attest_context_url(c))
    try:
        verify_data_integrity_proof(doc, pem, extra_contexts={url: jsonld.context_document(url)})
    except OB3VerificationError as exc:
        return str(exc)
    return None


def changed_grade(doc: dict) -> dict:
    doc = copy.deepcopy(doc)
    doc["credentialSubject"]["result"][0]["value"] = "First Class with Distinction"
    return doc


def statuses(result) -> dict:
    return {c.id: c.status for c in result.checks}


def attest_verify(app, doc: dict, **kwargs):
    return verify_credential(doc, ChainReader(get_registry(app).rpc_url), get_trust_policy(app),
                             status_lists=kwargs.pop("status_lists", None) or get_status_lists(app), **kwargs)


# ----- the shape ---------------------------------------------------------------------

def test_an_issued_credential_carries_both_proofs_a_status_entry_and_served_contexts(issuer):
    (doc,) = issue_stored(issuer, 1)
    public = issuer.extensions["attest.settings"].public_url or "http://127.0.0.1:5000"
    attest_url = jsonld.attest_context_url(public)
    assert doc["@context"] == [jsonld.VC_V2, jsonld.OB_V3, jsonld.OB_EXTENSIONS, attest_url]
    di, anchor = doc["proof"]
    assert di["type"] == "DataIntegrityProof" and di["cryptosuite"] == "eddsa-rdfc-2022"
    assert anchor == anchor_proof(doc) and anchor["type"] == "AttestEip712MerkleProof2026"
    # The key that signed is the ring's current one, listed as a Multikey the DID document asserts with.
    ring = get_keyring(issuer)
    did_doc = served(issuer, "/.well-known/did.json")
    assert di["verificationMethod"] == f"{did_doc['id']}#{ring.current.public_key_multibase}"
    assert di["verificationMethod"] in did_doc["assertionMethod"]
    # The revocation entry names a list the installation serves under its public URL.
    status = doc["credentialStatus"]
    assert status["type"] == "BitstringStatusListEntry" and status["statusPurpose"] == "revocation"
    assert status["statusListCredential"].startswith(public.rstrip("/") + status_store.STATUS_PATH)
    # Attest's context is served at its stable URL: the very file the manifest pins.
    response = issuer.test_client().get(jsonld.ATTEST_CONTEXT_PATH)
    assert response.status_code == 200 and response.mimetype == "application/ld+json"
    assert response.data == jsonld.ATTEST_CONTEXT_FILE.read_bytes()
    # Every term of both proofs is defined: the whole document expands in safe mode, here and in jsonld.js.
    jsonld.expand_safe(doc)
    theirs = node("expand_safe.mjs", {"document": doc})
    assert theirs["ok"], theirs["error"]
    assert theirs["events"] == [], "jsonld.js raised events (warnings) while expanding"
    # The DID document and the status list credential are safe JSON-LD too.
    jsonld.expand_safe(did_doc)
    jsonld.expand_safe(served(issuer, path_of(status["statusListCredential"])))


def test_a_status_index_is_never_handed_out_twice(issuer):
    docs = issue_stored(issuer, 3) + issue_stored(issuer, 3)
    places = {(d["credentialStatus"]["statusListCredential"], d["credentialStatus"]["statusListIndex"])
              for d in docs}
    assert len(places) == 6


# ----- third-party verifiers on issued credentials -------------------------------------

def test_both_third_party_verifiers_accept_an_issued_credential_and_refuse_a_changed_grade(issuer):
    (doc,) = issue_stored(issuer, 1)
    answer = digital_bazaar(issuer, doc)
    assert answer["verified"] is True, answer["errors"]
    assert answer["proofsVerified"] == 1 and answer["revoked"] is False
    assert openbadgeslib(issuer, doc) is None

    forged = changed_grade(doc)
    answer = digital_bazaar(issuer, forged)
    assert answer["verified"] is False and answer["errors"]
    assert openbadgeslib(issuer, forged) is not None
    # Attest's verifier refuses it too, on both proofs.
    result = attest_verify(issuer, forged)
    assert not result.valid
    assert statuses(result)["integrity"] == "failed" and statuses(result)["data_integrity"] == "failed"


def test_an_issued_credential_passes_every_attest_check(issuer):
    (doc,) = issue_stored(issuer, 1)
    result = attest_verify(issuer, doc)
    assert result.valid and result.verdict == "genuine"
    found = statuses(result)
    assert found.pop("valid_until") == "skipped"
    assert set(found.values()) == {"passed"}, found
    assert "as the chain says" in result.check("status_list").message
    # The same through the API, whose request schema takes the proof set and the status entry.
    response = issuer.test_client().post("/api/v1/credentials/verify", json=doc)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["valid"] is True and {c["id"]: c["status"] for c in body["checks"]}["status_list"] == "passed"


# ----- revocation: the chain, the list, and every verifier -----------------------------

def test_revoking_flips_the_served_bit_and_all_verifiers_agree_with_the_chain(issuer):
    kept, revoked = issue_stored(issuer, 2)
    before = served(issuer, path_of(revoked["credentialStatus"]["statusListCredential"]))
    # The verifier now holds a copy of the list, read before the revocation, and
    # would keep it for an hour.
    get_status_lists(issuer).local_recheck = 3600
    assert attest_verify(issuer, revoked).valid
    done = issuer.test_cli_runner().invoke(args=["credentials", "revoke", revoked["id"], "--reason", "issued in error"])
    assert done.exit_code == 0, done.output
    url = revoked["credentialStatus"]["statusListCredential"]
    after = served(issuer, path_of(url))
    assert after != before, "the list is regenerated on revocation"
    index = int(revoked["credentialStatus"]["statusListIndex"])
    entry = statuslist.read_entry(revoked)
    assert statuslist.list_from_credential(after, entry, revoked["issuer"]).get(index) is True
    # The regenerated list is signed with Data Integrity by the institution's current key.
    ring = get_keyring(issuer)
    assert dataintegrity.verify_eddsa_rdfc_2022(after, dataintegrity.find_proofs(after)[0],
                                                ring.current.public_key_multibase)

    # Digital Bazaar's vc-bitstring-status-list reads the served list.
    did_documents = [served(issuer, "/.well-known/did.json")]
    for doc, expected in ((revoked, True), (kept, False)):
        answer = node("check_status.mjs", {"credential": doc, "statusListCredential": after,
                                           "didDocuments": did_documents})
        assert answer["verified"] is True and answer["revoked"] is expected, answer

    result = attest_verify(issuer, revoked)
    assert not result.valid and result.verdict == "invalid"
    assert statuses(result)["revocation"] == "failed" and statuses(result)["status_list"] == "failed"
    # Not "the list and the chain disagree": the held copy was read again when they did.
    assert "as the chain records" in result.check("status_list").message
    assert attest_verify(issuer, kept).valid


def test_the_verifier_says_when_the_list_and_the_chain_disagree(issuer):
    chain_only, list_only = issue_stored(issuer, 2)
    # Revoked on chain, the list never told (the chain is the source of truth).
    registry = get_registry(issuer)
    registry.revoke(bytes.fromhex(anchor_proof(chain_only)["fingerprint"][2:]), "revoked elsewhere")
    result = attest_verify(issuer, chain_only)
    assert not result.valid and statuses(result)["revocation"] == "failed"
    message = result.check("status_list").message
    assert result.check("status_list").status == "failed"
    assert "disagree" in message and "the chain is the source of truth: it is revoked" in message.lower()

    # Set in the list, but the registry holds no revocation.
    with issuer.extensions["attest.db"].session() as session:
        record = session.scalar(select(storage.CredentialRecord).where(storage.CredentialRecord.id == list_only["id"]))
        record.stored_status = storage.REVOKED
        session.flush()
        status_store.publish(session, session.get(storage.StatusListRecord, record.status_list), get_keyring(issuer))
        session.commit()
    # Changed behind the verifier's back (no revocation to notice): it reads its
    # own list again within OWN_STATUS_LIST_RECHECK.
    time.sleep(get_status_lists(issuer).local_recheck)
    result = attest_verify(issuer, list_only)
    assert not result.valid and statuses(result)["revocation"] == "passed"
    assert "disagree" in result.check("status_list").message
    assert "the registry holds no revocation" in result.check("status_list").message


def test_an_unreachable_list_is_could_not_check_never_not_revoked(tmp_path, anvil_url):
    """The installation's public URL is a port nothing listens on: a verifier
    elsewhere (no database of its lists) cannot fetch the list. Then the app is
    served there for real, and the same verifier reads the list over HTTP."""
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    app = create_app({"TESTING": True, "data_dir": tmp_path / "issuer", "rpc_url": anvil_url,
                      "SECRET_KEY": "x", "public_url": public})
    try:
        (doc,) = issue_stored(app, 1)
        assert doc["credentialStatus"]["statusListCredential"].startswith(public + "/status/")
        remote = StatusListClient(timeout=2.0)
        result = attest_verify(app, doc, status_lists=remote)
        check = result.check("status_list")
        assert check.status == "unavailable" and "cannot be fetched" in check.message
        assert "not revoked" not in check.message.lower()
        # The chain answered (not revoked), and it is the source of truth: the verdict stands on it.
        assert statuses(result)["revocation"] == "passed"

        server = make_server("127.0.0.1", port, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            remote.forget()
            result = attest_verify(app, doc, status_lists=remote)
            assert result.check("status_list").status == "passed", result.check("status_list").message
        finally:
            server.shutdown()
            thread.join(5)
    finally:
        registry = app.extensions.pop("attest.registry", None)
        if registry is not None:
            registry.close()


# ----- key rotation ----------------------------------------------------------------------

def test_after_a_key_rotation_old_and_new_credentials_verify_everywhere(issuer):
    (old,) = issue_stored(issuer, 1)
    done = issuer.test_cli_runner().invoke(args=["institution", "rotate-key"])
    assert done.exit_code == 0, done.output
    rotated = json.loads(done.stdout)
    (new,) = issue_stored(issuer, 1)
    old_method = dataintegrity.find_proofs(old)[0]["verificationMethod"]
    new_method = dataintegrity.find_proofs(new)[0]["verificationMethod"]
    assert old_method != new_method and new_method == rotated["current"]
    did_doc = served(issuer, "/.well-known/did.json")
    assert {old_method, new_method} <= set(did_doc["assertionMethod"])
    for doc in (old, new):
        assert digital_bazaar(issuer, doc)["verified"] is True
        assert attest_verify(issuer, doc).valid
    # The list the old credential names was signed again with the new key.
    listed = served(issuer, path_of(old["credentialStatus"]["statusListCredential"]))
    assert dataintegrity.find_proofs(listed)[0]["verificationMethod"] == new_method


def test_rotating_an_environment_key_is_refused_with_the_reason(tmp_path, anvil_url):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from credentials.ed25519 import seed_bytes

    app = create_app({"TESTING": True, "data_dir": tmp_path / "d", "rpc_url": anvil_url, "SECRET_KEY": "x",
                      "ed25519_key": seed_bytes(Ed25519PrivateKey.generate()).hex()})
    try:
        done = app.test_cli_runner().invoke(args=["institution", "rotate-key"])
        assert done.exit_code != 0 and "ATTEST_ED25519_KEY" in done.output
    finally:
        registry = app.extensions.pop("attest.registry", None)
        if registry is not None:
            registry.close()


# ----- another issuer's credential ------------------------------------------------------

OTHER_DID = "did:web:other-college.example"


class _Lists(BaseHTTPRequestHandler):
    documents: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802 - the http.server name
        body = self.documents.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "application/vc")
        self.end_headers()
        self.wfile.write(body or b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def other_issuer():
    """Another college: its credential and its status list credential both
    signed by @digitalbazaar/vc with a key of its own, the list served over
    HTTP on 127.0.0.1, and a trust list that pins its Ed25519 key."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), type("Lists", (_Lists,), {"documents": {}}))
    base = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def make(revoked: bool = False) -> tuple[dict, TrustPolicy]:
        list_url = f"{base}/lists/{len(server.RequestHandlerClass.documents) + 1}"
        bits = statuslist.StatusList()
        if revoked:
            bits.set(42)
        credential = {
            "@context": [jsonld.VC_V2],
            "id": "urn:uuid:2b6c1b8e-79b5-4c4e-9b8e-0b1f3c7d9a11",
            "type": ["VerifiableCredential"],
            "issuer": {"id": OTHER_DID, "name": "Other College"},
            "validFrom": "2025-09-01T00:00:00Z",
            "credentialSubject": {"id": "did:example:holder-1", "name": "Sam Student"},
            "credentialStatus": statuslist.status_entry(list_url, 42),
        }
        unsigned_list = statuslist.status_list_credential(list_url, OTHER_DID, bits, "2025-09-01T00:00:00Z")
        signed = node("sign_as_issuer.mjs", {"did": OTHER_DID, "documents": [credential, unsigned_list]})
        doc, listed = signed["documents"]
        server.RequestHandlerClass.documents[path_of(list_url)] = json.dumps(listed).encode()
        entries = parse_trust_list({"entries": {OTHER_DID: {"name": "Other College", "attest": {
            "ed25519Keys": [{"id": signed["verificationMethod"], "publicKeyMultibase": signed["publicKeyMultibase"]}]}}}})
        return doc, TrustPolicy([StaticSource("the test's trust list", entries)])

    yield make
    server.shutdown()
    thread.join(5)


def test_another_librarys_credential_verifies_in_attest(other_issuer):
    doc, trust = other_issuer()
    result = verify_credential(doc, None, trust, status_lists=StatusListClient())
    assert result.valid and result.verdict == "genuine", [(c.id, c.status, c.message) for c in result.checks]
    found = statuses(result)
    for chain_check in ("integrity", "merkle_proof", "anchor", "signature", "issuer_authorized", "revocation"):
        assert found[chain_check] == "skipped" and result.check(chain_check).not_applicable, chain_check
        assert "Not applicable" in result.check(chain_check).message
    assert found["data_integrity"] == "passed" and found["status_list"] == "passed"
    assert found["issuer_identity"] == "passed"
    assert "Issued by Other College (other-college.example), confirmed by the trust list" in \
        result.check("issuer_identity").message
    # Judged by VC 2.0 alone: it is no Open Badge.
    assert validate_document(doc) == []

    changed = copy.deepcopy(doc)
    changed["credentialSubject"]["name"] = "Someone Else"
    assert statuses(verify_credential(changed, None, trust, status_lists=StatusListClient()))["data_integrity"] \
        == "failed"
    untrusted = verify_credential(doc, None, TrustPolicy([]), status_lists=StatusListClient())
    assert untrusted.verdict == "not_confirmed" and statuses(untrusted)["issuer_identity"] == "failed"


def test_another_issuers_revoked_credential_fails_on_its_list(other_issuer):
    doc, trust = other_issuer(revoked=True)
    result = verify_credential(doc, None, trust, status_lists=StatusListClient())
    assert not result.valid and statuses(result)["status_list"] == "failed"
    assert "Revoked: bit 42" in result.check("status_list").message


def test_another_issuers_list_out_of_reach_makes_the_answer_could_not_check(other_issuer):
    """No chain to fall back on: a list that cannot be fetched leaves the
    revocation unknown, so the whole answer is "could not check now"."""
    doc, trust = other_issuer()
    gone = copy.deepcopy(doc)
    dead = f"http://127.0.0.1:{free_port()}/lists/1"
    gone["credentialStatus"]["statusListCredential"] = dead
    result = verify_credential(gone, None, trust, status_lists=StatusListClient(timeout=2.0))
    # The changed URL breaks the proof: the status list is not even asked. Re-sign it as the issuer would.
    assert statuses(result)["data_integrity"] == "failed"
    credential = {k: v for k, v in gone.items() if k != "proof"}
    signed = node("sign_as_issuer.mjs", {"did": OTHER_DID, "documents": [credential]})
    entries = parse_trust_list({"entries": {OTHER_DID: {"name": "Other College", "attest": {
        "ed25519Keys": [{"id": signed["verificationMethod"], "publicKeyMultibase": signed["publicKeyMultibase"]}]}}}})
    result = verify_credential(signed["documents"][0], None, TrustPolicy([StaticSource("the trust list", entries)]),
                               status_lists=StatusListClient(timeout=2.0))
    assert result.verdict == "unavailable" and not result.valid
    assert statuses(result)["status_list"] == "unavailable"
    assert "cannot be fetched" in result.check("status_list").message
