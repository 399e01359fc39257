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

With `--reranker` the table gains retrieve-then-rerank rows (stembed.inference.rerank_stage): the
reference's and the chosen variant's retrieval, each reranked at every `--rerank-k`, and the reranker
alone where it can score every candidate. `--min-gain` then asks for a gain instead of bounding a loss.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sentence_transformers import SentenceTransformer

from stembed.components.evaluators import build_evaluators
from stembed.components.instantiate import instantiate
from stembed.components.kinds import BI_ENCODER, ModelKind, kind_of, kind_of_saved
from stembed.components.model import embedding_dimension
from stembed.config import compose_train
from stembed.errors import StembedError
from stembed.inference import ship_files, ship_mlflow
from stembed.inference.grid import choose, run_grid, split_texts, truncation_dims
from stembed.inference.references import load_any_model
from stembed.inference.rerank_stage import RERANK_KS, Reranking, load_reranker, measure_reranking
from stembed.inference.runtimes import MODEL_DIR, RUNTIMES, Encoder
from stembed.inference.ship_files import table_markdown
from stembed.inference.shipped import ShippedModel, load_shipped
from stembed.inference.variants import Row, ShipResult
from stembed.tracking.registry import check_model_name
from stembed.tracking.runs import client, get_run

__all__ = [
    "Reranking",
    "ShipResult",
    "ShippedModel",
    "load_shipped",
    "run_evaluation",
    "ship",
    "table_markdown",
    "whole_numbers",
]


def ship(
    reference: str,
    max_drop: float,
    output: Path | None,
    register: str | None,
    tracking_uri: str | None,
    dims: list[int] | None = None,
    rerank: Reranking | None = None,
    min_gain: float | None = None,
) -> ShipResult:
    """Measure the grid for a run (and, with a reranker, retrieve-then-rerank rows), write ship/ with
    the chosen variant, log it to the run."""
    if not max_drop >= 0:  # NaN too
        raise StembedError(f"--max-drop {max_drop}: must be 0 or more (a loss in the primary metric).")
    check_model_name(register, "--register")  # before the measurement, not after it
    store = client(tracking_uri)
    uri = store.tracking_uri
    run = get_run(store, reference.removeprefix("runs:/").split("/", 1)[0])
    data, evaluator = run_evaluation(run)
    model = run_model(run, uri)
    reranker = load_reranker(rerank.reference, store) if rerank else None  # a wrong one fails before the grid
    output = output or ship_files.default_output(run)
    ship_files.clear(output)
    model.save(str(output / MODEL_DIR))
    ship_mlflow.use_run_card(output / MODEL_DIR / "README.md", run.info.run_id, uri)
    encoders, sizes, notes = prepare_runtimes(model, output)

    grid = run_grid(
        model,
        encoders,
        sizes,
        evaluator,
        split_texts(data.train),  # int8 calibration
        split_texts(data.eval),  # speed
        truncation_dims(embedding_dimension(model), dims),
    )
    rows = grid.rows
    if rerank:
        rows, left_out = measure_reranking(grid, evaluator, model, reranker, output, rerank, max_drop)
        notes += left_out
    chosen = choose_row(rows, max_drop, min_gain, notes)
    given = rerank.reference if rerank else None
    result = ShipResult(
        grid.metric_name, rows, chosen, output, notes=notes, min_gain=min_gain, reranker=given
    )

    ship_files.write(result, run, grid.ranges_of, max_drop, data.fingerprint)
    ship_files.prune(output, chosen.variant)
    ship_mlflow.log_to_run(result, run.info.run_id, uri)
    if register:
        result.registered = ship_mlflow.register_shipped(result, run.info.run_id, uri, register)
    return result


def choose_row(rows: list[Row], max_drop: float, min_gain: float | None, notes: list[str]) -> Row:
    """The row to ship (marked chosen): by --max-drop, or --min-gain; where nothing gains min_gain,
    the best row, with a note saying so."""
    chosen = choose(rows, max_drop, min_gain)
    if chosen is None:
        chosen = rows[0]
        notes.append(
            f"no variant gains --min-gain {min_gain} over the reference (the best: {chosen.delta:+.4f}); "
            "shipped the best one"
        )
    chosen.chosen = True
    return chosen


def whole_numbers(option: str, text: str | None) -> list[int] | None:
    """`--dims 64,128` / `--rerank-k 5,10`: positive whole numbers separated by commas (None: not given)."""
    if not text:
        return None
    try:
        numbers = [int(part) for part in text.split(",")]
    except ValueError:
        numbers = []
    if not numbers or min(numbers) < 1:
        raise StembedError(f"{option} {text}: give positive whole numbers separated by commas, e.g. 64,128.")
    return numbers


def reranking(reranker: str | None, ks: list[int] | None, every_variant: bool) -> Reranking | None:
    """What --reranker, --rerank-k and --rerank-every-variant ask for; the latter two need the first."""
    if reranker:
        return Reranking(reranker, tuple(ks or RERANK_KS), every_variant)
    if ks or every_variant:
        given = f"--rerank-k {','.join(map(str, ks))}" if ks else "--rerank-every-variant"
        raise StembedError(
            f"{given}: measures a reranker, but none is given. Add --reranker RUN_ID (a reranker run)."
        )
    return None


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
    """The run's model on CPU: from its local directory where that holds it, else from MLflow.
    ship measures a bi-encoder's variants; a reranker or sparse encoder run is an error."""
    run_dir = run.data.tags.get("stembed.run_dir")
    saved = Path(run_dir) / "model" if run_dir else None
    if saved is not None and (saved / "config_sentence_transformers.json").is_file():
        _check_bi_encoder(run, kind_of_saved(saved))
        return SentenceTransformer(str(saved), device="cpu")
    model = load_any_model(f"runs:/{run.info.run_id}/model", uri)[0]
    _check_bi_encoder(run, kind_of(model))
    return model.to("cpu")


def _check_bi_encoder(run: Any, kind: ModelKind) -> None:
    if kind is BI_ENCODER:
        return
    hint = (
        f" To measure retrieve-then-rerank, ship a bi-encoder run and give this one as --reranker "
        f"{run.info.run_id}."
        if kind.scores_pairs
        else ""
    )
    raise StembedError(
        f"RUN_ID {run.info.run_id}: a {kind.name} run ({kind.model_class.rsplit('.', 1)[-1]}); "
        "`stembed ship` measures a bi-encoder's deployment variants (runtime, dimensions, embedding "
        f"precision).{hint}"
    )
