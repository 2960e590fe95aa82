"""The embedded chain under crashes, with real processes and real signals.

- A power cut (the server *and* its Anvil node killed with -9) right after a
  batch is reported issued: after a restart every credential of it verifies.
  Anvil's own periodic save is put off for an hour here, so the only thing
  that can keep the batch is our durable snapshot (without it the restarted
  node has no registry at all).
- A chain that lost its last moments (its state restored from an older copy):
  at the next start the lost batch is anchored again, the lost revocation sent
  again, and the registrar's own list says so in the audit log.
- The node killed under a running server: it is started again on the same
  port; meanwhile a verifier hears "could not check", never "invalid".
- The server killed with -9 leaves an orphaned node; the next server takes it
  over, and stopping that server stops it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from credentials.node import free_port, pid_alive, processes_using, state_block
from kernel.settings import ROOT
from tests.servers import FlaskServe

pytestmark = pytest.mark.slow
FLASK = ROOT / ".venv" / "bin" / "flask"
CSV = ROOT / "tests" / "data" / "issue_sample.csv"
DURABLE = "anvil-state.durable.json"


def env_for(data_dir: Path) -> dict:
    # The test's database stays (on PostgreSQL, ATTEST_DATABASE_URL; see tests/fixtures_databases.py).
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTEST_") or k == "ATTEST_DATABASE_URL"}
    # Anvil's own state file only on SIGTERM: a -9 keeps nothing but what we saved.
    env.update(ATTEST_DATA_DIR=str(data_dir), ATTEST_ANVIL_STATE_INTERVAL="3600")
    return env


class Server(FlaskServe):
    """`flask --app app serve` on a data dir, Anvil's own saves put off (env_for)."""

    def __init__(self, data_dir: Path, log: Path):
        super().__init__(env_for(data_dir), data_dir, log, timeout=90)

    def verify(self, credential: Path) -> tuple[int, dict]:
        r = self.post_credential(credential.read_bytes())
        return r.status_code, r.json()


@pytest.fixture
def servers():
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()
    for server in started:  # a node left behind by a killed server
        try:
            pid = server.node()["pid"]
        except (OSError, ValueError, KeyError):
            continue
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    for server in started:  # and any node no record names
        for pid in processes_using(server.data_dir / "chain" / "anvil-state.json"):
            os.kill(pid, signal.SIGKILL)


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(FLASK), "--app", "app", *args], cwd=ROOT, env=env_for(data_dir),
                          capture_output=True, text=True, timeout=180)


def issue(data_dir: Path, out: Path) -> dict:
    done = cli(data_dir, "credentials", "issue", str(CSV), "--out", str(out), "--again")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def power_cut(server: Server) -> None:
    """Everything at once, with no chance to save: the server and its node, -9."""
    node_pid = server.node()["pid"]
    os.kill(node_pid, signal.SIGKILL)
    server.kill()
    while pid_alive(node_pid):
        time.sleep(0.02)


def genuine(status_and_result) -> bool:
    status, result = status_and_result
    return status == 200 and result["verdict"] == "genuine"


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"{what} within {timeout:.0f} s")


def test_a_power_cut_right_after_issuing_loses_nothing(tmp_path, servers):
    data = tmp_path / "data"
    servers.append(server := Server(data, tmp_path / "serve1.log"))
    batch = issue(data, tmp_path / "out")
    files = sorted((tmp_path / "out").glob("*.json"))
    assert len(files) == batch["count"] == 3
    power_cut(server)
    own, durable = state_block(data / "chain" / "anvil-state.json"), state_block(data / "chain" / DURABLE)
    assert own is None or own < durable, "Anvil saved the batch by itself: the test would prove nothing"

    servers.append(again := Server(data, tmp_path / "serve2.log"))
    for f in files:
        status, result = again.verify(f)
        assert status == 200 and result["verdict"] == "genuine", result["checks"]


def test_a_chain_that_lost_its_last_moments_is_caught_up_at_start(tmp_path, servers):
    data, chain = tmp_path / "data", tmp_path / "data" / "chain"
    servers.append(server := Server(data, tmp_path / "serve1.log"))
    first = issue(data, tmp_path / "first")
    shutil.copy(chain / DURABLE, tmp_path / "older-state.json")
    second = issue(data, tmp_path / "second")
    [revoked] = [p for p in (tmp_path / "first").glob("*.json")][:1]
    credential_id = json.loads(revoked.read_text())["id"]
    done = cli(data, "credentials", "revoke", credential_id, "--reason", "issued in error")
    assert done.returncode == 0, done.stderr
    power_cut(server)
    # The chain comes back as it was before the second batch and the revocation.
    shutil.copy(tmp_path / "older-state.json", chain / DURABLE)

    servers.append(again := Server(data, tmp_path / "serve2.log"))
    output = again.output()
    assert f"batch {second['batch']} was anchored but the chain has lost it" in output
    assert f"the revocation of {credential_id} was lost by the chain; sent again" in output
    assert first["batch"] not in output

    for f in (tmp_path / "second").glob("*.json"):  # the files handed out before the loss
        wait_for(lambda f=f: genuine(again.verify(f)), 60, f"{f.name} did not verify again")
    status, result = again.verify(revoked)
    assert status == 200 and {c["id"]: c["status"] for c in result["checks"]}["revocation"] == "failed"
    batches = {b["batch"]: b for b in json.loads(cli(data, "credentials", "batches").stdout)}
    assert batches[second["batch"]]["state"] == "anchored"
    assert batches[second["batch"]]["tx_hash"] != second["tx_hash"], "anchored again, in a new transaction"


def test_a_node_killed_under_the_server_is_started_again(tmp_path, servers):
    data = tmp_path / "data"
    servers.append(server := Server(data, tmp_path / "serve.log"))
    issue(data, tmp_path / "out")
    [credential] = sorted((tmp_path / "out").glob("*.json"))[:1]
    before = server.node()
    os.kill(before["pid"], signal.SIGKILL)
    answers = []
    while len(answers) < 200:
        answers.append(server.verify(credential))
        if genuine(answers[-1]) and len(answers) > 1:
            break
    verdicts = {(status, result["verdict"]) for status, result in answers}
    assert verdicts <= {(200, "genuine"), (503, "unavailable")}, verdicts
    assert genuine(answers[-1]), "the node was not started again"
    after = server.node()
    assert after["url"] == before["url"] and after["pid"] != before["pid"] and pid_alive(after["pid"])
    assert "starting it again from its state" in server.output()


def test_a_node_orphaned_by_a_killed_server_is_taken_over(tmp_path, servers):
    data = tmp_path / "data"
    servers.append(server := Server(data, tmp_path / "serve1.log"))
    issue(data, tmp_path / "out")
    orphan = server.node()
    server.kill()
    assert pid_alive(orphan["pid"]), "the node went down with the server"

    servers.append(again := Server(data, tmp_path / "serve2.log"))
    adopted = again.node()
    assert adopted["owner"] == again.proc.pid and not pid_alive(orphan["pid"])
    for f in (tmp_path / "out").glob("*.json"):
        assert genuine(again.verify(f))
    again.stop()
    deadline = time.monotonic() + 10
    while pid_alive(adopted["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(adopted["pid"]), "the adopted node outlived the server that took it over"


def test_a_node_left_by_a_server_killed_while_starting_it_is_stopped(tmp_path, servers):
    """The power-cut bench found it: a server killed after it launched its node
    but before it recorded it left an Anvil nobody knew, which went on saving its
    own state over the file the next node loaded (all roots gone at that start)."""
    data = tmp_path / "data"
    servers.append(first := Server(data, tmp_path / "serve1.log"))
    issue(data, tmp_path / "out")
    first.stop()
    state_file = data / "chain" / "anvil-state.json"
    assert processes_using(state_file) == []

    starting = subprocess.Popen([str(FLASK), "--app", "app", "serve", "--port", str(free_port())], cwd=ROOT,
                                env=env_for(data), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not (strays := processes_using(state_file)):
        assert time.monotonic() < deadline and starting.poll() is None, "the server did not launch its node"
        time.sleep(0.002)
    os.killpg(starting.pid, signal.SIGKILL)  # at once: before it could hear its node answer
    assert not (data / "chain" / "node.json").exists() or json.loads(
        (data / "chain" / "node.json").read_text())["pid"] in strays
    starting.wait()
    assert all(pid_alive(pid) for pid in strays), "the node went down with its server: nothing to prove"

    servers.append(again := Server(data, tmp_path / "serve2.log"))
    assert not any(pid_alive(pid) for pid in strays), "the stray node is still running"
    assert processes_using(state_file) == [again.node()["pid"]], "exactly one node on this data dir"
    for f in (tmp_path / "out").glob("*.json"):
        assert genuine(again.verify(f))
