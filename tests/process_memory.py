"""Run a command and measure the memory of its whole process tree, from /proc.

Two figures: the largest sum of resident memory (VmRSS) over the tree seen at
any sample (the tree's peak, give or take one sampling interval), and the sum
of each process's own high-water mark (VmHWM), which can only overstate the
tree's peak (the processes need not peak together) and misses nothing between
samples. A tree that passes `kill_above` is killed at once, so a test of a
decompression bomb that gets through fails in seconds instead of taking the
machine's memory with it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Measured:
    returncode: int
    stdout: str
    stderr: str
    peak_rss: int  # bytes: the largest sampled sum of the tree's resident memory
    hwm_sum: int  # bytes: the sum of every process's own peak (an upper bound)
    killed: bool  # the tree passed `kill_above` and was stopped
    seconds: float
    peaks: dict[int, tuple[str, int]] = field(default_factory=dict)  # pid -> (command, VmHWM)

    def describe(self) -> str:
        mb = 1024 * 1024
        who = ", ".join(f"{name} {hwm // mb} MB" for name, hwm in self.peaks.values())
        return (f"tree peak {self.peak_rss // mb} MB (sum of peaks {self.hwm_sum // mb} MB: {who}) "
                f"in {self.seconds:.1f} s")


def _status(pid: int) -> dict[str, str]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                out[key] = value.strip()
    except OSError:
        pass
    return out


def _tree(root: int) -> list[int]:
    """The root and all its descendants (this kernel has no /proc/*/children)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(parents.get(pid, []))
    return found


def _kb(value: str) -> int:
    return int(value.split()[0]) * 1024 if value else 0


def run_measured(cmd: list[str], *, env: dict | None = None, cwd: str | None = None,
                 kill_above: int = 1536 * 1024 * 1024, timeout: float = 600.0,
                 interval: float = 0.05) -> Measured:
    """Run `cmd` (in a session of its own), sampling its tree every `interval` seconds."""
    started = time.monotonic()
    process = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, start_new_session=True, text=True)
    peaks: dict[int, tuple[str, int]] = {}
    state = {"peak": 0, "killed": False}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            total = 0
            for pid in _tree(process.pid):
                status = _status(pid)
                if not status:
                    continue
                total += _kb(status.get("VmRSS", ""))
                peaks[pid] = (status.get("Name", "?"), max(_kb(status.get("VmHWM", "")),
                                                           peaks.get(pid, ("", 0))[1]))
            state["peak"] = max(state["peak"], total)
            if total > kill_above or time.monotonic() - started > timeout:
                state["killed"] = True
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                return
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        stdout, stderr = process.communicate()
    finally:
        done.set()
        sampler.join()
        try:  # nothing of the tree may outlive the measurement
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return Measured(process.returncode, stdout, stderr, state["peak"], sum(h for _, h in peaks.values()),
                    state["killed"], time.monotonic() - started, peaks)
