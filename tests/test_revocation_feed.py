"""The event-fed view of a registry's revocations (credentials.revocations),
on a real Anvil node: it answers "not revoked as of block N" only when it
has read through the newest block the node announced, sees a revocation
from the registry's event, and leaves the contract to answer whenever it is
not current."""

from __future__ import annotations

import socket
import threading
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


class FreezingProxy:
    """A TCP relay on 127.0.0.1 in front of a node. `freeze()` makes it stop
    relaying, both ways, with every connection left open: a network path
    gone silent, which no FIN or RST announces."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.frozen = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._relay, args=(source, sink), daemon=True).start()

    def _relay(self, source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                return
            while self.frozen.is_set():
                time.sleep(0.05)  # held, never delivered while frozen
            try:
                sink.sendall(data)
            except OSError:
                return

    def freeze(self) -> None:
        self.frozen.set()

    def close(self) -> None:
        self.frozen.clear()
        self.listener.close()
        for sock in self.sockets:
            sock.close()


def test_a_silent_path_to_the_node_takes_the_view_down(registry, monkeypatch):
    """The node's link goes silent (a frozen relay: the socket stays open,
    nothing arrives). The feed's own pings go unanswered, and within two
    intervals the view stops answering, so verifiers ask the contract, which
    then fails as "could not check". Left to the websockets library's
    keepalive (a ping every 20 s, 20 s for its pong) the view went on saying
    "not revoked as of block N" for up to 40 s."""
    from credentials import revocations

    monkeypatch.setattr(revocations, "PING_SECONDS", 0.5)
    proxy = FreezingProxy(int(registry.rpc_url.rsplit(":", 1)[1]))
    reader = ChainReader(f"http://127.0.0.1:{proxy.port}", follow_revocations=True)
    try:
        feed = reader.revocation_feed(registry.address)
        assert feed.wait_current()
        time.sleep(1.5)  # pings answered meanwhile: still live
        assert feed.live and feed.lookup(keccak256(b"a credential")) == feed.block
        proxy.freeze()
        frozen_at = time.monotonic()
        assert wait_for(lambda: not feed.live, timeout=5), "the view stayed live on a silent path"
        assert feed.lookup(keccak256(b"a credential")) is None
        assert time.monotonic() - frozen_at < 2.5
    finally:
        reader.close()
        proxy.close()
