"""The training recipe, top to bottom, as a sentence-transformers training example reads.

seed -> data -> model -> loss -> evaluators -> arguments -> trainer -> open the run -> baseline ->
train -> final -> save and card -> log -> return the metric. Every step that can fail on bad input
comes before the MLflow run opens, so bad input never leaves a run behind. The config itself was
checked before this module was imported (stembed.recipe.app.job), so config errors fail fast.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
from transformers import set_seed

from stembed.components.evaluators import check_final_metrics_defined, check_not_diverged, run_evaluators
from stembed.components.instantiate import instantiate
from stembed.components.model import load_model
from stembed.data.sanity import raise_if_strict
from stembed.errors import StembedError
from stembed.hub import hub_is_offline
from stembed.recipe.arguments import training_arguments
from stembed.recipe.card import add_stembed_section
from stembed.recipe.console import quiet_progress, route_library_logs, verbose_requested
from stembed.recipe.inputs import build_train_inputs, log_inputs
from stembed.scale import distributed, sweep
from stembed.scale.resume import CHECKPOINT_TAG, GracefulStop, latest_checkpoint
from stembed.speed.plan import plan_batches
from stembed.speed.throughput import count_tokens, throughput_metrics
from stembed.tracking.eval_tables import log_per_example
from stembed.tracking.record import print_summary, run_name, run_params, run_tags
from stembed.tracking.redaction import mask_overrides, secret_values
from stembed.tracking.run import Tracker


def train(cfg: DictConfig, stop: GracefulStop | None = None, secrets: set[str] | None = None) -> float | None:
    """Train one model as configured; return the optimized metric (for sweepers).

    secrets: the job's credential values (found once, by the run-directory guard); None finds them here.
    """
    started = time.perf_counter()
    hydra_cfg = HydraConfig.get()
    route_library_logs(verbose_requested(hydra_cfg.verbose))
    run_dir = Path(hydra_cfg.runtime.output_dir)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    if secrets is None:
        secrets = secret_values(resolved)
    tracker = Tracker.from_config(
        cfg.tracking, cfg.paths.output_root, secrets, active=distributed.is_main_process()
    )
    tracker.connect()  # a store that does not answer fails here, before anything loads
    set_seed(cfg.seed)

    data = instantiate(cfg.data, "data")  # before the model: cheaper to load, and to fail; or data=multi
    loaded = load_model(cfg.model)  # with model.prompts set on it (saved with it)
    model = loaded.model
    inputs = build_train_inputs(cfg, model, data)  # losses, mined hard negatives, prompts, evaluators
    loss = inputs.loss  # a loss, or {set: loss} for data=multi
    train_dataset, eval_dataset = inputs.train_dataset, inputs.eval_dataset  # DatasetDicts for data=multi
    evaluators = inputs.evaluators  # [eval split, test split]; test: before/after only

    args = training_arguments(cfg.trainer, cfg.speed, run_dir / "checkpoints", loaded.kind)
    args.prompts = inputs.prompts  # column -> prompt text ({set: {...}} for data=multi)
    batches = plan_batches(cfg.speed, inputs.sampling_loss, model)
    args.batch_sampler = batches.sampler
    if evaluators[0] is None and eval_dataset is None:
        args.eval_strategy = "no"
    findings = inputs.sanity_findings(batches.sampler_name != "batch_sampler", model)
    raise_if_strict(findings, bool(cfg.get("strict")))
    for finding in findings:
        print(f"stembed: warning: [{finding.name}] {finding.message}", file=sys.stderr)
    inputs.describe_datasets(model, cfg.task_name, hub_is_offline())  # before the trainer
    trainer: SentenceTransformerTrainer = batches.trainer_class(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        loss=loss,
        evaluator=evaluators[0],
        callbacks=[tracker.trainer_callback(), *([stop.trainer_callback()] if stop else [])],
    )
    quiet_progress(trainer, verbose_requested(hydra_cfg.verbose))
    resume_from = resume_checkpoint(cfg, run_dir)

    overrides = mask_overrides(list(hydra_cfg.overrides.task))
    command = "stembed train " + " ".join(shlex.quote(o) for o in overrides if not o.startswith("+resume="))
    tags = run_tags(
        command=command,
        overrides=overrides,
        task=str(cfg.task_name),
        model_source=loaded.source,
        data=data,
        run_dir=run_dir,
        batch_sampler=batches.description,
        warnings=[f"[{f.name}] {f.message}" for f in findings],
        resumed_from=resume_from,
    )
    tags |= sweep.job_tags() | distributed.run_tags(args)  # the parent run of a sweep; DDP world size
    tags |= inputs.tags  # mining cache key(s), data sets
    job_num = hydra_cfg.job.num if hydra_cfg.mode == RunMode.MULTIRUN else None
    resume_id = str(cfg.resume) if resume_from else None
    with tracker.run(run_name(cfg, job_num), run_params(resolved, data.stats), tags, resume_id) as run_id:
        baseline = run_evaluators(evaluators, model)  # of the base model, also when resuming
        if not resume_from:
            tracker.log_metrics(baseline, step=0, prefix="baseline_")
            log_per_example(tracker, evaluators, model, "baseline_")  # per-example scores, for `stembed diff`
            tracker.log_datasets(data)  # MLflow dataset inputs: training, evaluation, testing
            tracker.log_metrics({f"sanity_{f.name}": f.count for f in findings}, step=0)
            log_inputs(tracker, inputs)  # mining_* metrics, mining/sample.json
        primary = primary_metric(cfg.get("optimized_metric"), evaluators[0], baseline)
        if primary:
            tracker.set_primary_metric("final_" + primary)

        tokens = count_tokens(model)
        runtime = train_resumably(trainer, resume_from, tracker, stop)
        speed = throughput_metrics(tokens, model, runtime)
        tracker.log_metrics(speed, step=trainer.state.global_step)

        final = run_evaluators(evaluators, model)
        tracker.log_metrics(final, step=trainer.state.global_step, prefix="final_")
        log_per_example(tracker, evaluators, model, "final_")  # for `stembed compare --significance`
        check_not_diverged(model, baseline, final, args.learning_rate)  # NaN: the run ends FAILED
        if not distributed.is_main_process():
            return None  # under torchrun, rank 0 saves the model, writes the card and logs

        model_dir = save_model(model, run_dir / "model")
        card = model_dir / "README.md"
        add_stembed_section(
            card,
            command=command,
            run_id=run_id,
            experiment=tracker.experiment_name,
            tracking_uri=tracker.uri,
            model_source=loaded.source,
            data=data,
            baseline=baseline,
            final=final,
            notes=inputs.card_notes | (loaded.notes or {}),  # mining, prompts, data sets; a fresh head
        )
        config_text = OmegaConf.to_yaml(cfg, resolve=True)
        log_model = bool(cfg.tracking.log_model)
        model_uri = tracker.log_outputs(card, run_dir / ".hydra", config_text, model, log_model)
        check_final_metrics_defined(final, primary, model_dir)  # NaN: FAILED, the model kept
    print_summary(
        tracker,
        seconds=time.perf_counter() - started,
        baseline=baseline,
        final=final,
        primary=primary,
        speed=speed,
        model_dir=model_dir,
        model_uri=model_uri,
    )
    return float(final[primary]) if primary else None


def resume_checkpoint(cfg: DictConfig, run_dir: Path) -> Path | None:
    """For +resume=RUN_ID: the newest checkpoint in the run directory (an error when there is none)."""
    if not cfg.get("resume"):
        return None
    checkpoint = latest_checkpoint(run_dir / "checkpoints")
    if checkpoint is None:
        raise StembedError(
            f"resume={cfg.resume}: no checkpoint in {run_dir / 'checkpoints'}; the run stopped before its "
            "first save. Start it again without +resume (or save more often: trainer.save_strategy=steps)."
        )
    return checkpoint


def primary_metric(name: str | None, evaluator: Any, baseline: dict[str, float]) -> str | None:
    """The metric key that ranks the run: optimized_metric, else the evaluator's primary metric.

    Checked against the baseline evaluation, so a wrong name fails before training, not after.
    """
    if not baseline:
        return None
    key = name.removeprefix("final_") if name else getattr(evaluator, "primary_metric", None)
    if key not in baseline:
        raise StembedError(
            f"optimized_metric={name}: the evaluator reports no such metric. Metrics: {sorted(baseline)}."
        )
    return key


def train_resumably(
    trainer: SentenceTransformerTrainer, resume_from: Path | None, tracker: Tracker, stop: GracefulStop | None
) -> float:
    """trainer.train() -> its runtime in seconds; on a stop or a crash, record the newest checkpoint."""
    checkpoints = Path(trainer.args.output_dir)
    try:
        output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except BaseException:
        if checkpoint := latest_checkpoint(checkpoints):
            with contextlib.suppress(Exception):  # never hide the original error
                tracker.set_tags({CHECKPOINT_TAG: str(checkpoint)})
        raise
    if stop is not None and stop.requested:
        checkpoint = latest_checkpoint(checkpoints)
        tracker.set_tags({CHECKPOINT_TAG: str(checkpoint)})
        print(
            f"\nstembed: stopped at step {trainer.state.global_step}; checkpoint {checkpoint}\n"
            f"  resume with: stembed resume {tracker.run_id}",
            file=sys.stderr,
        )
        raise KeyboardInterrupt(f"signal {stop.signal}")
    return float(output.metrics.get("train_runtime", 0.0))


def save_model(model: SentenceTransformer, model_dir: Path) -> Path:
    """Save (writing the card) to a temporary directory, renamed only once complete."""
    partial = model_dir.with_name(model_dir.name + ".partial")
    model.save(str(partial))
    partial.rename(model_dir)
    return model_dir
