"""Build the configured loss for a model, and fit pair data to what the loss expects."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from stembed.errors import StembedError
from stembed.instantiate import instantiate

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
