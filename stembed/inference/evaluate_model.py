"""`stembed eval`: evaluate any model with the same config groups as training, logged to MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from stembed.components.evaluators import run_evaluators
from stembed.config import compose_train
from stembed.data.eval_sets import eval_evaluators
from stembed.errors import StembedError
from stembed.inference.references import load_any_model, model_run_id
from stembed.tracking.eval_tables import log_per_example
from stembed.tracking.run import Tracker, flatten
from stembed.tracking.store import resolve_tracking_uri

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def run_eval(
    reference: str, overrides: list[str], log: bool = True, tracking_uri: str | None = None
) -> tuple[dict[str, float], str | None]:
    """(metrics, MLflow run id or None) for MODEL evaluated as the composed config says."""
    cfg = compose_train(overrides)
    uri = resolve_tracking_uri(tracking_uri or cfg.tracking.get("uri"), Path(cfg.paths.output_root))
    model, source = load_any_model(reference, uri)
    evaluators, data = build_eval(cfg, model)
    metrics = run_evaluators(evaluators, model)
    if not log:
        return metrics, None
    tracker = Tracker(uri, f"{cfg.task_name}-eval")
    tracker.connect()
    tags = {
        "stembed.evaluated_model": reference,
        "stembed.model_source": source,
        "stembed.command": "stembed eval",
        "stembed.data_fingerprint": data.fingerprint,
    }
    if run_id := model_run_id(reference, uri):
        tags["stembed.model_run_id"] = run_id
    params = flatten(OmegaConf.to_container(cfg.data, resolve=True), "data.")
    params.update(flatten(OmegaConf.to_container(cfg.evaluator, resolve=True), "evaluator."))
    with tracker.run(None, params, tags) as eval_run_id:
        tracker.log_datasets(data, training=False)
        tracker.log_metrics(metrics, step=0)
        log_per_example(tracker, evaluators, model)  # eval/<evaluator>.parquet, for compare --significance
    return metrics, eval_run_id


def build_eval(cfg: Any, model: SentenceTransformer) -> tuple[list[Any], Any]:
    """([evaluator on the eval split, on the test split or None], the data) from the composed config.

    The evaluators embed with the model's prompts (saved with it, or model.prompts); data=multi too.
    """

    evaluators, data = eval_evaluators(cfg, model)
    if evaluators[0] is None:
        raise StembedError(
            "evaluator=none: nothing to evaluate. Pick an evaluator, e.g. evaluator=similarity."
        )
    return evaluators, data
