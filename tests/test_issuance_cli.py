"""`flask --app app credentials issue|revoke|resume|list`, and the crash-and-resume
proof: a real `flask` process is killed between "pending committed" and
"anchored" (both crash points), and `credentials resume` anchors each batch
exactly once. Also: issuing never imports torch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from app import open_database
from credentials import storage
from credentials.chain import open_registry
from credentials.issuance import CRASH_ENV, ROOT_ANCHORED_TOPIC
from kernel.settings import ROOT, Settings
from tests.helpers_credentials import anchor_of

DATA = Path(__file__).parent / "data"
FLASK = ROOT / ".venv" / "bin" / "flask"


def flask(data_dir: Path, rpc_url: str, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    env.update(ATTEST_DATA_DIR=str(data_dir), ATTEST_RPC_URL=rpc_url)
    if crash_at:
        env[CRASH_ENV] = crash_at
    return subprocess.run([str(FLASK), "--app", "app", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180)


def test_issue_prints_one_json_object_and_writes_the_files(runner, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(args=["credentials", "issue", str(DATA / "issue_sample.csv"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert set(summary) == {"batch", "count", "merkle_root", "tx_hash", "gas_used"}
    assert summary["count"] == 3 and summary["gas_used"] > 0
    files = sorted(out.glob("*.json"))
    assert len(files) == 3
    assert all(anchor_of(json.loads(f.read_text()))["anchor"]["transactionHash"] == summary["tx_hash"]
               for f in files)

    twice = runner.invoke(args=["credentials", "issue", str(DATA / "issue_sample.csv"), "--out", str(out)])
    assert twice.exit_code == 1 and "issued already" in twice.stderr and summary["batch"] in twice.stderr

    listed = json.loads(runner.invoke(args=["credentials", "list", "--q", "turing"]).stdout)
    assert [c["recipient_name"] for c in listed] == ["Alan Turing"]
    revoked = runner.invoke(args=["credentials", "revoke", listed[0]["id"], "--reason", "issued in error"])
    assert revoked.exit_code == 0, revoked.output
    assert json.loads(revoked.stdout)["revoked"] is True
    listed = json.loads(runner.invoke(args=["credentials", "list", "--status", "revoked"]).stdout)
    assert [c["recipient_name"] for c in listed] == ["Alan Turing"]
    batches = json.loads(runner.invoke(args=["credentials", "batches"]).stdout)
    assert batches[0]["state"] == "anchored" and batches[0]["batch"] == summary["batch"]


def test_a_bad_row_stops_the_whole_batch(runner, app, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(args=["credentials", "issue", str(DATA / "issue_bad.csv"), "--out", str(out)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "row 3, column achievement_type" in result.stderr
    assert "row 3, column awarded_on" in result.stderr
    assert not out.exists()
    with app.extensions["attest.db"].session() as session:
        assert storage.list_batches(session) == []


def test_revoke_an_unknown_credential_fails_clearly(runner):
    result = runner.invoke(args=["credentials", "revoke", "urn:uuid:nope", "--reason", "x"])
    assert result.exit_code == 1 and "no credential" in result.stderr


def _state(data_dir: Path):
    # The installation's own database: its file under data_dir, or on PostgreSQL
    # the test's database (ATTEST_DATABASE_URL, as the subprocess saw it).
    database = open_database(Settings.from_env(data_dir=data_dir).sqlalchemy_url)
    with database.session() as session:
        [batch] = storage.list_batches(session)
        statuses = {r.status for r in storage.search_credentials(session, batch_id=batch.id, limit=1000)}
        return batch.as_dict(), statuses


@pytest.mark.parametrize("crash_at", ["after_pending", "after_anchor"])
def test_crash_between_pending_and_anchored_then_resume_anchors_exactly_once(tmp_path, anvil_url, crash_at):
    data_dir, out = tmp_path / "data", tmp_path / "out"
    crashed = flask(data_dir, anvil_url, "credentials", "issue", str(DATA / "issue_sample.csv"), "--out", str(out),
                    crash_at=crash_at)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert crashed.stdout == ""
    batch, statuses = _state(data_dir)
    assert batch["count"] == 3 and batch["merkle_root"] and statuses == {"pending"}
    assert batch["state"] in ("pending", "anchoring")

    retried = flask(data_dir, anvil_url, "credentials", "issue", str(DATA / "issue_sample.csv"), "--out", str(out))
    assert retried.returncode == 1 and "credentials resume" in retried.stderr, "a retry must not issue twice"

    with open_registry(Settings.from_env(data_dir=data_dir, rpc_url=anvil_url)) as registry:
        anchored_before = registry.anchor_of(batch["merkle_root"]) is not None
        assert anchored_before == (crash_at == "after_anchor")

        resumed = flask(data_dir, anvil_url, "credentials", "resume", "--out", str(out))
        assert resumed.returncode == 0, resumed.stderr
        report = json.loads(resumed.stdout)
        assert [r["batch"] for r in report["resumed"]] == [batch["batch"]] and report["still_pending"] == []

        again = flask(data_dir, anvil_url, "credentials", "resume")
        assert json.loads(again.stdout)["resumed"] == []

        events = registry.w3.eth.get_logs({"address": registry.address, "fromBlock": 0, "toBlock": "latest",
                                           "topics": [ROOT_ANCHORED_TOPIC, batch["merkle_root"]]})
        assert len(events) == 1, "the root was anchored exactly once"
        tx_hash = events[0]["transactionHash"].to_0x_hex()

    batch, statuses = _state(data_dir)
    assert batch["state"] == "anchored" and batch["tx_hash"] == tx_hash and statuses == {"active"}
    files = list(out.glob("*.json"))
    assert len(files) == 3
    assert {anchor_of(json.loads(f.read_text()))["anchor"]["transactionHash"] for f in files} == {tx_hash}



def test_killed_while_signing_then_resume_signs_it_once(tmp_path, anvil_url):
    """SIGKILL in the middle of signing: nothing signed is kept (one commit keeps
    everything), the batch waits with its job, and `resume` signs and anchors it."""
    data_dir, out = tmp_path / "data", tmp_path / "out"
    crashed = flask(data_dir, anvil_url, "credentials", "issue", str(DATA / "issue_sample.csv"), "--out", str(out),
                    crash_at="during_signing")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    batch, statuses = _state(data_dir)
    assert batch["state"] == "pending" and batch["merkle_root"] is None and statuses == set()

    resumed = flask(data_dir, anvil_url, "credentials", "resume", "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert [r["batch"] for r in json.loads(resumed.stdout)["resumed"]] == [batch["batch"]]
    batch, statuses = _state(data_dir)
    assert batch["state"] == "anchored" and batch["count"] == 3 and statuses == {"active"}
    assert len(list(out.glob("*.json"))) == 3

def test_issuing_does_not_import_torch(tmp_path, anvil_url):
    """The whole CLI issuing path, in a fresh interpreter: no torch, no model."""
    script = f"""
import json, sys
from app import create_app
app = create_app({{"data_dir": {str(tmp_path / 'data')!r}, "rpc_url": {anvil_url!r}}})
result = app.test_cli_runner().invoke(args=["credentials", "issue", {str(DATA / 'issue_sample.csv')!r},
                                            "--out", {str(tmp_path / 'out')!r}])
assert result.exit_code == 0, result.output
import credentials.issuance, credentials.csvimport, credentials.storage  # noqa
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "sentence_transformers", "transformers"))
print(json.dumps(heavy))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_large_batches_report_progress_on_stderr_only(runner, tmp_path):
    rows = ["recipient_name,recipient_email,achievement_name,achievement_type,description,awarded_on,valid_until,grade"]
    rows += [f"Student {i},s{i}@example.edu,Course {i % 7},Course,Completed.,2025-01-{1 + i % 28:02d},," for i in range(1200)]
    csv_path = tmp_path / "big.csv"
    csv_path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = runner.invoke(args=["credentials", "issue", str(csv_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["count"] == 1200
    assert "Signing credentials" in result.stderr and "1200/1200" in result.stderr

    exported = runner.invoke(args=["credentials", "export", json.loads(result.stdout)["batch"],
                                   "--out", str(tmp_path / "again")])
    assert exported.exit_code == 0, exported.output
    again = sorted(p.name for p in (tmp_path / "again").glob("*.json"))
    assert again == sorted(p.name for p in (tmp_path / "out").glob("*.json")) and len(again) == 1200
    some = again[0]
    assert (tmp_path / "again" / some).read_bytes() == (tmp_path / "out" / some).read_bytes()


def test_issue_with_the_chain_down_fails_clearly_and_saves_nothing(tmp_path):
    from app import create_app
    from credentials.node import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    app = create_app({"TESTING": True, "data_dir": tmp_path / "data", "rpc_url": dead, "SECRET_KEY": "x"})
    result = app.test_cli_runner().invoke(
        args=["credentials", "issue", str(DATA / "issue_sample.csv"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and result.stdout == ""
    assert "cannot reach the chain" in result.stderr and dead in result.stderr
    with app.extensions["attest.db"].session() as session:
        assert storage.list_batches(session) == []


def test_the_issuance_domain_does_not_import_flask_or_torch():
    script = ("import sys, json; import credentials.issuance, credentials.storage, credentials.csvimport; "
              "print(json.dumps(sorted(m for m in ('flask', 'torch') if m in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
