"""Dataset lineage: the data a run trained and evaluated on, as MLflow dataset inputs.

MLflow shows dataset inputs in the runs table's Dataset column and on the run page, and search_runs
filters by them (`dataset.name`, `dataset.digest`, `dataset.context`). The digest is stembed's data
fingerprint (the `stembed.data_fingerprint` tag), so runs on the same examples share it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource
from mlflow.models import infer_signature

from stembed.data.loading import PairData

TRAINING, EVALUATION, TESTING = "training", "evaluation", "testing"
SCHEMA_SAMPLE = 1000  # rows the column schema is inferred from (MLflow reads every row: a minute per 1M)


def dataset_inputs(
    data: PairData, training: bool = True, redact: Callable[[str], str] = str
) -> list[tuple[Any, str]]:
    """(MLflow dataset, context) for each split a run used: train (only when training), eval, test.

    Names and sources go through `redact`, like every other text a run logs.
    """

    parts = [(TRAINING, "train", data.train)] if training else []
    parts += [(EVALUATION, "eval", data.eval), (TESTING, "test", data.test)]
    source = dataset_source(data, redact)
    inputs = []
    for context, split, rows in parts:
        if rows is None:
            continue
        frame = rows.to_pandas()
        dataset = mlflow.data.from_pandas(
            frame,
            source=source,
            name=redact(f"{data.name} [{split}]"),
            digest=data.fingerprint,
            targets=data.label_column if data.label_column in frame.columns else None,
        )
        # `schema` is a cached_property MLflow fills from every row; the same columns' types from a sample
        dataset.__dict__["schema"] = infer_signature(frame.head(SCHEMA_SAMPLE)).inputs
        inputs.append((dataset, context))
    return inputs


def dataset_source(data: PairData, redact: Callable[[str], str] = str) -> Any:
    """A hub data set, a local file (absolute path), or a code source naming where the rows came from."""

    if data.hub_id:
        return HuggingFaceDatasetSource(path=data.hub_id)
    path = Path(str(data.source)).expanduser()
    if path.exists() and redact(str(path.resolve())) == str(path.resolve()):
        from mlflow.data.dataset_source_registry import resolve_dataset_source

        try:
            return resolve_dataset_source(str(path.resolve()))
        except Exception:  # no registered source type for it: fall back to a description
            pass
    return CodeDatasetSource(tags={"stembed.data_source": redact(str(data.source))})
