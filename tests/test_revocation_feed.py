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
