"""Runtimes that turn texts into sentence embeddings: PyTorch (fp32, or bf16 where the CPU computes it
natively) and ONNX Runtime (fp32, int8).

Both take texts and return float32 numpy embeddings of the model's full dimension, so the
deployment grid (stembed.inference.ship) and `stembed encode --backend` can swap them freely.
The ONNX runtime tokenizes with the model's own preprocessing and sorts texts by length before
batching, as `SentenceTransformer.encode` does, so batches carry little padding.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from stembed.components.model import embedding_dimension
from stembed.errors import StembedError
from stembed.inference.export import FP32_FILE, INT8_FILE, export_onnx, preprocess, run_session

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers import SentenceTransformer

BACKENDS = ("torch", "torch-bf16", "onnx", "onnx-int8")


class Encoder(Protocol):
    """Texts in, float32 embeddings (one row per text) out."""

    name: str

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray: ...


class TorchEncoder:
    """The PyTorch model, through `SentenceTransformer.encode`."""

    def __init__(self, model: SentenceTransformer, name: str = "torch-fp32") -> None:
        self.model, self.name = model, name

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        embeddings = self.model.encode(
            texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return embeddings.astype("float32", copy=False)


def bf16_copy(model: SentenceTransformer) -> SentenceTransformer:
    """A bfloat16 copy of the model (half the weights' bytes); the caller's model stays float32."""
    import copy

    import torch

    return copy.deepcopy(model).to(torch.bfloat16)


class OnnxEncoder:
    """An exported graph (stembed export) in ONNX Runtime, fed by the model's own preprocessing."""

    def __init__(self, model: SentenceTransformer, path: Path, name: str = "onnx-fp32") -> None:
        import onnxruntime

        self.model, self.path, self.name = model, path, name
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # no graph-rewrite notes on every load
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        import numpy as np

        if not texts:
            return np.zeros((0, embedding_dimension(self.model)), dtype=np.float32)
        order = np.argsort([-len(text) for text in texts], kind="stable")  # longest first, like ST
        parts = []
        for start in range(0, len(texts), batch_size):
            batch = [texts[i] for i in order[start : start + batch_size]]
            parts.append(run_session(self.session, preprocess(self.model, batch)))
        embeddings = np.concatenate(parts).astype(np.float32, copy=False)
        result = np.empty_like(embeddings)
        result[order] = embeddings
        return result


def backend_encoder(model: SentenceTransformer, backend: str, workdir: Path) -> Encoder:
    """The encoder for `--backend`: torch as it is, onnx / onnx-int8 exported into workdir first."""

    if backend not in BACKENDS:
        raise StembedError(f"--backend {backend}: not supported. Use one of: {', '.join(BACKENDS)}.")
    if backend == "torch":
        return TorchEncoder(model)
    if backend == "torch-bf16":
        return TorchEncoder(bf16_copy(model), backend)
    quantize = "int8" if backend == "onnx-int8" else None
    export_onnx(model, workdir, quantize=quantize)
    return OnnxEncoder(model, workdir / (INT8_FILE if quantize else FP32_FILE), backend)


def directory_megabytes(path: Path) -> float:
    """Size on disk of a file or a directory tree, in MB (10^6 bytes)."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def as_texts(values: Any) -> list[str]:
    """A list of strings from any sequence of values (None becomes '')."""
    return ["" if value is None else str(value) for value in values]
