"""`stembed compare --significance` (paired bootstrap of two runs), `--by-config` (mean ± sd over seeds)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from stembed.analysis.bootstrap import RESAMPLES, SEED, Comparison, paired_bootstrap
from stembed.components.per_example import ARTIFACT_DIR, EVALUATOR, EXAMPLES, METRICS, read_table
from stembed.errors import StembedError
from stembed.tracking import runs as runs_module
from stembed.tracking.run import metric_name

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

NO_EVIDENCE = "no evidence of a difference"
SEED_KEYS = ("seed", "data_seed")  # a param named so (any prefix) only changes the random draws
FINGERPRINT_TAG = "stembed.data_fingerprint"


def load_tables(client: MlflowClient, run_id: str, prefix: str) -> dict[str, pd.DataFrame]:
    """{evaluator name: per-example table} logged by a run as eval/<prefix><name>.parquet."""

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in a report
    names = [
        Path(f.path).name
        for f in client.list_artifacts(run_id, ARTIFACT_DIR)
        if f.path.endswith(".parquet") and Path(f.path).name.startswith(prefix)
    ]
    if prefix == "":  # a `stembed eval` run: tables without a baseline_/final_ prefix
        names = [n for n in names if not n.startswith(("baseline_", "final_"))]
    tables = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            local = client.download_artifacts(run_id, f"{ARTIFACT_DIR}/{name}", tmp)
            table = read_table(Path(local))
            tables[table.attrs.get(EVALUATOR, name.removeprefix(prefix).removesuffix(".parquet"))] = table
    return tables


def final_tables(client: MlflowClient, run: Run) -> dict[str, pd.DataFrame]:
    """The tables of the model a run produced: a training run's final_*, else an eval run's own."""
    run_id = run.info.run_id
    tables = load_tables(client, run_id, "final_") or load_tables(client, run_id, "")
    if not tables:
        raise StembedError(
            f"run {run_id}: it has no per-example scores (eval/*.parquet artifacts), so no paired test is "
            "possible. Runs from stembed versions before per-example scores lack them: evaluate its "
            f"model again with `stembed eval runs:/{run_id}/model +experiment=...` and compare that run."
        )
    return tables


def paired(
    a: pd.DataFrame, b: pd.DataFrame, evaluator: str, run_a: Run, run_b: Run
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The two tables' columns aligned by example id; refuses tables of different examples."""

    if a.attrs.get(EXAMPLES) != b.attrs.get(EXAMPLES) or set(a.example_id) != set(b.example_id):
        shared = len(set(a.example_id) & set(b.example_id))
        fingerprints = [run.data.tags.get(FINGERPRINT_TAG, "?") for run in (run_a, run_b)]
        raise StembedError(
            f"compare --significance: runs {run_a.info.run_id} and {run_b.info.run_id} were evaluated on "
            f"different examples (evaluator '{evaluator}': {len(a)} and {len(b)} examples, {shared} shared; "
            f"data fingerprints {fingerprints[0]} and {fingerprints[1]}). A paired test needs the same "
            "examples (and candidates): evaluate both models on one data config with `stembed eval MODEL "
            "+experiment=...` and compare those eval runs."
        )
    b = b.set_index("example_id").loc[a.example_id].reset_index()
    return columns(a, like=b), columns(b, like=a)  # label ids from both tables' labels


def columns(table: pd.DataFrame, like: pd.DataFrame | None = None) -> dict[str, np.ndarray]:
    """Numeric columns as float arrays; label columns as integer ids shared with `like`."""

    found = {}
    labels = sorted(set(table.get("gold_label", [])) | set(table.get("predicted_label", [])))
    if like is not None:
        labels = sorted(set(labels) | set(like.get("gold_label", [])) | set(like.get("predicted_label", [])))
    index = {label: i for i, label in enumerate(labels)}
    for name in table.columns:
        if name in ("gold_label", "predicted_label"):
            found[name] = np.array([index[v] for v in table[name]], dtype=int)
        elif is_numeric_dtype(table[name]) and not is_bool_dtype(table[name]):
            found[name] = table[name].to_numpy(dtype=float)
    return found


def significance(
    client: MlflowClient, run_a: Run, run_b: Run, resamples: int = RESAMPLES, seed: int = SEED
) -> list[tuple[str, Comparison]]:
    """[(evaluator, comparison)] for every metric both runs' final per-example tables share."""
    tables_a, tables_b = final_tables(client, run_a), final_tables(client, run_b)
    shared = [name for name in tables_a if name in tables_b]
    if not shared:
        raise StembedError(
            f"compare --significance: runs {run_a.info.run_id} and {run_b.info.run_id} share no evaluator "
            f"({sorted(tables_a)} vs {sorted(tables_b)}), so they were evaluated on different examples. "
            "Evaluate both models with the same evaluator config (`stembed eval MODEL +experiment=...`)."
        )
    results = []
    for name in shared:
        a, b = paired(tables_a[name], tables_b[name], name, run_a, run_b)
        metrics = _shared_metrics(tables_a[name], tables_b[name])
        results += [(name, c) for c in paired_bootstrap(a, b, metrics, resamples, seed)]
    return results


def _shared_metrics(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, Any]:

    mine, theirs = a.attrs.get(METRICS, {}), b.attrs.get(METRICS, {})
    return {name: spec for name, spec in mine.items() if theirs.get(name) == spec}


def comparison_rows(results: list[tuple[str, Comparison]], primary: str, a: str, b: str) -> list[dict]:
    """Rows for render(): the primary metric first; `verdict` says which model the interval favours."""

    def is_primary(metric: str) -> bool:
        return bool(primary) and metric_name(metric) == primary.removeprefix("final_")

    rows = []
    for _, c in sorted(results, key=lambda item: not is_primary(item[1].metric)):
        verdict = NO_EVIDENCE if not c.differs else (f"{b} better" if c.delta > 0 else f"{a} better")
        rows.append(
            {
                "metric": c.metric,
                "primary": "*" if is_primary(c.metric) else "",
                "A": round(c.a, 4),
                "B": round(c.b, 4),
                "B-A": f"{c.delta:+.4f}",
                "95% interval": f"[{c.low:+.4f}, {c.high:+.4f}]",
                "p": round(c.p_value, 4),
                "examples": c.examples,
                "verdict": verdict,
            }
        )
    return rows


def is_seed_key(key: str) -> bool:
    """trainer.seed, seed, data.seed, trainer.data_seed, ...: keys that only change the random draws."""
    return key.rsplit(".", 1)[-1] in SEED_KEYS


def by_config(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per configuration (runs equal but for seeds): its differing keys, runs, seeds, mean ± sd.

    Data statistics (data_stats.*) follow from the data config and its seed, so they are not compared.
    """
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        key = tuple(
            sorted(
                (k, v)
                for k, v in run.data.params.items()
                if not is_seed_key(k) and not k.startswith("data_stats.")
            )
        )
        groups.setdefault(key, []).append(run)
    seed_values = [{k: v for k, v in run.data.params.items() if is_seed_key(k)} for run in runs]
    varying_seeds = sorted(
        {k for found in seed_values for k in found if len({f.get(k) for f in seed_values}) > 1}
    )
    all_keys = sorted({k for key in groups for k, _ in key})
    values = [dict(key) for key in groups]
    differing = [k for k in all_keys if len({v.get(k) for v in values}) > 1]
    primary = next((t for r in runs if (t := r.data.tags.get("stembed.primary_metric"))), "")
    metrics = sorted({m for run in runs for m in run.data.metrics if m.startswith("final_")})
    metrics.sort(key=lambda m: m != primary)
    rows = []
    for key, members in groups.items():
        params = dict(key)
        row: dict[str, Any] = {"config": len(rows) + 1}
        row.update({k: params.get(k, "") for k in differing})
        row["runs"] = len(members)
        seeds = sorted({_seeds(run, varying_seeds) for run in members})
        row["seeds"] = "; ".join(seeds)
        for metric in metrics:
            row[metric] = _mean_sd([run.data.metrics.get(metric) for run in members])
        primary_values = [run.data.metrics.get(primary, np.nan) for run in members]
        row["_sort"] = np.nanmean(primary_values) if primary else 0.0
        rows.append(row)
    rows.sort(key=lambda row: -row["_sort"] if np.isfinite(row["_sort"]) else np.inf)
    for number, row in enumerate(rows, 1):
        row["config"] = number
        del row["_sort"]
    return rows


def _seeds(run: Run, keys: list[str]) -> str:
    """The run's values of the seed keys that vary between the runs, e.g. trainer.seed=1,seed=42."""
    return ",".join(f"{k}={run.data.params.get(k, '')}" for k in keys)


def _mean_sd(values: list[float | None]) -> str:
    present = np.array([v for v in values if v is not None], dtype=float)
    if len(present) == 0:
        return ""
    if len(present) == 1:
        return f"{present[0]:.4f}"
    return f"{present.mean():.4f} ± {present.std(ddof=1):.4f}"


def significance_report(
    mlflow_client: MlflowClient, runs: list[Run], resamples: int, seed: int, fmt: str
) -> str:
    """`compare --significance RUN_A RUN_B`: the paired table, headed by A, B and the bootstrap used."""
    run_a, run_b = runs
    results = significance(mlflow_client, run_a, run_b, resamples, seed)
    primary = runs_module.key_metric(run_b)[0] or runs_module.key_metric(run_a)[0]
    table = runs_module.render(comparison_rows(results, primary, "A", "B"), fmt)
    if fmt != "table":
        return table
    header = [
        f"A = {run_a.info.run_id} ({run_a.info.run_name})",
        f"B = {run_b.info.run_id} ({run_b.info.run_name})",
        f"paired bootstrap over the examples both were evaluated on: {resamples:,} resamples, seed {seed}; "
        "* = primary metric",
        "",
    ]
    return "\n".join(header) + table
