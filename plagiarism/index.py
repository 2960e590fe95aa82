"""The passage vector index, behind one small interface.

    index = VectorIndex(data_dir / "index")            # or open_index()
    index.add_document("CS101/essay-1", "alice.txt", passages, spans, meta={...})
    hits = index.search_texts("CS101/essay-1", ["a passage"], k=10)
    index.partition("CS101/essay-1").delete("alice.txt")

A partition (any key string; `partition_key(course, assignment)` for the
usual one) is the unit that could move to pgvector or a vector database:
everything else talks to it only through the `Partition` protocol below
(add / delete / search / len / doc_ids / meta). `LocalPartition` is the
on-disk implementation:

- `manifest.json` (the truth: which documents, their files, labels, meta)
  and one `docs/<hash>-<generation>.npz` per document holding its vectors
  and character spans. Adding or replacing a document writes that one file
  and the manifest; other documents' files are never touched or re-read.
- Every write is atomic (temp file, fsync, rename; the manifest last), so a
  crash mid-save leaves the previous state readable; unreferenced files left
  by a crash are removed on the next write.
- Exact search by default: one float32 matrix product over unit vectors.
  At or above `ann_threshold` passages a usearch HNSW graph answers instead.
  bench/bench_index.py measured usearch, hnswlib and faiss HNSW at 100,000:
  all reach recall@10 0.999 on clustered data; hnswlib and faiss query in
  ~0.7 ms and build 3-4x faster, usearch in ~2 ms. usearch is kept: it is
  already a dependency and maintained, removes by key (faiss HNSW cannot;
  hnswlib only soft-deletes), saves and restores, and 2 ms is a tenth of the
  20 ms budget. The graph is derived data: built in the background, saved
  when built and by `flush()`; a missing, stale or corrupt graph file is
  repaired or rebuilt from the stored vectors, never from the model.
- A manifest or document file that is missing or unreadable raises
  `IndexCorruptError` naming the file; nothing is silently dropped.
- One writer per partition: the job system's indexing jobs take the
  partition's cross-process lock (`plagiarism.indexing.partition_writer`: a
  PostgreSQL advisory lock shared by every machine, a file lock on one), and
  writes here also hold a file lock. Every call first reloads if the manifest
  changed, judged by its content (a SHA-256 of its bytes), never by stat:
  NFS attribute caching can keep an old size and mtime for seconds, and a
  writer trusting that stat once wrote its stale manifest over another's,
  losing 10 of 11 documents (tests/test_plagiarism_index.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from filelock import FileLock

from plagiarism.cache import CachedEmbedder, EmbeddingCache

log = logging.getLogger(__name__)

DIM = 384
FORMAT = 1
# Exact search over 25,000 passages takes ~1-3 ms; above it the HNSW graph
# keeps a query at ~1 ms regardless of size (bench/results/bench_index.txt).
ANN_THRESHOLD = 25_000
MANIFEST = "manifest.json"
ANN_FILE = "ann.usearch"
# HNSW graph parameters. ef_add 64 builds 1.6x faster than 128 for the same
# recall. ef_search 256: on random vectors (the worst case) the paraphrased
# passage is found in the top 10 for 99.3% of queries at 50,000 (97% at 128),
# ~2.5 ms a query; clustered data needs less. M 32 doubled the build for no gain.
ANN_M, ANN_EF_ADD, ANN_EF_SEARCH = 16, 64, 256


def _usearch():
    """usearch's Index and ScalarKind, loaded after onnxruntime: the other order
    (usearch 2.26's numkong, then onnxruntime 1.32) kills the process with a
    segmentation fault when the embedder loads later, as a report job that searches
    a large partition before it embeds does."""
    import onnxruntime  # noqa: F401  (for its side effect: the load order)
    from usearch.index import Index, ScalarKind

    return Index, ScalarKind

class IndexCorruptError(RuntimeError):
    """A partition's files are missing or unreadable; the message names the file."""


@dataclass(frozen=True)
class Hit:
    """One matching passage: which document, where in it, how similar (cosine)."""

    doc_id: str
    passage: int
    start: int
    end: int
    score: float


class Partition(Protocol):
    """The seam: what a server-backed partition (pgvector, ...) must provide."""

    key: str

    def add(self, doc_id: str, vectors: np.ndarray, spans: Sequence[tuple[int, int]],
            meta: dict | None = None) -> None: ...

    def delete(self, doc_id: str) -> bool: ...

    def search(self, queries: np.ndarray, k: int = 10, exclude: Collection[str] = ()) -> list[list[Hit]]: ...

    def doc_ids(self) -> list[str]: ...

    def meta(self, doc_id: str) -> dict: ...

    def __len__(self) -> int: ...


def partition_key(course: str | int, assignment: str | int) -> str:
    return f"{course}/{assignment}"


def _dir_name(key: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", key).strip("._")[:48] or "p"
    return f"{slug}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _atomic_write(path: Path, data: bytes) -> None:
    """Write-then-rename in the same directory, fsynced, so readers see old or new, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class LocalPartition:
    """A partition kept in one directory; see the module docstring."""

    def __init__(self, directory: str | Path, key: str, ann_threshold: int = ANN_THRESHOLD) -> None:
        self.key = key
        self.directory = Path(directory)
        self.ann_threshold = ann_threshold
        self._lock = threading.RLock()
        self._file_lock = FileLock(str(self.directory) + ".lock")
        self._stamp: str | None = None
        self._ann = None
        self._ann_dirty = False
        self._building = False
        self._builder: threading.Thread | None = None
        self._loads = 0  # bumped on every full reload: a background build from before is discarded
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        with self._file_lock:
            self._load()

    # ------------------------------------------------------------------ reading
    def _manifest_bytes(self) -> bytes | None:
        try:
            return (self.directory / MANIFEST).read_bytes()
        except FileNotFoundError:
            return None

    @staticmethod
    def _digest(data: bytes | None) -> str | None:
        return None if data is None else hashlib.sha256(data).hexdigest()

    def _manifest_stamp(self) -> str | None:
        """What the manifest on disk says now: the SHA-256 of its bytes (None: no manifest)."""
        return self._digest(self._manifest_bytes())

    def _load(self) -> None:
        """(Re)read the manifest and every document file into memory."""
        path = self.directory / MANIFEST
        data = self._manifest_bytes()
        self._stamp = self._digest(data)
        if data is None:
            if (self.directory / "docs").is_dir() and any((self.directory / "docs").glob("*.npz")):
                raise IndexCorruptError(f"{path} is missing but the partition holds document files; "
                                        "restore the manifest from a backup or delete the directory and re-add")
            self._manifest = {"format": FORMAT, "key": self.key, "dim": DIM, "generation": 0,
                              "next_label": 0, "docs": {}}
        else:
            try:
                manifest = json.loads(data)
                docs = manifest["docs"]
                if manifest.get("format") != FORMAT or not isinstance(docs, dict):
                    raise ValueError(f"unknown format {manifest.get('format')!r}")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise IndexCorruptError(f"{path} is unreadable ({exc}); the partition {self.key!r} cannot be "
                                        "opened: restore it from a backup or delete it and re-add") from exc
            self._manifest = manifest
        self._rebuild_memory()

    def _read_doc(self, doc_id: str, entry: dict) -> tuple[np.ndarray, np.ndarray]:
        path = self.directory / "docs" / entry["file"]
        try:
            with np.load(path, allow_pickle=False) as npz:
                vectors, spans = npz["vectors"], npz["spans"]
            n = entry["n"]
            if vectors.shape != (n, DIM) or spans.shape != (n, 2) or vectors.dtype != np.float32:
                raise ValueError(f"shape {vectors.shape}/{spans.shape}, expected ({n}, {DIM})/({n}, 2)")
        except FileNotFoundError as exc:
            raise IndexCorruptError(f"{path} (document {doc_id!r} of partition {self.key!r}) is missing") from exc
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the same problem
            raise IndexCorruptError(f"{path} (document {doc_id!r} of partition {self.key!r}) is unreadable: "
                                    f"{exc}") from exc
        return vectors, spans

    def _rebuild_memory(self) -> None:
        docs = self._manifest["docs"]
        total = sum(e["n"] for e in docs.values())
        self._vecs = np.zeros((max(total, 16), DIM), dtype=np.float32)
        self._row_doc = np.zeros(len(self._vecs), dtype=np.int32)
        self._row_span = np.zeros((len(self._vecs), 2), dtype=np.int64)
        self._row_label = np.zeros(len(self._vecs), dtype=np.int64)
        self._n = 0
        self._slots: list[str | None] = []
        self._slot_of: dict[str, int] = {}
        for doc_id, entry in sorted(docs.items(), key=lambda d: d[1]["label0"]):
            vectors, spans = self._read_doc(doc_id, entry)
            self._append_rows(doc_id, vectors, spans, entry["label0"])
        self._ann = None
        self._ann_dirty = False
        self._loads += 1

    def _append_rows(self, doc_id: str, vectors: np.ndarray, spans: np.ndarray, label0: int) -> None:
        n = len(vectors)
        need = self._n + n
        if need > len(self._vecs):  # grow geometrically: appends stay amortised O(rows added)
            cap = max(need, 2 * len(self._vecs))
            for name in ("_vecs", "_row_doc", "_row_span", "_row_label"):
                old = getattr(self, name)
                new = np.zeros((cap, *old.shape[1:]), dtype=old.dtype)
                new[:self._n] = old[:self._n]
                setattr(self, name, new)
        slot = len(self._slots)
        self._slots.append(doc_id)
        self._slot_of[doc_id] = slot
        rows = slice(self._n, need)
        self._vecs[rows] = vectors
        self._row_doc[rows] = slot
        self._row_span[rows] = spans
        self._row_label[rows] = np.arange(label0, label0 + n)
        self._n = need

    def _remove_rows(self, doc_id: str) -> np.ndarray:
        """Drop a document's rows from memory; returns their labels."""
        slot = self._slot_of.pop(doc_id)
        self._slots[slot] = None
        keep = self._row_doc[:self._n] != slot
        labels = self._row_label[:self._n][~keep].copy()
        m = int(keep.sum())
        for name in ("_vecs", "_row_doc", "_row_span", "_row_label"):
            arr = getattr(self, name)
            arr[:m] = arr[:self._n][keep]
        self._n = m
        return labels

    def _refresh(self) -> None:
        """Pick up another process's writes (one read and hash of the manifest per
        call, a few hundred microseconds). The reload holds the file lock, so a
        writer cannot delete a file this reader is about to open."""
        if self._manifest_stamp() != self._stamp:
            with self._file_lock:
                self._load()

    # ------------------------------------------------------------------ writing
    def _write_manifest(self) -> None:
        self._manifest["generation"] += 1
        data = json.dumps(self._manifest, sort_keys=True).encode()
        _atomic_write(self.directory / MANIFEST, data)
        self._stamp = self._digest(data)

    @contextmanager
    def _reload_on_failure(self) -> Iterator[None]:
        """A write that fails half-way leaves memory as the disk says, not as it was going to be."""
        try:
            yield
        except BaseException:
            self._load()
            raise

    def _sweep(self) -> None:
        """Remove document files no manifest entry names (left by a crash or a replace)."""
        live = {e["file"] for e in self._manifest["docs"].values()}
        for path in (self.directory / "docs").glob("*"):
            if path.name not in live:
                path.unlink(missing_ok=True)

    def add(self, doc_id: str, vectors: np.ndarray, spans: Sequence[tuple[int, int]],
            meta: dict | None = None) -> None:
        """Add (or replace) one document's passages: unit float32 vectors and their (start, end) spans."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, DIM)
        span_arr = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
        if len(vectors) != len(span_arr):
            raise ValueError(f"{len(vectors)} vectors but {len(span_arr)} spans")
        with self._lock, self._file_lock, self._reload_on_failure():
            self._refresh()
            (self.directory / "docs").mkdir(parents=True, exist_ok=True)
            gen = self._manifest["generation"] + 1
            name = f"{hashlib.sha256(doc_id.encode()).hexdigest()[:16]}-{gen}.npz"
            buf = io.BytesIO()
            np.savez(buf, vectors=vectors, spans=span_arr)
            _atomic_write(self.directory / "docs" / name, buf.getvalue())
            label0 = self._manifest["next_label"]
            self._manifest["docs"][doc_id] = {"file": name, "n": len(vectors), "label0": label0,
                                              "meta": meta or {}}
            self._manifest["next_label"] = label0 + len(vectors)
            self._write_manifest()
            self._sweep()
            gone = self._remove_rows(doc_id) if doc_id in self._slot_of else np.zeros(0, np.int64)
            self._append_rows(doc_id, vectors, span_arr, label0)
            if self._ann is not None:
                if len(gone):
                    self._ann.remove(gone)
                if len(vectors):
                    self._ann.add(np.arange(label0, label0 + len(vectors)), vectors)
                self._ann_dirty = True

    def delete(self, doc_id: str) -> bool:
        """Remove a document; False if it was not there."""
        with self._lock, self._file_lock, self._reload_on_failure():
            self._refresh()
            if doc_id not in self._manifest["docs"]:
                return False
            del self._manifest["docs"][doc_id]
            self._write_manifest()
            self._sweep()
            gone = self._remove_rows(doc_id)
            if self._ann is not None and len(gone):
                self._ann.remove(gone)
                self._ann_dirty = True
            return True

    # ------------------------------------------------------------------ approximate graph
    def _graph_from(self, labels: np.ndarray, vectors: np.ndarray) -> tuple:
        """(graph holding exactly `labels`, whether it differs from the saved file): the saved
        file repaired by difference, else a new build."""
        Index, ScalarKind = _usearch()
        path = self.directory / ANN_FILE
        if path.exists():
            try:
                ann = Index.restore(str(path))
                ann.expansion_search = ANN_EF_SEARCH  # not kept in the file
                return ann, self._catch_up(ann, np.asarray(ann.keys, dtype=np.int64), labels, vectors)
            except Exception as exc:  # noqa: BLE001 - derived data: rebuild it
                log.warning("approximate index %s unreadable (%s); rebuilding from stored vectors", path, exc)
        ann = Index(ndim=DIM, metric="ip", dtype=ScalarKind.F32, connectivity=ANN_M,
                    expansion_add=ANN_EF_ADD, expansion_search=ANN_EF_SEARCH)
        if len(labels):
            ann.add(labels, vectors)
        return ann, True

    @staticmethod
    def _catch_up(ann, have: np.ndarray, want: np.ndarray, vectors: np.ndarray) -> bool:
        """Remove what the graph has but should not, add what it lacks; True if it changed."""
        stale = np.setdiff1d(have, want, assume_unique=True)
        if len(stale):
            ann.remove(stale)
        fresh = np.isin(want, have, assume_unique=True, invert=True)
        if fresh.any():
            ann.add(want[fresh], vectors[fresh])
        return bool(len(stale) or fresh.any())

    def _ann_index(self):
        """The graph, loaded, repaired or built now (caller holds the lock)."""
        if self._ann is None:
            self._ann, self._ann_dirty = self._graph_from(self._row_label[:self._n].copy(), self._vecs[:self._n])
        return self._ann

    def _graph_in_background(self) -> None:
        """Start building the graph off the request path; searches stay exact until it is ready.
        (Building 100,000 passages takes minutes on 2 busy cores; exact search meanwhile ~15 ms.)"""
        if self._building:
            return
        self._building = True
        generation = self._loads
        labels = self._row_label[:self._n].copy()
        vectors = self._vecs[:self._n].copy()

        def work() -> None:
            try:
                ann, changed = self._graph_from(labels, vectors)
            except Exception:  # noqa: BLE001 - searches simply stay exact
                log.exception("building the approximate index of %r failed", self.key)
                with self._lock:
                    self._building = False
                return
            with self._lock:
                self._building = False
                if self._ann is not None or self._loads != generation:
                    return  # built meanwhile, or the partition was reloaded: discard
                changed |= self._catch_up(ann, labels, self._row_label[:self._n], self._vecs[:self._n])
                self._ann, self._ann_dirty = ann, changed
            self.flush()

        self._builder = threading.Thread(target=work, name=f"ann-{self.key}", daemon=True)
        self._builder.start()

    def wait_for_graph(self, timeout: float | None = None) -> bool:
        """Block until a background graph build ends (for tests, benchmarks, warm-up); True if ready."""
        builder = self._builder
        if builder is not None:
            builder.join(timeout)
        return self._ann is not None

    def flush(self) -> None:
        """Save the approximate graph if it changed (exact data is always saved on write)."""
        with self._lock:
            if self._ann is not None and self._ann_dirty:
                # A name of its own: another process (or another index object on
                # this directory) may be saving the same graph at this moment.
                tmp = self.directory / f".{ANN_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
                self._ann.save(str(tmp))
                os.replace(tmp, self.directory / ANN_FILE)
                self._ann_dirty = False

    # ------------------------------------------------------------------ searching
    def __len__(self) -> int:
        with self._lock:
            self._refresh()
            return self._n

    def doc_ids(self) -> list[str]:
        with self._lock:
            self._refresh()
            return list(self._manifest["docs"])

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self.doc_ids()

    def meta(self, doc_id: str) -> dict:
        with self._lock:
            self._refresh()
            return dict(self._manifest["docs"][doc_id]["meta"])

    def vectors(self, doc_id: str) -> np.ndarray:
        """A document's stored vectors, in passage order (for detectors that compare documents)."""
        with self._lock:
            self._refresh()
            rows = self._row_doc[:self._n] == self._slot_of[doc_id]
            return self._vecs[:self._n][rows].copy()

    def _hits(self, rows: np.ndarray, scores: np.ndarray) -> list[Hit]:
        hits = []
        for r, s in zip(rows, scores, strict=True):
            doc = self._slots[self._row_doc[r]]
            label = int(self._row_label[r] - self._manifest["docs"][doc]["label0"])
            start, end = self._row_span[r]
            hits.append(Hit(doc, label, int(start), int(end), float(s)))
        return hits

    def search(self, queries: np.ndarray, k: int = 10, exclude: Collection[str] = (),
               exact: bool | None = None) -> list[list[Hit]]:
        """Top-k passages by cosine for each query row (unit vectors), best first.

        `exclude` leaves out documents (e.g. the submission being checked).
        `exact=None` picks exact below `ann_threshold` passages and the HNSW
        graph above it once the graph is ready (it is loaded or built in the
        background; exact answers meanwhile). `exact=False` forces the graph,
        building it now if needed."""
        q = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, DIM)
        with self._lock:
            self._refresh()
            if self._n == 0 or k <= 0:
                return [[] for _ in q]
            if exact is None:
                use_ann = self._n >= self.ann_threshold and self._ann is not None
                if self._n >= self.ann_threshold and self._ann is None:
                    self._graph_in_background()
            else:
                use_ann = not exact
            if use_ann:
                return [self._search_ann(row, k, exclude) for row in q]
            return self._search_exact(q, k, exclude)

    def _excluded_rows(self, exclude: Collection[str]) -> np.ndarray | None:
        slots = [self._slot_of[d] for d in exclude if d in self._slot_of]
        return np.isin(self._row_doc[:self._n], slots) if slots else None

    def _search_exact(self, q: np.ndarray, k: int, exclude: Collection[str]) -> list[list[Hit]]:
        scores = q @ self._vecs[:self._n].T
        mask = self._excluded_rows(exclude)
        if mask is not None:
            scores[:, mask] = -np.inf
        kk = min(k, self._n - (0 if mask is None else int(mask.sum())))
        if kk <= 0:
            return [[] for _ in q]
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        out = []
        for i, rows in enumerate(top):
            rows = rows[np.argsort(-scores[i, rows], kind="stable")]
            out.append(self._hits(rows, scores[i, rows]))
        return out

    def _search_ann(self, q: np.ndarray, k: int, exclude: Collection[str]) -> list[Hit]:
        ann = self._ann_index()
        mask = self._excluded_rows(exclude)
        extra = 0 if mask is None else int(mask.sum())
        found = ann.search(q, min(k + extra, self._n))
        keys = np.asarray(found.keys, dtype=np.int64).reshape(-1)
        rows = np.searchsorted(self._row_label[:self._n], keys)
        ok = rows < self._n
        rows = rows[ok][self._row_label[rows[ok]] == keys[ok]]  # labels are kept sorted: row lookup
        if mask is not None:
            rows = rows[~mask[rows]]
        rows = rows[:k]
        scores = self._vecs[rows] @ q  # exact cosine for the reported similarity
        order = np.argsort(-scores, kind="stable")
        return self._hits(rows[order], scores[order])


class VectorIndex:
    """All partitions under one directory, plus the shared embedding cache.

    `root` is usually ATTEST_DATA_DIR/index; partitions live in
    root/partitions/, the content-hash cache in root/embeddings/."""

    def __init__(self, root: str | Path, embedder=None, ann_threshold: int = ANN_THRESHOLD) -> None:
        self.root = Path(root)
        (self.root / "partitions").mkdir(parents=True, exist_ok=True)
        self.ann_threshold = ann_threshold
        self._embedder = embedder
        self._cached: CachedEmbedder | None = None
        self._partitions: dict[str, LocalPartition] = {}
        self._lock = threading.Lock()

    @property
    def embedder(self) -> CachedEmbedder:
        """The process embedder behind the content-hash cache, loaded on first use."""
        with self._lock:
            if self._cached is None:
                if self._embedder is None:
                    from plagiarism.embedding import get_embedder

                    self._embedder = get_embedder()
                self._cached = CachedEmbedder(self._embedder, EmbeddingCache(self.root / "embeddings"))
            return self._cached

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings through the cache: a passage seen before is never embedded again."""
        return self.embedder.encode(list(texts))

    def partition(self, key: str) -> LocalPartition:
        with self._lock:
            part = self._partitions.get(key)
            if part is None:
                part = LocalPartition(self.root / "partitions" / _dir_name(key), key, self.ann_threshold)
                self._partitions[key] = part
            return part

    def partitions(self) -> list[str]:
        keys = []
        for manifest in sorted((self.root / "partitions").glob(f"*/{MANIFEST}")):
            try:
                keys.append(json.loads(manifest.read_bytes())["key"])
            except (OSError, ValueError, KeyError) as exc:
                raise IndexCorruptError(f"{manifest} is unreadable ({exc})") from exc
        return keys

    def add_document(self, key: str, doc_id: str, passages: Sequence[str], spans: Sequence[tuple[int, int]],
                     meta: dict | None = None) -> None:
        """Embed (through the cache) and store one document's passages; replaces an earlier version."""
        self.partition(key).add(doc_id, self.encode(passages), spans, meta)

    def search_texts(self, key: str, texts: Sequence[str], k: int = 10,
                     exclude: Collection[str] = ()) -> list[list[Hit]]:
        return self.partition(key).search(self.encode(texts), k=k, exclude=exclude)

    def flush(self) -> None:
        for part in list(self._partitions.values()):
            part.flush()


def open_index(root: str | Path | None = None, embedder=None) -> VectorIndex:
    """The index under ATTEST_DATA_DIR/index unless told otherwise."""
    if root is None:
        from kernel.settings import Settings

        root = Settings.from_env().data_dir / "index"
    return VectorIndex(root, embedder=embedder)
