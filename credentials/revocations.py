"""An event-fed view of a registry's revocations, so that a verifier need not
ask the contract (one `eth_call`) on every verification.

Revocation is the one fact a verifier cannot cache: it may change at any
block. But it changes only through the registry's `CredentialRevoked` event,
and a revocation is permanent (the contract has no un-revoke). So a process
that has read every such event up to block N knows, for any fingerprint,
whether it was revoked as of block N, without asking.

A `RevocationFeed` follows one registry: a daemon thread subscribes to the
node's new heads over WebSocket (`eth_subscribe("newHeads")`, the same host
and port as the HTTP URL, as Anvil, Ganache, geth and most providers serve
it) and, for every head, reads the new blocks' `CredentialRevoked` logs
(`eth_getLogs`) before it moves its block on. A lookup answers from the view
only when the view has read through the latest head the node announced;
while it is behind (a block just arrived, the subscription is down or not
offered, the logs could not be read) `lookup` returns None and the caller
asks the contract, as before. A fingerprint the view holds as revoked is
also asked of the contract, for its date, revoker and reason (rare).

The answer therefore says "as of block N", N being the newest block the node
has announced. After a reorganisation (a head at or below the view's block)
the last REORG_DEPTH blocks are read again; a revocation seen only on a
dropped branch stays in the set, which only sends that fingerprint to the
contract, never a wrong "not revoked". A revocation is permanent, so the
contract's record of one seen in a final block is kept (by the reader, with
its other facts that cannot change): a revoked credential verified again
costs no `eth_call` either.

The feed pings the node every PING_SECONDS and gives the connection up when
a ping's pong has not come by the next: on a path that went silent (a
dropped link, a frozen proxy, a node that stopped answering but kept the
socket) the view is "down" within two intervals, and the contract is asked
again. It sends these pings itself, with payloads from os.urandom: the
websockets library's own keepalive draws them from the process's global
`random`, which is not the library's to use (Hypothesis saw it change
under a property test, from a feed left running by an earlier test).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from credentials.canonical import keccak256

if TYPE_CHECKING:
    from credentials.reader import ChainReader

log = logging.getLogger(__name__)

REVOKED_TOPIC = "0x" + keccak256(b"CredentialRevoked(bytes32,address,string)").hex()
REORG_DEPTH = 64
RETRY_SECONDS = 5.0
PING_SECONDS = 10.0


def websocket_url(rpc_url: str) -> str | None:
    """The WebSocket URL of a node given its HTTP one (same host, port and path)."""
    if rpc_url.startswith("http://"):
        return "ws://" + rpc_url.removeprefix("http://")
    if rpc_url.startswith("https://"):
        return "wss://" + rpc_url.removeprefix("https://")
    return None


class RevocationFeed:
    """The revoked fingerprints of one registry, read from its events (see the module doc)."""

    def __init__(self, reader: ChainReader, address: str):
        self.reader = reader
        self.address = address
        self.revoked: dict[bytes, int] = {}  # fingerprint -> the block of its CredentialRevoked event
        self.block = -1   # every CredentialRevoked log up to this block is in `revoked`
        self.head = -1    # the newest block the node announced
        self.live = False  # subscribed and answering
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"revocations-{address[:10]}", daemon=True)
        self._thread.start()

    # ----- what verifiers ask ------------------------------------------------

    def lookup(self, fingerprint: bytes) -> int | None:
        """The block through which `fingerprint` is known not to be revoked, or
        None: ask the contract (the view is behind, down, or holds it revoked)."""
        block = self.block
        if not self.live or block < 0 or block < self.head or fingerprint in self.revoked:
            return None
        return block

    def revoked_at(self, fingerprint: bytes) -> int | None:
        """The block in which the view saw `fingerprint` revoked, or None."""
        return self.revoked.get(fingerprint)

    def wait_current(self, timeout: float = 10.0) -> bool:
        """Until the view has read through the announced head (tests, start-up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.live and 0 <= self.head <= self.block:
                return True
            time.sleep(0.01)
        return False

    def stop(self) -> None:
        self._stopped.set()

    # ----- the follower ------------------------------------------------------

    def _catch_up(self, head: int) -> None:
        """Read the logs of the blocks after `self.block` up to `head`."""
        with self._lock:
            if head <= self.block:  # the same height again, or lower: a reorganisation
                start = max(0, head - REORG_DEPTH)
                self.block = start - 1  # behind (ask the contract) until the blocks are read again
            else:
                start = self.block + 1
            logs = self.reader.rpc("eth_getLogs", [{"address": self.address, "fromBlock": hex(start),
                                                   "toBlock": hex(head), "topics": [REVOKED_TOPIC]}]) or []
            for entry in logs:
                if not entry.get("removed"):
                    self.revoked.setdefault(bytes.fromhex(entry["topics"][1][2:]), int(entry["blockNumber"], 16))
            self.block = head

    def _run(self) -> None:
        from websockets.sync.client import connect

        url = websocket_url(self.reader.rpc_url)
        if url is None:
            return
        while not self._stopped.is_set():
            try:
                with connect(url, open_timeout=5, close_timeout=1, max_size=2**22, ping_interval=None) as ws:
                    ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe",
                                        "params": ["newHeads"]}))
                    reply = json.loads(ws.recv(timeout=5))
                    if "result" not in reply:
                        log.info("the node at %s offers no newHeads subscription; revocation is asked per "
                                 "verification", self.reader.public_url)
                        return
                    self.head = int(self.reader.rpc("eth_blockNumber", []), 16)
                    self._catch_up(self.head)
                    self.live = True
                    pong, pinged = None, time.monotonic()
                    while not self._stopped.is_set():
                        if time.monotonic() - pinged >= PING_SECONDS:
                            if pong is not None and not pong.is_set():
                                self.live = False  # now, not after the close handshake's timeout
                                raise TimeoutError(f"no pong from the node within {PING_SECONDS} s")
                            pong, pinged = ws.ping(os.urandom(8)), time.monotonic()
                        try:
                            message = json.loads(ws.recv(timeout=min(1.0, PING_SECONDS)))
                        except TimeoutError:
                            continue
                        number = message.get("params", {}).get("result", {}).get("number")
                        if number is None:
                            continue
                        head = int(number, 16)
                        self.head = head  # behind from now until its logs are read
                        self._catch_up(head)
            except Exception as exc:  # noqa: BLE001 - down or unreachable: ask the contract meanwhile
                log.debug("revocation feed for %s: %s", self.address, exc)
            self.live = False
            self._stopped.wait(RETRY_SECONDS)
