"""Per-example tables (stembed.components.per_example) logged as `eval/<prefix><evaluator>.parquet`."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow

from stembed.components.per_example import ARTIFACT_DIR, forget_recorded, tables, write_table
from stembed.tracking.run import Tracker
from stembed.tracking.store import retry_when_locked


def log_per_example(tracker: Tracker, evaluators: list[Any], model: Any, prefix: str = "") -> list[str]:
    """Log each evaluator's per-example table as `eval/<prefix><name>.parquet`; return the artifact paths.

    Call right after `run_evaluators` on the same model (the recorded embeddings are then reused).
    """
    if not tracker.active or tracker.run_id is None:
        return []
    logged = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, table in tables(evaluators, model).items():
            path = Path(tmp) / f"{prefix}{name}.parquet"
            write_table(table, path)
            retry_when_locked(mlflow.log_artifact, str(path), ARTIFACT_DIR)
            logged.append(f"{ARTIFACT_DIR}/{path.name}")
    forget_recorded(evaluators)
    return logged
