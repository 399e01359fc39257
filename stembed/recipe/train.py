"""The training recipe: config, model, data, loss/evaluator, trainer, evaluate, save, card, MLflow.

`stembed train ARGS` calls `run_hydra(ARGS)`, so Hydra sees the arguments untouched (-m, --cfg,
--help, +experiment=..., hydra/launcher=...). Heavy libraries are imported inside functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from stembed.errors import EXIT_INTERRUPTED, EXIT_USAGE, StembedError, debug_requested, did_you_mean

if TYPE_CHECKING:
    from datasets import Dataset
    from omegaconf import DictConfig
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.evaluation import BaseEvaluator
    from torch import nn

    from stembed.data.loading import PairData
    from stembed.data.sanity import Finding
    from stembed.recipe.model import LoadedModel
    from stembed.scale.resume import GracefulStop
    from stembed.tracking.run import Tracker

AUTO = "auto"  # trainer.batch_sampler=auto: no_duplicates for in-batch-negative losses, else batch_sampler


def run_hydra(args: list[str]) -> None:
    """Run the Hydra app `stembed train` with these command-line arguments.

    `+resume=RUN_ID` first expands to that run's own overrides and run directory (stembed.scale.resume).
    """
    import hydra

    from stembed.config import conf_dir
    from stembed.recipe import hydra_errors
    from stembed.scale.distributed import hydra_args
    from stembed.scale.resume import resume_arguments, resume_id

    if (run_id := resume_id(args)) is not None:
        try:
            args = resume_arguments(run_id, args)
        except StembedError as err:
            _exit_with(err)
    hydra_errors.install(args)
    sys.argv = ["stembed-train", *hydra_args(args)]  # under torchrun: one run directory for all ranks
    hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="train")(job)()


def job(cfg: DictConfig) -> float | None:
    """One Hydra job: train, turning input errors into one paragraph and exit code 2."""
    from stembed.recipe import hydra_errors
    from stembed.scale.resume import GracefulStop
    from stembed.scale.sweep import run_job

    hydra_errors.job_started = True
    stop = GracefulStop().install()  # Ctrl-C and a cluster's pre-emption: checkpoint, run KILLED
    try:
        # In a sweep, a failing job is recorded FAILED and the sweep goes on.
        return run_job(functools.partial(train, stop=stop), cfg)
    except KeyboardInterrupt:
        print("\nstembed: interrupted; the MLflow run (if one was open) ended KILLED.", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except StembedError as err:
        _exit_with(err)


def _exit_with(err: StembedError) -> NoReturn:
    if debug_requested():
        raise err
    print(f"\nstembed: error: {err}\n", file=sys.stderr)
    sys.exit(EXIT_USAGE)


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
    findings: list[Finding]  # sanity-check warnings
    sampler: str  # the batch sampler, e.g. "no_duplicates, group_by_length"
    resume_from: Path | None = None  # the checkpoint a resumed run continues from


def train(cfg: DictConfig, stop: GracefulStop | None = None) -> float | None:
    """Train one model as configured; return the optimized metric (for sweepers)."""
    started = time.perf_counter()
    job = prepare(cfg)
    from omegaconf import OmegaConf

    from stembed.recipe.card import add_stembed_section
    from stembed.recipe.evaluation import check_not_diverged, run_evaluators
    from stembed.scale import distributed, sweep
    from stembed.speed.throughput import count_tokens, throughput_metrics

    model, tracker, data = job.loaded.model, job.tracker, job.data
    tags = _run_tags(cfg, job)
    tags |= sweep.job_tags() | distributed.run_tags(job.args)  # parent run of a sweep; DDP world size
    resume = str(cfg.resume) if job.resume_from else None
    with tracker.run(job.run_name, _run_params(cfg, data), tags, resume_id=resume) as run_id:
        baseline = run_evaluators(job.evaluators, model)  # of the base model, also when resuming
        if not resume:
            tracker.log_metrics(baseline, step=0, prefix="baseline_")
            tracker.log_metrics({f"sanity_{f.name}": f.count for f in job.findings}, step=0)
            tracker.log_datasets(data)  # MLflow dataset inputs: training / evaluation / testing
        primary = _primary_metric(cfg.get("optimized_metric"), job.evaluators[0], baseline)
        if primary:
            tracker.set_primary_metric("final_" + primary)
        tokens = count_tokens(model)
        trainer = _trainer(job, stop)
        runtime = _train_resumably(trainer, job, stop)
        speed = throughput_metrics(tokens, model, runtime)
        tracker.log_metrics(speed, step=trainer.state.global_step)
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
    _print_summary(run_id, tracker, baseline, final, primary, model_dir, model_uri, elapsed, speed)
    return float(final[primary]) if primary else None


def _train_resumably(trainer: Any, job: Job, stop: GracefulStop | None) -> float:
    """trainer.train() -> its runtime in seconds; on a stop or a crash, record the newest checkpoint."""
    from stembed.scale.resume import CHECKPOINT_TAG, latest_checkpoint

    try:
        output = trainer.train(resume_from_checkpoint=str(job.resume_from) if job.resume_from else None)
    except BaseException:
        if checkpoint := latest_checkpoint(Path(job.args.output_dir)):
            with contextlib.suppress(Exception):  # never hide the original error
                job.tracker.set_tags({CHECKPOINT_TAG: str(checkpoint)})
        raise
    if stop is not None and stop.requested:
        checkpoint = latest_checkpoint(Path(job.args.output_dir))
        job.tracker.set_tags({CHECKPOINT_TAG: str(checkpoint)})
        print(
            f"\nstembed: stopped at step {trainer.state.global_step}; checkpoint {checkpoint}\n"
            f"  resume with: stembed resume {job.tracker.run_id}",
            file=sys.stderr,
        )
        raise KeyboardInterrupt(f"signal {stop.signal}")
    return float(output.metrics.get("train_runtime", 0.0))


def prepare(cfg: DictConfig) -> Job:
    """Build and check everything from the config; any input error raises here, before a run opens."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from stembed.hub import ensure_offline_mode_if_unreachable
    from stembed.recipe.checks import check_config

    hydra_cfg = HydraConfig.get()
    check_config(cfg, multirun=hydra_cfg.mode == RunMode.MULTIRUN)
    offline = ensure_offline_mode_if_unreachable()  # before transformers/datasets are imported

    from transformers import set_seed

    from stembed.data.sanity import check_training_data, raise_if_strict
    from stembed.recipe.card import describe_datasets
    from stembed.recipe.evaluation import build_evaluators
    from stembed.recipe.instantiate import instantiate
    from stembed.recipe.losses import build_loss, check_loss_inputs, fit_to_loss, uses_in_batch_negatives
    from stembed.recipe.model import load_model
    from stembed.tracking.redaction import mask_overrides, secret_values
    from stembed.tracking.run import Tracker

    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = mask_overrides(list(hydra_cfg.overrides.task))
    args = training_arguments(cfg.trainer, run_dir / "checkpoints")
    resume_from = _resume_checkpoint(cfg, run_dir)
    tracker = Tracker.from_config(cfg.tracking, cfg.paths.output_root)
    tracker.secrets |= secret_values(OmegaConf.to_container(cfg, resolve=True))
    tracker.connect()
    set_seed(cfg.seed)
    loaded = load_model(cfg.model)
    data = instantiate(cfg.data, "data")
    loss = build_loss(cfg.loss, loaded.model)
    in_batch = uses_in_batch_negatives(loss)
    min_score = data.stats.get("positive_min_score", 0.5)
    train_dataset = fit_to_loss(data.train, loss, data.label_column, min_score)
    check_loss_inputs(train_dataset, loss, data.label_column)
    eval_pairs = data.eval_pairs
    eval_dataset = (
        fit_to_loss(eval_pairs, loss, data.label_column, min_score) if eval_pairs is not None else None
    )
    data.stats["train_rows_used"] = len(train_dataset)
    if args.batch_sampler == AUTO:
        args.batch_sampler = "no_duplicates" if in_batch else "batch_sampler"
    deduplicated = args.batch_sampler != "batch_sampler"
    sampler = _length_batching(args, loaded.model, loss)
    findings = check_training_data(
        train_dataset, data.eval, data.label_column, in_batch, deduplicated, loaded.model
    )
    raise_if_strict(findings, bool(cfg.get("strict")))
    for finding in findings:
        print(f"stembed: warning: [{finding.name}] {finding.message}", file=sys.stderr)
    # A test split is evaluated before and after training, never during (no peeking for model selection).
    evaluators = build_evaluators(cfg.evaluator, data)
    if evaluators[0] is None and eval_dataset is None:
        args.eval_strategy = "no"
    describe_datasets(loaded.model, data, cfg.task_name, offline)
    command = "stembed train " + " ".join(shlex.quote(o) for o in overrides if not o.startswith("+resume="))
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
        findings=findings,
        sampler=sampler,
        resume_from=resume_from,
    )


def _length_batching(args: Any, model: SentenceTransformer, loss: nn.Module) -> str:
    """Resolve trainer.train_sampling_strategy once the loss is known; return the sampler's name.

    auto: split_by_length for losses that are a mean of per-row terms (the library's batches,
    computed in length-sorted pieces: the same gradient), else group_by_length. Models that pad
    nothing (StaticEmbedding) keep their batches as they are.
    """
    from stembed.speed.batching import GROUP_BY_LENGTH, length_grouped, pads_batches
    from stembed.speed.length_split import SPLIT_BY_LENGTH, splits_exactly

    name = str(getattr(args.batch_sampler, "value", args.batch_sampler))
    strategy = args.train_sampling_strategy
    if strategy == SPLIT_BY_LENGTH and not splits_exactly(loss):
        raise StembedError(
            f"trainer.train_sampling_strategy={SPLIT_BY_LENGTH}: {type(loss).__name__} is not a mean of "
            "per-row terms (in-batch negatives or batch-wide ranking), so a batch cannot be computed in "
            f"pieces. Use trainer.train_sampling_strategy={GROUP_BY_LENGTH} (or auto) with this loss."
        )
    if strategy == AUTO:
        strategy = SPLIT_BY_LENGTH if splits_exactly(loss) else GROUP_BY_LENGTH
    # Other samplers (group_by_label, a custom class) decide batches themselves and stay as they are.
    regroupable = name in ("batch_sampler", "no_duplicates")
    if not pads_batches(model) or (strategy == GROUP_BY_LENGTH and not regroupable):
        strategy = "random"
    args.train_sampling_strategy = strategy
    if strategy == GROUP_BY_LENGTH:
        args.batch_sampler = length_grouped(no_duplicates=name == "no_duplicates", model=model)
    return f"{name}, {strategy}" if strategy in (GROUP_BY_LENGTH, SPLIT_BY_LENGTH) else name


def _resume_checkpoint(cfg: DictConfig, run_dir: Path) -> Path | None:
    """For +resume=RUN_ID: the newest checkpoint in the run directory (an error when there is none)."""
    from stembed.scale.resume import latest_checkpoint

    if not cfg.get("resume"):
        return None
    checkpoint = latest_checkpoint(run_dir / "checkpoints")
    if checkpoint is None:
        raise StembedError(
            f"resume={cfg.resume}: no checkpoint in {run_dir / 'checkpoints'}; the run stopped before its "
            "first save. Start it again without +resume (or save more often: trainer.save_strategy=steps)."
        )
    return checkpoint


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

    from stembed.recipe.checks import check_trainer_value
    from stembed.speed.throughput import resolve_bf16

    values = resolve_bf16(OmegaConf.to_container(trainer_cfg, resolve=True))  # bf16=auto
    fields = {f.name: f for f in dataclasses.fields(SentenceTransformerTrainingArguments) if f.init}
    for key, value in values.items():
        if key not in fields or key == "output_dir":
            hint = " The output directory is the Hydra run directory." if key == "output_dir" else ""
            raise StembedError(
                f"trainer.{key}={value}: not a SentenceTransformerTrainingArguments field.{hint}"
                f"{did_you_mean(key, fields)} Remove it or use a field listed at "
                "https://sbert.net/docs/package_reference/sentence_transformer/training_args.html."
            )
        check_trainer_value(key, value, fields[key].type)
    from stembed.scale.distributed import training_arguments as ddp_arguments

    values = ddp_arguments(values)  # under torchrun: CPU processes train together, one GPU per rank
    auto_sampler = values.get("batch_sampler") == AUTO
    if auto_sampler:
        del values["batch_sampler"]
    try:
        args = SentenceTransformerTrainingArguments(output_dir=str(output_dir), **values)
    except (ValueError, TypeError) as err:
        raise StembedError(f"trainer: invalid training arguments ({err}). Fix the trainer.* values.") from err
    if auto_sampler:
        args.batch_sampler = AUTO  # decided once the loss is known (prepare)
    return args


def _trainer(job: Job, stop: GracefulStop | None) -> Any:
    from sentence_transformers import SentenceTransformerTrainer

    from stembed.speed.length_split import SPLIT_BY_LENGTH, LengthSplitTrainer

    callbacks = [job.tracker.trainer_callback()]
    if stop is not None:
        callbacks.append(stop.trainer_callback())
    split = job.args.train_sampling_strategy == SPLIT_BY_LENGTH
    return (LengthSplitTrainer if split else SentenceTransformerTrainer)(
        model=job.loaded.model,
        args=job.args,
        train_dataset=job.train_dataset,
        eval_dataset=job.eval_dataset,
        loss=job.loss,
        evaluator=job.evaluators[0],
        callbacks=callbacks,
    )


def _save_model(model: SentenceTransformer, model_dir: Path) -> Path:
    """Save (writing the card) to a temporary directory, renamed only once complete."""
    partial = model_dir.with_name(model_dir.name + ".partial")
    model.save(str(partial))
    partial.rename(model_dir)
    return model_dir


def _run_params(cfg: DictConfig, data: Any) -> dict[str, str]:
    from omegaconf import OmegaConf

    from stembed.tracking.run import flatten

    resolved = OmegaConf.to_container(cfg, resolve=True)
    params = flatten(resolved)
    params.update(flatten(data.stats, "data_stats."))
    return params


def _run_tags(cfg: DictConfig, job: Job) -> dict[str, str]:
    import json

    from stembed import __version__
    from stembed.scale.resume import RUN_DIR_TAG

    data = job.data
    tags = {
        "stembed.version": __version__,
        "stembed.command": job.command,
        "stembed.overrides": json.dumps(job.overrides),
        "stembed.task": str(cfg.task_name),
        "stembed.model_source": job.loaded.source,
        "stembed.data_name": data.name,
        "stembed.data_source": data.source,
        "stembed.data_fingerprint": data.fingerprint,
        RUN_DIR_TAG: str(job.run_dir.resolve()),
        "stembed.batch_sampler": job.sampler,
        "mlflow.note.content": f"Reproduce: `{job.command}`",
    }
    if job.findings:
        tags["stembed.warnings"] = " | ".join(f"[{f.name}] {f.message}" for f in job.findings)
    if job.resume_from:
        tags["stembed.resumed_from"] = str(job.resume_from)
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


def _print_summary(run_id, tracker, baseline, final, primary, model_dir, model_uri, seconds, speed) -> None:  # type: ignore[no-untyped-def]
    lines = [f"\nstembed: run {run_id} FINISHED in {seconds:.0f} s"]
    if primary:
        before = baseline[primary]
        lines.append(f"  {primary}: {before:.4f} -> {final[primary]:.4f} ({final[primary] - before:+.4f})")
    if speed:
        lines.append(
            f"  speed:  {speed['train_tokens_per_second']:.0f} tokens/s, "
            f"{speed['train_padding_efficiency']:.0%} of them real (the rest padding)"
        )
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
