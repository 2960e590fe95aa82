"""The embedded development chain: a real Anvil binary from the npm package
`@foundry-rs/anvil-linux-amd64`, on 127.0.0.1 and a free port, its state kept in
ATTEST_DATA_DIR/chain/anvil-state.json.

Several processes may want the node at once (the web server and a CLI command,
say). The first one starts it and records it in `node.json`; the others find it
there and reuse it without owning it. Only the owner stops it.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import requests

from kernel.settings import ROOT

ANVIL_BINARY = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
GANACHE_BINARY = ROOT / "node_modules" / ".bin" / "ganache"
DEV_CHAIN_ID = 31337


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


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _locked(path: Path):
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class EmbeddedAnvil:
    """Start (or find) the data directory's Anvil node and stop it when owned."""

    def __init__(self, chain_dir: Path, state_interval: int = 1, binary: Path = ANVIL_BINARY):
        self.chain_dir = chain_dir
        self.state_file = chain_dir / "anvil-state.json"
        self.record_file = chain_dir / "node.json"
        self.log_file = chain_dir / "anvil.log"
        self.state_interval = state_interval
        self.binary = binary
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None

    @property
    def owned(self) -> bool:
        return self.proc is not None

    def start(self) -> str:
        if not self.binary.exists():
            raise NodeError(
                f"the Anvil binary is missing ({self.binary}): "
                "run `make setup` (it runs npm ci) first"
            )
        with _locked(self.chain_dir / "node.lock"):
            running = self._running_record()
            if running:
                self.url = running
                return running
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            cmd = [
                str(self.binary), "--host", "127.0.0.1", "--port", str(port),
                "--chain-id", str(DEV_CHAIN_ID),
                "--state", str(self.state_file), "--state-interval", str(self.state_interval),
            ]
            log = open(self.log_file, "ab")
            # A new session: Ctrl-C in the terminal reaches us, and we stop the
            # node ourselves, so that it always gets to write its state.
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
            log.close()
            try:
                wait_for_rpc(url, self.proc)
            except NodeError:
                self.stop()
                raise
            self.url = url
            self.record_file.write_text(json.dumps({"pid": self.proc.pid, "url": url}))
            return url

    def _running_record(self) -> str | None:
        try:
            rec = json.loads(self.record_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        if pid_alive(rec.get("pid", -1)) and rpc_chain_id(rec["url"]) is not None:
            return rec["url"]
        self.record_file.unlink(missing_ok=True)
        return None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the node if this object started it; Anvil writes its state on SIGTERM."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            rec = json.loads(self.record_file.read_text())
            if rec.get("pid") == proc.pid:
                self.record_file.unlink(missing_ok=True)
        except (FileNotFoundError, ValueError):
            pass
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> EmbeddedAnvil:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
