"""Paired bootstrap over examples: is model B better than model A on these examples, or is it chance?

Both models are scored on the same resamples of the examples (the pairing removes the variation that
comes from which examples happen to be hard). A resample is represented by how often it draws each
example (a row of counts), so every metric is a weighted statistic of the per-example columns:
means (accuracy@k, MRR, NDCG per query), Pearson and Spearman correlations (pairs), macro-F1
(label routing). numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

RESAMPLES = 10_000
SEED = 0
_CELLS_PER_CHUNK = 2_000_000  # resamples x examples held in memory at once


@dataclass(frozen=True)
class Comparison:
    """One metric of A and B on the same examples, and the bootstrap interval of B - A."""

    metric: str
    a: float
    b: float
    low: float
    high: float
    p_value: float
    examples: int

    @property
    def delta(self) -> float:
        return self.b - self.a

    @property
    def differs(self) -> bool:
        """Whether the interval excludes 0 (evidence of a difference at its confidence level)."""
        return not (self.low <= 0.0 <= self.high)


def resample_counts(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples x n) counts: how often each resample draws each of the n examples (sum n per row)."""
    draws = rng.integers(0, n, size=(resamples, n)) + (np.arange(resamples) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=resamples * n).reshape(resamples, n).astype(float)


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return weights @ values / weights.sum(axis=1)


def weighted_pearson(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pearson correlation per weight row; x and y are (n,) or (rows x n)."""
    total = weights.sum(axis=1, keepdims=True)
    dx = x - (weights * x).sum(axis=1, keepdims=True) / total
    dy = y - (weights * y).sum(axis=1, keepdims=True) / total
    covariance = (weights * dx * dy).sum(axis=1)
    spread = np.sqrt((weights * dx * dx).sum(axis=1) * (weights * dy * dy).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(spread > 0, covariance / np.where(spread > 0, spread, 1.0), np.nan)


def weighted_ranks(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank, as scipy's rankdata) of the data each row draws."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts_group = np.r_[True, sorted_x[1:] != sorted_x[:-1]]
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    ends = np.r_[starts[1:], len(x)]  # exclusive
    cumulative = np.hstack([np.zeros((weights.shape[0], 1)), np.cumsum(weights[:, order], axis=1)])
    below = cumulative[:, starts[group]]
    tied = cumulative[:, ends[group]] - below
    ranks = np.empty_like(cumulative[:, 1:])
    ranks[:, order] = below + (tied + 1) / 2
    return ranks


def weighted_spearman(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return weighted_pearson(weighted_ranks(x, weights), weighted_ranks(y, weights), weights)


def weighted_macro_f1(gold: np.ndarray, predicted: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean F1 over the classes that occur (in truth or prediction) in each resample; int class ids."""
    n_classes = int(max(gold.max(initial=0), predicted.max(initial=0))) + 1
    gold_hot = np.eye(n_classes)[gold]
    predicted_hot = np.eye(n_classes)[predicted]
    true_positive = weights @ (gold_hot * (gold == predicted)[:, None])
    errors = weights @ gold_hot + weights @ predicted_hot - 2 * true_positive  # fp + fn
    present = (true_positive + errors) > 0
    f1 = np.where(present, 2 * true_positive / np.where(present, 2 * true_positive + errors, 1.0), 0.0)
    return f1.sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def _cuts(score: np.ndarray, gold: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weighted counts at every threshold between distinct scores (highest first): positives
    predicted correctly, pairs predicted positive, and per row all positives and all pairs."""
    order = np.argsort(-score, kind="stable")
    ordered = score[order]
    group_end = np.r_[ordered[1:] != ordered[:-1], True]
    w = weights[:, order]
    hits = np.cumsum(w * gold[order], axis=1)[:, group_end]
    taken = np.cumsum(w, axis=1)[:, group_end]
    return hits, taken, hits[:, -1:], taken[:, -1:]


def weighted_best_accuracy(score: np.ndarray, gold: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Accuracy at the best threshold (as BinaryClassificationEvaluator: 0/1 gold, higher = similar)."""
    hits, taken, positives, total = _cuts(score, gold, weights)
    correct = hits + (total - positives) - (taken - hits)
    return np.maximum(correct.max(axis=1), (total - positives)[:, 0]) / total[:, 0]


def weighted_best_f1(score: np.ndarray, gold: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """F1 at the best threshold."""
    hits, taken, positives, _ = _cuts(score, gold, weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(hits > 0, 2 * hits / (taken + positives), 0.0)
    return f1.max(axis=1)


def weighted_average_precision(score: np.ndarray, gold: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average precision as scikit-learn computes it: sum of (recall step) x precision over thresholds."""
    hits, taken, positives, _ = _cuts(score, gold, weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(taken > 0, hits / np.where(taken > 0, taken, 1.0), 0.0)
        recall_step = np.diff(np.hstack([np.zeros_like(hits[:, :1]), hits]), axis=1) / positives
    return (recall_step * precision).sum(axis=1)


def statistic(spec: Mapping[str, Any], columns: Mapping[str, np.ndarray], weights: np.ndarray) -> np.ndarray:
    """A metric per weight row, from its recipe: {"mean": col} | {"pearson"/"spearman": [x, y]} |
    {"macro_f1": [gold, predicted]} (integer class ids) | {"best_accuracy"/"best_f1"/
    "average_precision": [score, gold]} (0/1 gold, higher score = more similar)."""
    ((kind, args),) = spec.items()
    if kind == "mean":
        return weighted_mean(columns[args], weights)
    if kind == "pearson":
        return weighted_pearson(columns[args[0]], columns[args[1]], weights)
    if kind == "spearman":
        return weighted_spearman(columns[args[0]], columns[args[1]], weights)
    if kind == "macro_f1":
        return weighted_macro_f1(columns[args[0]], columns[args[1]], weights)
    binary = {"best_accuracy": weighted_best_accuracy, "best_f1": weighted_best_f1}
    binary["average_precision"] = weighted_average_precision
    if kind in binary:
        return binary[kind](columns[args[0]], columns[args[1]], weights)
    raise ValueError(f"unknown metric recipe {spec}")


def resampled_deltas(
    a: Mapping[str, np.ndarray],
    b: Mapping[str, np.ndarray],
    metrics: Mapping[str, Mapping[str, Any]],
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict[str, np.ndarray]:
    """{metric: B - A on each paired resample}; all metrics share the resamples (so they can be averaged,
    e.g. over training seeds). a and b hold the same examples in the same order."""
    n = len(next(iter(a.values())))
    rng = np.random.default_rng(seed)
    deltas: dict[str, list[np.ndarray]] = {name: [] for name in metrics}
    chunk = max(1, min(resamples, _CELLS_PER_CHUNK // max(n, 1)))
    for start in range(0, resamples, chunk):
        weights = resample_counts(n, min(chunk, resamples - start), rng)
        for name, spec in metrics.items():
            deltas[name].append(statistic(spec, b, weights) - statistic(spec, a, weights))
    return {name: np.concatenate(parts) for name, parts in deltas.items()}


def interval(deltas: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """(low, high, p): the percentile interval of resampled differences and the two-sided p-value,
    twice the smaller share on either side of 0 (with the usual +1 correction), so p < 0.05 goes with
    a 95% interval that excludes 0."""
    values = deltas[np.isfinite(deltas)]
    if not len(values):
        return float("nan"), float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    below, above = (values <= 0).sum(), (values >= 0).sum()
    p_value = min(1.0, 2 * (min(below, above) + 1) / (len(values) + 1))
    return float(low), float(high), float(p_value)


def value(spec: Mapping[str, Any], columns: Mapping[str, np.ndarray]) -> float:
    """The metric on all examples once (every example weighted 1)."""
    n = len(next(iter(columns.values())))
    return float(statistic(spec, columns, np.ones((1, n)))[0])


def paired_bootstrap(
    a: Mapping[str, np.ndarray],
    b: Mapping[str, np.ndarray],
    metrics: Mapping[str, Mapping[str, Any]],
    resamples: int = RESAMPLES,
    seed: int = SEED,
    confidence: float = 0.95,
) -> list[Comparison]:
    """For each metric: A, B, the percentile interval of B - A over paired resamples, and a p-value.

    a and b hold the same examples in the same order.
    """
    n = len(next(iter(a.values())))
    if n == 0:
        return []
    deltas = resampled_deltas(a, b, metrics, resamples, seed)
    return [
        Comparison(name, value(spec, a), value(spec, b), *interval(deltas[name], confidence), examples=n)
        for name, spec in metrics.items()
    ]
