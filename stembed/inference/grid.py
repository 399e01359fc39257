"""Measuring ship's grid: every runtime x dimension x precision on the run's eval data, and the choice.

Each runtime encodes the texts once; truncation and quantization are applied to those embeddings,
so the grid costs one encoding per runtime, not one per cell. Each row's difference to the
full-precision PyTorch model comes with a paired-bootstrap interval over the eval examples
(stembed.analysis).
"""

from __future__ import annotations

import contextlib
import io
import statistics
import time
from dataclasses import dataclass
from itertools import chain, zip_longest
from typing import TYPE_CHECKING, Any

from stembed.analysis.bootstrap import paired_bootstrap
from stembed.analysis.compare import columns
from stembed.components.per_example import METRICS, tables
from stembed.data.loading import text_columns
from stembed.inference.runtimes import Encoder, as_texts
from stembed.inference.variants import (
    BATCH_SIZE,
    BYTES_PER_DIMENSION,
    PRECISIONS,
    REFERENCE,
    Row,
    Variant,
    VariantModel,
    int8_ranges,
)

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers import SentenceTransformer

STANDARD_DIMS = (64, 128, 256, 512, 768, 1024)
CALIBRATION_TEXTS = 1000  # training texts that set the int8 ranges (never the eval texts)
SPEED_TEXTS, SPEED_BATCH, SPEED_REPEATS, LATENCY_CALLS = 256, BATCH_SIZE, 3, 15


def truncation_dims(full: int, requested: list[int] | None = None) -> list[int]:
    """The full dimension and the truncations below it: the standard ones, else halves and quarters."""
    if requested:
        return sorted({d for d in requested if 0 < d <= full} | {full}, reverse=True)
    dims = [d for d in STANDARD_DIMS if d < full]
    if len(dims) < 2:  # small models (the tiny test model): halves and quarters
        dims = sorted({full // 2, full // 4} - {0})
    return sorted({*dims, full}, reverse=True)


def split_texts(rows: Any) -> list[str]:
    """Up to CALIBRATION_TEXTS distinct texts of a split, taken from its text columns in turn:
    training texts set the int8 ranges (never the eval texts), eval texts are what speed is measured
    on. In turn, so that short documents (category names beside tickets) shape the ranges too."""
    texts = [list(dict.fromkeys(as_texts(rows[c]))) for c in text_columns(rows)] if rows is not None else []
    interleaved = (t for t in chain.from_iterable(zip_longest(*texts)) if t is not None)
    return list(dict.fromkeys(interleaved))[:CALIBRATION_TEXTS]


def evaluate_variant(evaluator: Any, proxy: VariantModel) -> tuple[str, float]:
    """(primary metric name, value) of the evaluator on this variant."""
    metrics = evaluator(proxy)
    name = evaluator.primary_metric
    if name not in metrics:  # some evaluators keep the unprefixed name
        name = next(k for k in metrics if k.endswith(str(name)))
    return name, float(metrics[name])


def measure_speed(encoder: Encoder, texts: list[str]) -> tuple[float, float]:
    """(texts/s at batch 64, median of 3; p50 latency of one text in ms) on this machine."""
    sample = (texts * (SPEED_TEXTS // max(len(texts), 1) + 1))[:SPEED_TEXTS]
    encoder.encode(sample[:SPEED_BATCH], batch_size=SPEED_BATCH)  # warm-up
    rates = []
    for _ in range(SPEED_REPEATS):
        started = time.perf_counter()
        encoder.encode(sample, batch_size=SPEED_BATCH)
        rates.append(len(sample) / (time.perf_counter() - started))
    latencies = []
    for text in sample[:LATENCY_CALLS]:
        started = time.perf_counter()
        encoder.encode([text], batch_size=1)
        latencies.append((time.perf_counter() - started) * 1000)
    return statistics.median(rates), statistics.median(latencies)


def choose(rows: list[Row], max_drop: float, min_gain: float | None = None) -> Row | None:
    """Among the rows within max_drop of the reference (or, with min_gain, at least min_gain above
    it): a row without a reranker first (a reranker costs time on every query), then the smallest
    index, the smallest model, the fastest. None where no row gains min_gain."""
    floor = -max_drop if min_gain is None else min_gain
    eligible = [row for row in rows if row.delta >= floor - 1e-12]
    if not eligible:
        return None
    return min(
        eligible,
        key=lambda r: (bool(r.variant.reranker), r.index_mb_per_million, r.model_mb, -r.texts_per_second),
    )


@dataclass
class Grid:
    """The measured grid: rows best first, and what measuring more rows against it needs."""

    metric_name: str
    rows: list[Row]
    ranges_of: dict[tuple[str, int], np.ndarray]  # int8 ranges per (runtime, dims)
    examples: dict[str, tuple[Any, Any] | None]  # per variant label: (per-example table, metric recipe)
    views: dict[str, VariantModel]  # per runtime: what the evaluator saw (its embeddings cached)
    reference: Row

    def view(self, variant: Variant) -> VariantModel:
        """The evaluator's view of a variant's retrieval (its runtime's cached embeddings)."""
        ranges = self.ranges_of.get((variant.runtime, variant.dims))
        return self.views[variant.runtime].set(variant.dims, variant.precision, ranges)


def run_grid(
    model: SentenceTransformer,
    encoders: dict[str, Encoder],
    sizes: dict[str, float],
    evaluator: Any,
    calibration_texts: list[str],
    speed_texts: list[str],
    dims: list[int],
) -> Grid:
    """Evaluate every runtime x dims x precision; rows best first, deltas to the PyTorch fp32 reference."""
    rows, ranges_of, metric_name, examples, views = [], {}, "", {}, {}
    asymmetric = False  # whether the evaluator encodes queries and documents apart (known after float32)
    for runtime, encoder in encoders.items():
        views[runtime] = proxy = VariantModel(model, encoder)
        # Not through the proxy's cache: ONNX int8 quantizes activations per batch, so a text's
        # embedding depends on its batch; eval texts are batched as a shipped model batches them.
        calibration = encoder.encode(calibration_texts, batch_size=SPEED_BATCH)
        speed = measure_speed(encoder, speed_texts or calibration_texts)
        for dim in dims:
            ranges_of[(runtime, dim)] = ranges = int8_ranges(calibration, dim)
            for precision in PRECISIONS:
                if precision == "binary-rescore" and not asymmetric:
                    continue  # the evaluator compares texts of one kind: nothing to rescore
                metric_name, value = evaluate_variant(evaluator, proxy.set(dim, precision, ranges))
                asymmetric = asymmetric or proxy.sides_used
                variant = Variant(runtime, dim, precision)
                rows.append(
                    Row(
                        variant,
                        value,
                        texts_per_second=speed[0],
                        p50_ms=speed[1],
                        model_mb=sizes[runtime],
                        index_mb_per_million=dim * BYTES_PER_DIMENSION[precision],
                    )
                )
                examples[variant.label] = per_example_table(evaluator, proxy, metric_name)
    reference = Variant(REFERENCE[0], dims[0], REFERENCE[1])
    base = next(r for r in rows if r.variant == reference)
    add_intervals(rows, examples, base)
    sort_rows(rows)
    return Grid(metric_name, rows, ranges_of, examples, views, base)


def sort_rows(rows: list[Row]) -> None:
    """Best first; among equals the cheapest (smallest index, model, then the fastest)."""
    rows.sort(key=lambda r: (-r.metric, r.index_mb_per_million, r.model_mb, -r.texts_per_second))


def per_example_table(evaluator: Any, proxy: VariantModel, metric_name: str) -> tuple[Any, Any] | None:
    """(per-example table, the primary metric's recipe over it), or None where stembed cannot score
    this evaluator per example (then the row has no interval)."""
    with contextlib.redirect_stderr(io.StringIO()):  # its "no per-example scores" note, once per row
        found = list(tables([evaluator], proxy).values())
    spec = found[0].attrs.get(METRICS, {}).get(metric_name) if found else None
    return (found[0], spec) if spec else None


def add_intervals(rows: list[Row], examples: dict[str, Any], base: Row) -> None:
    """Each row's delta to the reference row and, where per-example scores exist, its paired interval."""
    base_examples = examples.get(base.variant.label)
    for row in rows:
        row.delta = row.metric - base.metric
        mine = examples.get(row.variant.label)
        if row is base or not (mine and base_examples):
            continue
        (table, spec), (base_table, _) = mine, base_examples
        (comparison,) = paired_bootstrap(
            columns(base_table, like=table), columns(table, like=base_table), {"metric": spec}
        )
        row.low, row.high = comparison.low, comparison.high
