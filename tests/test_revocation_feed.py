"""The event-fed view of a registry's revocations (credentials.revocations),
on a real Anvil node: it answers "not revoked as of block N" only when it
has read through the newest block the node announced, sees a revocation
from the registry's event, and leaves the contract to answer whenever it is
not current."""

from __future__ import annotations

import time

from credentials.canonical import keccak256
from credentials.reader import ChainReader


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_the_view_follows_revocations_block_by_block(registry):
    reader = ChainReader(registry.rpc_url, follow_revocations=True)
    try:
        view = reader.registry(registry.address)
        kept, revoked = keccak256(b"kept credential"), keccak256(b"revoked credential")
        # Before the feed has read anything, the contract answers (asked now, no block named).
        first = view.revocation_of(kept)
        assert not first.revoked and getattr(first, "as_of_block", None) is None
        feed = reader.revocation_feed(registry.address)
        assert feed.wait_current(), "the feed subscribed to new heads and read the registry's logs"
        head = registry.w3.eth.block_number
        answer = view.revocation_of(kept)
        assert not answer.revoked and answer.as_of_block == head

        tx = registry.revoke(revoked, "issued in error")
        # From the block holding the revocation on, the view has it: that
        # fingerprint goes to the contract (its date, reason and revoker) ...
        assert wait_for(lambda: feed.block >= tx.block_number)
        assert revoked in feed.revoked and feed.lookup(revoked) is None
        record = view.revocation_of(revoked)
        assert record.revoked and record.reason == "issued in error" and record.revoker == registry.issuer.address
        # ... and every other is answered as of the new block.
        later = view.revocation_of(kept)
        assert not later.revoked and later.as_of_block >= tx.block_number
    finally:
        reader.close()


def test_a_view_behind_the_announced_head_leaves_the_answer_to_the_contract(registry):
    reader = ChainReader(registry.rpc_url, follow_revocations=True)
    try:
        feed = reader.revocation_feed(registry.address)
        assert feed.wait_current()
        fingerprint = keccak256(b"some credential")
        assert feed.lookup(fingerprint) == feed.block
        feed.head = feed.block + 1  # a block announced whose logs are not read yet
        assert feed.lookup(fingerprint) is None
        answer = reader.registry(registry.address).revocation_of(fingerprint)
        assert not answer.revoked and getattr(answer, "as_of_block", None) is None, "asked of the contract"
    finally:
        reader.close()


def test_a_reader_that_does_not_follow_asks_the_contract_every_time(registry):
    """The CLI's one-off verifications and the domain's own reads."""
    reader = ChainReader(registry.rpc_url)
    answer = reader.registry(registry.address).revocation_of(keccak256(b"x"))
    assert not answer.revoked and getattr(answer, "as_of_block", None) is None
    assert reader.revocation_feed(registry.address) is None


def _count_calls(reader: ChainReader) -> list[str]:
    """The JSON-RPC methods `reader` sends from now on (eth_call, eth_blockNumber, ...)."""
    sent: list[str] = []
    rpc = reader.rpc

    def counted(method, params):
        sent.append(method)
        return rpc(method, params)

    reader.rpc = counted
    return sent


def _revoke_in_view(registry, reader: ChainReader, label: bytes):
    """Revoke keccak256(`label`) once `reader`'s view is current, and wait
    until the view has read the revocation's block: (view, feed, fingerprint, tx)."""
    view = reader.registry(registry.address)
    feed = reader.revocation_feed(registry.address)
    assert feed.wait_current()
    fingerprint = keccak256(label)
    tx = registry.revoke(fingerprint, "awarded in error")
    assert wait_for(lambda: feed.block >= tx.block_number)
    return view, feed, fingerprint, tx


def test_a_revocation_seen_in_a_final_block_is_read_once(registry):
    """A revocation is permanent: once the view has seen its event in a
    final block and the contract has given its record, the record is kept,
    and a revoked credential verified again costs no eth_call."""
    reader = ChainReader(registry.rpc_url, follow_revocations=True)
    try:
        view, feed, revoked, tx = _revoke_in_view(registry, reader, b"revoked once, read once")
        assert feed.revoked_at(revoked) == tx.block_number
        sent = _count_calls(reader)
        first = view.revocation_of(revoked)
        assert first.revoked and first.reason == "awarded in error" and sent.count("eth_call") == 1
        again = [view.revocation_of(revoked) for _ in range(3)]
        assert all(r == first for r in again) and sent.count("eth_call") == 1, "answered from the kept record"
    finally:
        reader.close()


def test_a_revocation_in_a_block_not_yet_final_is_asked_every_time(registry):
    """With ATTEST_CONFIRMATIONS (finality_depth) the record is kept only once
    its block is that deep: before, a reorganisation could still drop it."""
    reader = ChainReader(registry.rpc_url, finality_depth=1000, follow_revocations=True)
    try:
        view, _, revoked, _ = _revoke_in_view(registry, reader, b"revoked, not final")
        sent = _count_calls(reader)
        for _ in range(2):
            assert view.revocation_of(revoked).revoked
        assert sent.count("eth_call") == 2
    finally:
        reader.close()
