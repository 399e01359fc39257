"""`stembed ship RUN_ID`: choose how to deploy a trained model from measurements on its own eval data.

A grid of deployment variants is evaluated with the run's evaluator on the run's eval split:
runtime (each available one in stembed.inference.runtimes.RUNTIMES: PyTorch fp32, PyTorch bf16 where
the CPU computes bf16 natively, ONNX fp32, ONNX int8) x output dimension (the full one and
truncations, what Matryoshka training is for) x embedding precision (float32, int8, binary,
binary-rescore; stembed.inference.variants). `--max-drop` picks the variant with the smallest index,
then the smallest model, then the fastest, among those within that loss of the reference metric
(stembed.inference.grid); `ship/` holds it with a manifest and the table (stembed.inference.ship_files),
logged to the run and optionally registered (stembed.inference.ship_mlflow). load_shipped serves it
(stembed.inference.shipped; importable from here, as ship.json says).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sentence_transformers import SentenceTransformer

from stembed.components.evaluators import build_evaluators
from stembed.components.instantiate import instantiate
from stembed.components.model import embedding_dimension
from stembed.config import compose_train
from stembed.errors import StembedError
from stembed.inference import ship_files, ship_mlflow
from stembed.inference.grid import choose, run_grid, split_texts, truncation_dims
from stembed.inference.references import load_any_model
from stembed.inference.runtimes import MODEL_DIR, RUNTIMES, Encoder
from stembed.inference.ship_files import table_markdown
from stembed.inference.shipped import ShippedModel, load_shipped
from stembed.inference.variants import ShipResult
from stembed.tracking.runs import client, get_run

__all__ = ["ShipResult", "ShippedModel", "load_shipped", "run_evaluation", "ship", "table_markdown"]


def ship(
    reference: str,
    max_drop: float,
    output: Path | None,
    register: str | None,
    tracking_uri: str | None,
    dims: list[int] | None = None,
) -> ShipResult:
    """Measure the grid for a run, write ship/ with the chosen variant, log it to the run."""
    if max_drop < 0:
        raise StembedError(f"--max-drop {max_drop}: must be 0 or more (a loss in the primary metric).")
    store = client(tracking_uri)
    uri = store.tracking_uri
    run = get_run(store, reference.removeprefix("runs:/").split("/", 1)[0])
    output = output or ship_files.default_output(run)
    ship_files.clear(output)
    data, evaluator = run_evaluation(run)
    model = run_model(run, uri)
    model.save(str(output / MODEL_DIR))
    ship_mlflow.use_run_card(output / MODEL_DIR / "README.md", run.info.run_id, uri)
    encoders, sizes, notes = prepare_runtimes(model, output)

    metric_name, rows, ranges_of = run_grid(
        model,
        encoders,
        sizes,
        evaluator,
        split_texts(data.train),  # int8 calibration
        split_texts(data.eval),  # speed
        truncation_dims(embedding_dimension(model), dims),
    )
    chosen = choose(rows, max_drop)
    chosen.chosen = True
    result = ShipResult(metric_name, rows, chosen, output, notes=notes)

    ship_files.write(result, run, ranges_of, max_drop, data.fingerprint)
    ship_files.prune(output, RUNTIMES[chosen.variant.runtime])
    ship_mlflow.log_to_run(result, run.info.run_id, uri)
    if register:
        result.registered = ship_mlflow.register_shipped(result, run.info.run_id, uri, register)
    return result


def prepare_runtimes(
    model: SentenceTransformer, output: Path
) -> tuple[dict[str, Encoder], dict[str, float], list[str]]:
    """(encoder, model MB) of each runtime available here, prepared in output; a note per one left out."""
    encoders, sizes, notes = {}, {}, []
    for runtime in RUNTIMES.values():
        if not runtime.available():
            notes.append(f"{runtime.name} left out: {runtime.left_out_because}")
            continue
        encoders[runtime.name] = runtime.prepare(model, output)
        sizes[runtime.name] = runtime.size_mb(output)
    return encoders, sizes, notes


def run_evaluation(run: Any) -> tuple[Any, Any]:
    """The run's data and eval-split evaluator, built from the run's own overrides."""
    overrides = json.loads(run.data.tags.get("stembed.overrides", "null") or "null")
    if overrides is None:
        raise StembedError(
            f"RUN_ID {run.info.run_id}: not a `stembed train` run (no stembed.overrides tag), so its eval "
            "data is unknown. Give the id of a training run (`stembed runs`)."
        )
    overrides = [o for o in overrides if not o.startswith(("hydra", "+resume="))]
    cfg = compose_train(
        overrides, f"RUN_ID {run.info.run_id}: its overrides {{overrides}} no longer compose ({{error}})."
    )
    data = instantiate(cfg.data, "data")
    evaluator = build_evaluators(cfg.evaluator, data)[0]
    if evaluator is None:
        raise StembedError(
            f"RUN_ID {run.info.run_id}: the run has no evaluator (evaluator=none), so variants cannot be "
            "compared. Train with an evaluator, e.g. evaluator=similarity."
        )
    expected = run.data.tags.get("stembed.data_fingerprint")
    if expected and expected != data.fingerprint:
        raise StembedError(
            f"RUN_ID {run.info.run_id}: its data changed since training (fingerprint {data.fingerprint}, "
            f"the run's {expected}). Restore the data the run used, or train again."
        )
    return data, evaluator


def run_model(run: Any, uri: str) -> SentenceTransformer:
    """The run's model on CPU: from its local directory where that holds it, else from MLflow."""
    run_dir = run.data.tags.get("stembed.run_dir")
    if run_dir and (Path(run_dir) / "model" / "config_sentence_transformers.json").is_file():
        return SentenceTransformer(str(Path(run_dir) / "model"), device="cpu")
    return load_any_model(f"runs:/{run.info.run_id}/model", uri)[0].to("cpu")
