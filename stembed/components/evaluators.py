"""Build the configured evaluator from eval data; helpers that turn columns into evaluator arguments.

The `evaluator` group: stembed's own keys at the top (name, test_name, inputs) and the evaluator
class with only its own arguments under `call`.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from stembed.components.instantiate import evaluator_disabled, instantiate
from stembed.components.per_example import recording
from stembed.errors import StembedError

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers.base.evaluation import BaseEvaluator


def columns(dataset: Dataset, **mapping: str) -> dict[str, list]:
    """Evaluator arguments taken straight from columns: {argument: column}."""
    _check_columns(dataset, mapping.values())
    return {argument: dataset[column][:] for argument, column in mapping.items()}


def pair_inputs(dataset: Dataset, pair: tuple[str, str] | list[str], **mapping: str) -> dict[str, list]:
    """A reranker evaluator's arguments: `sentence_pairs` from two text columns, the rest from columns."""
    first, second = pair
    found = columns(dataset, first=first, second=second, **mapping)
    pairs = [[a, b] for a, b in zip(found.pop("first"), found.pop("second"), strict=True)]
    return {"sentence_pairs": pairs, **found}


def rerank_samples(
    dataset: Dataset,
    query: str = "anchor",
    document: str = "positive",
    label: str | None = None,
    min_label: float = 0.5,
) -> dict[str, list]:
    """CrossEncoderRerankingEvaluator's `samples` from (query, document[, label]) rows: per query, its
    positive documents and, as candidates, every document of the eval data paired with it or not
    (up to 30 others, in a fixed order), so the reranker orders a real candidate list."""
    found = retrieval_inputs(dataset, query, document, label, min_label)
    corpus = list(found["corpus"].values())
    samples = []
    for qid, text in found["queries"].items():
        positives = [found["corpus"][d] for d in sorted(found["relevant_docs"].get(qid, ()))]
        others = [doc for doc in corpus if doc not in positives][:30]
        samples.append({"query": text, "positive": positives, "documents": positives + others})
    return {"samples": samples}


def retrieval_inputs(
    dataset: Dataset,
    query: str = "anchor",
    document: str = "positive",
    label: str | None = None,
    min_label: float = 0.5,
) -> dict[str, dict]:
    """queries, corpus and relevant_docs for InformationRetrievalEvaluator from (query, document) rows.

    Every document text is in the corpus; a query's relevant documents are those it is paired with
    (with label >= min_label when a label column is given).
    """
    _check_columns(dataset, [query, document])
    has_label = label is not None and label in dataset.column_names  # unlabelled pairs are all relevant
    doc_ids: dict[str, str] = {}
    query_ids: dict[str, str] = {}
    relevant: dict[str, set[str]] = {}
    for row in dataset:
        doc_id = doc_ids.setdefault(row[document], f"d{len(doc_ids)}")
        if has_label and row[label] < min_label:
            continue
        query_id = query_ids.setdefault(row[query], f"q{len(query_ids)}")
        relevant.setdefault(query_id, set()).add(doc_id)
    return {
        "queries": {qid: text for text, qid in query_ids.items()},
        "corpus": {did: text for text, did in doc_ids.items()},
        "relevant_docs": relevant,
    }


def _check_columns(dataset: Dataset, wanted: Any) -> None:
    missing = [c for c in wanted if c not in dataset.column_names]
    if missing:
        raise StembedError(
            f"evaluator.inputs: column(s) {missing} are not in the eval data. Columns found: "
            f"{dataset.column_names}. Point evaluator.inputs.* at those columns, or pick another "
            "evaluator (evaluator=similarity|binary|retrieval|none)."
        )


def build_evaluator(cfg: Any, eval_dataset: Dataset | None, test: bool = False) -> BaseEvaluator | None:
    """Instantiate `evaluator.call` with `name` and the arguments `evaluator.inputs` computes from the data.

    The group's top level is stembed's (name, test_name, inputs); `call` is the evaluator class with
    only its own arguments. With test=True the evaluator is named `evaluator.test_name` (default "test").
    """
    call = cfg.get("call") if cfg else None
    if call is None and cfg and cfg.get("_target_"):  # a config file of the first release
        raise StembedError(
            f"evaluator._target_={cfg.get('_target_')}: the evaluator class and its own arguments now go "
            "under evaluator.call (evaluator.call._target_=...); evaluator.name, test_name and inputs stay."
        )
    if evaluator_disabled(call):
        return None
    if eval_dataset is None:
        raise StembedError(
            f"evaluator.call._target_={call.get('_target_')}: the data has no eval split. Set "
            "data.eval_fraction, data.eval_split or data.eval_source, or use evaluator=none."
        )
    group = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    spec, inputs_cfg = group["call"], group.get("inputs")
    name = (group.get("test_name") or "test") if test else group.get("name")
    # Runtime objects (datasets, lists, sets) are passed at the call site, never through the config.
    arguments = (
        instantiate(inputs_cfg, "evaluator.inputs", _partial_=True)(eval_dataset) if inputs_cfg else {}
    )
    if "name" in spec:
        raise StembedError(
            f"evaluator.call.name={spec['name']}: stembed names the evaluator itself; set evaluator.name "
            "(and evaluator.test_name for the test split) instead."
        )
    factory = instantiate(spec, "evaluator.call", _partial_=True)
    _check_binary_labels(spec.get("_target_"), arguments.get("labels"))
    try:
        return factory(**arguments, **({"name": str(name)} if name is not None else {}))
    except (TypeError, ValueError, AssertionError) as err:
        raise StembedError(
            f"evaluator.call._target_={spec.get('_target_')}: could not build it ({err}). Check the "
            "evaluator.call.* keys and evaluator.inputs against the evaluator's arguments."
        ) from err


def _check_binary_labels(target: Any, labels: Any) -> None:
    """BinaryClassificationEvaluator asserts labels are 0 or 1 (a bare AssertionError): say so first."""
    if not str(target).endswith("BinaryClassificationEvaluator") or labels is None:
        return
    other = sorted({value for value in labels if value not in (0, 1)})
    if other:
        raise StembedError(
            f"evaluator=binary: it needs eval labels of exactly 0 or 1, but {len(other)} other value(s) occur"
            f" (e.g. {other[:3]}). Use evaluator=similarity for graded scores, or make the labels 0/1."
        )


def build_evaluators(cfg: Any, data: Any) -> list[BaseEvaluator | None]:
    """[evaluator on the eval split, evaluator on the test split or None]."""
    test = build_evaluator(cfg, data.test, test=True) if data.test is not None else None
    return [build_evaluator(cfg, data.eval), test]


def run_evaluators(evaluators: list[BaseEvaluator | None], model: Any) -> dict[str, float]:
    """The merged metrics of every evaluator that is not None.

    The embeddings are kept on the evaluators, for `per_example.log_per_example` to reuse.
    """

    metrics: dict[str, float] = {}
    with recording(evaluators):
        for evaluator in evaluators:
            if evaluator is not None:
                metrics.update(evaluator(model))
    return metrics


def check_not_diverged(
    model: Any, baseline: dict[str, float], final: dict[str, float], learning_rate: float
) -> None:
    """Raise when training diverged: weights that are NaN/inf, or a metric that was a number before
    training and is NaN after it. (A metric that is NaN already before training, e.g. a correlation
    over constant labels, says nothing about training.)

    transformers filters NaN losses out of its logged loss, so the weights are checked directly.
    """
    import math

    import torch

    def finite(value: Any) -> bool:
        return isinstance(value, int | float) and math.isfinite(value)

    broken = [name for name, weights in model.named_parameters() if not torch.isfinite(weights).all()]
    nan_metrics = sorted(k for k, v in final.items() if not finite(v) and finite(baseline.get(k)))
    if not broken and not nan_metrics:
        return
    what = f"{len(broken)} weight tensor(s) hold NaN/inf (first: {broken[0]})" if broken else ""
    if nan_metrics:
        what += ("; " if what else "") + f"metric(s) NaN after training: {', '.join(nan_metrics[:5])}"
    raise StembedError(
        f"training diverged at trainer.learning_rate={learning_rate}: {what}. Lower "
        "trainer.learning_rate, add warmup (trainer.warmup_steps=0.1), keep trainer.max_grad_norm=1.0, "
        "or turn off trainer.fp16. The model is not saved."
    )


def check_final_metrics_defined(final: dict[str, float], primary: str | None, model_dir: Any) -> None:
    """Raise when the metric that ranks the run (or every final metric) is NaN: a model nothing could
    score is not a finished run, even when the metric was NaN before training too (check_not_diverged
    lets that pass). The weights are finite by now, so the model is kept and the error says where."""
    undefined = sorted(k for k, v in final.items() if not (isinstance(v, int | float) and math.isfinite(v)))
    if not undefined:
        return
    shown = ", ".join(undefined[:5]) + (", ..." if len(undefined) > 5 else "")
    if primary not in undefined and len(undefined) < len(final):
        print(
            f"stembed: warning: final metric(s) {shown} are NaN; the evaluator could not score them.",
            file=sys.stderr,
        )
        return
    raise StembedError(
        f"final metric(s) {shown} are NaN: the evaluator could not score the trained model (constant eval "
        "labels, texts cut away by a long model.prompts entry, or too few eval rows), so the run is marked "
        f"FAILED, not FINISHED. The model is saved in {model_dir} and logged to the run; fix the eval data "
        "(see data_stats and the warnings above) and evaluate it again with `stembed eval`."
    )
