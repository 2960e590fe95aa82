"""The CredentialRegistry contract, on a real Anvil and a real Ganache node."""

from __future__ import annotations

import os

import pytest
from eth_account import Account
from eth_utils import keccak

from credentials.chain import TransactionReverted, fund_from_dev_account


def sorted_pair_root_and_proofs(leaves: list[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """A reference sorted-pair Merkle tree (odd node carried up), written out
    plainly here so the contract is checked against something independent."""
    proofs = [[] for _ in leaves]
    level = [(leaf, [i]) for i, leaf in enumerate(leaves)]
    while len(level) > 1:
        nxt = []
        for j in range(0, len(level), 2):
            if j + 1 == len(level):
                nxt.append(level[j])
                continue
            (a, ia), (b, ib) = level[j], level[j + 1]
            for i in ia:
                proofs[i].append(b)
            for i in ib:
                proofs[i].append(a)
            nxt.append((keccak(min(a, b) + max(a, b)), ia + ib))
        level = nxt
    return level[0][0], proofs


def random_root() -> bytes:
    return os.urandom(32)


def test_deploy_authorises_the_issuer(any_registry):
    reg = any_registry
    assert reg.is_authorized(reg.issuer.address)
    assert reg.contract.functions.owner().call() == reg.owner.address
    assert not reg.is_authorized(Account.create().address)


def test_anchor_records_issuer_time_block_and_count(any_registry):
    reg = any_registry
    root = random_root()
    tx = reg.anchor(root, 1234)
    record = reg.anchor_of(root)
    assert record is not None
    assert record.issuer == reg.issuer.address
    assert record.count == 1234
    assert record.block_number == tx.block_number
    block = reg.w3.eth.get_block(tx.block_number)
    assert record.timestamp == block["timestamp"]
    assert reg.anchor_of(random_root()) is None


def test_anchoring_the_same_root_twice_reverts(any_registry):
    root = random_root()
    any_registry.anchor(root, 1)
    with pytest.raises(TransactionReverted, match="root is already anchored"):
        any_registry.anchor(root, 1)


def test_zero_root_and_zero_count_revert(any_registry):
    with pytest.raises(TransactionReverted, match="root is zero"):
        any_registry.anchor(b"\0" * 32, 1)
    with pytest.raises(TransactionReverted, match="count must be positive"):
        any_registry.anchor(random_root(), 0)


def test_non_issuer_cannot_anchor_or_revoke(any_registry):
    reg = any_registry
    stranger = Account.create()
    assert fund_from_dev_account(reg.w3, stranger.address)
    with pytest.raises(TransactionReverted, match="not an authorised issuer"):
        reg._send(stranger, reg.contract.functions.anchor(random_root(), 1))
    with pytest.raises(TransactionReverted, match="not an authorised issuer"):
        reg._send(stranger, reg.contract.functions.revoke(random_root(), "no"))


def test_only_the_owner_authorises(any_registry):
    reg = any_registry
    stranger = Account.create()
    assert fund_from_dev_account(reg.w3, stranger.address)
    with pytest.raises(TransactionReverted, match="caller is not the owner"):
        reg._send(stranger, reg.contract.functions.authorizeIssuer(stranger.address))
    with pytest.raises(TransactionReverted, match="already authorised"):
        reg.authorize_issuer(reg.issuer.address)


def test_authorisation_windows_answer_for_each_block(any_registry):
    reg = any_registry
    other = Account.create()
    start = reg.authorize_issuer(other.address).block_number
    reg.anchor(random_root(), 1)  # a block in between
    end = reg.deauthorize_issuer(other.address).block_number
    assert end > start + 1
    assert not reg.was_authorized_at(other.address, start - 1)
    assert reg.was_authorized_at(other.address, start)
    assert reg.was_authorized_at(other.address, end - 1)
    assert not reg.was_authorized_at(other.address, end)
    assert not reg.is_authorized(other.address)
    with pytest.raises(TransactionReverted, match="issuer is not authorised"):
        reg.deauthorize_issuer(other.address)
    again = reg.authorize_issuer(other.address).block_number
    assert reg.was_authorized_at(other.address, again)
    assert not reg.was_authorized_at(other.address, end)
    assert reg.was_authorized_at(other.address, start)
    windows = reg.contract.functions.authorizationWindows(other.address).call()
    assert windows == [(start, end), (again, 0)]


def test_deauthorised_issuer_can_no_longer_anchor(any_registry):
    reg = any_registry
    reg.deauthorize_issuer(reg.issuer.address)
    with pytest.raises(TransactionReverted, match="not an authorised issuer"):
        reg.anchor(random_root(), 1)


def test_revocation_with_reason(any_registry):
    reg = any_registry
    fingerprint = random_root()
    assert not reg.revocation_of(fingerprint).revoked
    tx = reg.revoke(fingerprint, "issued in error")
    rec = reg.revocation_of(fingerprint)
    assert rec.revoked and rec.reason == "issued in error" and rec.revoker == reg.issuer.address
    assert rec.timestamp == reg.w3.eth.get_block(tx.block_number)["timestamp"]
    with pytest.raises(TransactionReverted, match="already revoked"):
        reg.revoke(fingerprint, "again")
    with pytest.raises(TransactionReverted, match="a reason is required"):
        reg.revoke(random_root(), "")
    with pytest.raises(TransactionReverted, match="longer than 256"):
        reg.revoke(random_root(), "x" * 257)


def test_events_for_state_changes(any_registry):
    reg = any_registry
    root = random_root()
    tx = reg.anchor(root, 7)
    receipt = reg.w3.eth.get_transaction_receipt(tx.tx_hash)
    (event,) = reg.contract.events.RootAnchored().process_receipt(receipt)
    assert event["args"]["root"] == root and event["args"]["count"] == 7
    tx = reg.revoke(root, "why")
    receipt = reg.w3.eth.get_transaction_receipt(tx.tx_hash)
    (event,) = reg.contract.events.CredentialRevoked().process_receipt(receipt)
    assert event["args"]["reason"] == "why"


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13])
def test_merkle_proofs_checked_on_chain(any_registry, n):
    reg = any_registry
    leaves = [keccak(f"credential {i}".encode()) for i in range(n)]
    root, proofs = sorted_pair_root_and_proofs(leaves)
    for leaf, proof in zip(leaves, proofs, strict=True):
        assert reg.verify_proof(leaf, proof, root)
    assert not reg.verify_proof(keccak(b"not in the tree"), proofs[0], root)
    if n > 1:
        assert not reg.verify_proof(leaves[0], proofs[1], root)
    # isValid adds "anchored" and "not revoked" to the proof check.
    is_valid = reg.contract.functions.isValid
    assert not is_valid(leaves[0], proofs[0], root).call()
    reg.anchor(root, n)
    assert is_valid(leaves[0], proofs[0], root).call()
    reg.revoke(leaves[0], "test")
    assert not is_valid(leaves[0], proofs[0], root).call()


def test_anchor_gas_is_size_independent_and_small(any_registry):
    """One SSTORE per batch: a batch of 1 and of 4 billion cost the same."""
    gas = [any_registry.anchor(random_root(), count).gas_used for count in (1, 10_000, 4_000_000_000)]
    assert max(gas) <= 60_000, gas
    # Only calldata bytes differ between the counts (16 gas per non-zero byte).
    assert max(gas) - min(gas) <= 100, gas
