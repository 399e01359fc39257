"""Serving a shipped variant: load ship/ through its runtime (and reranking stage, where the chosen row
reranks) and encode, then rerank, as its ship.json says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stembed.errors import StembedError
from stembed.inference.runtimes import RERANKERS, RUNTIMES, Encoder, PairScorer, as_texts, shipped_model
from stembed.inference.ship_files import MANIFEST
from stembed.inference.variants import Variant, VariantModel, as_comparable, prompt_text, quantize

if TYPE_CHECKING:
    import numpy as np


def load_shipped(directory: str | Path) -> ShippedModel:
    """The variant written by `stembed ship`, ready to encode as its manifest says."""
    return ShippedModel(Path(directory))


class ShippedModel:
    """A shipped variant: its runtime, dimensions and precision, as in ship.json.

    encode() returns what an index stores: float32, int8, or bits packed in uint8 (binary);
    comparable() returns float vectors whose cosine ranks like the index (stembed.inference.variants).
    """

    def __init__(self, directory: Path) -> None:

        self.manifest = json.loads((directory / MANIFEST).read_text())
        variant = self.manifest["variant"]
        self.variant = Variant(
            variant["runtime"],
            int(variant["dims"]),
            variant["precision"],
            variant.get("reranker", ""),
            int(variant.get("rerank_k", 0)),
        )
        _check_known(directory, "runtime", self.variant.runtime, RUNTIMES)
        _check_known(directory, "reranker", self.variant.reranker, RERANKERS)
        # None: the reranker alone was shipped (it scores every candidate; nothing is encoded)
        self.encoder: Encoder | None = (
            RUNTIMES[self.variant.runtime].load(directory) if self.variant.runtime else None
        )
        self.model = self.encoder.model if self.encoder else shipped_model(directory)
        self.reranker: PairScorer | None = (
            RERANKERS[self.variant.reranker].load(directory) if self.variant.reranker else None
        )
        ranges = self.manifest.get("int8_ranges")
        self.ranges = np.asarray(ranges, dtype=np.float32) if ranges is not None else None

    def encode(self, texts: list[str], batch_size: int = 64, prompt_name: str | None = None) -> np.ndarray:
        """What the index stores for these texts (documents, for binary-rescore)."""
        full = self._truncated(texts, batch_size, prompt_name, None)
        return quantize(full, self.variant.precision, self.ranges)

    def encode_query(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Query vectors: float32 for binary-rescore (scored against the documents' bits), else encode()."""
        full = self._truncated(texts, batch_size, None, "query")
        if self.variant.precision == "binary-rescore":
            return full
        return quantize(full, self.variant.precision, self.ranges)

    def _truncated(self, texts: list[str], batch_size: int, prompt_name: str | None, side: str | None) -> Any:
        """The runtime's embeddings of the prompted texts, cut to the variant's dimensions."""
        if self.encoder is None:
            raise StembedError(
                f"{self.variant.label}: the shipped variant is the reranker alone, which encodes nothing. "
                "Score (query, candidate) pairs with shipped.score_pairs(pairs), or ship a row that "
                "retrieves."
            )
        prompt = prompt_text(self.model, None, prompt_name, side)
        full = self.encoder.encode([prompt + text for text in as_texts(texts)], batch_size=batch_size)
        return full[:, : self.variant.dims]

    def comparable(self, texts: list[str]) -> np.ndarray:
        return as_comparable(self.encode(texts), self.variant.precision, self.variant.dims)

    def evaluator_view(self) -> VariantModel:
        """The shipped variant's retrieval as an evaluator sees it (to reproduce a row without a reranker)."""
        if self.encoder is None:
            raise StembedError(f"{self.variant.label}: the reranker alone has no retrieval to evaluate.")
        return VariantModel(self.model, self.encoder).set(
            self.variant.dims, self.variant.precision, self.ranges
        )

    def score_pairs(self, pairs: list[tuple[str, str]], batch_size: int = 64) -> np.ndarray:
        """The shipped reranker's score of each (query, candidate) pair."""
        if self.reranker is None:
            raise StembedError(f"{self.variant.label}: no reranker was shipped with this variant.")
        return self.reranker.score([(str(q), str(c)) for q, c in pairs], batch_size=batch_size)

    def rerank(self, query: str, candidates: list[str]) -> list[int]:
        """Indices of candidates (the index's best first) as the shipped pipeline ranks them: its top
        rerank_k reordered by the reranker (every one for the reranker alone), the rest as they came."""
        k = self.variant.rerank_k or len(candidates)
        scores = self.score_pairs([(query, candidate) for candidate in candidates[:k]])
        return [int(i) for i in np.argsort(-scores, kind="stable")] + list(range(k, len(candidates)))


def _check_known(directory: Path, what: str, name: str, known: dict[str, Any]) -> None:
    if name and name not in known:
        raise StembedError(
            f"{directory / MANIFEST}: {what} {name} is not one this stembed has ({', '.join(known)}). "
            "Load it with the stembed version that shipped it."
        )
