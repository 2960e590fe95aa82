"""Text extraction in a worker process with a memory limit and a time limit.

The bounds in `plagiarism.extract` refuse the hostile files we know of; this
is for the ones we do not. Word and PDF files are read by a worker process
(`python -m plagiarism.isolation`) that limits its own address space
(RLIMIT_AS) before it reads anything, so a file that still explodes kills the
worker, not the web process or the CLI. The caller gets `OverLimit` for that
file ("reading it needed more than the 768 MB of memory one file may use…",
"reading it took longer than the 300 seconds…") and goes on with the others;
the next file gets a fresh worker.

    with IsolatedExtractor() as extractor:          # one worker, reused
        for name, data in files:
            text = extractor.extract(data, name, progress=report)

Plain text (.txt, .md) is decoded in the calling process: it is bounded by
its size alone. One worker serves many files, so a batch pays its start-up
(0.3-0.7 s: an interpreter, python-docx and pypdf) once and then about 10 ms
a file (bench/bench_extract.py); it is replaced after a crash, a timeout, or
when a large file has taken it far towards its memory limit.

`progress(done, total, stage)` hears the worker's progress (each PDF page,
at most twice a second) and, while the worker is silent, the last progress
again every `heartbeat_seconds`: the caller sees life for as long as the file
is being worked on, and silence only when the work is dead.

Messages are length-prefixed frames on the worker's stdin/stdout: a JSON
header, then the file's bytes; the worker answers with JSON only (never
pickle: the worker handles hostile data, so its answers are data too).
"""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import BinaryIO

from plagiarism.extract import (
    OverLimit,
    Progress,
    UnreadableSubmission,
    extract_text,
    read_submission_file,
)
from plagiarism.extract_limits import MB, ExtractionLimits

# Read in the worker. Plain text (and anything unsupported) is handled here:
# nothing in it can inflate, and its size is checked first.
ISOLATED_SUFFIXES = (".docx", ".pdf")
_FRAME = struct.Struct(">I")
_REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0  # seconds for a new worker to import its libraries and say it is ready
CHILD_PROGRESS_INTERVAL = 0.5  # seconds between the worker's progress messages
RECYCLE_SHARE = 0.5  # replace a worker whose peak address space passed this share of its limit
# A library that cannot allocate often fails with a vague error of its own
# (lxml: "unknown error") instead of MemoryError. A failure in a worker whose
# peak address space reached this share of its limit is taken as running out
# of memory: the largest legitimate file within the limits peaks near half.
OUT_OF_MEMORY_SHARE = 0.75


class WorkerUnavailable(RuntimeError):
    """The extraction worker could not be started: a fault of this machine, not of any file."""


class _WorkerGone(Exception):
    """The worker closed its pipe: it exited or was killed."""


def _write_frame(stream: BinaryIO, payload: bytes) -> None:
    stream.write(_FRAME.pack(len(payload)))
    stream.write(payload)


# ============================================================================ the parent's side


class _Reader:
    """Frames from a pipe, read with a deadline (select), so a silent worker
    can be given heartbeats and a hung one can be stopped."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = bytearray()

    def _fill(self, want: int, deadline: float, tick) -> None:
        while len(self.buffer) < want:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self.fd], [], [], min(remaining, tick.interval))
            if not ready:
                tick()
                continue
            chunk = os.read(self.fd, max(65536, want - len(self.buffer)))
            if not chunk:
                raise _WorkerGone
            self.buffer += chunk

    def frame(self, deadline: float, tick, max_bytes: int) -> bytes:
        self._fill(_FRAME.size, deadline, tick)
        (size,) = _FRAME.unpack(self.buffer[:_FRAME.size])
        if size > max_bytes:
            raise _WorkerGone  # a worker that breaks the protocol is treated as a dead one
        self._fill(_FRAME.size + size, deadline, tick)
        payload = bytes(self.buffer[_FRAME.size:_FRAME.size + size])
        del self.buffer[:_FRAME.size + size]
        return payload


class _Heartbeat:
    """Relays the worker's progress to the caller, at most once per `interval`
    and only once a file has taken that long (a quick file costs the caller
    nothing); repeats the last progress while the worker is silent."""

    def __init__(self, progress: Progress | None, interval: float):
        self.progress = progress
        self.interval = interval
        self.last = (0, 1, "reading")
        self.emitted = time.monotonic()

    def report(self, done: int, total: int, stage: str) -> None:
        self.last = (done, total, stage)
        self()

    def __call__(self) -> None:
        now = time.monotonic()
        if self.progress and now - self.emitted >= self.interval:
            self.emitted = now
            self.progress(*self.last)


def _retire(process: subprocess.Popen) -> None:
    """Close a worker's stdin (it exits at end-of-file); kill it if it does not."""
    try:
        process.stdin.close()
        process.wait(timeout=2)
    except (OSError, subprocess.TimeoutExpired):
        process.kill()
        process.wait()
    process.stdout.close()


def _peak_bytes(pid: int | str = "self") -> int:
    """A process's peak address space (VmPeak), which RLIMIT_AS bounds."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmPeak:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class IsolatedExtractor:
    """Extracts submission text in a reusable worker process with a memory
    limit (`limits.memory_mb`) and a per-file time limit (`limits.timeout_seconds`).

    Not for concurrent use from many threads at once (calls are serialised
    by a lock); give each job its own, or share one and accept the queue.
    """

    def __init__(self, limits: ExtractionLimits | None = None, heartbeat_seconds: float = 1.0):
        self.limits = limits or ExtractionLimits.from_env()
        self.heartbeat_seconds = heartbeat_seconds
        self._process: subprocess.Popen | None = None
        self._reader: _Reader | None = None
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None
        self.workers_started = 0

    # -------------------------------------------------------------- lifecycle

    def __enter__(self) -> IsolatedExtractor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def worker_pid(self) -> int | None:
        """The running worker's process id, if one is running (for measurements)."""
        return self._process.pid if self._process and self._process.poll() is None else None

    def _start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        try:
            # No preexec_fn: the web process has threads, so the worker limits itself.
            process = subprocess.Popen(
                [sys.executable, "-m", "plagiarism.isolation", "--memory-mb", str(self.limits.memory_mb)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=str(_REPO_ROOT), close_fds=True)
        except OSError as exc:
            raise WorkerUnavailable(f"the extraction worker could not be started: {exc}") from exc
        self._process, self._reader = process, _Reader(process.stdout.fileno())
        # An extractor dropped without close() (an exception in its caller's
        # loop) still lets its worker go; so does the interpreter's exit.
        self._finalizer = weakref.finalize(self, _retire, process)
        try:
            ready = json.loads(self._reader.frame(time.monotonic() + START_TIMEOUT, _Heartbeat(None, 1.0), 4096))
        except (TimeoutError, _WorkerGone, ValueError) as exc:
            self._kill()
            raise WorkerUnavailable("the extraction worker did not start (see the log for its error)") from exc
        if ready.get("type") != "ready":
            self._kill()
            raise WorkerUnavailable(f"the extraction worker sent {ready!r} instead of saying it was ready")
        self.workers_started += 1

    def _kill(self, grace: float = 0.0) -> int | None:
        """Stop the worker (after `grace` seconds to exit by itself); returns its
        exit status (negative: the signal that ended it)."""
        process, self._process, self._reader = self._process, None, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if process is None:
            return None
        if grace:
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        if process.poll() is None:
            process.kill()
        try:
            status = process.wait(timeout=10)
        finally:
            for pipe in (process.stdin, process.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass
        return status

    def close(self) -> None:
        """Let the worker exit (it reads end-of-file), or stop it if it does not."""
        with self._lock:
            process = self._process
            if process is None:
                return
            try:
                process.stdin.close()
                process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self._kill()

    # -------------------------------------------------------------- extraction

    def extract(self, data: bytes, filename: str, progress: Progress | None = None) -> str:
        """The file's text, as `plagiarism.extract.extract_text` gives it.

        Raises UnreadableSubmission for a file past the limits, a broken
        file, or one that made the worker run out of memory or time.
        """
        if Path(filename).suffix.lower() not in ISOLATED_SUFFIXES \
                or len(data) > self.limits.max_file_bytes:  # plain text, or refused here by size
            return extract_text(data, filename, self.limits, progress)
        with self._lock:
            for attempt in (1, 2):
                if self._process is None or self._process.poll() is not None:
                    self._kill()
                    self._start()
                try:
                    self._send(data, filename)
                    break
                except (BrokenPipeError, ConnectionResetError):
                    # The idle worker had died (killed from outside): one fresh start.
                    self._kill()
                    if attempt == 2:
                        raise WorkerUnavailable("the extraction worker keeps dying before it reads a file") \
                            from None
            try:
                text, reason, over_limit = self._receive(progress)
            except BaseException:
                self._kill()  # mid-file (the progress callback failed?): the pipe is out of step
                raise
            if self._process is not None and \
                    _peak_bytes(self._process.pid) > RECYCLE_SHARE * self.limits.memory_mb * MB:
                # A big file took it far: the next file starts small, and a peak
                # near the limit then means that file did it (OUT_OF_MEMORY_SHARE).
                self._kill()
        if reason is not None:
            raise (OverLimit if over_limit else UnreadableSubmission)(filename, reason)
        return text

    def extract_file(self, path: str | Path, progress: Progress | None = None) -> str:
        """Read a file from disk (refused by size before reading) and extract it."""
        return self.extract(read_submission_file(path, self.limits), Path(path).name, progress)

    def _send(self, data: bytes, filename: str) -> None:
        header = json.dumps({"filename": filename, "limits": self.limits.as_dict(),
                             "progress_interval": CHILD_PROGRESS_INTERVAL}).encode()
        stdin = self._process.stdin
        _write_frame(stdin, header)
        _write_frame(stdin, data)
        stdin.flush()

    def _receive(self, progress: Progress | None) -> tuple[str, str | None, bool]:
        """The worker's answer to one file: (text, None, False), or ("", the
        reason it is unreadable, whether that is a limit).

        A worker that runs out of time is stopped here, and one that died is
        cleaned up; either way the pipe is left in step or closed.
        """
        limits = self.limits
        heartbeat = _Heartbeat(progress, self.heartbeat_seconds)
        deadline = time.monotonic() + limits.timeout_seconds
        max_frame = 6 * limits.max_text_chars + 65536  # JSON escapes at most 6 bytes a character
        while True:
            try:
                message = json.loads(self._reader.frame(deadline, heartbeat, max_frame))
                kind = message["type"]
                if kind == "progress":
                    step = (int(message["done"]), int(message["total"]), str(message["stage"]))
            except TimeoutError:
                self._kill()
                return "", self._timeout_reason(), True
            except (_WorkerGone, ValueError, TypeError, KeyError):
                # Its pipe closed, or it broke the protocol: either way it is done.
                status = self._kill(grace=2.0)  # let it finish dying, to learn why
                return "", *self._death_reason(status)
            if kind == "progress":
                heartbeat.report(*step)
            elif kind == "text":
                return str(message.get("text", "")), None, False
            elif kind == "unreadable":
                return "", str(message.get("reason", "")), bool(message.get("over_limit"))
            elif kind == "memory":
                self._kill(grace=2.0)  # it exits after running out: nothing in it can be trusted
                return "", self._memory_reason(), True
            else:  # "error": a bug of ours or of a library, on this file; the worker goes on
                return "", f"the file could not be read ({message.get('error', 'unknown error')})", False

    def _memory_reason(self) -> str:
        return (f"reading it needed more than the {self.limits.memory_mb} MB of memory one file may use, "
                "so it was stopped; it may be built to exhaust memory (a decompression bomb)")

    def _timeout_reason(self) -> str:
        return (f"reading it took longer than the {self.limits.timeout_seconds:g} seconds one file may take, "
                "so it was stopped")

    def _death_reason(self, status: int | None) -> tuple[str, bool]:
        if status is not None and status < 0:
            sig = -status
            if sig == signal.SIGXCPU:
                return self._timeout_reason(), True
            if sig in (signal.SIGKILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT):
                # A C library that cannot allocate may crash rather than fail politely.
                return (f"the process reading it stopped ({signal.Signals(sig).name}), most likely out of the "
                        f"{self.limits.memory_mb} MB of memory one file may use; it may be built to exhaust "
                        "memory (a decompression bomb)"), True
        return f"the process reading it stopped unexpectedly (exit status {status})", False


def extract_isolated(data: bytes, filename: str, limits: ExtractionLimits | None = None,
                     progress: Progress | None = None) -> str:
    """One file through a worker of its own (for single files: a source, a template)."""
    if Path(filename).suffix.lower() not in ISOLATED_SUFFIXES:
        return extract_text(data, filename, limits or ExtractionLimits.from_env(), progress)
    with IsolatedExtractor(limits) as extractor:
        return extractor.extract(data, filename, progress)


# ============================================================================ the worker's side


def _limit_self(memory_mb: int) -> None:
    """Cap this process's address space and forbid core dumps, before any file is read."""
    import resource

    limit = memory_mb * MB
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _limit_cpu(seconds: float) -> None:
    """Let this file use `seconds` more of CPU time (SIGXCPU after): the parent's
    wall clock stops a slow file, this stops one whose parent has died."""
    import resource

    used = resource.getrusage(resource.RUSAGE_SELF)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used.ru_utime + used.ru_stime + seconds) + 5
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _read_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(head)
    payload = stream.read(size)
    return payload if len(payload) == size else None


def serve(memory_mb: int) -> int:
    """The worker's loop: one request (header, bytes) at a time until end-of-file."""
    _limit_self(memory_mb)
    # The protocol owns the real stdout; anything a library prints goes to stderr.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = os.fdopen(os.dup(0), "rb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)

    def send(message: dict) -> None:
        _write_frame(answers, json.dumps(message, ensure_ascii=False).encode("utf-8"))
        answers.flush()

    import docx  # noqa: F401 - imported once here, not on each worker's first file
    import pypdf  # noqa: F401

    send({"type": "ready", "pid": os.getpid()})
    while True:
        header = _read_frame(requests)
        data = _read_frame(requests) if header is not None else None
        if data is None:
            return 0
        request = json.loads(header)
        limits = ExtractionLimits.from_dict(request["limits"])
        interval = float(request.get("progress_interval", CHILD_PROGRESS_INTERVAL))
        _limit_cpu(limits.timeout_seconds)
        last = {"at": 0.0, "stage": None}

        def progress(done: int, total: int, stage: str, _last=last, _interval=interval) -> None:
            # Pages are thinned out; a new stage or the last step always goes,
            # since the parent repeats whatever it heard last while we are busy.
            now = time.monotonic()
            if stage != _last["stage"] or done >= total or now - _last["at"] >= _interval:
                _last["at"], _last["stage"] = now, stage
                send({"type": "progress", "done": done, "total": total, "stage": stage})

        try:
            text = extract_text(data, request["filename"], limits, progress)
            del data
            send({"type": "text", "text": text})
        except OverLimit as exc:
            send({"type": "unreadable", "reason": exc.reason, "over_limit": True})
        except MemoryError:
            send({"type": "memory"})
            return 3  # the parent starts a fresh worker for the next file
        except Exception as exc:  # noqa: BLE001 - reported for this file; the worker goes on
            if _peak_bytes() >= OUT_OF_MEMORY_SHARE * memory_mb * MB:
                send({"type": "memory"})
                return 3
            if isinstance(exc, UnreadableSubmission):
                send({"type": "unreadable", "reason": exc.reason})
            else:
                send({"type": "error", "error": type(exc).__name__})


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Attest's submission text extraction worker.")
    parser.add_argument("--memory-mb", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        return serve(args.memory_mb)
    except BrokenPipeError:
        return 0  # the parent went away


if __name__ == "__main__":
    sys.exit(main())
