"""The kinds of model stembed trains: bi-encoder, cross-encoder (reranker), sparse encoder (SPLADE).

A kind is data: the library's model, trainer and training-arguments classes, and the packages its
losses and evaluators come from. The recipe asks the kind for its classes instead of branching on
names, so a fourth kind is one entry in KINDS. Classes are named by dotted path and imported on use,
so `stembed --help` and the config checks stay torch-free.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stembed.errors import StembedError

ST = "sentence_transformers"


@dataclass(frozen=True)
class ModelKind:
    """One kind of model: what trains it and which losses and evaluators fit it."""

    name: str
    model_class: str
    trainer_class: str
    arguments_class: str
    packages: tuple[str, ...]  # module prefixes of its own losses and evaluators
    loss_options: tuple[str, ...]  # conf/loss options that fit (named in errors)
    evaluator_options: tuple[str, ...]  # conf/evaluator options that fit
    splits_batches: bool  # the trainer's collated batches hold token tensors (speed.batches=split_by_length)
    scores_pairs: bool  # the model scores (text, text) pairs instead of embedding texts
    head_architecture: str | None  # the transformers head its checkpoints carry (else it starts fresh)

    def resolve(self, attribute: str) -> type:
        """The class named by `model_class`, `trainer_class` or `arguments_class`."""
        return _import(getattr(self, attribute))

    def owns(self, target: str) -> bool:
        """Whether a `_target_` lies in one of this kind's library packages."""
        return any(target == p or target.startswith(p + ".") for p in self.packages)


BI_ENCODER = ModelKind(
    name="bi-encoder",
    model_class=f"{ST}.SentenceTransformer",
    trainer_class=f"{ST}.SentenceTransformerTrainer",
    arguments_class=f"{ST}.SentenceTransformerTrainingArguments",
    packages=(f"{ST}.sentence_transformer", f"{ST}.losses", f"{ST}.evaluation"),
    loss_options=("cosine", "cosent", "mnrl", "cached_mnrl", "matryoshka"),
    evaluator_options=("similarity", "binary", "retrieval", "label_retrieval", "none"),
    splits_batches=True,
    scores_pairs=False,
    head_architecture=None,
)
CROSS_ENCODER = ModelKind(
    name="cross-encoder",
    model_class=f"{ST}.CrossEncoder",
    trainer_class=f"{ST}.CrossEncoderTrainer",
    arguments_class=f"{ST}.CrossEncoderTrainingArguments",
    packages=(f"{ST}.cross_encoder",),
    loss_options=("ce_bce", "ce_mse", "ce_mnrl", "ce_listnet", "ce_lambda"),
    evaluator_options=("ce_correlation", "ce_classification", "ce_reranking", "label_retrieval", "none"),
    splits_batches=False,  # the cross-encoder's losses tokenize inside the loss
    scores_pairs=True,
    head_architecture="ForSequenceClassification",
)
SPARSE_ENCODER = ModelKind(
    name="sparse-encoder",
    model_class=f"{ST}.SparseEncoder",
    trainer_class=f"{ST}.SparseEncoderTrainer",
    arguments_class=f"{ST}.SparseEncoderTrainingArguments",
    packages=(f"{ST}.sparse_encoder",),
    loss_options=("splade_mnrl",),
    evaluator_options=("sparse_retrieval", "label_retrieval", "none"),
    splits_batches=False,  # SpladeLoss adds regularizers over the whole batch
    scores_pairs=False,
    head_architecture="ForMaskedLM",
)
KINDS = {kind.name: kind for kind in (BI_ENCODER, CROSS_ENCODER, SPARSE_ENCODER)}


def _import(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def kind_of(model: Any) -> ModelKind:
    """The kind of a loaded model (checked most specific first: all three share a base class)."""
    for kind in (CROSS_ENCODER, SPARSE_ENCODER, BI_ENCODER):
        if isinstance(model, kind.resolve("model_class")):
            return kind
    raise StembedError(
        f"model: a {type(model).__name__} is none of the kinds stembed trains "
        f"({', '.join(k.model_class for k in KINDS.values())}). Build one of those in model.call."
    )


def kind_of_class(target: str) -> ModelKind | None:
    """The kind whose model class `target` names (`sentence_transformers.CrossEncoder` or its full
    module path), or None for anything else (e.g. a builder function)."""
    if not target.startswith(ST + "."):
        return None
    try:
        cls = _import(target)
    except (ImportError, AttributeError):
        return None
    if not isinstance(cls, type):
        return None
    return next((k for k in KINDS.values() if cls is k.resolve("model_class")), None)


def kind_of_saved(path: Path) -> ModelKind:
    """The kind of a model saved by sentence-transformers (its config's model_type; bi-encoder if absent)."""
    config = path / "config_sentence_transformers.json"
    model_type = ""
    if config.is_file():
        model_type = str(json.loads(config.read_text(encoding="utf-8")).get("model_type") or "")
    return next((k for k in KINDS.values() if k.model_class.endswith("." + model_type)), BI_ENCODER)


def check_fits(kind: ModelKind, field: str, target: Any) -> None:
    """A loss or evaluator (`field`: loss or evaluator.call) from another kind's package is an error,
    naming both kinds and the options that fit. Targets outside the library's kind packages pass."""
    if not isinstance(target, str) or kind.owns(target):
        return
    other = next((k for k in KINDS.values() if k.owns(target)), None)
    if other is None:
        return
    options = kind.loss_options if field == "loss" else kind.evaluator_options
    group = field.split(".")[0]
    raise StembedError(
        f"{field}._target_={target}: a {other.name} {group} on a {kind.name} model "
        f"({kind.model_class.rsplit('.', 1)[-1]}). Pick a {group} for a {kind.name}: "
        f"{' | '.join(f'{group}={o}' for o in options)}; or train a {other.name} (model=...)."
    )
