"""Serving a shipped variant: load ship/ through its runtime and encode as its ship.json says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stembed.errors import StembedError
from stembed.inference.runtimes import RUNTIMES, Encoder, as_texts
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
        self.variant = Variant(variant["runtime"], int(variant["dims"]), variant["precision"])
        if self.variant.runtime not in RUNTIMES:
            raise StembedError(
                f"{directory / MANIFEST}: runtime {self.variant.runtime} is not one this stembed has "
                f"({', '.join(RUNTIMES)}). Load it with the stembed version that shipped it."
            )
        self.encoder: Encoder = RUNTIMES[self.variant.runtime].load(directory)
        self.model = self.encoder.model
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
        prompt = prompt_text(self.model, None, prompt_name, side)
        full = self.encoder.encode([prompt + text for text in as_texts(texts)], batch_size=batch_size)
        return full[:, : self.variant.dims]

    def comparable(self, texts: list[str]) -> np.ndarray:
        return as_comparable(self.encode(texts), self.variant.precision, self.variant.dims)

    def evaluator_view(self) -> VariantModel:
        """The shipped variant as an evaluator sees it (to reproduce its row's metric)."""
        return VariantModel(self.model, self.encoder).set(
            self.variant.dims, self.variant.precision, self.ranges
        )
