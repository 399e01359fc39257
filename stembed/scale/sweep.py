"""Sweeps in MLflow: one parent run per sweep, every job a child run, and jobs that fail without
stopping the sweep.

The parent (and the experiment) are created once by a Hydra callback, before any job starts, so
parallel jobs never race to create them. Jobs find the parent through $STEMBED_PARENT_RUN_ID (or, on
a cluster that does not pass the environment on, a file in the sweep directory) and tag
`mlflow.parentRunId`, which the MLflow UI uses to group them. A job that raises in a sweep is recorded
FAILED and returns None, so Hydra's launchers and sweepers (grid, Optuna) go on with the next one.
When the sweep ends the parent records how many jobs finished or failed and the best job's id and
metric.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from stembed.errors import EXIT_USAGE, StembedError
from stembed.internals import optuna_search_space
from stembed.scale.distributed import is_main_process
from stembed.tracking.redaction import mask_overrides, redact, secret_values
from stembed.tracking.registry import ALIAS_TAG, register_run_model
from stembed.tracking.run import Tracker
from stembed.tracking.store import resolve_tracking_uri, retry_when_locked

PARENT_ENV = "STEMBED_PARENT_RUN_ID"
PARENT_FILE = ".stembed_parent_run_id"
JOB_TAG = "stembed.sweep_job"
MAX_JOBS = 50_000  # MLflow's largest page of search_runs
log = logging.getLogger(__name__)


class MlflowSweepCallback(Callback):
    """Open the sweep's parent run on multirun start; summarise and close it at the end."""

    def __init__(self) -> None:
        self.parent_id: str | None = None
        self.uri: str | None = None
        self.maximize = True
        self.register_model: str | None = None
        self.alias: str | None = None

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        if not is_main_process():
            return
        try:
            check_search_space(config)
            tracker = Tracker.from_config(config.tracking, config.paths.output_root)
            experiment_id = tracker.connect()
        except StembedError as err:  # before any job: one paragraph, as for a single run
            print(f"\nstembed: error: {err}\n", file=sys.stderr)
            sys.exit(EXIT_USAGE)
        client = MlflowClient(tracking_uri=tracker.uri)
        overrides = mask_overrides(list(config.hydra.overrides.task))
        params, self.maximize = _sweep_params(config, overrides)
        tags = {
            "stembed.sweep": "parent",
            "stembed.sweeper": _class_name(config.hydra.sweeper),
            "stembed.command": "stembed train -m " + " ".join(overrides),
        }
        run = retry_when_locked(
            client.create_run, experiment_id, run_name=f"sweep-{config.task_name}", tags=tags
        )
        self.parent_id, self.uri = run.info.run_id, tracker.uri
        self.register_model, self.alias = tracker.register_model, tracker.alias
        retry_when_locked(client.log_batch, self.parent_id, params=[Param(k, v) for k, v in params.items()])
        os.environ[PARENT_ENV] = self.parent_id
        sweep_dir = Path(str(config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / PARENT_FILE).write_text(self.parent_id)
        atexit.register(self._close_if_open)  # a sweep that stops early must not leave the parent RUNNING

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        self._summarise(stopped=False)

    def _close_if_open(self) -> None:
        self._summarise(stopped=True)

    def _summarise(self, stopped: bool) -> None:
        """Count the jobs, record the best one, end the parent (FAILED if no job finished or it stopped)."""
        if self.parent_id is None:
            return
        from mlflow.entities import Metric, RunTag
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.uri)
        parent_id, self.parent_id = self.parent_id, None
        os.environ.pop(PARENT_ENV, None)
        parent = client.get_run(parent_id)
        children = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
            max_results=MAX_JOBS,
        )
        finished = [c for c in children if c.info.status == "FINISHED"]
        failed = len(children) - len(finished)
        metrics = {
            "sweep_jobs": len(children),
            "sweep_jobs_finished": len(finished),
            "sweep_jobs_failed": failed,
        }
        tags = {"stembed.ended_by": "the sweep stopped before its last job"} if stopped else {}
        best = _best(finished, self.maximize)
        if best is not None:
            name = best.data.tags["stembed.primary_metric"]
            tags |= {"stembed.best_run_id": best.info.run_id, "stembed.primary_metric": name}
            metrics[name] = best.data.metrics[name]
        now = int(time.time() * 1000)
        client.log_batch(
            parent_id,
            metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()],
            tags=[RunTag(key, value) for key, value in tags.items()],
        )
        client.set_terminated(parent_id, "FINISHED" if finished and not stopped else "FAILED")
        if best is not None and not stopped and self.alias:
            self._alias_best(client, parent_id, best.info.run_id)
        print(
            f"stembed: sweep {parent_id}: {len(finished)} of {len(children)} jobs finished"
            + (f", {failed} failed" if failed else "")
            + (f"; best {best.info.run_id}" if best is not None else "")
            + f"\n  stembed compare --sweep {parent_id}  (in {Path.cwd()})"
        )

    def _alias_best(self, client: Any, parent_id: str, best_run_id: str) -> None:
        """Point models:/NAME@ALIAS at the best job's model (registering it if it is not yet)."""

        name, alias = str(self.register_model), str(self.alias)
        try:
            version = register_run_model(str(self.uri), name, best_run_id, alias)
        except Exception as err:  # the sweep's runs are done; say what failed, do not hide them
            print(f"stembed: could not set models:/{name}@{alias} ({err}).", file=sys.stderr)
            return
        client.set_tag(parent_id, ALIAS_TAG, f"{name}@{alias}={version}")
        print(f"  registry: models:/{name}@{alias} -> version {version} (run {best_run_id})")


def run_job(train: Callable[[Any], float | None], cfg: Any) -> float | None:
    """Run one Hydra job. In a sweep, an exception ends only this job: it is recorded FAILED in MLflow
    (traceback as an artifact) and the job returns None, which Optuna records as a failed trial.
    A single run raises as usual. KeyboardInterrupt always stops everything.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.get().mode != RunMode.MULTIRUN:
        return train(cfg)
    num = HydraConfig.get().job.num
    try:
        value = train(cfg)
    except Exception as err:
        # An input error is its one-line message; anything else keeps its traceback in the log.
        trace = None if isinstance(err, StembedError) else err
        log.error("job %s failed; the sweep goes on", num, exc_info=trace)
        print(f"\nstembed: sweep job {num} failed ({err}); the sweep goes on.\n", file=sys.stderr)
        _record_failed_job(cfg, err)
        return None
    if value is not None and math.isnan(value):  # e.g. a correlation over constant labels
        print(
            f"stembed: sweep job {num}: the optimized metric is NaN; returned as no value.", file=sys.stderr
        )
        return None  # Optuna's sweeper crashes on NaN (hydra#2237); None is a failed trial
    return value


def job_tags() -> dict[str, str]:
    """Tags linking a sweep job's run to its parent run (none outside a sweep)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return {}
    parent = parent_run_id(Path(hydra_cfg.sweep.dir))
    tags = {JOB_TAG: str(hydra_cfg.job.num)}
    if parent:
        tags["mlflow.parentRunId"] = parent
    return tags


def parent_run_id(sweep_dir: Path) -> str | None:
    """The sweep's parent run: from the environment, else from the file the callback left in sweep_dir."""
    if parent := os.environ.get(PARENT_ENV):
        return parent
    marker = sweep_dir / PARENT_FILE
    return marker.read_text().strip() if marker.is_file() else None


def _record_failed_job(cfg: Any, err: BaseException) -> None:
    """A FAILED child run for a job that failed before its own run opened (e.g. bad input)."""
    import json

    from hydra.core.hydra_config import HydraConfig
    from mlflow.tracking import MlflowClient
    from omegaconf import OmegaConf

    tags = job_tags()
    parent = tags.get("mlflow.parentRunId")
    if parent is None or not is_main_process():
        return
    try:
        uri = resolve_tracking_uri(cfg.tracking.get("uri"), Path(cfg.paths.output_root))
        client = MlflowClient(tracking_uri=uri)
        experiment_id = client.get_run(parent).info.experiment_id
        query = f"tags.mlflow.parentRunId = '{parent}' and tags.`{JOB_TAG}` = '{tags[JOB_TAG]}'"
        if client.search_runs([experiment_id], filter_string=query):
            return  # the job's own run exists and already ended FAILED with its traceback
        hydra_cfg = HydraConfig.get()
        overrides = mask_overrides(list(hydra_cfg.overrides.task))
        tags["stembed.overrides"] = json.dumps(overrides)
        tags["stembed.command"] = "stembed train " + " ".join(overrides)
        # Unresolved: the job's error may be an interpolation that does not resolve.
        secrets = secret_values(OmegaConf.to_container(cfg, resolve=False))
        tags["stembed.error"] = redact(str(err), secrets)[:5000]
        run = retry_when_locked(
            client.create_run,
            experiment_id,
            run_name=f"{cfg.task_name}-job{hydra_cfg.job.num}-failed",
            tags=tags,
        )
        text = redact("".join(traceback.format_exception(err)), secrets)
        retry_when_locked(client.log_text, run.info.run_id, text, "error/traceback.txt")
        retry_when_locked(client.set_terminated, run.info.run_id, "FAILED")
    except Exception as record_err:  # never hide the job's error behind a logging failure
        print(f"stembed: could not record the failed job in MLflow ({record_err}).", file=sys.stderr)


def check_search_space(config: Any) -> None:
    """An Optuna search range that Optuna rejects (inverted, or <= 0 on a log scale), in
    hydra.sweeper.params or on the command line, fails before the sweep's parent run opens."""
    from omegaconf import OmegaConf

    if "optuna" not in _class_name(config.hydra.sweeper).lower():
        return
    trials = OmegaConf.select(config, "hydra.sweeper.n_trials")
    if trials is not None and (not isinstance(trials, int) or isinstance(trials, bool) or trials < 1):
        raise StembedError(
            f"hydra.sweeper.n_trials={trials}: an Optuna sweep needs 1 or more trials (with none, no job "
            "runs and there is no best model), e.g. hydra.sweeper.n_trials=20."
        )
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    overrides = [(f"hydra.sweeper.params.{k}", f"{k}={v}") for k, v in params.items()]
    overrides += [(o.partition("=")[0], o) for o in config.hydra.overrides.task]
    for name, override in overrides:
        try:
            optuna_search_space([override])
        except (ValueError, AssertionError, NotImplementedError) as err:
            raise StembedError(
                f"{name}={override.partition('=')[2]}: Optuna rejects this search range ({err}). An interval "
                "needs low < high, and tag(log, ...) needs low > 0, e.g. tag(log, interval(1e-5, 1e-3))."
            ) from err
        except Exception:  # not a sweep Optuna parses (e.g. a plain value): Hydra reports its own errors
            continue


def _sweep_params(config: Any, overrides: list[str]) -> tuple[dict[str, str], bool]:
    """The parent run's params (overrides, launcher, an Optuna search space) and whether to maximise."""
    from omegaconf import OmegaConf

    direction = OmegaConf.select(config, "hydra.sweeper.direction", default="maximize")
    first = direction[0] if OmegaConf.is_list(direction) else direction  # multi-objective: the first
    params = {
        "sweep_overrides": " ".join(overrides),
        "sweep_launcher": _class_name(config.hydra.launcher),
        "sweep_direction": str(getattr(first, "name", first)),
    }
    for key, value in (OmegaConf.select(config, "hydra.sweeper.params") or {}).items():
        params[f"sweep_params.{key}"] = str(value)
    for key in ("n_trials", "sampler.seed"):
        if (value := OmegaConf.select(config, f"hydra.sweeper.{key}")) is not None:
            params[f"sweep_{key.replace('.', '_')}"] = str(value)
    return params, str(getattr(first, "name", first)) != "minimize"  # a string or Optuna's Direction enum


def _class_name(node: Any) -> str:
    return str(node.get("_target_", "")).rsplit(".", 1)[-1]


def _best(runs: list[Any], maximize: bool) -> Any:
    scored = [
        r for r in runs if r.data.metrics.get(r.data.tags.get("stembed.primary_metric", "")) is not None
    ]
    pick = max if maximize else min
    return pick(scored, key=lambda r: r.data.metrics[r.data.tags["stembed.primary_metric"]], default=None)
