"""What the trainer trains on, from the config: data (one set or data=multi), losses, mined hard
negatives, prompts and evaluators. One call from the recipe (`build_train_inputs`), so the recipe
stays a short list of steps; everything here runs before the MLflow run opens.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datasets import DatasetDict

from stembed.components.kinds import check_fits, kind_of
from stembed.components.losses import build_loss, check_loss_inputs, fit_to_loss, uses_in_batch_negatives
from stembed.components.prompts import (
    column_prompt_names,
    column_prompts,
    configured,
    describe,
    effective,
    side_prompts,
)
from stembed.data.eval_sets import evaluators_with_prompts, set_evaluator_cfg
from stembed.data.loading import PairData, text_columns
from stembed.data.mining import MiningResult, log_mining, mine_if_configured
from stembed.data.multi import is_multi, sequential_evaluator
from stembed.data.sanity import Finding, check_training_data
from stembed.recipe.card import describe_datasets
from stembed.speed.length_split import splits_exactly

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from torch import nn


@dataclass
class SetInputs:
    """One named training set, fitted to its loss (and mined)."""

    data: PairData
    loss: nn.Module
    train: Dataset
    eval: Dataset | None
    evaluators: list[Any]  # [eval split, test split]
    prompts: dict[str, str]  # column -> prompt text (the trainer's prompts for this set)
    mining: MiningResult | None = None


@dataclass
class TrainInputs:
    """Everything `prepare` hands the trainer; a single set is the set named ''."""

    data: Any  # PairData, or MultiData for data=multi
    sets: dict[str, SetInputs]
    evaluators: list[Any]
    prompt_names: dict[str, str] = field(default_factory=dict)  # column -> prompt name (for the card)
    prompt_texts: dict[str, str] = field(default_factory=dict)

    @property
    def multi(self) -> bool:
        return "" not in self.sets

    @property
    def loss(self) -> Any:
        """The loss, or {set: loss} for data=multi (the trainer takes either)."""
        return {n: s.loss for n, s in self.sets.items()} if self.multi else self.sets[""].loss

    @property
    def train_dataset(self) -> Any:

        return DatasetDict({n: s.train for n, s in self.sets.items()}) if self.multi else self.sets[""].train

    @property
    def eval_dataset(self) -> Any:

        if not self.multi:
            return self.sets[""].eval
        evals = {n: s.eval for n, s in self.sets.items() if s.eval is not None}
        return DatasetDict(evals) if evals else None

    @property
    def prompts(self) -> Any:
        """The trainer's `prompts`: {column: text}, or {set: {column: text}} for data=multi; None for none."""
        if not self.multi:
            return self.sets[""].prompts or None
        prompts = {n: s.prompts for n, s in self.sets.items() if s.prompts}
        return prompts or None

    @property
    def in_batch(self) -> bool:
        """Whether any loss uses in-batch negatives (then batches must not repeat a text)."""

        return any(uses_in_batch_negatives(s.loss) for s in self.sets.values())

    @property
    def sampling_loss(self) -> nn.Module:
        """The loss that decides length batching: one that cannot be split in pieces, if any."""

        losses = [s.loss for s in self.sets.values()]
        return next((loss for loss in losses if not splits_exactly(loss)), losses[0])

    @property
    def tags(self) -> dict[str, str]:
        """Run tags: the mining cache key (`stembed.mining_cache_key[.<set>]`), the set names."""
        tags: dict[str, str] = {}
        for name, part in self.sets.items():
            if part.mining is not None:
                tags |= {f"{k}.{name}" if name else k: v for k, v in part.mining.tags.items()}
        if self.multi:
            tags["stembed.data_sets"] = ", ".join(self.sets)
        return tags

    @property
    def card_notes(self) -> dict[str, str]:
        """Rows for the card's stembed table: data sets, mining, prompts."""

        notes: dict[str, str] = {}
        if self.multi:
            notes["Data sets"] = "; ".join(
                f"`{n}`: {s.data.name} ({len(s.train)} rows, {type(s.loss).__name__})"
                for n, s in self.sets.items()
            )
        for name, part in self.sets.items():
            if part.mining is not None:
                notes[f"Mining{f' ({name})' if name else ''}"] = part.mining.describe()
        notes["Prompts"] = describe(self.prompt_texts, self.prompt_names)
        return notes

    def sanity_findings(self, deduplicated: bool, model: Any) -> list[Finding]:
        """The sanity checks of every set; a set's findings are named `<set>.<check>`."""

        findings = []
        for name, part in self.sets.items():
            in_batch = uses_in_batch_negatives(part.loss)
            label = part.data.label_column if part.data.label_column in part.train.column_names else None
            for finding in check_training_data(
                part.train, part.data.eval, label, in_batch, deduplicated, model
            ):
                if name:
                    finding.name = f"{name}.{finding.name}"
                    finding.message = f"data.sets.{name}: {finding.message}"
                findings.append(finding)
        return findings

    def describe_datasets(self, model: SentenceTransformer, task_name: str, offline: bool) -> None:
        """Name the data set(s) in sentence-transformers' card data."""

        describe_datasets(
            model, self.sets[next(iter(self.sets))].data if self.multi else self.data, task_name, offline
        )
        if self.multi:
            card = model.model_card_data
            entries = [
                {"name": s.data.name, **({"id": s.data.hub_id} if s.data.hub_id else {})}
                for s in self.sets.values()
            ]
            card.train_datasets = entries
            card.eval_datasets = [
                e for e, s in zip(entries, self.sets.values(), strict=True) if s.eval is not None
            ]
            card.model_name = (
                card.model_name.rsplit(" fine-tuned on ", 1)[0] + f" fine-tuned on {self.data.name}"
            )


def build_train_inputs(cfg: Any, model: SentenceTransformer, data: Any) -> TrainInputs:
    """Losses, mined negatives, prompts and evaluators for the loaded data (data=multi or one set)."""

    _, prompt_columns = configured(cfg.model)
    prompts = effective(model, prompt_columns)  # model.prompts, already set on the model, plus saved ones
    output_root = cfg.paths.output_root
    if not is_multi(data):
        part = _set_inputs(
            cfg, "", data, cfg.loss, cfg.evaluator, model, output_root, prompts, prompt_columns
        )
        data.stats["train_rows_used"] = len(part.train)
        names = column_prompt_names(_text_columns(part.train), prompts, prompt_columns)
        return TrainInputs(data, {"": part}, part.evaluators, names, prompts)
    sets: dict[str, SetInputs] = {}
    for name, pair_data in data.sets.items():
        loss_cfg = data.losses.get(name) or cfg.loss
        evaluator_cfg = set_evaluator_cfg(cfg, data, name)
        sets[name] = _set_inputs(
            cfg, name, pair_data, loss_cfg, evaluator_cfg, model, output_root, prompts, prompt_columns
        )
        data.stats[f"{name}.train_rows_used"] = len(sets[name].train)
    evaluators = [
        sequential_evaluator({n: s.evaluators[0] for n, s in sets.items()}, data.primary),
        sequential_evaluator({n: s.evaluators[1] for n, s in sets.items()}, data.primary),
    ]
    first = next(iter(sets.values()))
    names = column_prompt_names(_text_columns(first.train), prompts, prompt_columns)
    return TrainInputs(data, sets, evaluators, names, prompts)


def _text_columns(dataset: Dataset) -> list[str]:

    return text_columns(dataset)


def _set_inputs(
    cfg: Any,
    name: str,
    data: PairData,
    loss_cfg: Any,
    evaluator_cfg: Any,
    model: SentenceTransformer,
    output_root: str | Path,
    prompts: dict[str, str],
    prompt_columns: dict[str, str] | None,
) -> SetInputs:
    """Fit one set to its loss, mine it (mining=hard_negatives), and build its evaluators with prompts."""

    kind = kind_of(model)
    check_fits(kind, "loss", loss_cfg.get("_target_"))
    check_fits(kind, "evaluator.call", (evaluator_cfg.get("call") or {}).get("_target_"))
    loss = build_loss(loss_cfg, model)
    min_score = data.stats.get("positive_min_score", 0.5)
    train = fit_to_loss(data.train, loss, data.label_column, min_score)
    check_loss_inputs(train, loss, data.label_column)
    eval_pairs = data.eval_pairs
    eval_ = fit_to_loss(eval_pairs, loss, data.label_column, min_score) if eval_pairs is not None else None
    columns = _text_columns(train)
    query_prompt, corpus_prompt = side_prompts(columns, prompts, prompt_columns)
    label = data.label_column if data.label_column in train.column_names else None
    mined = mine_if_configured(
        cfg.get("mining"), train, loss, model, output_root, label, min_score, (query_prompt, corpus_prompt)
    )
    if mined is not None:
        train = mined.dataset
        where = f" (data.sets.{name})" if name else ""
        print(f"stembed: mining{where}: {mined.describe()}", file=sys.stderr)
    evaluators = evaluators_with_prompts(evaluator_cfg, data, (query_prompt, corpus_prompt))
    return SetInputs(
        data,
        loss,
        train,
        eval_,
        evaluators,
        column_prompts(_text_columns(train), prompts, prompt_columns),
        mined,
    )


def log_inputs(tracker: Any, inputs: TrainInputs) -> None:
    """Log what only the inputs know: mining metrics and samples (per set for data=multi)."""

    for name, part in inputs.sets.items():
        log_mining(tracker, part.mining, prefix=f"{name}." if name else "")
