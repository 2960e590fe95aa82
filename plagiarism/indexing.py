"""Which passages go into the persistent vector index, and where.

The index is `plagiarism.index.VectorIndex` under ATTEST_DATA_DIR/index, with
its content-hash embedding cache (`plagiarism.cache`), so a passage is
embedded once however many assignments, uploads, reports or restarts see it.
One partition per assignment (`<course code>/<assignment name>`: its
submissions and its own sources) and one per course (`<course code>/*sources`:
readings and past cohorts for every assignment). A text's passages (the
detection core's sentence windows, with their character spans) are added when
it arrives; adding one submission never touches the others.

Only job workers embed (the model is never loaded in a web process).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from plagiarism.index import VectorIndex, partition_key
from plagiarism.store import Assignment, Course, Submission

SOURCES_PARTITION = "*sources"  # cannot be an assignment name (courses.ASSIGNMENT_NAME)
INDEX_CHUNK = 8  # documents embedded per call: big enough to batch well, small enough to show progress
Progress = Callable[[int, int], None]


class Encoder(Protocol):
    """What the index embeds with (plagiarism.embedding.Embedder or a stand-in)."""

    dim: int
    model_id: str

    def encode(self, texts: list[str]) -> np.ndarray: ...


_open_indexes: dict[tuple[str, int], VectorIndex] = {}
_open_lock = threading.Lock()


def open_index(root: Path, encoder: Encoder | None = None) -> VectorIndex:
    """One VectorIndex per directory (and encoder) per process, so the model,
    the cache connection and loaded partitions are reused across jobs (each
    partition reloads by itself when another process changed it)."""
    root = Path(root).resolve()
    key = (str(root), id(encoder) if encoder is not None else 0)
    with _open_lock:
        if key not in _open_indexes:
            _open_indexes[key] = VectorIndex(root, embedder=encoder)
        return _open_indexes[key]


def assignment_partition(course: Course, assignment: Assignment | None) -> str:
    """`<course code>/<assignment name>`, or `<course code>/*sources` for the
    sources every assignment of the course is compared with."""
    return partition_key(course.code, assignment.name if assignment is not None else SOURCES_PARTITION)


def templates_of(assignment: Assignment | None) -> list[str]:
    return [assignment.template_text] if assignment is not None and assignment.template_text.strip() else []


def submission_doc(sub: Submission) -> tuple[str, str, str, dict]:
    return (f"s{sub.id}", "submission", sub.text,
            {"student": sub.student_id, "filename": sub.filename, "sha256": sub.sha256})


def partition_writer(settings, key: str):
    """The lock that makes a job the one writer of partition `key`, whichever
    worker of whichever machine runs it: a PostgreSQL advisory lock when the
    database is PostgreSQL, a file lock under the data dir on one machine."""
    from kernel.locks import cross_process_lock

    return cross_process_lock(settings, f"index-partition:{key}")


def index_documents(index: VectorIndex, key: str, docs: list[tuple[str, str, str, dict]],
                    templates: list[str], progress: Progress | None = None, settings=None) -> int:
    """Embed (through the cache) and add documents [(doc id, kind, text, meta)]
    not yet in partition `key`, a few at a time; returns how many were added.
    Jobs pass their `settings`: the partition's writer lock is then held
    throughout (`partition_writer`)."""
    if settings is None:
        return _index_documents(index, key, docs, templates, progress)
    with partition_writer(settings, key):
        return _index_documents(index, key, docs, templates, progress)


def _index_documents(index: VectorIndex, key: str, docs: list[tuple[str, str, str, dict]],
                     templates: list[str], progress: Progress | None) -> int:
    from plagiarism.nearduplicate import embed_windows, prepare

    partition = index.partition(key)
    new = [d for d in docs if d[0] not in partition]
    for start in range(0, len(new), INDEX_CHUNK):
        chunk = new[start:start + INDEX_CHUNK]
        prepared = [prepare(doc, text, kind, templates) for doc, kind, text, _ in chunk]
        windows = embed_windows(prepared, index.encode)
        for p, (_, _, _, meta) in zip(prepared, chunk, strict=True):
            w = windows[f"{p.kind}:{p.name}"]
            if len(w.spans):
                partition.add(p.name, w.vectors, w.spans, meta)
        if progress:
            progress(start + len(chunk), len(new))
    if new:
        index.flush()
    return len(new)
