"""Mint real credentials for verification tests, from the credential core alone
(document, canonical, signing, merkle) and `Registry.anchor`: no issuance
service, no database. That is also what "a verifier needs nothing of the
issuer" means: these documents come from nowhere but the chain.

`bad_credentials(registry)` makes one credential per failure case, each paired
with the id of the check that must fail for it.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone

from eth_account import Account

from credentials.canonical import fingerprint, to_hex
from credentials.chain import Registry, fund_from_dev_account, open_registry
from credentials.document import CredentialRequest, IssuerProfile, build_credential, make_proof, rfc3339
from credentials.identity import ChainAccount
from credentials.merkle import MerkleTree
from credentials.signing import Eip712Domain, Signer
from credentials.trust import StaticSource, TrustEntry, TrustPolicy
from kernel.settings import Settings

TODAY = datetime.now(timezone.utc).date()
TEST_DID = "did:web:uni.example.edu"
TEST_NAME = "University of Testing"


def anchor_of(doc: dict) -> dict:
    """The credential's anchor proof: the proof itself in older credentials,
    the AttestEip712MerkleProof2026 of the proof set in new ones."""
    proof = doc["proof"]
    if isinstance(proof, dict):
        return proof
    return next(p for p in proof if p.get("type") == "AttestEip712MerkleProof2026")


def request(name: str = "Ada Lovelace", *, awarded_on: date | None = None, valid_until: date | None = None,
            grade: str | None = "First") -> CredentialRequest:
    return CredentialRequest(
        recipient_name=name, recipient_email=f"{name.split()[0].lower()}@example.edu",
        achievement_name="BSc Computer Science", achievement_type="BachelorDegree",
        description="Awarded for completing the three-year honours programme.",
        awarded_on=awarded_on or TODAY - timedelta(days=30), valid_until=valid_until, grade=grade)


def mint(registry: Registry, requests: list[CredentialRequest] | None = None, *, sign_key: bytes | None = None,
         anchor_registry: Registry | None = None, issuer_name: str = TEST_NAME,
         did_chain_id: int | None = None, issuer_did: str | None = TEST_DID) -> list[dict]:
    """Build, sign, Merkle-batch and anchor credentials; return the signed documents.

    The issuer is named `issuer_did` (a did:web), or with `issuer_did=None` by
    the registry's issuer key as a did:pkh (the older form). `sign_key` signs
    instead of the registry's issuer key; `anchor_registry` sends the anchor
    transaction from another key (another Registry object on the same contract);
    `did_chain_id` makes the issuer's did:pkh name another chain."""
    requests = requests or [request()]
    issuer = IssuerProfile(issuer_name, registry.issuer.address, did_chain_id or registry.chain_id,
                           "https://uni.example.edu", did_web=issuer_did)
    signer = Signer(sign_key or bytes(registry.issuer.key))
    domain = Eip712Domain(registry.chain_id, registry.address)
    docs = [build_credential(r, issuer) for r in requests]
    leaves = [fingerprint(d) for d in docs]
    tree = MerkleTree(leaves)
    tx = (anchor_registry or registry).anchor(tree.root, len(docs))
    created = rfc3339(datetime.now(timezone.utc))
    for i, (doc, leaf) in enumerate(zip(docs, leaves, strict=True)):
        doc["proof"] = make_proof(
            fingerprint=to_hex(leaf), signature=to_hex(signer.sign(leaf, domain)), signer=signer.address,
            chain_id=registry.chain_id, registry=registry.address, merkle_root=to_hex(tree.root),
            merkle_path=[to_hex(p) for p in tree.path(i)], created=created, transaction_hash=tx.tx_hash,
            batch=f"test-{tx.block_number}")
    return docs


def trust_in(*registries: Registry, did: str = TEST_DID, name: str = TEST_NAME) -> TrustPolicy:
    """A verifier's trust list holding one institution, pinned by these registries
    and their issuer keys (as a trust-list file entry would pin them)."""
    entry = TrustEntry(did=did, name=name, domain="uni.example.edu",
                       issuers=tuple(ChainAccount(r.chain_id, r.issuer.address) for r in registries),
                       registries=tuple(ChainAccount(r.chain_id, r.address) for r in registries),
                       source="the test's trust list")
    return TrustPolicy([StaticSource("the test's trust list", [entry])])


def other_key_registry(registry: Registry) -> Registry:
    """The same contract, acting from a fresh, funded and authorised issuer key."""
    account = Account.create()
    fund_from_dev_account(registry.w3, account.address)
    registry.authorize_issuer(account.address)
    return Registry(registry.w3, registry.address, account, registry.owner, registry.rpc_url)


def fresh_credential(registry: Registry, **kwargs) -> dict:
    return mint(registry, [request(**kwargs), request("Grace Hopper", **kwargs)])[0]


def bad_credentials(registry: Registry, second_registry_address: str) -> dict[str, tuple[dict, str]]:
    """case name -> (credential, the check id that must fail)."""
    good = fresh_credential(registry)
    cases: dict[str, tuple[dict, str]] = {}

    tampered = copy.deepcopy(good)
    tampered["credentialSubject"]["identifier"][0]["identityHash"] = "Mallory Forger"
    cases["tampered_subject"] = (tampered, "integrity")

    path = copy.deepcopy(good)
    path["proof"]["anchor"]["merklePath"][0] = to_hex(os.urandom(32))
    cases["tampered_path"] = (path, "merkle_proof")

    chain = copy.deepcopy(good)
    chain["proof"]["anchor"]["chainId"] = chain["proof"]["eip712Domain"]["chainId"] = 4242
    cases["wrong_chain_id"] = (chain, "anchor")

    other = copy.deepcopy(good)
    other["proof"]["anchor"]["registry"] = other["proof"]["eip712Domain"]["verifyingContract"] = second_registry_address
    cases["other_registry"] = (other, "anchor")

    # A key nobody lists signs a document that names the institution's did:web.
    cases["signer_not_issuer"] = (mint(registry, sign_key=os.urandom(32))[0], "issuer_identity")
    # The older did:pkh form: the signature must recover the very key the issuer id names.
    cases["pkh_signer_not_issuer"] = (mint(registry, sign_key=os.urandom(32), issuer_did=None)[0], "signature")

    revoked = fresh_credential(registry)
    registry.revoke(revoked["proof"]["fingerprint"], "awarded in error")
    cases["revoked"] = (revoked, "revocation")

    cases["not_yet_valid"] = (fresh_credential(registry, awarded_on=TODAY + timedelta(days=10)), "valid_from")
    cases["expired"] = (fresh_credential(registry, awarded_on=TODAY - timedelta(days=400),
                                         valid_until=TODAY - timedelta(days=2)), "valid_until")

    # Last: it de-authorises the registry's issuer. Another key anchors the batch
    # while the signer is no longer authorised.
    anchorer = other_key_registry(registry)
    registry.deauthorize_issuer(registry.issuer.address)
    cases["issuer_deauthorized"] = (mint(registry, anchor_registry=anchorer)[0], "issuer_authorized")
    return cases


class VerifyWorld:
    """One registry with a good credential and every failure case, built once
    per test module (anchoring is the slow part)."""

    def __init__(self, registry: Registry, second: Registry):
        self.registry = registry
        self.rpc_url = registry.rpc_url
        self.second_registry = second.address
        self.good = fresh_credential(registry)
        self.good_no_expiry = self.good
        self.good_with_expiry = fresh_credential(registry, valid_until=TODAY + timedelta(days=365))
        self.trust = trust_in(registry)
        self.cases = bad_credentials(registry, second.address)


CASES = ["tampered_subject", "tampered_path", "wrong_chain_id", "other_registry", "signer_not_issuer",
         "pkh_signer_not_issuer", "issuer_deauthorized", "revoked", "not_yet_valid", "expired"]


def open_world(tmp_path_factory, anvil_url) -> Iterator[VerifyWorld]:
    """A VerifyWorld on the session's Anvil node; each test module's `world`
    fixture yields from this."""
    base = tmp_path_factory.mktemp("verify-world")
    with open_registry(Settings.from_env(data_dir=base / "issuer", rpc_url=anvil_url)) as reg, \
            open_registry(Settings.from_env(data_dir=base / "other", rpc_url=anvil_url)) as second:
        yield VerifyWorld(reg, second)


def issue_stored(app, count: int = 2) -> list[dict]:
    """Credentials issued by the app's own issuance service (stored in its
    database, anchored in its registry): what `/v/<id>` and the id box find."""
    from credentials.issuance import issue_batch, issuer_profile
    from credentials.runtime import get_keyring, get_registry

    registry = get_registry(app)
    names = ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra"]
    with app.extensions["attest.db"].session() as session:
        issue_batch(session, registry, issuer_profile(session, registry, app.extensions["attest.settings"]),
                    [request(names[i % len(names)]) for i in range(count)], actor="test", keyring=get_keyring(app))
        from sqlalchemy import select

        from credentials.storage import CredentialRecord
        rows = session.scalars(select(CredentialRecord).order_by(CredentialRecord.created_at)).all()
        return [r.document_dict for r in rows[-count:]]


def trust_world(app, world: VerifyWorld) -> None:
    """Make the app's verifier trust the world's institution, as a registrar
    would with `trust add` (the entry goes into the app's database)."""
    from credentials import trust_store
    from credentials.runtime import trust_changed

    with app.extensions["attest.db"].session() as session:
        for entry in world.trust.entries():
            trust_store.add_entry(session, entry, "test")
        session.commit()
    trust_changed(app)


def edited(doc: dict, path: list, value=..., delete: bool = False) -> dict:
    """A deep copy of `doc` with the member at `path` set to `value` (or deleted)."""
    doc = copy.deepcopy(doc)
    node = doc
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


def revocation_view_caught_up(app, timeout: float = 10.0) -> None:
    """Until the app's event-fed revocation view has read through the node's
    newest block (or is not following: then verifications ask the contract).
    The view hears of a new block by its WebSocket a few milliseconds after
    the block is mined, and until then answers "not revoked as of block N",
    N the newest block announced to it; a test that revokes and verifies at
    once waits here first. CI once verified inside that window."""
    import time

    from credentials.runtime import get_chain_reader, get_registry

    registry = get_registry(app)
    feed = get_chain_reader(app).revocation_feed(registry.address)
    if feed is None:
        return
    newest = registry.w3.eth.block_number
    deadline = time.monotonic() + timeout
    while feed.live and feed.block < newest and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not feed.live or feed.block >= newest, f"the revocation view is at block {feed.block}, the node at {newest}"
