"""The training recipe: config, model, data, loss/evaluator, trainer, evaluate, save, card, MLflow.

`stembed train ARGS` calls `run_hydra(ARGS)`, so Hydra sees the arguments untouched (-m, --cfg,
--help, +experiment=..., hydra/launcher=...). Heavy libraries are imported inside functions.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stembed.errors import EXIT_INTERRUPTED, EXIT_USAGE, StembedError, did_you_mean

if TYPE_CHECKING:
    from datasets import Dataset
    from omegaconf import DictConfig
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.evaluation import BaseEvaluator
    from torch import nn

    from stembed.data.loading import PairData
    from stembed.models import LoadedModel
    from stembed.tracking import Tracker


def run_hydra(args: list[str]) -> None:
    """Run the Hydra app `stembed train` with these command-line arguments."""
    import hydra

    from stembed.config import conf_dir
    from stembed.distributed import hydra_args

    sys.argv = ["stembed-train", *hydra_args(args)]  # under torchrun: one run directory for all ranks
    hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="train")(job)()


def job(cfg: DictConfig) -> float | None:
    """One Hydra job: train, turning input errors into one paragraph and exit code 2."""
    from stembed.sweep import run_job

    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)  # a cluster's pre-emption ends the run KILLED
    try:
        return run_job(train, cfg)  # in a sweep, a failing job is recorded FAILED and the sweep goes on
    except KeyboardInterrupt:
        print("\nstembed: interrupted; the MLflow run (if one was open) ended KILLED.", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except StembedError as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1" or os.environ.get("STEMBED_DEBUG") == "1":
            raise
        print(f"\nstembed: error: {err}\n", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@dataclass
class Job:
    """Everything a run needs, built and checked before the MLflow run opens."""

    run_dir: Path
    run_name: str
    command: str
    overrides: list[str]
    args: SentenceTransformerTrainingArguments
    tracker: Tracker
    loaded: LoadedModel
    data: PairData
    loss: nn.Module
    train_dataset: Dataset
    eval_dataset: Dataset | None
    evaluators: list[BaseEvaluator | None]  # [eval split, test split]


def train(cfg: DictConfig) -> float | None:
    """Train one model as configured; return the optimized metric (for sweepers)."""
    started = time.perf_counter()
    job = prepare(cfg)
    from omegaconf import OmegaConf

    from stembed import distributed, sweep
    from stembed.evaluation import check_not_diverged, run_evaluators
    from stembed.model_card import add_stembed_section

    model, tracker, data = job.loaded.model, job.tracker, job.data
    tags = _run_tags(cfg, job.command, job.overrides, job.loaded.source, data)
    tags |= sweep.job_tags() | distributed.run_tags(job.args)  # parent run of a sweep; DDP world size
    with tracker.run(job.run_name, _run_params(cfg, data), tags) as run_id:
        baseline = run_evaluators(job.evaluators, model)
        tracker.log_metrics(baseline, step=0, prefix="baseline_")
        primary = _primary_metric(cfg.get("optimized_metric"), job.evaluators[0], baseline)
        if primary:
            tracker.set_primary_metric("final_" + primary)
        trainer = _trainer(job)
        trainer.train()
        final = run_evaluators(job.evaluators, model)
        tracker.log_metrics(final, step=trainer.state.global_step, prefix="final_")
        check_not_diverged(model, baseline, final, job.args.learning_rate)  # NaN: the run ends FAILED
        if not distributed.is_main_process():
            return None  # under torchrun, rank 0 saves the model, writes the card and logs
        model_dir = _save_model(model, job.run_dir / "model")
        card = model_dir / "README.md"
        add_stembed_section(
            card,
            command=job.command,
            run_id=run_id,
            experiment=tracker.experiment_name,
            tracking_uri=tracker.uri,
            model_source=job.loaded.source,
            data=data,
            baseline=baseline,
            final=final,
        )
        resolved = OmegaConf.to_yaml(cfg, resolve=True)
        model_uri = tracker.log_outputs(
            card, job.run_dir / ".hydra", resolved, model, bool(cfg.tracking.log_model)
        )
    elapsed = time.perf_counter() - started
    _print_summary(run_id, tracker, baseline, final, primary, model_dir, model_uri, elapsed)
    return float(final[primary]) if primary else None


def prepare(cfg: DictConfig) -> Job:
    """Build and check everything from the config; any input error raises here, before a run opens."""
    from hydra.core.hydra_config import HydraConfig

    from stembed.hub import ensure_offline_mode_if_unreachable

    offline = ensure_offline_mode_if_unreachable()  # before transformers/datasets are imported

    from transformers import set_seed

    from stembed.evaluation import build_evaluators
    from stembed.instantiate import instantiate
    from stembed.losses import build_loss, fit_to_loss
    from stembed.model_card import describe_datasets
    from stembed.models import load_model
    from stembed.tracking import Tracker, mask_overrides

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = mask_overrides(list(hydra_cfg.overrides.task))
    args = training_arguments(cfg.trainer, run_dir / "checkpoints")
    tracker = Tracker.from_config(cfg.tracking, cfg.paths.output_root)
    tracker.connect()
    set_seed(cfg.seed)
    loaded = load_model(cfg.model)
    data = instantiate(cfg.data, "data")
    loss = build_loss(cfg.loss, loaded.model)
    min_score = data.stats.get("positive_min_score", 0.5)
    train_dataset = fit_to_loss(data.train, loss, data.label_column, min_score)
    eval_pairs = data.eval_pairs
    eval_dataset = (
        fit_to_loss(eval_pairs, loss, data.label_column, min_score) if eval_pairs is not None else None
    )
    data.stats["train_rows_used"] = len(train_dataset)
    # A test split is evaluated before and after training, never during (no peeking for model selection).
    evaluators = build_evaluators(cfg.evaluator, data)
    if evaluators[0] is None and eval_dataset is None:
        args.eval_strategy = "no"
    describe_datasets(loaded.model, data, cfg.task_name, offline)
    command = "stembed train " + " ".join(shlex.quote(o) for o in overrides)
    return Job(
        run_name=cfg.tracking.get("run_name") or _default_run_name(cfg.task_name, hydra_cfg),
        run_dir=run_dir,
        command=command,
        overrides=overrides,
        args=args,
        tracker=tracker,
        loaded=loaded,
        data=data,
        loss=loss,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        evaluators=evaluators,
    )


def _default_run_name(task_name: str, hydra_cfg: Any) -> str:
    """task-MMDD-HHMMSS, plus the job number in a sweep (MLflow's random names repeat under a fixed seed)."""
    from datetime import datetime

    from hydra.types import RunMode

    name = f"{task_name}-{datetime.now():%m%d-%H%M%S}"
    return f"{name}-{hydra_cfg.job.num}" if hydra_cfg.mode == RunMode.MULTIRUN else name


def training_arguments(trainer_cfg: Any, output_dir: Path) -> Any:
    """SentenceTransformerTrainingArguments from the `trainer` group; unknown keys fail at once."""
    from omegaconf import OmegaConf
    from sentence_transformers import SentenceTransformerTrainingArguments

    values = OmegaConf.to_container(trainer_cfg, resolve=True)
    known = {f.name for f in dataclasses.fields(SentenceTransformerTrainingArguments) if f.init}
    for key, value in values.items():
        if key not in known or key == "output_dir":
            hint = " The output directory is the Hydra run directory." if key == "output_dir" else ""
            raise StembedError(
                f"trainer.{key}={value}: not a SentenceTransformerTrainingArguments field.{hint}"
                f"{did_you_mean(key, known)} Remove it or use a field listed at "
                "https://sbert.net/docs/package_reference/sentence_transformer/training_args.html."
            )
        if key.endswith("batch_size") and (not isinstance(value, int) or value <= 0):
            raise StembedError(
                f"trainer.{key}={value}: must be a positive whole number, e.g. trainer.{key}=16."
            )
    from stembed.distributed import training_arguments as ddp_arguments

    values = ddp_arguments(values)  # under torchrun: CPU processes train together, one GPU per rank
    try:
        return SentenceTransformerTrainingArguments(output_dir=str(output_dir), **values)
    except (ValueError, TypeError) as err:
        raise StembedError(f"trainer: invalid training arguments ({err}). Fix the trainer.* values.") from err


def _trainer(job: Job) -> Any:
    from sentence_transformers import SentenceTransformerTrainer

    return SentenceTransformerTrainer(
        model=job.loaded.model,
        args=job.args,
        train_dataset=job.train_dataset,
        eval_dataset=job.eval_dataset,
        loss=job.loss,
        evaluator=job.evaluators[0],
        callbacks=[job.tracker.trainer_callback()],
    )


def _save_model(model: SentenceTransformer, model_dir: Path) -> Path:
    """Save (writing the card) to a temporary directory, renamed only once complete."""
    partial = model_dir.with_name(model_dir.name + ".partial")
    model.save(str(partial))
    partial.rename(model_dir)
    return model_dir


def _run_params(cfg: DictConfig, data: Any) -> dict[str, str]:
    from omegaconf import OmegaConf

    from stembed.tracking import flatten

    resolved = OmegaConf.to_container(cfg, resolve=True)
    params = flatten(resolved)
    params.update(flatten(data.stats, "data_stats."))
    return params


def _run_tags(
    cfg: DictConfig, command: str, overrides: list[str], model_source: str, data: Any
) -> dict[str, str]:
    import json

    from stembed import __version__

    tags = {
        "stembed.version": __version__,
        "stembed.command": command,
        "stembed.overrides": json.dumps(overrides),
        "stembed.task": str(cfg.task_name),
        "stembed.model_source": model_source,
        "stembed.data_name": data.name,
        "stembed.data_source": data.source,
        "stembed.data_fingerprint": data.fingerprint,
        "mlflow.note.content": f"Reproduce: `{command}`",
    }
    commit = _git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def _git_commit() -> str | None:
    """HEAD of the git repository the command runs in, if any."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _primary_metric(name: str | None, evaluator: Any, baseline: dict[str, float]) -> str | None:
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


def _print_summary(run_id, tracker, baseline, final, primary, model_dir, model_uri, seconds) -> None:  # type: ignore[no-untyped-def]
    lines = [f"\nstembed: run {run_id} FINISHED in {seconds:.0f} s"]
    if primary:
        before = baseline[primary]
        lines.append(f"  {primary}: {before:.4f} -> {final[primary]:.4f} ({final[primary] - before:+.4f})")
    lines += [
        f"  model:  {model_dir}  ({model_uri})",
        f"  card:   {model_dir / 'README.md'}",
        f"  MLflow: experiment '{tracker.experiment_name}' in {tracker.uri}",
        f"  UI:     stembed ui   then open http://127.0.0.1:5000/#/experiments/{tracker.experiment_id}/runs/{run_id}",
    ]
    if tracker.uri.startswith(("http://", "https://")):  # a team server serves its own UI
        lines[-1] = f"  UI:     {tracker.uri.rstrip('/')}/#/experiments/{tracker.experiment_id}/runs/{run_id}"
    if tracker.registered_version:
        name, version = tracker.register_model, tracker.registered_version
        lines.insert(-2, f"  registry: '{name}' version {version}  (models:/{name}/{version})")
    print("\n".join(lines))
