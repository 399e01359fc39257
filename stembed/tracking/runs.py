"""Reading runs back from MLflow: `stembed runs`, `stembed compare`, `stembed card`."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stembed.errors import StembedError
from stembed.tracking.redaction import mask_secret
from stembed.tracking.store import check_server_reachable, check_sqlite_store, resolve_tracking_uri

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

PRIMARY_TAG = "stembed.primary_metric"
FORMATS = ("table", "markdown", "csv", "json")
# mlflow is imported inside functions: the CLI imports this module for `stembed --help` (kept fast).


def client(tracking_uri: str | None, output_root: Path = Path("outputs")) -> MlflowClient:
    """A client for --tracking-uri, else $MLFLOW_TRACKING_URI, else <output_root>/mlflow.db here."""
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(tracking_uri, output_root)
    check_server_reachable(uri)  # an absent server fails at once (MLflow's client retries for minutes)
    check_sqlite_store(uri, read_only=True)  # never create or migrate a store just to read it
    return MlflowClient(tracking_uri=uri)


def get_run(
    mlflow_client: MlflowClient, run_id: str, field: str = "run id", elsewhere: str = "--tracking-uri"
) -> Run:
    """The run, or the one "no such run" error of every command, naming the id and the store.

    field: how the command names the id (`run id`, `resume=`); elsewhere: how to point at another store.
    """
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_run(run_id)
    except MlflowException:
        named = f"{field}{run_id}" if field.endswith("=") else f"{field} {run_id}"
        store = mask_secret("uri", str(mlflow_client.tracking_uri))
        raise StembedError(
            f"{named}: no such run in {store}. `stembed runs` lists the runs; pass {elsewhere} if it was "
            "logged elsewhere."
        ) from None


def search(
    mlflow_client: MlflowClient, experiment: str | None, limit: int, filter_string: str = ""
) -> list[Run]:
    """Newest runs first, in one experiment or all."""
    if experiment:
        found = mlflow_client.get_experiment_by_name(experiment)
        if found is None:
            names = [e.name for e in mlflow_client.search_experiments()]
            raise StembedError(f"--experiment {experiment}: no such experiment. Experiments: {names}.")
        ids = [found.experiment_id]
    else:
        ids = [e.experiment_id for e in mlflow_client.search_experiments()]
    return mlflow_client.search_runs(
        ids, filter_string=filter_string, max_results=limit, order_by=["attributes.start_time DESC"]
    )


def key_metric(run: Run) -> tuple[str, float | None]:
    """(name, value) of the run's optimized metric, from the stembed.primary_metric tag."""
    name = run.data.tags.get(PRIMARY_TAG, "")
    return name, run.data.metrics.get(name)


def runs_rows(runs: list[Run], experiment_names: dict[str, str]) -> list[dict[str, Any]]:
    """One summary row per run for `stembed runs`."""
    rows = []
    for run in runs:
        name, value = key_metric(run)
        end = run.info.end_time or run.info.start_time
        rows.append(
            {
                "run_id": run.info.run_id,
                "experiment": experiment_names.get(run.info.experiment_id, run.info.experiment_id),
                "name": run.info.run_name,
                "status": run.info.status,
                "duration_s": round((end - run.info.start_time) / 1000),
                "key_metric": f"{name}={value:.4f}" if value is not None else "",
                "started": datetime.fromtimestamp(run.info.start_time / 1000).strftime("%Y-%m-%d %H:%M:%S"),
            }
        )
    return rows


def compare_rows(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per run: the params that differ between the runs, then the final metrics, best first."""
    keys = sorted({key for run in runs for key in run.data.params})
    differing = [key for key in keys if len({run.data.params.get(key) for run in runs}) > 1]
    metric_names = sorted(
        {m for run in runs for m in run.data.metrics if m.startswith(("final_", "baseline_"))}
    )
    primary = next((name for name in (key_metric(run)[0] for run in runs) if name), "")
    rows = []
    for run in runs:
        row: dict[str, Any] = {"run_id": run.info.run_id, "status": run.info.status}
        row.update({key: run.data.params.get(key, "") for key in differing})
        row.update({name: _round(run.data.metrics.get(name)) for name in metric_names})
        rows.append(row)
    if primary:
        rows.sort(key=lambda row: (row.get(primary) is None, -(row.get(primary) or 0.0)))
    return rows


def _round(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


def render(rows: list[dict[str, Any]], fmt: str) -> str:
    """rows as an aligned table, markdown, csv or json."""
    if fmt not in FORMATS:
        raise StembedError(f"--format {fmt}: unknown format. Use one of {', '.join(FORMATS)}.")
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if not rows:
        return "(no runs)"
    columns = list(rows[0])
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows(cells)
        return out.getvalue().rstrip("\n")
    if fmt == "markdown":
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def card_text(mlflow_client: MlflowClient, run_id: str) -> str:
    """The model card (README.md artifact) of a run."""
    import mlflow

    get_run(mlflow_client, run_id)
    try:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="README.md", tracking_uri=mlflow_client.tracking_uri
        )
    except Exception as err:  # MlflowException or OSError, depending on the artifact store
        raise StembedError(
            f"run id {run_id}: it has no README.md artifact (the model card is logged when a run finishes)."
        ) from err
    return Path(path).read_text(encoding="utf-8")
