"""A read-only view of CredentialRegistry contracts, for verifiers.

A verifier has only an RPC URL and the credential: no issuer database, no keys,
no recorded deployment. `ChainReader(rpc_url)` asks the node its chain id and
reads whichever registry address a credential states (`reader.registry(addr)`),
so a credential names where its proof lives and the verifier checks it there.

Why raw JSON-RPC on http.client instead of web3's contract objects (or
requests): the verifier's hot path is one `eth_call` per verification
(revocation is never cached), and web3's middleware and ABI machinery plus
requests' adapters cost over a millisecond a call, a third of the budget for
300 verifications a second on two cores. One keep-alive connection per
thread; the three calls are encoded with eth_abi, as web3 itself does.

Caching follows what can change: an anchored root's record and an issuer's
authorisation at a block already mined never change (the contract has no way to
alter them), so they are kept; a root not found yet, and revocation, are asked
every time. The chain id is re-read every few seconds, in case the URL is
re-pointed at another node.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from eth_abi import decode, encode

from credentials.canonical import keccak256
from credentials.chain import AnchorRecord, ChainError, ChainUnreachable, RevocationRecord
from credentials.document import to_checksum_address as checksum


def _selector(signature: str) -> bytes:
    return keccak256(signature.encode())[:4]


_ANCHOR_OF = _selector("anchorOf(bytes32)")
_REVOCATION_OF = _selector("revocationOf(bytes32)")
_WAS_AUTHORIZED_AT = _selector("wasAuthorizedAt(address,uint256)")
CHAIN_ID_TTL = 5.0
CACHE_SIZE = 100_000


NO_ADDRESS = "0x0000000000000000000000000000000000000000"


@dataclass(frozen=True)
class ViewedRevocation(RevocationRecord):
    """A revocation answer from the event-fed view: true as of `as_of_block`,
    the newest block the node had announced."""

    as_of_block: int | None = None


class NotARegistry(ChainError):
    """The stated address holds no CredentialRegistry on this chain."""


@dataclass(frozen=True)
class CodeInfo:
    present: bool
    is_registry: bool


def known_registry_code_hashes() -> frozenset[bytes]:
    """keccak256 of the runtime code of the registry versions this verifier knows."""
    from contracts import load_artifact

    code = load_artifact()["deployedBytecode"]
    return frozenset({keccak256(bytes.fromhex(code.removeprefix("0x")))})


class _Lru:
    """A small thread-safe LRU for facts that never change once true."""

    def __init__(self, size: int = CACHE_SIZE):
        self.size = size
        self.data: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            value = self.data.get(key)
            if value is not None:
                self.data.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self.lock:
            self.data[key] = value
            self.data.move_to_end(key)
            while len(self.data) > self.size:
                self.data.popitem(last=False)


class ChainReader:
    """JSON-RPC reads against one node; safe to share between threads."""

    def __init__(self, rpc_url: str, timeout: float = 10.0, finality_depth: int = 0,
                 follow_revocations: bool = False):
        self.rpc_url = rpc_url
        parts = urlsplit(rpc_url)
        self._host, self._port, self._https = parts.hostname or "127.0.0.1", parts.port, parts.scheme == "https"
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": "application/json"}
        if parts.username:
            token = base64.b64encode(f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        # What messages show, on public pages too: never a key in the path, query or user part.
        self.public_url = f"{parts.scheme}://{self._host}{f':{parts.port}' if parts.port else ''}" + \
            ("/…" if parts.path.strip("/") or parts.query else "")
        self.timeout = timeout
        # On a chain that can reorganise, a record is only final `finality_depth`
        # blocks deep (ATTEST_CONFIRMATIONS); before that it is read, not kept.
        self.finality_depth = finality_depth
        self._head: tuple[int, float] | None = None
        self._local = threading.local()
        self._chain_id: tuple[int, float] | None = None
        self._facts = _Lru()
        self._registry_hashes = known_registry_code_hashes()
        # With follow_revocations (a long-lived verifier: the web workers), each
        # registry's revocations are followed from its events (credentials.revocations).
        self.follow_revocations = follow_revocations
        self._feeds: dict = {}
        self._feeds_lock = threading.Lock()

    def revocation_feed(self, address: str):
        """The event-fed revocation view of registry `address`, started on first use (None when off)."""
        if not self.follow_revocations:
            return None
        feed = self._feeds.get(address)
        if feed is None:
            from credentials.revocations import RevocationFeed

            with self._feeds_lock:
                feed = self._feeds.get(address)
                if feed is None:
                    feed = self._feeds[address] = RevocationFeed(self, address)
        return feed

    def close(self) -> None:
        """Stop following revocations."""
        for feed in list(self._feeds.values()):
            feed.stop()

    # ----- transport -------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = self._local.conn = kind(self._host, self._port, timeout=self.timeout)
        return conn

    def _post(self, body: bytes) -> bytes:
        """One POST on this thread's keep-alive connection; one retry on a fresh
        connection, since a node may close an idle one at any time."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request("POST", self._path, body, self._headers)
                response = conn.getresponse()
                data = response.read()
                if response.status != 200:
                    raise http.client.HTTPException(f"HTTP {response.status}")
                return data
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def rpc(self, method: str, params: list):
        """One JSON-RPC call; ChainUnreachable (naming the URL) on any transport failure."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
        try:
            reply = json.loads(self._post(body))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise ChainUnreachable(f"cannot reach the chain at {self.public_url} ({exc.__class__.__name__})") from exc
        if not isinstance(reply, dict):
            raise ChainError(f"the node at {self.public_url} answered {method} with something that is not JSON-RPC")
        if "error" in reply:
            message = reply["error"].get("message", "error") if isinstance(reply["error"], dict) else reply["error"]
            raise ChainError(f"the node at {self.public_url} answered {method} with an error: {message}")
        return reply.get("result")

    def call(self, to: str, data: bytes) -> bytes:
        result = self.rpc("eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"])
        return bytes.fromhex((result or "0x")[2:])

    # ----- chain facts -------------------------------------------------------

    def chain_id(self) -> int:
        cached = self._chain_id
        if cached is not None and time.monotonic() - cached[1] < CHAIN_ID_TTL:
            return cached[0]
        value = int(self.rpc("eth_chainId", []), 16)
        self._chain_id = (value, time.monotonic())
        return value

    def is_final(self, block_number: int) -> bool:
        """Is `block_number` deep enough that what happened in it cannot change?"""
        if self.finality_depth <= 0:
            return True
        cached = self._head
        if cached is None or time.monotonic() - cached[1] > 1.0:
            cached = self._head = (int(self.rpc("eth_blockNumber", []), 16), time.monotonic())
        return cached[0] - block_number >= self.finality_depth

    def code_info(self, address: str) -> CodeInfo:
        key = ("code", self.chain_id(), address)
        cached = self._facts.get(key)
        if cached is not None:
            return cached
        code = bytes.fromhex((self.rpc("eth_getCode", [address, "latest"]) or "0x")[2:])
        info = CodeInfo(present=bool(code), is_registry=keccak256(code) in self._registry_hashes)
        if info.present:  # code, once deployed, stays (no selfdestruct in the registry)
            self._facts.put(key, info)
        return info

    def registry(self, address: str) -> RegistryView:
        return RegistryView(self, checksum(address))


class RegistryView:
    """The three reads a verifier needs from one registry contract."""

    def __init__(self, reader: ChainReader, address: str):
        self.reader = reader
        self.address = address

    def require_registry(self) -> None:
        """NotARegistry unless a CredentialRegistry this verifier knows lives here."""
        info = self.reader.code_info(self.address)
        chain = self.reader.chain_id()
        if not info.present:
            raise NotARegistry(f"there is no contract at {self.address} on chain {chain}")
        if not info.is_registry:
            raise NotARegistry(f"the contract at {self.address} on chain {chain} is not a CredentialRegistry "
                               "(its code differs from contracts/CredentialRegistry.json)")

    def _call(self, selector: bytes, types: list[str], args: list, out: list[str]) -> tuple:
        raw = self.reader.call(self.address, selector + encode(types, args))
        try:
            return decode(out, raw)
        except Exception as exc:  # noqa: BLE001 - eth_abi raises several unrelated types
            raise NotARegistry(f"the contract at {self.address} did not answer as a CredentialRegistry") from exc

    def anchor_of(self, root: bytes) -> AnchorRecord | None:
        key = ("anchor", self.reader.chain_id(), self.address, root)
        cached = self.reader._facts.get(key)
        if cached is not None:
            return cached
        issuer, ts, block, count = self._call(_ANCHOR_OF, ["bytes32"], [root],
                                              ["address", "uint256", "uint256", "uint256"])
        if int(issuer, 16) == 0:
            return None  # not anchored (yet): ask again next time
        record = AnchorRecord("0x" + root.hex(), checksum(issuer), ts, block, count)
        if self.reader.is_final(block):
            self.reader._facts.put(key, record)
        return record

    def was_authorized_at(self, address: str, block_number: int) -> bool:
        key = ("authorized", self.reader.chain_id(), self.address, address, block_number)
        cached = self.reader._facts.get(key)
        if cached is not None:
            return cached
        (answer,) = self._call(_WAS_AUTHORIZED_AT, ["address", "uint256"], [address, block_number], ["bool"])
        # A mined block's authorisation never changes: (de)authorising acts from the current block on.
        if self.reader.is_final(block_number):
            self.reader._facts.put(key, bool(answer))
        return bool(answer)

    def revocation_of(self, fingerprint: bytes) -> RevocationRecord:
        """Revoked? From the event-fed view when it is current (its answer names
        the block it holds as of), else from the contract, asked now."""
        feed = self.reader.revocation_feed(self.address)
        if feed is not None:
            block = feed.lookup(fingerprint)
            if block is not None:
                return ViewedRevocation(False, 0, "", NO_ADDRESS, as_of_block=block)
        # A revocation the view saw in a final block is permanent: its record, once read, is kept.
        seen = feed.revoked_at(fingerprint) if feed is not None else None
        if seen is not None:
            key = ("revocation", self.reader.chain_id(), self.address, fingerprint)
            cached = self.reader._facts.get(key)
            if cached is not None:
                return cached
        revoked, ts, reason, revoker = self._call(_REVOCATION_OF, ["bytes32"], [fingerprint],
                                                  ["bool", "uint256", "string", "address"])
        record = RevocationRecord(bool(revoked), ts, reason, checksum(revoker))
        if record.revoked and seen is not None and self.reader.is_final(seen):
            self.reader._facts.put(key, record)
        return record
