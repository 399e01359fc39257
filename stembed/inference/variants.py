"""Deployment variants: a runtime, a number of dimensions kept, a precision the index stores.

Shared by measuring the grid (stembed.inference.grid) and serving the chosen variant
(stembed.inference.shipped), so that a shipped model stores and compares what its row measured.

Similarity of quantized embeddings is computed on their values as floats: int8 values as they are,
binary bits as -1/+1, whose cosine is 1 - 2 * hamming / dims, so ranking by it is ranking by Hamming
distance, as a binary index does. `binary-rescore` is the rescoring step of sentence-transformers'
quantization docs: documents stored as bits, the query kept in float32 and scored against the bits
(its ranking is the float query's dot product with the unpacked bits). It applies where the
evaluator encodes queries and documents apart (retrieval, label routing), and is left out elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sentence_transformers.quantization import quantize_embeddings

from stembed.components.model import embedding_dimension
from stembed.inference.runtimes import REFERENCE_RUNTIME, Encoder, as_texts

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers import SentenceTransformer

PRECISIONS = ("float32", "int8", "binary", "binary-rescore")
BYTES_PER_DIMENSION = {"float32": 4.0, "int8": 1.0, "binary": 1 / 8, "binary-rescore": 1 / 8}
REFERENCE = (REFERENCE_RUNTIME, "float32")  # with the full dimension: what every delta is measured from
BATCH_SIZE = 64  # eval texts are batched as a shipped model batches them (ONNX int8 depends on it)


@dataclass
class Variant:
    """One deployment variant: how it encodes, how many dimensions it keeps, how it stores them, and
    whether a reranking stage (stembed.inference.runtimes.RERANKERS) orders its top rerank_k candidates.

    A reranker alone (no retrieval: it scores every candidate, or the pairs themselves) has no runtime."""

    runtime: str
    dims: int
    precision: str
    reranker: str = ""  # the reranking stage's name; "" without one
    rerank_k: int = 0  # candidates per query it reranks; 0: every candidate (or the pair itself)

    @property
    def label(self) -> str:
        retrieval = f"{self.runtime} / {self.dims}d / {self.precision}" if self.runtime else ""
        if not self.reranker:
            return retrieval
        stage = f"{self.reranker}@{self.rerank_k or 'all'}"
        return f"{retrieval} + {stage}" if retrieval else stage


@dataclass
class Row:
    """One variant's measurements."""

    variant: Variant
    metric: float
    delta: float = 0.0
    low: float = float("nan")  # 95% paired-bootstrap interval of delta (nan: no per-example scores)
    high: float = float("nan")
    texts_per_second: float = 0.0  # queries/s where a reranker follows (a query: one text + its pairs)
    p50_ms: float = 0.0
    model_mb: float = 0.0  # bi-encoder and reranker together
    reranker_mb: float = 0.0  # the reranker's part of model_mb
    index_mb_per_million: float = 0.0
    chosen: bool = False


@dataclass
class ShipResult:
    """The measured grid (best first), the chosen row and where it was written."""

    metric_name: str
    rows: list[Row]
    chosen: Row
    output: Path
    registered: str | None = None
    notes: list[str] = field(default_factory=list)
    min_gain: float | None = None  # the gain asked for (--min-gain), where it replaced --max-drop
    reranker: str | None = None  # the reranker measured (--reranker), as given


def quantize(embeddings: np.ndarray, precision: str, ranges: np.ndarray | None) -> np.ndarray:
    """Embeddings as stored at this precision (float32, int8 values, or bits packed in uint8)."""

    if precision == "float32":
        return embeddings.astype("float32", copy=False)
    if precision == "int8":
        return quantize_embeddings(embeddings, "int8", ranges=ranges)
    return quantize_embeddings(embeddings, "ubinary")  # binary, binary-rescore (documents)


def as_comparable(stored: np.ndarray, precision: str, dims: int) -> np.ndarray:
    """Stored embeddings as float32 vectors whose cosine is what the index compares (see module doc)."""

    if precision.startswith("binary"):
        bits = np.unpackbits(stored.astype(np.uint8), axis=1)[:, :dims]
        return bits.astype(np.float32) * 2 - 1
    return stored.astype(np.float32)


def int8_ranges(calibration: np.ndarray, dims: int) -> np.ndarray:
    """Per-dimension [min, max] of the calibration embeddings (the int8 buckets' span)."""

    part = calibration[:, :dims]
    return np.stack([part.min(axis=0), part.max(axis=0)])


def prompt_text(model: SentenceTransformer, prompt: str | None, name: str | None, side: str | None) -> str:
    """The prompt `SentenceTransformer.encode` would prepend: the given one, the named one, else the
    side's own (encode_query uses a saved "query" prompt) or the model's default prompt."""
    if prompt is not None:
        return prompt
    prompts = model.prompts or {}
    name = name or (side if side in prompts else None) or model.default_prompt_name
    return prompts.get(name, "") if name else ""


class VariantModel:
    """What an evaluator sees: a SentenceTransformer whose encode gives one variant's embeddings.

    Everything but encoding (similarity function, prompts, ...) is the real model's. Embeddings are
    cached per runtime and prompted text, so every dimension and precision of a runtime reuses one
    encoding. `sides_used` records whether the evaluator encoded queries and documents apart.
    """

    def __init__(self, model: SentenceTransformer, encoder: Encoder) -> None:
        self._model, self._encoder = model, encoder
        self._cache: dict[str, np.ndarray] = {}
        self.dims = embedding_dimension(model)
        self.precision, self.ranges = "float32", None
        self.sides_used = False
        self.model_card_data = NoCardData()  # evaluators record metrics there; not in the real card

    def set(self, dims: int, precision: str, ranges: np.ndarray | None = None) -> VariantModel:
        self.dims, self.precision, self.ranges = dims, precision, ranges
        self.sides_used = False
        return self

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        """The real model's class, so that isinstance checks (kind_of: which kind of model is this)
        see the bi-encoder it stands for."""
        return type(self._model)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def full_embeddings(self, texts: list[str]) -> np.ndarray:

        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            self._cache.update(
                zip(missing, self._encoder.encode(missing, batch_size=BATCH_SIZE), strict=True)
            )
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 0), np.float32)

    def encode(self, sentences: Any, convert_to_tensor: bool = False, **kwargs: Any) -> Any:
        return self._encode(sentences, self.precision, None, convert_to_tensor, **kwargs)

    def encode_query(self, sentences: Any, convert_to_tensor: bool = False, **kwargs: Any) -> Any:
        self.sides_used = True
        precision = "float32" if self.precision == "binary-rescore" else self.precision
        return self._encode(sentences, precision, "query", convert_to_tensor, **kwargs)

    def encode_document(self, sentences: Any, convert_to_tensor: bool = False, **kwargs: Any) -> Any:
        self.sides_used = True
        return self._encode(sentences, self.precision, "document", convert_to_tensor, **kwargs)

    def _encode(
        self, sentences: Any, stored_as: str, side: str | None, convert_to_tensor: bool, **kwargs: Any
    ) -> Any:
        """kwargs are SentenceTransformer.encode's; its `precision` is the evaluator's, not the variant's."""

        single = isinstance(sentences, str)
        texts = as_texts([sentences] if single else sentences)
        prompt = prompt_text(self._model, kwargs.get("prompt"), kwargs.get("prompt_name"), side)
        full = self.full_embeddings([prompt + text for text in texts])[:, : self.dims]
        vectors = as_comparable(quantize(full, stored_as, self.ranges), stored_as, self.dims)
        if kwargs.get("normalize_embeddings"):
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.where(norms == 0, 1, norms)
        if single:
            vectors = vectors[0]
        return torch.from_numpy(np.ascontiguousarray(vectors)) if convert_to_tensor else vectors


class NoCardData:
    """A model card stand-in: evaluators record their metrics there, which must not reach the real card."""

    def set_evaluation_metrics(self, *args: Any, **kwargs: Any) -> None:
        return None
