"""The passage vector index: exact and approximate search, partitions,
incremental adds, deletes, restart, and clear errors for damaged files.
Synthetic unit vectors (and a deterministic fake encoder) so these tests
check the index itself; the real model is tested in test_plagiarism_embedding."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

from plagiarism import index as index_mod
from plagiarism.index import (
    DIM,
    MANIFEST,
    IndexCorruptError,
    LocalPartition,
    VectorIndex,
    partition_key,
)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def rand_unit(n: int, seed: int) -> np.ndarray:
    return unit(np.random.default_rng(seed).standard_normal((n, DIM)))


def spans(n: int) -> list[tuple[int, int]]:
    return [(i * 50, i * 50 + 40) for i in range(n)]


class FakeEncoder:
    """Deterministic vectors from the text's hash; counts what it embeds."""

    dim = DIM
    model_id = "fake-encoder"

    def __init__(self) -> None:
        self.passages: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.passages.extend(texts)
        seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little") for t in texts]
        return unit(np.stack([np.random.default_rng(s).standard_normal(DIM) for s in seeds]))


def ids(hits) -> list[tuple[str, int]]:
    return [(h.doc_id, h.passage) for h in hits]


@pytest.fixture
def part(tmp_path) -> LocalPartition:
    p = LocalPartition(tmp_path / "p", "course/assignment")
    for d in range(6):
        p.add(f"doc{d}", rand_unit(20, d), spans(20), meta={"student": f"s{d}"})
    return p


def test_exact_search_finds_the_nearest(part: LocalPartition) -> None:
    everything = np.concatenate([rand_unit(20, d) for d in range(6)])
    names = [(f"doc{d}", i) for d in range(6) for i in range(20)]
    queries = unit(everything[[3, 47, 118]] + rand_unit(3, 99) * 0.3)
    results = part.search(queries, k=10)
    for q, hits in zip(queries, results, strict=True):
        truth = np.argsort(-(everything @ q))[:10]
        assert ids(hits) == [names[i] for i in truth]
        np.testing.assert_allclose([h.score for h in hits], (everything @ q)[truth], atol=1e-5)
    best = results[0][0]
    assert (best.doc_id, best.passage, best.start, best.end) == ("doc0", 3, 150, 190)
    assert part.meta("doc0") == {"student": "s0"}
    assert len(part) == 120


def test_exclude_leaves_out_documents(part: LocalPartition) -> None:
    q = rand_unit(20, 2)[5:6]
    assert part.search(q, k=1)[0][0].doc_id == "doc2"
    for exact in (True, False):
        hits = part.search(q, k=10, exclude={"doc2", "doc4"}, exact=exact)[0]
        assert len(hits) == 10 and not {h.doc_id for h in hits} & {"doc2", "doc4"}


def test_partitions_are_isolated(tmp_path) -> None:
    ix = VectorIndex(tmp_path, embedder=FakeEncoder())
    a, b = partition_key("CS101", "essay-1"), partition_key("CS101", "essay-2")
    ix.add_document(a, "alice.txt", ["one shared passage", "alice only"], spans(2))
    ix.add_document(b, "alice.txt", ["something else entirely"], spans(1))
    ix.add_document(b, "bob.txt", ["one shared passage"], spans(1))
    hits_a = ix.search_texts(a, ["one shared passage"], k=10)[0]
    assert {h.doc_id for h in hits_a} == {"alice.txt"} and len(hits_a) == 2
    assert ix.search_texts(b, ["one shared passage"], k=1)[0][0].doc_id == "bob.txt"
    assert sorted(ix.partitions()) == sorted([a, b])
    assert ix.partition(a).directory != ix.partition(b).directory
    ix.partition(a).delete("alice.txt")
    assert len(ix.partition(a)) == 0 and len(ix.partition(b)) == 2


def test_incremental_add_touches_no_other_document(tmp_path) -> None:
    enc = FakeEncoder()
    ix = VectorIndex(tmp_path, embedder=enc)
    key = partition_key(1, 2)
    ix.add_document(key, "a", ["a1", "a2", "a3"], spans(3))
    ix.add_document(key, "b", ["b1", "b2"], spans(2))
    docs = ix.partition(key).directory / "docs"
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in docs.iterdir()}
    assert len(before) == 2
    ix.add_document(key, "c", ["c1", "a2"], spans(2))  # a2 seen before: not embedded again
    ix.add_document(key, "b", ["b1", "b2", "b3"], spans(3))  # replace b: only b3 is new
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in docs.iterdir()}
    a_file = json.loads((ix.partition(key).directory / MANIFEST).read_text())["docs"]["a"]["file"]
    assert after[a_file] == before[a_file]  # a's file untouched
    assert len(after) == 3  # the replaced b file was removed
    assert enc.passages == ["a1", "a2", "a3", "b1", "b2", "c1", "b3"]
    assert len(ix.partition(key)) == 3 + 2 + 3
    assert ix.search_texts(key, ["b3"], k=1)[0][0].doc_id == "b"


def test_delete(part: LocalPartition, tmp_path) -> None:
    q = rand_unit(20, 3)[7:8]
    assert part.search(q, k=1)[0][0].doc_id == "doc3"
    assert part.delete("doc3") is True
    assert part.delete("doc3") is False
    assert "doc3" not in part.doc_ids() and len(part) == 100
    assert all(h.doc_id != "doc3" for h in part.search(q, k=100)[0])
    assert len(list((part.directory / "docs").iterdir())) == 5
    reopened = LocalPartition(part.directory, part.key)
    assert "doc3" not in reopened.doc_ids() and len(reopened) == 100


def test_restart_gives_the_same_results(part: LocalPartition) -> None:
    queries = rand_unit(5, 42)
    exact = part.search(queries, k=10, exact=True)
    approx = part.search(queries, k=10, exact=False)
    part.flush()
    assert (part.directory / index_mod.ANN_FILE).exists()
    again = LocalPartition(part.directory, part.key)
    assert again.search(queries, k=10, exact=True) == exact
    assert again.search(queries, k=10, exact=False) == approx
    assert again.meta("doc5") == {"student": "s5"}
    np.testing.assert_array_equal(again.vectors("doc1"), rand_unit(20, 1))


def test_approximate_search_recall_on_clustered_data(tmp_path) -> None:
    rng = np.random.default_rng(5)
    centres = rand_unit(40, 6)
    data = unit(centres[rng.integers(0, 40, 3000)] + rng.standard_normal((3000, DIM)) * 0.07)
    p = LocalPartition(tmp_path / "p", "big", ann_threshold=1000)
    for d in range(30):
        p.add(f"d{d}", data[d * 100:(d + 1) * 100], spans(100))
    queries = unit(data[rng.integers(0, 3000, 50)] + rng.standard_normal((50, DIM)) * 0.05)
    exact = p.search(queries, k=10, exact=True)
    # 3000 >= threshold: the first search answers exactly and builds the graph in the background,
    # saves it when done, and later searches use it.
    assert p.search(queries, k=10) == exact
    assert p.wait_for_graph(timeout=120)
    assert (p.directory / index_mod.ANN_FILE).exists()
    auto = p.search(queries, k=10)
    recall = np.mean([len(set(ids(a)) & set(ids(e))) / 10 for a, e in zip(auto, exact, strict=True)])
    assert recall >= 0.9, recall
    # The graph follows adds and deletes without a rebuild.
    p.delete("d0")
    p.add("new", unit(data[:5] + 0.01), spans(5))
    hits = p.search(data[:1], k=5)[0]
    assert hits[0].doc_id == "new" and all(h.doc_id != "d0" for h in hits)


def test_stale_or_corrupt_graph_is_repaired_from_stored_vectors(tmp_path) -> None:
    p = LocalPartition(tmp_path / "p", "k", ann_threshold=50)
    for d in range(3):
        p.add(f"d{d}", rand_unit(30, d), spans(30))
    p.search(rand_unit(1, 9), k=3, exact=False)
    p.flush()
    other = LocalPartition(tmp_path / "p", "k", ann_threshold=50)  # another process, say
    other.add("late", rand_unit(30, 77), spans(30))  # graph file not saved: now stale
    other.delete("d1")
    fresh = LocalPartition(tmp_path / "p", "k", ann_threshold=50)
    hits = fresh.search(rand_unit(30, 77)[4:5], k=30)[0]
    assert hits[0].doc_id == "late" and all(h.doc_id != "d1" for h in hits)
    # The first instance picks up the other's writes too.
    assert p.search(rand_unit(30, 77)[4:5], k=1)[0][0].doc_id == "late"
    (tmp_path / "p" / index_mod.ANN_FILE).write_bytes(b"garbage")
    rebuilt = LocalPartition(tmp_path / "p", "k", ann_threshold=50)
    assert rebuilt.search(rand_unit(30, 0)[2:3], k=1)[0][0].doc_id == "d0"


def test_corrupt_manifest_is_a_clear_error(part: LocalPartition) -> None:
    (part.directory / MANIFEST).write_text('{"format": 1, "docs": {"doc0": ')
    with pytest.raises(IndexCorruptError, match=r"manifest\.json is unreadable"):
        LocalPartition(part.directory, part.key)


def test_missing_manifest_with_documents_is_a_clear_error(part: LocalPartition) -> None:
    (part.directory / MANIFEST).unlink()
    with pytest.raises(IndexCorruptError, match=r"manifest\.json is missing"):
        LocalPartition(part.directory, part.key)


def test_missing_or_damaged_document_file_is_named(part: LocalPartition) -> None:
    entry = json.loads((part.directory / MANIFEST).read_text())["docs"]["doc2"]
    path = part.directory / "docs" / entry["file"]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexCorruptError, match=rf"{entry['file']}.*'doc2'.*unreadable"):
        LocalPartition(part.directory, part.key)
    path.unlink()
    with pytest.raises(IndexCorruptError, match=rf"{entry['file']}.*'doc2'.*missing"):
        LocalPartition(part.directory, part.key)


def test_crash_mid_save_keeps_the_previous_state(part: LocalPartition, monkeypatch) -> None:
    real_replace = os.replace

    def crash_on_manifest(src, dst):
        if str(dst).endswith(MANIFEST):
            raise OSError("power cut")
        return real_replace(src, dst)

    monkeypatch.setattr(index_mod.os, "replace", crash_on_manifest)
    with pytest.raises(OSError, match="power cut"):
        part.add("doc9", rand_unit(20, 9), spans(20))
    monkeypatch.undo()
    assert "doc9" not in part.doc_ids() and len(part) == 120  # memory follows the disk, not the failed write
    reopened = LocalPartition(part.directory, part.key)
    assert sorted(reopened.doc_ids()) == [f"doc{d}" for d in range(6)] and len(reopened) == 120
    assert not list(part.directory.glob(".manifest.json.*"))  # no temp file left behind
    reopened.add("doc9", rand_unit(20, 9), spans(20))  # the next write sweeps the orphan file
    assert len(list((part.directory / "docs").iterdir())) == 7


def test_bad_input_is_refused(part: LocalPartition) -> None:
    with pytest.raises(ValueError, match="3 vectors but 2 spans"):
        part.add("x", rand_unit(3, 1), spans(2))
    assert part.search(rand_unit(1, 1), k=0) == [[]]
    empty = LocalPartition(part.directory.parent / "empty", "e")
    assert empty.search(rand_unit(2, 1), k=5) == [[], []]


def test_writes_during_a_background_graph_build_are_not_lost(tmp_path) -> None:
    p = LocalPartition(tmp_path / "p", "k", ann_threshold=500)
    for d in range(20):
        p.add(f"d{d}", rand_unit(100, d), spans(100))
    p.search(rand_unit(1, 1), k=1)  # starts the build; answers exactly
    p.add("late", rand_unit(10, 500), spans(10))  # while (or just after) it builds
    p.delete("d3")
    assert p.wait_for_graph(timeout=120)
    late = p.search(rand_unit(10, 500)[6:7], k=5)[0]
    assert (late[0].doc_id, late[0].passage) == ("late", 6)
    assert p.search(rand_unit(100, 3)[:1], k=50, exact=False)[0][0].doc_id != "d3"
    assert len(p._ann) == len(p) == 1910


def test_a_stale_stat_loses_no_document_of_another_writer(tmp_path, monkeypatch) -> None:
    """Two processes on one shared partition, where stat lies as NFS attribute
    caching makes it lie: the manifest's size, mtime and inode stay those first
    seen. Trusting that stat, the second writer once wrote its own stale
    manifest over the first's and lost 10 of its 11 documents. Judged by
    content, it reloads before writing and keeps all 12."""
    import pathlib

    real_stat = pathlib.Path.stat
    cached: dict[str, os.stat_result] = {}

    def attribute_cached_stat(self, *args, **kwargs):
        if self.name != MANIFEST:
            return real_stat(self, *args, **kwargs)
        key = str(self)
        if key not in cached:
            cached[key] = real_stat(self, *args, **kwargs)
        return cached[key]

    first = LocalPartition(tmp_path / "p", "course/assignment")
    first.add("doc0", rand_unit(5, 0), spans(5))
    monkeypatch.setattr(pathlib.Path, "stat", attribute_cached_stat)
    second = LocalPartition(tmp_path / "p", "course/assignment")  # another machine, on the same share
    (first.directory / MANIFEST).stat()  # the attributes are cached from here on
    for d in range(1, 11):
        first.add(f"doc{d}", rand_unit(5, d), spans(5))
    assert sorted(second.doc_ids()) == sorted(f"doc{d}" for d in range(11)), "a reader sees the other's writes"
    second.add("doc11", rand_unit(5, 11), spans(5))
    monkeypatch.undo()
    on_disk = LocalPartition(tmp_path / "p", "course/assignment")
    assert sorted(on_disk.doc_ids()) == sorted(f"doc{d}" for d in range(12))
    assert sorted(first.doc_ids()) == sorted(f"doc{d}" for d in range(12)), "and the first sees the second's"
    hits = on_disk.search(rand_unit(1, 3), k=1)
    assert [h.doc_id for h in hits[0]] == ["doc3"]


def test_a_process_that_searches_a_large_partition_before_it_embeds_survives(tmp_path):
    """Found by running this file before test_plagiarism_embedding.py: usearch
    loaded before onnxruntime, then the embedder, is a segmentation fault. A
    report job in a fresh worker does exactly that on a partition past the
    HNSW threshold. Its own process, so a crash fails this test, not the run."""
    import subprocess
    import sys

    script = f"""
import numpy as np
from plagiarism.index import LocalPartition
p = LocalPartition({str(tmp_path / "p")!r}, "k", ann_threshold=50)
rng = np.random.default_rng(1)
v = rng.normal(size=(80, 384)).astype("float32")
v /= np.linalg.norm(v, axis=1, keepdims=True)
p.add("d", v, [(i, i + 1) for i in range(80)])
assert p.search(v[:1], k=3, exact=False)[0][0].doc_id == "d"
from plagiarism.embedding import get_embedder
print(get_embedder().encode(["Coral reefs bleach in warm water."]).shape)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "(1, 384)" in done.stdout
