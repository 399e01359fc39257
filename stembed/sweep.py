"""A Hydra callback that makes a sweep one MLflow parent run with its jobs as child runs.

The parent (and the experiment) are created once, before any job starts, so parallel jobs never race
to create them. Jobs find the parent through $STEMBED_PARENT_RUN_ID and tag `mlflow.parentRunId`, which
the MLflow UI uses to group them. When the sweep ends the parent records how many jobs finished or
failed and the best job's id and metric.
"""

from __future__ import annotations

import atexit
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

PARENT_ENV = "STEMBED_PARENT_RUN_ID"


class MlflowSweepCallback(Callback):
    """Open the sweep's parent run on multirun start; summarise and close it at the end."""

    def __init__(self) -> None:
        self.parent_id: str | None = None
        self.uri: str | None = None

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        from mlflow.tracking import MlflowClient

        from stembed.tracking import Tracker, mask_overrides

        tracker = Tracker.from_config(config.tracking, config.paths.output_root)
        experiment_id = tracker.connect()
        client = MlflowClient(tracking_uri=tracker.uri)
        overrides = mask_overrides(list(config.hydra.overrides.task))
        run = client.create_run(
            experiment_id,
            run_name=f"sweep-{config.task_name}",
            tags={"stembed.sweep": "parent", "stembed.command": "stembed train -m " + " ".join(overrides)},
        )
        self.parent_id, self.uri = run.info.run_id, tracker.uri
        client.log_param(self.parent_id, "sweep_overrides", " ".join(overrides))
        os.environ[PARENT_ENV] = self.parent_id
        atexit.register(self._close_if_open)  # a job that stops the sweep must not leave the parent RUNNING

    def _close_if_open(self) -> None:
        if self.parent_id is not None:
            from mlflow.tracking import MlflowClient

            MlflowClient(tracking_uri=self.uri).set_terminated(self.parent_id, "FAILED")
            self.parent_id = None

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        if self.parent_id is None:
            return
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.uri)
        parent = client.get_run(self.parent_id)
        children = client.search_runs(
            [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{self.parent_id}'"
        )
        finished = [c for c in children if c.info.status == "FINISHED"]
        client.log_metric(self.parent_id, "sweep_jobs", len(children))
        client.log_metric(self.parent_id, "sweep_jobs_finished", len(finished))
        client.log_metric(self.parent_id, "sweep_jobs_failed", len(children) - len(finished))
        best = _best(finished)
        if best is not None:
            name = best.data.tags["stembed.primary_metric"]
            client.set_tag(self.parent_id, "stembed.best_run_id", best.info.run_id)
            client.set_tag(self.parent_id, "stembed.primary_metric", name)
            client.log_metric(self.parent_id, name, best.data.metrics[name])
        client.set_terminated(self.parent_id, "FINISHED" if finished else "FAILED")
        os.environ.pop(PARENT_ENV, None)
        parent_id, self.parent_id = self.parent_id, None
        print(
            f"stembed: sweep {parent_id}: {len(finished)} of {len(children)} jobs finished"
            + (f"; best {best.info.run_id}" if best is not None else "")
            + f"\n  stembed compare --sweep {parent_id}  (in {Path.cwd()})"
        )


def _best(runs: list[Any]) -> Any:
    scored = [
        r for r in runs if r.data.metrics.get(r.data.tags.get("stembed.primary_metric", "")) is not None
    ]
    return max(scored, key=lambda r: r.data.metrics[r.data.tags["stembed.primary_metric"]], default=None)
