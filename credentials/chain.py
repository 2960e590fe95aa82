"""The chain client: connect to the registry, deploy it once, send transactions.

`open_registry(settings)` is the one entry point: it connects to ATTEST_RPC_URL
or starts the embedded Anvil, makes sure the registry is deployed (recording its
address and chain id under ATTEST_DATA_DIR) and that the issuer key is funded
and authorised, and returns a `Registry`. Close it (or use it as a context
manager) to stop a node it started.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3Exception

from contracts import load_artifact
from credentials.keys import load_or_create_key
from credentials.node import EmbeddedAnvil, NodeError
from kernel.settings import Settings

ZERO_ADDRESS = "0x" + "00" * 20
# What a dev chain's funded account hands each of our keys when they run low.
DEV_FUNDING_WEI = Web3.to_wei(100, "ether")
LOW_BALANCE_WEI = Web3.to_wei(1, "ether")


class ChainError(RuntimeError):
    """Something about the chain a person must act on; the message says what."""


class ChainUnreachable(ChainError):
    pass


class RegistryMissing(ChainError):
    """The recorded registry is not (or no longer) on the chain: a reset chain."""


class TransactionReverted(ChainError):
    pass


@dataclass(frozen=True)
class AnchorRecord:
    root: str
    issuer: str
    timestamp: int
    block_number: int
    count: int


@dataclass(frozen=True)
class RevocationRecord:
    revoked: bool
    timestamp: int
    reason: str
    revoker: str


@dataclass(frozen=True)
class TxResult:
    tx_hash: str
    block_number: int
    gas_used: int


def _b32(value: bytes | str) -> bytes:
    if isinstance(value, str):
        value = bytes.fromhex(value.removeprefix("0x"))
    if len(value) != 32:
        raise ValueError(f"expected 32 bytes, got {len(value)}")
    return value


def revert_reason(exc: Exception) -> str:
    """The contract's revert message from a web3 error (Anvil or Ganache style)."""
    text = str(exc.args[0] if exc.args else exc)
    if isinstance(exc.args[0] if exc.args else None, dict):
        text = exc.args[0].get("message", text)
    for marker in ("execution reverted: ", "revert "):
        if marker in text:
            text = text.split(marker, 1)[1].strip().strip("'\"")
            # Ganache nests its own "VM Exception ...: revert <reason>" inside web3's wording.
            if not text.startswith("VM Exception"):
                return text
    return text


class NonceManager:
    """One sender per key: a thread lock within the process and, given one, a
    cross-process lock (kernel.locks: a file lock, or a PostgreSQL advisory
    lock across machines) around "read the nonce, sign, send". Inside the lock
    the nonce is the chain's pending count, which already counts every earlier
    send of every process, so two senders never pick the same nonce."""

    def __init__(self, w3: Web3, address: str, cross_process=None):
        self.w3 = w3
        self.address = address
        self.thread_lock = threading.Lock()
        self.cross_process = cross_process  # a callable returning a context manager, or None

    @contextmanager
    def lock(self):
        with self.thread_lock:
            if self.cross_process is None:
                yield
            else:
                with self.cross_process():
                    yield

    def take(self) -> int:
        return self.w3.eth.get_transaction_count(self.address, "pending")

    def forget(self) -> None:
        """Nothing is cached between sends: the chain's count is read each time."""


class Registry:
    """A deployed CredentialRegistry and the keys that act on it."""

    def __init__(self, w3: Web3, address: str, issuer: LocalAccount, owner: LocalAccount | None,
                 rpc_url: str, node: EmbeddedAnvil | None = None, confirmations: int = 0,
                 deployed_block: int | None = None, send_lock=None):
        artifact = load_artifact()
        self.w3 = w3
        self.rpc_url = rpc_url
        self.address = Web3.to_checksum_address(address)
        self.contract = w3.eth.contract(address=self.address, abi=artifact["abi"])
        self.issuer = issuer
        self.owner = owner
        self.node = node
        self.deployed_block = deployed_block
        self.chain_id = w3.eth.chain_id
        self.transactor = Transactor(w3, self.chain_id, confirmations, send_lock,
                                     durable=node.make_durable if node is not None else None)

    # ----- life cycle --------------------------------------------------------

    def close(self) -> None:
        if self.node is not None:
            self.node.stop()
            self.node = None

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----- transactions ------------------------------------------------------

    @property
    def confirmations(self) -> int:
        return self.transactor.confirmations

    def _send(self, account: LocalAccount, fn, wait: bool = True) -> TxResult:
        """Send one contract call from `account` (see Transactor.send)."""
        return self.transactor.send(account, fn)

    def wait_confirmations(self, block_number: int, poll: float = 1.0, timeout: float = 600) -> None:
        self.transactor.wait_confirmations(block_number, poll, timeout)

    def anchor(self, root: bytes | str, count: int) -> TxResult:
        return self._send(self.issuer, self.contract.functions.anchor(_b32(root), count))

    def revoke(self, fingerprint: bytes | str, reason: str) -> TxResult:
        return self._send(self.issuer, self.contract.functions.revoke(_b32(fingerprint), reason))

    def authorize_issuer(self, address: str) -> TxResult:
        return self._send(self._owner(), self.contract.functions.authorizeIssuer(address))

    def deauthorize_issuer(self, address: str) -> TxResult:
        return self._send(self._owner(), self.contract.functions.deauthorizeIssuer(address))

    def _owner(self) -> LocalAccount:
        if self.owner is None:
            raise ChainError("this registry's owner key is not available here")
        return self.owner

    # ----- reads -------------------------------------------------------------

    def anchor_of(self, root: bytes | str) -> AnchorRecord | None:
        issuer, ts, block, count = self.contract.functions.anchorOf(_b32(root)).call()
        if int(issuer, 16) == 0:
            return None
        return AnchorRecord("0x" + _b32(root).hex(), issuer, ts, block, count)

    def revocation_of(self, fingerprint: bytes | str) -> RevocationRecord:
        revoked, ts, reason, revoker = self.contract.functions.revocationOf(_b32(fingerprint)).call()
        return RevocationRecord(revoked, ts, reason, revoker)

    def is_authorized(self, address: str) -> bool:
        return self.contract.functions.isAuthorized(address).call()

    def was_authorized_at(self, address: str, block_number: int) -> bool:
        return self.contract.functions.wasAuthorizedAt(address, block_number).call()

    def verify_proof(self, leaf: bytes | str, proof: list, root: bytes | str) -> bool:
        return self.contract.functions.verify(_b32(leaf), [_b32(p) for p in proof], _b32(root)).call()

    def status(self) -> dict:
        return {
            "rpc_url": self.rpc_url,
            "chain_id": self.chain_id,
            "registry": self.address,
            "block": self.w3.eth.block_number,
            "embedded": self.node is not None or self.rpc_url_is_embedded,
            "deployed_block": self.deployed_block,
            "issuer": self.issuer.address,
            "issuer_authorized": self.is_authorized(self.issuer.address),
            "owner": self.contract.functions.owner().call(),
        }

    rpc_url_is_embedded = False


class Transactor:
    """Signs and sends contract calls on one chain: one NonceManager per key,
    receipts awaited, then the configured confirmations. Every contract client
    (the CredentialRegistry's, the AccreditationRegistry's) sends through one."""

    def __init__(self, w3: Web3, chain_id: int, confirmations: int = 0, send_lock=None, durable=None):
        self.w3 = w3
        self.chain_id = chain_id
        self.confirmations = confirmations
        # On the embedded node, a mined transaction counts only once the node's
        # state is on disk (credentials.node: a power cut must not undo it).
        self.durable = durable
        # send_lock(address) -> context manager held across processes while sending.
        self.send_lock = send_lock
        self._nonces: dict[str, NonceManager] = {}
        self._lock = threading.Lock()

    def _manager(self, address: str) -> NonceManager:
        with self._lock:
            if address not in self._nonces:
                cross = (lambda: self.send_lock(address)) if self.send_lock is not None else None
                self._nonces[address] = NonceManager(self.w3, address, cross)
            return self._nonces[address]

    def send(self, account: LocalAccount, fn) -> TxResult:
        """Sign and send one contract call from `account`; wait for its receipt
        (and the configured confirmations). A revert raises TransactionReverted
        with the contract's own words, before anything is sent."""
        manager = self._manager(account.address)
        with manager.lock():
            try:
                tx = fn.build_transaction({"from": account.address, "nonce": manager.take(),
                                           "chainId": self.chain_id})
            except (ContractLogicError, Web3Exception, ValueError) as exc:
                manager.forget()
                raise TransactionReverted(revert_reason(exc)) from exc
            signed = account.sign_transaction(tx)
            try:
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except (Web3Exception, ValueError) as exc:
                manager.forget()
                raise ChainError(f"the node refused the transaction: {revert_reason(exc)}") from exc
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        if receipt["status"] != 1:
            raise TransactionReverted(f"transaction {tx_hash.to_0x_hex()} reverted")
        self.wait_confirmations(receipt["blockNumber"])
        return TxResult(tx_hash.to_0x_hex(), receipt["blockNumber"], receipt["gasUsed"])

    def wait_confirmations(self, block_number: int, poll: float = 1.0, timeout: float = 600) -> None:
        """Until `block_number` counts: confirmed on a real network, saved to disk on the embedded node."""
        if self.durable is not None:
            try:
                saved = self.durable()
            except Exception as exc:  # noqa: BLE001 - a node that cannot save is a node that may lose it
                raise ChainError(f"the embedded chain could not save its state ({exc}); the transaction in "
                                 f"block {block_number} does not count yet") from exc
            if saved is not None and saved < block_number:
                raise ChainError(f"the embedded chain saved block {saved}, not yet block {block_number}")
        if self.confirmations <= 0:
            return
        deadline = time.monotonic() + timeout
        while self.w3.eth.block_number < block_number + self.confirmations:
            if time.monotonic() > deadline:
                raise ChainError(f"block {block_number} did not reach {self.confirmations} confirmations")
            time.sleep(poll)


# ----- connecting and deploying ----------------------------------------------

def connect_web3(url: str, timeout: float = 30.0) -> Web3:
    """A connected Web3, or ChainUnreachable naming the URL."""
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}))
    try:
        _ = w3.eth.chain_id
    except Exception as exc:  # noqa: BLE001 - any failure here means "cannot reach it"
        reason = exc.__class__.__name__
        raise ChainUnreachable(
            f"cannot reach the chain at {url} ({reason}); check ATTEST_RPC_URL "
            "or unset it to use the embedded Anvil node"
        ) from exc
    return w3


def _send_plain(w3: Web3, account: LocalAccount, tx: dict) -> dict:
    tx = {"from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending"),
          "chainId": w3.eth.chain_id, **tx}
    if "gas" not in tx:
        tx["gas"] = w3.eth.estimate_gas(tx)
    if "maxFeePerGas" not in tx and "gasPrice" not in tx:
        base = w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0
        tx["maxPriorityFeePerGas"] = Web3.to_wei(1, "gwei")
        tx["maxFeePerGas"] = base * 2 + tx["maxPriorityFeePerGas"]
    signed = account.sign_transaction(tx)
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
    if receipt["status"] != 1:
        raise TransactionReverted("deployment transaction reverted")
    return receipt


def fund_from_dev_account(w3: Web3, address: str) -> bool:
    """Top up `address` from the node's first unlocked account (a dev chain's
    funded account). Returns False where the node has none (a real network)."""
    if w3.eth.get_balance(address) >= LOW_BALANCE_WEI:
        return True
    try:
        accounts = w3.eth.accounts
    except Web3Exception:
        return False
    for dev in accounts:
        if w3.eth.get_balance(dev) > DEV_FUNDING_WEI * 2:
            tx_hash = w3.eth.send_transaction({"from": dev, "to": address, "value": DEV_FUNDING_WEI})
            w3.eth.wait_for_transaction_receipt(tx_hash)
            return True
    return False


def deploy_contract(w3: Web3, deployer: LocalAccount, name: str = "CredentialRegistry") -> tuple[str, int]:
    """Deploy the committed artifact of contract `name` from `deployer` (its
    owner from then on); returns its address and the block it was deployed in."""
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = _send_plain(w3, deployer, {"data": factory.constructor().data_in_transaction})
    return receipt["contractAddress"], receipt["blockNumber"]


def deploy_registry(w3: Web3, owner: LocalAccount) -> tuple[str, int]:
    return deploy_contract(w3, owner, "CredentialRegistry")


class DeploymentRecord:
    """ATTEST_DATA_DIR/chain/deployments.json: chain id -> registry address."""

    def __init__(self, path: Path):
        self.path = path

    def read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def get(self, chain_id: int) -> dict | None:
        return self.read().get(str(chain_id))

    def put(self, chain_id: int, entry: dict | None) -> None:
        data = self.read()
        if entry is None:
            data.pop(str(chain_id), None)
        else:
            data[str(chain_id)] = entry
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.path)


def check_registry_code(w3: Web3, address: str, chain_id: int, record_path: Path) -> None:
    code = w3.eth.get_code(Web3.to_checksum_address(address))
    if len(code) == 0:
        raise RegistryMissing(
            f"the registry recorded at {address} on chain {chain_id} has no code there: "
            f"the chain was reset or its state lost. Credentials anchored in it cannot be "
            f"verified on this chain. To start afresh, run `flask --app app chain deploy --new` "
            f"(record: {record_path})"
        )
    if code.to_0x_hex() != load_artifact()["deployedBytecode"]:
        raise RegistryMissing(
            f"the contract at {address} on chain {chain_id} is not this version of "
            f"CredentialRegistry (its code differs from contracts/CredentialRegistry.json)"
        )


def chain_url(settings: Settings) -> tuple[str, EmbeddedAnvil | None]:
    """The node to talk to: ATTEST_RPC_URL, or the embedded Anvil (started, or
    found running), returned so the caller stops it when done."""
    if settings.rpc_url:
        return settings.rpc_url, None
    node = EmbeddedAnvil(settings.chain_dir, state_interval=settings.anvil_state_interval)
    try:
        return node.start(), node
    except NodeError as exc:
        raise ChainError(f"cannot start the embedded Anvil node: {exc}") from exc


def sender_lock(settings: Settings, chain_id: int):
    """One sender per key per chain for everyone sharing this installation's
    database (see kernel.locks): what keeps concurrent issuers' nonces apart."""
    from kernel.locks import cross_process_lock

    return lambda address: cross_process_lock(settings, f"attest-sender-{chain_id}-{address.lower()}")


def open_registry(settings: Settings, deploy: bool = True, new: bool = False) -> Registry:
    """Connect, deploy once, fund and authorise the issuer; see the module doc."""
    url, node = chain_url(settings)
    try:
        w3 = connect_web3(url)
        chain_id = w3.eth.chain_id
        owner = load_or_create_key(settings.keys_dir, "owner", settings.owner_key)
        issuer = load_or_create_key(settings.keys_dir, "issuer", settings.issuer_key)
        records = DeploymentRecord(settings.chain_dir / "deployments.json")
        entry = None if new else records.get(chain_id)
        fresh = False
        if entry is None:
            if not deploy:
                raise RegistryMissing(f"no registry is recorded for chain {chain_id}")
            for acct in (owner, issuer):
                if not fund_from_dev_account(w3, acct.address):
                    raise ChainError(
                        f"account {acct.address} has no funds on chain {chain_id} and the node "
                        "has no funded dev account: send it some ether first"
                    )
            address, block = deploy_registry(w3, owner)
            entry = {"registry": address, "deployed_block": block, "owner": owner.address}
            fresh = True
        else:
            check_registry_code(w3, entry["registry"], chain_id, records.path)
        registry = Registry(w3, entry["registry"], issuer, owner, url, node=node,
                            confirmations=settings.confirmations,
                            deployed_block=entry.get("deployed_block"), send_lock=sender_lock(settings, chain_id))
        registry.rpc_url_is_embedded = node is not None
        fund_from_dev_account(w3, issuer.address)
        if fresh:
            # Authorised once, at deployment; a later de-authorisation by the
            # owner is a decision this code must not undo on the next start.
            registry.authorize_issuer(issuer.address)
            records.put(chain_id, entry)
        return registry
    except BaseException:
        if node is not None:
            node.stop()
        raise
