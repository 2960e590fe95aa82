"""`flask serve` (what `make run` starts), as a real process: it serves, prints
the seeded login, and stops the embedded node it started when it is stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from credentials.node import free_port, pid_alive

ROOT = Path(__file__).resolve().parent.parent


def _as_in_a_terminal() -> None:
    """Ctrl-C as a person at a terminal has it. A suite started in the
    background (`nohup ... &`) runs with SIGINT ignored, the child inherits
    that, and a server that ignores SIGINT by its invoker's wish is right to
    keep ignoring it: the test of Ctrl-C would hang for the wrong reason."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_serve_prints_login_and_stops_its_node(tmp_path, stop_signal):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "ATTEST_RPC_URL"}
    env["ATTEST_DATA_DIR"] = str(tmp_path / "data")
    flask = Path(sys.executable).parent / "flask"
    proc = subprocess.Popen([str(flask), "--app", "app", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_as_in_a_terminal)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        else:
            pytest.fail("the server did not answer within 60 s")
        node = json.loads((tmp_path / "data" / "chain" / "node.json").read_text())
        assert pid_alive(node["pid"])
        proc.send_signal(stop_signal)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "login    registrar@example.edu / " in output
    assert f"serving  http://127.0.0.1:{port}/" in output
    for _ in range(50):
        if not pid_alive(node["pid"]):
            break
        time.sleep(0.1)
    assert not pid_alive(node["pid"]), "the embedded node outlived the server"
    assert (tmp_path / "data" / "chain" / "anvil-state.json").exists()
