"""What a training run records: its name, params, tags, and the summary printed at the end."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from stembed import __version__
from stembed.tracking.redaction import mask_secret
from stembed.tracking.run import Tracker, flatten

RUN_DIR_TAG = "stembed.run_dir"  # where the run's Hydra directory is (resume, diff)


def run_name(cfg: Any, job_num: int | None) -> str:
    """tracking.run_name, else task-MMDD-HHMMSS plus the job number in a sweep (MLflow's names repeat)."""
    if cfg.tracking.get("run_name"):
        return str(cfg.tracking.run_name)
    name = f"{cfg.task_name}-{datetime.now():%m%d-%H%M%S}"
    return f"{name}-{job_num}" if job_num is not None else name


def run_params(resolved_config: dict[str, Any], data_stats: dict[str, Any]) -> dict[str, str]:
    """The flattened, resolved config, plus the data statistics under data_stats.*."""
    return flatten(resolved_config) | flatten(data_stats, "data_stats.")


def run_tags(
    *,
    command: str,
    overrides: list[str],
    task: str,
    model_source: str,
    data: Any,
    run_dir: Path,
    batch_sampler: str,
    warnings: list[str],
    resumed_from: Path | None,
) -> dict[str, str]:
    """Tags that say how to reproduce the run and what it ran on."""

    tags = {
        "stembed.version": __version__,
        "stembed.command": command,
        "stembed.overrides": json.dumps(overrides),
        "stembed.task": task,
        "stembed.model_source": model_source,
        "stembed.data_name": data.name,
        "stembed.data_source": data.source,
        "stembed.data_fingerprint": data.fingerprint,
        RUN_DIR_TAG: str(run_dir.resolve()),
        "stembed.batch_sampler": batch_sampler,
        "mlflow.note.content": f"Reproduce: `{command}`",
    }
    if warnings:
        tags["stembed.warnings"] = " | ".join(warnings)
    if resumed_from:
        tags["stembed.resumed_from"] = str(resumed_from)
    if commit := git_commit():
        tags["mlflow.source.git.commit"] = commit
    return tags


def git_commit() -> str | None:
    """HEAD of the git repository the command runs in, if any."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def print_summary(
    tracker: Tracker,
    *,
    seconds: float,
    baseline: dict[str, float],
    final: dict[str, float],
    primary: str | None,
    speed: dict[str, float],
    model_dir: Path,
    model_uri: str,
) -> None:
    """The block a user reads at the end: the metric before -> after, speed, and where everything is."""
    run_id, experiment_id = tracker.run_id, tracker.experiment_id
    lines = [f"\nstembed: run {run_id} FINISHED in {seconds:.0f} s"]
    if primary:
        before, after = baseline[primary], final[primary]
        lines.append(f"  {primary}: {before:.4f} -> {after:.4f} ({after - before:+.4f})")
    if speed:
        lines.append(
            f"  speed:  {speed['train_tokens_per_second']:.0f} tokens/s, "
            f"{speed['train_padding_efficiency']:.0%} of them real (the rest padding)"
        )
    ui = f"stembed ui   then open http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run_id}"
    if tracker.uri.startswith(("http://", "https://")):  # a team server serves its own UI
        ui = f"{tracker.uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    lines += [
        f"  model:  {model_dir}  ({model_uri})",
        f"  card:   {model_dir / 'README.md'}",
        f"  MLflow: experiment '{tracker.experiment_name}' in {tracker.uri}",
    ]
    if tracker.registered_version:
        name, version = tracker.register_model, tracker.registered_version
        lines.append(f"  registry: '{name}' version {version}  (models:/{name}/{version})")
    lines.append(f"  UI:     {ui}")
    print(mask_secret("summary", tracker.redact("\n".join(lines))))  # and URL passwords
