"""The embedding engine with the real model: the fast path must agree with
plain sentence-transformers fp32, and the content-hash cache must make every
passage embedded once, across reopen."""

from __future__ import annotations

import json

import numpy as np
import pytest

from plagiarism import build_model, embedding
from plagiarism.cache import CachedEmbedder, EmbeddingCache, content_key, normalise
from plagiarism.embedding import DIM, Embedder, TorchEmbedder, get_embedder, model_path

# Real sentences of the kinds submissions hold: essay prose of several lengths,
# technical text, a list, numbers, a heading, a non-English line, one word.
TEXTS = [
    "The Industrial Revolution transformed Britain from an agrarian society into the workshop of the world.",
    "Historians still debate whether living standards for ordinary workers rose or fell between 1780 and 1850; "
    "real wages stagnated for decades while urban mortality climbed, yet consumption of sugar and tea grew.",
    "Photosynthesis takes place in the chloroplasts, where light energy splits water and releases oxygen.",
    "In this essay I argue that social media has made political polarisation worse, not because it creates "
    "new divisions but because it rewards the most outraged voices with attention and reach.",
    "A hash table maps keys to buckets with a hash function, so a lookup takes constant time on average.",
    "Results: the treatment group improved by 12.4% (95% CI 8.1-16.7, p < 0.01) compared with controls.",
    "Introduction",
    "Keywords: sustainability, supply chains, circular economy, life-cycle assessment.",
    "Freedom is not worth having if it does not include the freedom to make mistakes.",
    "La Révolution française a profondément transformé la société et les institutions politiques.",
    "Hamlet's hesitation has been read as cowardice, as melancholy, and as the scruple of a thinking man "
    "who cannot act without certainty; the play itself refuses to settle which reading is right, and that "
    "refusal is part of why audiences return to it four centuries later. Each generation finds its own "
    "Hamlet, and each Hamlet says as much about the reader as about the prince.",
    "yes",
    "Supply and demand determine the price at which a competitive market clears.",
    "The experiment was repeated three times and the mean of the three runs is reported in Table 2.",
    "Climate change is expected to increase the frequency and severity of droughts in southern Europe.",
    "First, preheat the oven; second, mix the flour and butter; third, add the eggs one at a time.",
]


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The process embedder, loaded (and its fast model built if missing) once per session."""
    return get_embedder()


@pytest.fixture(scope="session")
def reference() -> TorchEmbedder:
    return TorchEmbedder()


@pytest.fixture(scope="session")
def reference_vectors(reference: TorchEmbedder) -> np.ndarray:
    return reference.encode(TEXTS)


class CountingEncoder:
    """Wraps the real embedder and counts the passages it is asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.model_id = inner.model_id
        self.calls = 0
        self.passages = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.passages += len(texts)
        return self.inner.encode(texts)


def test_fast_path_is_in_use_and_singleton(embedder: Embedder) -> None:
    assert embedder is get_embedder()
    # Falling back silently to fp32 would lose the speed-up: the default must be the built int8 model.
    assert embedder.backend == "onnx-int8", embedder.backend
    built = build_model.built_model()
    assert built is not None
    manifest = json.loads((built / build_model.MANIFEST).read_text())
    assert manifest["min_cosine"] >= 0.99
    assert embedder.dim == DIM == 384
    assert "all-MiniLM-L6-v2" in embedder.model_id and "onnx-int8" in embedder.model_id
    assert str(model_path()).endswith("model")


def test_shape_dtype_and_normalisation(embedder: Embedder) -> None:
    vecs = embedder.encode(TEXTS)
    assert vecs.shape == (len(TEXTS), DIM)
    assert vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    assert embedder.encode([]).shape == (0, DIM)


def test_agrees_with_sentence_transformers_fp32(embedder: Embedder, reference_vectors: np.ndarray) -> None:
    vecs = embedder.encode(TEXTS)
    cos = (vecs * reference_vectors).sum(axis=1)
    worst = int(np.argmin(cos))
    assert cos.min() >= 0.99, f"cosine {cos.min():.4f} for {TEXTS[worst]!r}"
    # The rows really are different passages, not one vector repeated.
    assert float((vecs[0] * vecs[2]).sum()) < 0.5


def test_rows_follow_input_order_despite_length_sorting(embedder: Embedder) -> None:
    together = embedder.encode(TEXTS)
    for i in (0, 6, 10, 11):
        alone = embedder.encode([TEXTS[i]])[0]
        assert float(alone @ together[i]) > 0.999, TEXTS[i]


def test_meaning_survives_quantisation(embedder: Embedder) -> None:
    a, b, c = embedder.encode([
        "The cat sat on the mat by the fire.",
        "A cat was sitting on the rug near the fireplace.",
        "Interest rates were raised by the central bank to fight inflation.",
    ])
    assert float(a @ b) > float(a @ c) + 0.3


def test_fp32_fallback_is_the_reference(reference: TorchEmbedder, reference_vectors: np.ndarray,
                                        monkeypatch) -> None:
    monkeypatch.setattr(embedding, "TorchEmbedder", lambda: reference)  # the session's model, not a reload
    fallback = Embedder(backend="torch")
    assert fallback.backend == "torch-fp32"
    assert fallback.model_id != get_embedder().model_id  # caches never mix vectors of two backends
    np.testing.assert_allclose(fallback.encode(TEXTS[:3]), reference_vectors[:3], atol=1e-5)
    with pytest.raises(ValueError, match="backend"):
        Embedder(backend="gpu")


def test_cache_embeds_each_passage_once(embedder: Embedder, tmp_path) -> None:
    counting = CountingEncoder(embedder)
    cached = CachedEmbedder(counting, EmbeddingCache(tmp_path / "emb"))
    first = cached.encode(TEXTS[:8])
    assert counting.passages == 8 and cached.embedded == 8
    again = cached.encode(TEXTS[:8])
    assert counting.calls == 1 and counting.passages == 8  # nothing re-embedded
    np.testing.assert_array_equal(first, again)
    # Two new passages among known ones, one duplicated and one differing only in white space.
    mixed = [TEXTS[8], TEXTS[0], TEXTS[8], "  " + TEXTS[9].replace(" ", "\n  ") + " ", TEXTS[1]]
    out = cached.encode(mixed)
    assert counting.passages == 10 and counting.calls == 2
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(out[1], first[0])
    assert float(out[3] @ embedder.encode([TEXTS[9]])[0]) > 0.999


def test_cache_survives_reopen(embedder: Embedder, tmp_path) -> None:
    counting = CountingEncoder(embedder)
    cached = CachedEmbedder(counting, EmbeddingCache(tmp_path / "emb"))
    before = cached.encode(TEXTS)
    cached.cache.close()

    reopened = CountingEncoder(embedder)
    cache = EmbeddingCache(tmp_path / "emb")
    assert len(cache) == len(TEXTS)
    after = CachedEmbedder(reopened, cache).encode(list(reversed(TEXTS)))
    assert reopened.passages == 0
    np.testing.assert_array_equal(after, before[::-1])


def test_cache_keys_name_the_model_and_normalise_white_space() -> None:
    assert normalise("  a\tb\n\nc ") == "a b c"
    assert content_key("a  b", "m1") == content_key("a b", "m1")
    assert content_key("a b", "m1") != content_key("a b", "m2")
    assert content_key("a b", "m1") != content_key("a c", "m1")


def test_corrupt_cache_file_is_set_aside(tmp_path, caplog) -> None:
    directory = tmp_path / "emb"
    directory.mkdir()
    (directory / "embeddings.sqlite3").write_bytes(b"this is not a database" * 100)
    cache = EmbeddingCache(directory)
    assert len(cache) == 0
    assert list(directory.glob("embeddings.sqlite3.corrupt-*"))
    assert "unreadable" in caplog.text
    cache.put_many([(b"k" * 32, np.ones(DIM, np.float32))])
    assert set(cache.get_many([b"k" * 32])) == {b"k" * 32}


def test_build_is_idempotent_and_quick_when_done(embedder: Embedder) -> None:
    import time

    built = build_model.built_model()
    stamp = (built / build_model.MODEL_FILE).stat().st_mtime_ns
    t = time.perf_counter()
    assert build_model.build() == built
    assert time.perf_counter() - t < 5
    assert (built / build_model.MODEL_FILE).stat().st_mtime_ns == stamp  # not rebuilt


def test_falls_back_to_fp32_when_the_fast_model_cannot_be_built(monkeypatch, caplog, reference: TorchEmbedder,
                                                                reference_vectors: np.ndarray) -> None:
    def broken() -> None:
        raise RuntimeError("no space left on device")

    monkeypatch.setattr(build_model, "build_model_path", broken)
    monkeypatch.setattr(embedding, "TorchEmbedder", lambda: reference)
    fallback = Embedder()
    assert fallback.backend == "torch-fp32"
    assert "no space left on device" in caplog.text and "fp32" in caplog.text
    np.testing.assert_allclose(fallback.encode(TEXTS[:2]), reference_vectors[:2], atol=1e-5)
    with pytest.raises(RuntimeError, match="no space"):
        Embedder(backend="onnx")
