"""The embedded development chain: a real Anvil binary from the npm package
`@foundry-rs/anvil-linux-amd64`, on 127.0.0.1 and a free port, its state kept in
ATTEST_DATA_DIR/chain/anvil-state.json.

Several processes may want the node at once (the web server and a CLI command,
say). The first one starts it and records it, and itself as its owner, in
`node.json`; the others find it there and reuse it without owning it. Only the
owner stops it. A node whose owner died (a server killed with -9) is taken
over by the next process: stopped (so it writes its state) and started again
as that process's own, so it is never left running for ever.

Durability. Anvil writes its state every second and on SIGTERM, so a power
cut loses up to the last second: a batch anchored just before it would be
reported anchored and then be gone. So after every transaction the chain
client calls `make_durable()`: the node's whole state (`anvil_dumpState`) is
written to `anvil-state.durable.json` atomically (temporary file, fsync,
rename) before the transaction is reported. At start the newer of the two
files (by block number; a damaged one is never chosen) is the one loaded.

Supervision. The owner watches its node; one that dies under it is started
again from its state on the same port, so the server goes on serving.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import requests

from kernel.locks import file_lock
from kernel.processes import pid_alive
from kernel.settings import ROOT

ANVIL_BINARY = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
GANACHE_BINARY = ROOT / "node_modules" / ".bin" / "ganache"
DEV_CHAIN_ID = 31337
log = logging.getLogger(__name__)


class NodeError(RuntimeError):
    """The embedded node could not be started; the message says why and what to do."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rpc_chain_id(url: str, timeout: float = 1.0) -> int | None:
    """The chain id the node at `url` answers with, or None if it does not answer."""
    try:
        r = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                          timeout=timeout)
        return int(r.json()["result"], 16)
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return None


def wait_for_rpc(url: str, proc: subprocess.Popen | None = None, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chain_id = rpc_chain_id(url, timeout=0.5)
        if chain_id is not None:
            return chain_id
        if proc is not None and proc.poll() is not None:
            raise NodeError(f"the node exited with code {proc.returncode} before answering at {url}")
        time.sleep(0.05)
    raise NodeError(f"the node did not answer at {url} within {timeout:.0f} s")


def processes_using(state_file: Path) -> list[int]:
    """Pids of the Anvil processes started with `--state <state_file>` (Linux /proc)."""
    wanted = str(state_file).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a == b"--state" and i + 1 < len(args) and args[i + 1] == wanted for i, a in enumerate(args)):
            found.append(int(entry.name))
    return found


def state_block(path: Path) -> int | None:
    """The block number a state file holds, or None when it is missing or damaged."""
    try:
        return int(str(json.loads(path.read_text())["block"]["number"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` by `data` so that a crash leaves the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def dump_state(url: str, path: Path, timeout: float = 30.0) -> int:
    """Write the node's whole state to `path` (durably); returns its block number."""
    r = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "anvil_dumpState", "params": []},
                      timeout=timeout)
    result = r.json().get("result")
    if not isinstance(result, str) or not result.startswith("0x"):
        raise NodeError(f"the node at {url} did not dump its state: {r.text[:200]}")
    raw = gzip.decompress(bytes.fromhex(result[2:]))
    block = int(str(json.loads(raw)["block"]["number"]), 0)
    with file_lock(path.with_name(path.name + ".lock")):
        if (state_block(path) or -1) <= block:
            write_atomically(path, raw)
    return block


def terminate(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM (Anvil saves its state on it), then SIGKILL if the process has
    not exited within `timeout` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class EmbeddedAnvil:
    """Start (or find) the data directory's Anvil node and stop it when owned."""

    def __init__(self, chain_dir: Path, state_interval: int = 1, binary: Path = ANVIL_BINARY,
                 supervise: bool = True):
        self.chain_dir = chain_dir
        self.state_file = chain_dir / "anvil-state.json"
        self.durable_file = chain_dir / "anvil-state.durable.json"
        self.record_file = chain_dir / "node.json"
        self.log_file = chain_dir / "anvil.log"
        self.state_interval = state_interval
        self.binary = binary
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self.port: int | None = None
        self.restarts = 0
        self._supervise = supervise
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def owned(self) -> bool:
        return self.proc is not None

    def start(self) -> str:
        if not self.binary.exists():
            raise NodeError(
                f"the Anvil binary is missing ({self.binary}): "
                "run `make setup` (it runs npm ci) first"
            )
        with file_lock(self.chain_dir / "node.lock"):
            running = self._running_record()
            if running:
                self.url = running
                return running
            self._stop_strays()
            self._launch(free_port())
            if self._supervise:
                self._watcher = threading.Thread(target=self._watch, name="attest-anvil-watch", daemon=True)
                self._watcher.start()
            return self.url

    def _stop_strays(self) -> None:
        """Kill every Anvil still running on this data dir's state file that no
        record names (its starter was killed before it wrote node.json). Left
        alone, it would go on saving its own state over the file the new node
        loads. SIGKILL, not SIGTERM: on SIGTERM it would write that state once more."""
        for pid in processes_using(self.state_file):
            log.warning("stopping an embedded chain left running without a record (pid %s)", pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 10
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)

    def _choose_state(self) -> None:
        """Load the newer of Anvil's own file and our durable snapshot."""
        own, durable = state_block(self.state_file), state_block(self.durable_file)
        if durable is not None and (own is None or durable > own):
            log.warning("loading the chain's durable snapshot (block %s; Anvil's own file: %s)", durable, own)
            write_atomically(self.state_file, self.durable_file.read_bytes())

    def _launch(self, port: int) -> None:
        self._choose_state()
        url = f"http://127.0.0.1:{port}"
        cmd = [
            str(self.binary), "--host", "127.0.0.1", "--port", str(port),
            "--chain-id", str(DEV_CHAIN_ID),
            "--state", str(self.state_file), "--state-interval", str(self.state_interval),
        ]
        log_file = open(self.log_file, "ab")
        # A new session: Ctrl-C in the terminal reaches us, and we stop the
        # node ourselves, so that it always gets to write its state.
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        log_file.close()
        self.proc = proc
        # Recorded at once, before it answers: a server killed while its node
        # starts leaves a node the next one finds and takes over.
        self.record_file.write_text(json.dumps({"pid": proc.pid, "url": url, "owner": os.getpid()}))
        try:
            wait_for_rpc(url, proc)
        except NodeError:
            self.stop()
            raise
        self.url, self.port = url, port

    def _watch(self) -> None:
        """Start the node again, from its state, on the same port, if it dies under us."""
        while not self._stopping.wait(0.5):
            with self._lock:
                proc = self.proc
                if proc is None or proc.poll() is None:
                    continue
                log.error("the embedded chain stopped (exit %s); starting it again from its state", proc.returncode)
                try:
                    self._launch(self.port)
                    self.restarts += 1
                except (NodeError, OSError) as exc:
                    log.error("the embedded chain could not be started again: %s", exc)
                    time.sleep(2.0)

    def make_durable(self) -> int | None:
        """Write the node's state to the durable snapshot now (see the module doc)."""
        url = self.url
        return dump_state(url, self.durable_file) if url else None

    def _running_record(self) -> str | None:
        try:
            rec = json.loads(self.record_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        node_pid, owner = rec.get("pid", -1), rec.get("owner")
        if pid_alive(node_pid) and rpc_chain_id(rec["url"]) is not None:
            if owner is None or pid_alive(owner):
                return rec["url"]
            # Its owner died (killed with -9): stop the orphan, saving its state, and
            # start it again as ours, so someone owns it and stops it.
            log.warning("taking over the embedded chain of a process that is gone (pid %s)", owner)
            try:
                dump_state(rec["url"], self.durable_file)
            except (NodeError, requests.RequestException, ValueError, OSError):
                pass
            _terminate(node_pid)
        self.record_file.unlink(missing_ok=True)
        return None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the node if this object started it; Anvil writes its state on SIGTERM."""
        self._stopping.set()
        with self._lock:
            proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            rec = json.loads(self.record_file.read_text())
            if rec.get("pid") == proc.pid:
                self.record_file.unlink(missing_ok=True)
        except (FileNotFoundError, ValueError):
            pass
        terminate(proc, timeout)

    def __enter__(self) -> EmbeddedAnvil:
        self.start()
        return self



    def __exit__(self, *exc) -> None:
        self.stop()


def _terminate(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM a process that is not our child, and wait for it to be gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
