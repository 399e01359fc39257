"""Build the configured loss for a model, and fit pair data to what the loss expects."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from stembed.errors import StembedError
from stembed.recipe.instantiate import instantiate

if TYPE_CHECKING:
    from datasets import Dataset
    from torch import nn

# Losses that treat the other pairs of a batch as negatives: they take (anchor, positive[, negative])
# texts and no label, so scored pairs must be reduced to their positives first.
IN_BATCH_NEGATIVE_LOSSES = {
    "MultipleNegativesRankingLoss",
    "CachedMultipleNegativesRankingLoss",
    "MultipleNegativesSymmetricRankingLoss",
    "CachedMultipleNegativesSymmetricRankingLoss",
    "GISTEmbedLoss",
    "CachedGISTEmbedLoss",
    "MegaBatchMarginLoss",
}


def build_loss(cfg: Any, model: nn.Module) -> nn.Module:
    """Instantiate `loss` (a `_partial_` config) with the model; nested losses get the model too."""
    factory = instantiate(cfg, "loss")
    if not isinstance(factory, functools.partial):
        raise StembedError(
            f"loss._target_={cfg.get('_target_')}: expected a loss factory. Add `_partial_: true` to the "
            "loss config so stembed can pass the model to it."
        )
    return _call_with_model(factory, model)


def _call_with_model(factory: functools.partial, model: nn.Module) -> nn.Module:
    kwargs = {
        key: _call_with_model(value, model) if isinstance(value, functools.partial) else value
        for key, value in factory.keywords.items()
    }
    try:
        return factory.func(model, *factory.args, **kwargs)
    except (TypeError, ValueError) as err:
        raise StembedError(
            f"loss._target_={getattr(factory.func, '__name__', factory.func)}: could not build it ({err}). "
            "Check the loss.* keys against the loss's arguments."
        ) from err


def innermost_loss(loss: nn.Module) -> nn.Module:
    """The loss a wrapper (MatryoshkaLoss, AdaptiveLayerLoss) delegates to."""
    inner = getattr(loss, "loss", None)
    return (
        innermost_loss(inner)
        if inner is not None and inner is not loss and hasattr(inner, "forward")
        else loss
    )


def uses_in_batch_negatives(loss: nn.Module) -> bool:
    """Whether the loss (or the loss it wraps) uses in-batch negatives and ignores labels."""
    return type(innermost_loss(loss)).__name__ in IN_BATCH_NEGATIVE_LOSSES


def fit_to_loss(dataset: Dataset, loss: nn.Module, label_column: str | None, min_score: float) -> Dataset:
    """For in-batch-negative losses, keep rows with label >= min_score and drop the label column."""
    if label_column is None or not uses_in_batch_negatives(loss):
        return dataset
    kept = dataset.filter(lambda row: row[label_column] >= min_score).remove_columns(label_column)
    if len(kept) == 0:
        raise StembedError(
            f"data.positive_min_score={min_score}: no pair has a {label_column} that high, so "
            f"{type(innermost_loss(loss)).__name__} has no positive pairs. Lower data.positive_min_score "
            "or use a loss that takes scores (loss=cosine, loss=cosent)."
        )
    return kept


# Losses that learn from a label per (text, text) pair, and the label range each one expects.
LABELLED_PAIR_LOSSES = {
    "CosineSimilarityLoss": (0.0, 1.0),
    "ContrastiveLoss": (0.0, 1.0),
    "OnlineContrastiveLoss": (0.0, 1.0),
    "CoSENTLoss": None,  # only the order of the labels matters
    "AnglELoss": None,
}


def check_loss_inputs(dataset: Dataset, loss: nn.Module, label_column: str | None) -> None:
    """Fail when the training columns do not fit what the loss reads, naming the columns found."""
    name = type(innermost_loss(loss)).__name__
    texts = [c for c in dataset.column_names if c != label_column]
    if name in LABELLED_PAIR_LOSSES:
        _check_labelled_pairs(dataset, name, texts, label_column)
    elif uses_in_batch_negatives(loss):
        _check_in_batch_columns(dataset, name, texts)


def _check_labelled_pairs(dataset: Dataset, name: str, texts: list[str], label_column: str | None) -> None:
    if label_column is None or len(texts) != 2:
        raise StembedError(
            f"loss={name}: it needs two text columns and a label column (score or label); the training "
            f"data has columns {dataset.column_names}. Map them with data.columns.sentence1/sentence2/score, "
            "or use an in-batch-negative loss (loss=mnrl) for (anchor, positive) pairs without labels."
        )
    label_range = LABELLED_PAIR_LOSSES[name]
    if label_range is None:
        return
    labels = dataset[label_column]
    low, high = min(labels), max(labels)
    if low < label_range[0] or high > label_range[1]:
        hint = f" e.g. data.label_scale={high:g} for scores up to {high:g} (STS: 5)" if high > 1 else ""
        raise StembedError(
            f"data.columns.{label_column}: {name} expects labels in {label_range[0]:g}..{label_range[1]:g}, "
            f"but they range from {low:g} to {high:g}. Rescale them,{hint}, or use loss=cosent, which "
            "takes scores on any scale."
        )


def _check_in_batch_columns(dataset: Dataset, name: str, texts: list[str]) -> None:
    if len(texts) < 2:
        raise StembedError(
            f"loss={name}: it needs (anchor, positive[, negative...]) text columns; the training data has "
            f"{dataset.column_names}. Map two text columns with data.columns."
        )
    rows = len(dataset)
    for column in texts[2:]:  # hard negatives: a column of few distinct values is a label, not texts
        distinct = len(set(dataset[column]))
        if rows >= 10 and distinct <= max(2, rows // 10):
            raise StembedError(
                f"data.columns.{column}: {name} reads every column after the first two as hard-negative "
                f"texts, but '{column}' has only {distinct} distinct values in {rows} rows: it looks like a "
                f"label. Drop it (~data.columns.{column}), rename it to 'label' if it is numeric, or build "
                "pairs from labels (data=bitext_intents style builders)."
            )
