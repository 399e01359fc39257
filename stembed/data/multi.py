"""Several data sets in one run (data=multi): sentence-transformers' dict-of-datasets training.

`data.sets` maps a name to any data config (a `_target_` builder, e.g. the banking77 or
bitext_intents options composed with `/data@data.sets.NAME: OPTION`), each with an optional `loss`
and `evaluator` of its own (default: the run's). The trainer draws batches from the sets by
`trainer.multi_dataset_batch_sampler` (proportional or round_robin); every set's evaluator runs in
one SequentialEvaluator whose primary metric is named by `data.primary`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf
from sentence_transformers.sentence_transformer.evaluation import SequentialEvaluator

from stembed.components.instantiate import instantiate
from stembed.data.loading import PairData
from stembed.errors import StembedError

PER_SET_KEYS = ("loss", "evaluator")  # keys of data.sets.NAME that are not the builder's arguments
MEAN = "mean"


@dataclass
class MultiData:
    """Named PairData sets plus what the run records about them (the PairData fields train.py reads)."""

    sets: dict[str, PairData]
    losses: dict[str, Any]  # set -> its loss config, None for the run's loss
    evaluators: dict[str, Any]  # set -> its evaluator config, None for the run's evaluator
    primary: str = MEAN
    name: str = ""
    source: str = ""
    hub_id: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    train: Any = None
    eval: Any = None
    eval_pairs: Any = None
    test: Any = None
    label_column: str | None = None

    @property
    def fingerprint(self) -> str:
        """A short hash over every set's name and content hash."""
        digest = hashlib.sha256()
        for name, data in self.sets.items():
            digest.update(f"{name}={data.fingerprint};".encode())
        return digest.hexdigest()[:16]


def load_sets(sets: Any, primary: str = MEAN, name: str | None = None) -> MultiData:
    """Build every named set with its own builder (the `data` group's `_target_` for data=multi)."""

    if not sets:
        raise StembedError(
            "data=multi: data.sets is empty. Name the sets to train on, e.g. "
            "'+data@data.sets.bitext=bitext_intents +data@data.sets.banking=banking77' "
            "(or use a preset such as +experiment=support_multi)."
        )
    built: dict[str, PairData] = {}
    losses: dict[str, Any] = {}
    evaluators: dict[str, Any] = {}
    for set_name, spec in sets.items():
        if not isinstance(spec, DictConfig | dict) or not spec.get("_target_"):
            raise StembedError(
                f"data.sets.{set_name}: not a data config (no _target_). Compose one with "
                f"+data@data.sets.{set_name}=OPTION (an option of the data group, e.g. banking77)."
            )
        losses[set_name] = spec.get("loss")
        evaluators[set_name] = spec.get("evaluator")
        builder = {k: v for k, v in spec.items() if k not in PER_SET_KEYS}
        built[set_name] = instantiate(OmegaConf.create(builder), f"data.sets.{set_name}")
    if primary != MEAN and primary not in built:
        raise StembedError(
            f"data.primary={primary}: no such set. Use {MEAN} (the mean of every set's primary metric) "
            f"or one of {sorted(built)}."
        )
    data = MultiData(built, losses, evaluators, primary, name or " + ".join(d.name for d in built.values()))
    data.source = "; ".join(f"{n}: {d.source}" for n, d in built.items())
    for set_name, part in built.items():
        data.stats.update({f"{set_name}.{key}": value for key, value in part.stats.items()})
    data.stats["sets"] = len(built)
    data.stats["train_pairs"] = sum(d.stats.get("train_pairs", 0) for d in built.values())
    data.stats["eval_pairs"] = sum(d.stats.get("eval_pairs", 0) for d in built.values())
    return data


def is_multi(data: Any) -> bool:
    """Whether the built data is several named sets."""
    return isinstance(data, MultiData)


def sequential_evaluator(evaluators: dict[str, Any], primary: str) -> Any:
    """One evaluator running every set's evaluator; its primary metric is the named set's, or the mean."""

    names = [name for name, evaluator in evaluators.items() if evaluator is not None]
    if not names:
        return None
    inner = [evaluators[name] for name in names]
    position = names.index(primary) if primary in names else None

    class NamedSequentialEvaluator(SequentialEvaluator):
        """SequentialEvaluator whose primary metric is named before the first call, and stays so."""

        def __init__(self) -> None:
            super().__init__(
                inner,
                main_score_function=(lambda scores: sum(scores) / len(scores))
                if position is None
                else (lambda scores: scores[position]),
            )
            self.primary_metric = self._primary()

        def _primary(self) -> str:
            if position is None:
                return "sequential_score"
            evaluator = inner[position]
            metric = getattr(evaluator, "primary_metric", None) or "sequential_score"
            prefix = f"{evaluator.name}_" if getattr(evaluator, "name", "") else ""
            return metric if metric.startswith(prefix) else prefix + metric

        def __call__(
            self, model: Any, output_path: str | None = None, epoch: int = -1, steps: int = -1
        ) -> Any:
            results = super().__call__(model, output_path, epoch, steps)
            self.primary_metric = self._primary()
            return results

    return NamedSequentialEvaluator()
