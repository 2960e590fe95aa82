"""Content-hash embedding cache: every passage is embedded once.

Key: sha256 of (model id, normalised passage text). The model id names the
backend too (int8 ONNX or fp32), so vectors of different models never mix.
Normalisation is NFC plus collapsed white space: the model's tokenizer
ignores runs of white space, so texts equal after it embed identically, and
the normalised text is what gets embedded.

Storage: one SQLite file (stdlib, no server). Why SQLite and not our own
files: transactions make every write atomic, many processes (web workers,
CLI) can read and write the same cache safely (WAL), and a lookup of a
batch of keys is one indexed query. A corrupt cache is only a cache: it is
moved aside (logged) and a new one started.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

FILE_NAME = "embeddings.sqlite3"
_CHUNK = 500  # keys per SELECT ... IN (...), under SQLite's parameter limit


class Encoder(Protocol):
    dim: int
    model_id: str

    def encode(self, texts: list[str]) -> np.ndarray: ...


def normalise(text: str) -> str:
    """The form a passage is hashed and embedded in."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def content_key(text: str, model_id: str) -> bytes:
    """sha256 of the model id and the normalised text (32 bytes)."""
    return hashlib.sha256(f"{model_id}\0{normalise(text)}".encode()).digest()


class EmbeddingCache:
    """Persistent map content_key -> float32 vector, in `directory`."""

    def __init__(self, directory: str | Path, dim: int = 384) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / FILE_NAME
        self.dim = dim
        self._lock = threading.Lock()
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{FILE_NAME}.corrupt-{int(time.time())}")
            log.warning("embedding cache %s is unreadable (%s); moved to %s, starting empty",
                        self.path, exc, aside.name)
            self.path.rename(aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self._db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vec BLOB NOT NULL) WITHOUT ROWID")
        db.execute("SELECT count(*) FROM vectors").fetchone()  # surfaces a corrupt file now
        return db

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        with self._lock:
            for i in range(0, len(keys), _CHUNK):
                chunk = list(keys[i:i + _CHUNK])
                marks = ",".join("?" * len(chunk))
                for key, blob in self._db.execute(f"SELECT key, vec FROM vectors WHERE key IN ({marks})", chunk):
                    vec = np.frombuffer(blob, dtype=np.float32)
                    if vec.shape == (self.dim,):
                        found[bytes(key)] = vec
        return found

    def put_many(self, items: Sequence[tuple[bytes, np.ndarray]]) -> None:
        rows = [(k, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in items]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO vectors (key, vec) VALUES (?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM vectors").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class CachedEmbedder:
    """An embedder that asks the model only for passages it has never seen.

    Same `encode` contract as `plagiarism.embedding.Embedder`; `embedded`
    counts the passages the model actually embedded through this object.
    """

    def __init__(self, embedder: Encoder, cache: EmbeddingCache) -> None:
        self.embedder = embedder
        self.cache = cache
        self.dim = embedder.dim
        self.model_id = embedder.model_id
        self.embedded = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not len(texts):
            return out
        keys = [content_key(t, self.model_id) for t in texts]
        found = self.cache.get_many(list(dict.fromkeys(keys)))
        missing: dict[bytes, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in found and key not in missing:
                missing[key] = normalise(text)
        if missing:
            vectors = self.embedder.encode(list(missing.values()))
            self.embedded += len(missing)
            new = list(zip(missing.keys(), vectors, strict=True))
            self.cache.put_many(new)
            found.update(new)
        for i, key in enumerate(keys):
            out[i] = found[key]
        return out
