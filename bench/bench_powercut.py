"""Power cuts at random moments during issuing: how many credentials that were
reported as issued still verify afterwards. The answer must be all of them.

    .venv/bin/python bench/bench_powercut.py [--cuts 20] [--rows 40] [--seed 1]

One data dir, one real `flask serve` with its embedded Anvil at a time. In each
round, `credentials issue` runs again and again (a CSV of --rows rows, each run
a batch) while, at a random moment 0.3 to 20 s in (--window), the bench cuts the power:
`kill -9` of the node, the server and the issuing command at once, with no
chance to save. A batch counts as *reported issued* when its command printed
its result (credentials written, batch anchored) before the cut. The server is
started again (it reconciles with the chain and resumes what was in flight) and
every credential ever reported issued is verified through the HTTP API. Anvil
keeps its own default (a save every second), so the cuts land between its
saves as often as a real power cut would.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from credentials.node import pid_alive, processes_using
from kernel.settings import ROOT
from tests.servers import FlaskServe, ServerError

FLASK = ROOT / ".venv" / "bin" / "flask"
RESULTS = Path(__file__).with_name("results") / "bench_powercut.txt"


def environment(data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTEST_")}
    # The bench verifies hundreds of credentials a second from one address.
    env.update(ATTEST_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1", ATTEST_VERIFY_RATE_LIMIT="1000000/minute")
    return env


class Server(FlaskServe):
    def __init__(self, data_dir: Path, log: Path):
        try:
            super().__init__(environment(data_dir), data_dir, log)
        except ServerError as exc:
            sys.exit(str(exc))

    def verify(self, document: bytes) -> tuple[int, str]:
        for _ in range(60):
            r = self.post_credential(document)
            if r.status_code == 429:
                sys.exit("the verify API refused the bench's rate: the figures would mean nothing")
            if r.status_code != 503:  # the node may still be coming up: "could not check" is retried
                return r.status_code, r.json().get("verdict", "?")
            time.sleep(1)
        return r.status_code, "unavailable"

    def cut(self) -> None:
        """Everything on this data dir dies at once: the server's process group and
        every Anvil on its state file (recorded in node.json or not)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        nodes = processes_using(self.data_dir / "chain" / "anvil-state.json")
        for pid in nodes:
            os.kill(pid, signal.SIGKILL)
        self.proc.wait()
        self._log.close()
        while any(pid_alive(pid) for pid in nodes):
            time.sleep(0.02)


class Issuer(threading.Thread):
    """`credentials issue` again and again until stopped; records each batch whose
    command reported it issued (exit 0, its result printed)."""

    def __init__(self, data_dir: Path, csv_file: Path, out_root: Path, round_no: int):
        super().__init__(daemon=True)
        self.data_dir, self.csv_file, self.out_root, self.round_no = data_dir, csv_file, out_root, round_no
        self.reported: list[tuple[dict, Path]] = []
        self.stopped = threading.Event()
        self.proc: subprocess.Popen | None = None

    def run(self) -> None:
        run = 0
        while not self.stopped.is_set():
            out = self.out_root / f"round{self.round_no:02d}-{run:03d}"
            self.proc = subprocess.Popen([str(FLASK), "--app", "app", "credentials", "issue", str(self.csv_file),
                                          "--out", str(out), "--again"], cwd=ROOT,
                                         env=environment(self.data_dir), stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, start_new_session=True)
            stdout, _ = self.proc.communicate()
            if self.proc.returncode == 0 and not self.stopped.is_set():
                self.reported.append((json.loads(stdout), out))
            run += 1

    def cut(self) -> None:
        self.stopped.set()
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.join(timeout=30)


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["recipient_name", "recipient_email", "achievement_name", "achievement_type", "description",
                         "awarded_on", "valid_until", "grade"])
        for i in range(rows):
            writer.writerow([f"Student {i}", f"s{i}@example.edu", "BSc Physics", "BachelorDegree",
                             "Three-year programme.", "2026-06-30", "", "First"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", type=int, default=20)
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--window", type=float, default=20.0,
                        help="the cut comes 0.3 s to this many seconds into the round")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="attest-powercut-"))
    data, out_root = work / "data", work / "out"
    csv_file = work / "grads.csv"
    write_csv(csv_file, args.rows)
    reported: list[tuple[dict, Path]] = []
    rounds = []
    started = time.monotonic()
    server = Server(data, work / "serve-00.log")
    for n in range(1, args.cuts + 1):
        issuer = Issuer(data, csv_file, out_root, n)
        issuer.start()
        moment = rng.uniform(0.3, args.window)
        time.sleep(moment)
        server.cut()
        issuer.cut()
        reported.extend(issuer.reported)
        server = Server(data, work / f"serve-{n:02d}.log")
        # Every credential reported issued so far, this round's and every earlier one.
        files = [f for _, out in reported for f in sorted(out.glob("*.json"))]
        verdicts = [server.verify(f.read_bytes()) for f in files]
        genuine = sum(1 for status, verdict in verdicts if status == 200 and verdict == "genuine")
        others = Counter(f"{status} {verdict}" for status, verdict in verdicts if verdict != "genuine")
        log_text = server.output()
        lost_root = "has lost it" in log_text
        resumed = log_text.count("resuming batch")
        rounds.append((n, moment, len(issuer.reported), len(files), genuine, lost_root))
        print(f"cut {n:2d} at {moment:4.1f} s: {len(issuer.reported)} batch(es) reported this round; "
              f"{genuine}/{len(files)} reported credentials verify genuine"
              + (f"; {resumed} batch(es) in flight resumed at start" if resumed else "")
              + ("; the chain had lost a root, re-anchored at start" if lost_root else "")
              + (f"; the others: {dict(others)}" if others else ""), flush=True)
    server.stop()
    total = rounds[-1][3]
    still = rounds[-1][4]
    load = os.getloadavg()
    summary = (f"{args.cuts} power cuts, {len(reported)} batches ({total} credentials) reported issued: "
               f"{still} verify genuine afterwards, {total - still} lost; "
               f"{sum(1 for r in rounds if r[5])} restarts re-anchored a root the chain had lost; "
               f"{time.monotonic() - started:.0f} s; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(summary)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(summary + "\n")
    print(f"(logs in {work})")
    if still != total or any(r[4] != r[3] for r in rounds):
        sys.exit(1)


if __name__ == "__main__":
    main()
