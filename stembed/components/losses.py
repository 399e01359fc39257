"""Build the configured loss for a model, and fit pair data to what the loss expects."""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow.compute as pc
from sentence_transformers.cross_encoder import losses as ce_losses
from sentence_transformers.sentence_transformer import losses
from sentence_transformers.sparse_encoder import losses as sparse_losses

from stembed.components.instantiate import instantiate
from stembed.errors import StembedError

if TYPE_CHECKING:
    from datasets import Dataset
    from torch import nn


@dataclass(frozen=True)
class FamilyTraits:
    """What stembed does differently for a loss family. Data fitting, the batch sampler, the length
    split and mining read these traits and nothing else, so a new family is one entry below."""

    description: str
    in_batch_negatives: bool  # texts only (labels dropped); a batch must not repeat a text (sampler)
    splits_by_length: bool  # the batch loss is a mean of per-row terms: exact in length-sorted pieces
    mined_format: str  # the `output_format` of mine_hard_negatives that the loss reads


class LossFamily(enum.Enum):
    """What a loss reads and how it uses the batch."""

    # (anchor, positive[, negatives]) texts, no label; the other rows of the batch are negatives
    IN_BATCH_NEGATIVES = FamilyTraits("in-batch negatives", True, False, "n-tuple")
    # a label per pair; the batch loss is a mean of per-row terms
    MEAN_OVER_ROWS = FamilyTraits("mean over rows", False, True, "labeled-pair")
    # a label per pair, compared across the pairs of the batch
    PAIRWISE_RANKING = FamilyTraits("pairwise ranking", False, False, "labeled-pair")
    # (query, [documents], [labels]) rows: a reranker's listwise losses (ListNet, LambdaLoss)
    LISTWISE = FamilyTraits("listwise", False, False, "labeled-list")

    @property
    def traits(self) -> FamilyTraits:
        return self.value


@dataclass(frozen=True)
class LossKind:
    family: LossFamily
    label_range: tuple[float, float] | None = None  # labels a labelled-pair loss expects
    text_pairs: bool = True  # reads (text, text, label) rows; SoftmaxLoss and MSELoss read other shapes
    lists: bool = False  # reads (query, [documents], [labels]) rows


@functools.cache
def _loss_kinds() -> tuple[tuple[type, LossKind], ...]:
    """(loss class, kind), checked with isinstance in this order, so subclasses are recognised."""

    in_batch = LossKind(LossFamily.IN_BATCH_NEGATIVES)
    unit = (0.0, 1.0)
    listwise = LossKind(LossFamily.LISTWISE, text_pairs=False, lists=True)
    return (
        # rerankers (CrossEncoder); before the bi-encoder losses, whose names some of them share
        (ce_losses.BinaryCrossEntropyLoss, LossKind(LossFamily.MEAN_OVER_ROWS, unit)),
        (ce_losses.MSELoss, LossKind(LossFamily.MEAN_OVER_ROWS)),
        (ce_losses.CrossEntropyLoss, LossKind(LossFamily.MEAN_OVER_ROWS)),
        (ce_losses.MultipleNegativesRankingLoss, in_batch),
        (ce_losses.CachedMultipleNegativesRankingLoss, in_batch),
        (ce_losses.MarginMSELoss, LossKind(LossFamily.MEAN_OVER_ROWS, text_pairs=False)),
        (ce_losses.ListNetLoss, listwise),
        (ce_losses.LambdaLoss, listwise),
        (ce_losses.ListMLELoss, listwise),
        (ce_losses.PListMLELoss, listwise),
        (ce_losses.RankNetLoss, listwise),
        # sparse encoders: SpladeLoss wraps one of these (innermost_loss opens it)
        (sparse_losses.SparseMultipleNegativesRankingLoss, in_batch),
        (sparse_losses.SparseCosineSimilarityLoss, LossKind(LossFamily.MEAN_OVER_ROWS, unit)),
        (sparse_losses.SparseCoSENTLoss, LossKind(LossFamily.PAIRWISE_RANKING)),
        (losses.MultipleNegativesRankingLoss, in_batch),
        (losses.CachedMultipleNegativesRankingLoss, in_batch),
        (losses.MultipleNegativesSymmetricRankingLoss, in_batch),
        (losses.CachedMultipleNegativesSymmetricRankingLoss, in_batch),
        (losses.GISTEmbedLoss, in_batch),
        (losses.CachedGISTEmbedLoss, in_batch),
        (losses.MegaBatchMarginLoss, in_batch),
        (losses.CosineSimilarityLoss, LossKind(LossFamily.MEAN_OVER_ROWS, unit)),
        (losses.ContrastiveLoss, LossKind(LossFamily.MEAN_OVER_ROWS, unit)),
        (losses.SoftmaxLoss, LossKind(LossFamily.MEAN_OVER_ROWS, text_pairs=False)),
        (losses.MSELoss, LossKind(LossFamily.MEAN_OVER_ROWS, text_pairs=False)),
        (losses.OnlineContrastiveLoss, LossKind(LossFamily.PAIRWISE_RANKING, unit)),
        (losses.CoSENTLoss, LossKind(LossFamily.PAIRWISE_RANKING)),  # AnglELoss too: only the order counts
    )


def loss_kind(loss: nn.Module) -> LossKind | None:
    """The kind of the loss, or of the loss a wrapper (MatryoshkaLoss) delegates to; None if unknown."""
    inner = innermost_loss(loss)
    return next((kind for cls, kind in _loss_kinds() if isinstance(inner, cls)), None)


def loss_family(loss: nn.Module) -> LossFamily | None:
    kind = loss_kind(loss)
    return kind.family if kind else None


def splits_by_length(loss: nn.Module) -> bool:
    """Whether the loss's family is a mean of per-row terms (the loss itself may still weight rows)."""
    family = loss_family(loss)
    return family is not None and family.traits.splits_by_length


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
    family = loss_family(loss)
    return family is not None and family.traits.in_batch_negatives


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


def check_loss_inputs(dataset: Dataset, loss: nn.Module, label_column: str | None) -> None:
    """Fail when the training columns do not fit what the loss reads, naming the columns found."""
    name = type(innermost_loss(loss)).__name__
    texts = [c for c in dataset.column_names if c != label_column]
    kind = loss_kind(loss)
    if kind is None:
        return
    if kind.family.traits.in_batch_negatives:
        _check_in_batch_columns(dataset, name, texts)
    elif kind.lists:
        _check_lists(dataset, name)
    elif kind.text_pairs:
        _check_labelled_pairs(dataset, name, texts, label_column, kind.label_range)


def _check_labelled_pairs(
    dataset: Dataset,
    name: str,
    texts: list[str],
    label_column: str | None,
    label_range: tuple[float, float] | None,
) -> None:
    if label_column is None or len(texts) != 2:
        raise StembedError(
            f"loss={name}: it needs two text columns and a label column (score or label); the training "
            f"data has columns {dataset.column_names}. Map them with data.columns.sentence1/sentence2/score, "
            "or use an in-batch-negative loss (loss=mnrl) for (anchor, positive) pairs without labels."
        )
    if label_range is None:
        return
    extremes = pc.min_max(dataset.with_format("arrow")[label_column])  # datasets' Column reads row by row
    low, high = float(extremes["min"].as_py()), float(extremes["max"].as_py())
    if low < label_range[0] or high > label_range[1]:
        hint = f" e.g. data.label_scale={high:g} for scores up to {high:g} (STS: 5)" if high > 1 else ""
        raise StembedError(
            f"data.columns.{label_column}: {name} expects labels in {label_range[0]:g}..{label_range[1]:g}, "
            f"but they range from {low:g} to {high:g}. Rescale them,{hint}, or use loss=cosent, which "
            "takes scores on any scale."
        )


def _check_lists(dataset: Dataset, name: str) -> None:
    list_columns = [
        c for c in dataset.column_names if dataset.features[c].__class__.__name__ in ("List", "Sequence")
    ]
    if len(dataset.column_names) != 3 or len(list_columns) != 2:
        raise StembedError(
            f"loss={name}: a listwise loss reads (query, [documents], [labels]) rows; the training data has "
            f"columns {dataset.column_names}. Mine the lists from pairs: mining=hard_negatives "
            "mining.output_format=labeled-list (with mining.model=<a bi-encoder>), or use loss=ce_bce."
        )


def _check_in_batch_columns(dataset: Dataset, name: str, texts: list[str]) -> None:
    if len(texts) < 2:
        raise StembedError(
            f"loss={name}: it needs (anchor, positive[, negative...]) text columns; the training data has "
            f"{dataset.column_names}. Map two text columns with data.columns."
        )
    rows = len(dataset)
    for column in texts[2:]:  # hard negatives: a column of few distinct values is a label, not texts
        distinct = len(set(dataset[column][:]))
        if rows >= 10 and distinct <= max(2, rows // 10):
            raise StembedError(
                f"data.columns.{column}: {name} reads every column after the first two as hard-negative "
                f"texts, but '{column}' has only {distinct} distinct values in {rows} rows: it looks like a "
                f"label. Drop it (~data.columns.{column}), rename it to 'label' if it is numeric, or build "
                "pairs from labels (data=bitext_intents style builders)."
            )
