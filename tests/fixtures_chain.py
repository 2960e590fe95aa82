"""Real chains for the tests: Anvil (the npm package's binary) and Ganache,
each started on 127.0.0.1 and a free port, and stopped by the fixture."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from credentials.chain import open_registry
from credentials.node import ANVIL_BINARY, GANACHE_BINARY, free_port, wait_for_rpc
from kernel.settings import Settings


class NodeProcess:
    def __init__(self, cmd: list[str], url: str, log: Path):
        self.url = url
        self._log = open(log, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for_rpc(url, self.proc, timeout=60)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


def start_anvil(log_dir: Path, *extra: str) -> NodeProcess:
    port = free_port()
    cmd = [str(ANVIL_BINARY), "--host", "127.0.0.1", "--port", str(port), *extra]
    return NodeProcess(cmd, f"http://127.0.0.1:{port}", log_dir / f"anvil-{port}.log")


def start_ganache(log_dir: Path) -> NodeProcess:
    port = free_port()
    cmd = [str(GANACHE_BINARY), "--server.host", "127.0.0.1", "--server.port", str(port),
           "--chain.chainId", "1337", "--chain.hardfork", "shanghai", "--logging.quiet",
           "--wallet.totalAccounts", "3", "--wallet.defaultBalance", "100000"]
    return NodeProcess(cmd, f"http://127.0.0.1:{port}", log_dir / f"ganache-{port}.log")


@pytest.fixture(scope="session")
def anvil_url(tmp_path_factory):
    node = start_anvil(tmp_path_factory.mktemp("anvil"))
    yield node.url
    node.stop()


@pytest.fixture(scope="session")
def ganache_url(tmp_path_factory):
    node = start_ganache(tmp_path_factory.mktemp("ganache"))
    yield node.url
    node.stop()


@pytest.fixture(params=["anvil", pytest.param("ganache", marks=pytest.mark.ganache)])
def evm_url(request):
    """The same test on both chains."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def chain_settings(tmp_path, anvil_url) -> Settings:
    """A fresh data directory pointed at the session's Anvil node."""
    return Settings.from_env(data_dir=tmp_path / "data", rpc_url=anvil_url)


@pytest.fixture
def registry(chain_settings):
    """A freshly deployed registry with a fresh issuer key, on Anvil."""
    with open_registry(chain_settings) as reg:
        yield reg


@pytest.fixture
def any_registry(tmp_path, evm_url):
    """A freshly deployed registry on Anvil and on Ganache."""
    settings = Settings.from_env(data_dir=tmp_path / "data", rpc_url=evm_url)
    with open_registry(settings) as reg:
        yield reg


@pytest.fixture(scope="session", autouse=True)
def no_node_left_behind(tmp_path_factory):
    """After the whole session, no chain process started under the test
    temp dir (embedded nodes included) may still be running."""
    base = str(tmp_path_factory.getbasetemp())
    yield
    leftovers = []
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if base in cmdline and ("anvil" in cmdline or "ganache" in cmdline):
            leftovers.append(f"{pid_dir.name}: {cmdline[:200]}")
    assert not leftovers, "chain processes left running:\n" + "\n".join(leftovers)
