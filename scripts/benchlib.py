"""Shared by the benchmarks: run `stembed train` and the plain script, build their data, print tables."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stembed.hub import decide_offline

decide_offline()  # before any benchmark imports a hub library: no retries without hub access

SCRIPTS = Path(__file__).resolve().parent
STEMBED = str(Path(sys.executable).with_name("stembed"))
PLAIN = str(SCRIPTS / "plain_st_train.py")
SHARED_DATA = SCRIPTS.parents[1] / "shared" / "data"
STSB = SHARED_DATA / "stsb-multi-mt-en" / "stsb-en-{split}.csv"
IT_TICKETS = SHARED_DATA / "it-service-tickets" / "all_tickets_processed_improved_v3.csv"
# The STS-B files have no header; scores are 0..5.
STSB_DATA = [
    f"data.source='{STSB}'",  # quoted: '{split}' is not a Hydra dict
    "data.eval_split=dev",
    "data.read_options={header:null,names:[sentence1,sentence2,score]}",
    "data.label_scale=5",
]
ENV = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")


def run(command: list[str]) -> tuple[float, str]:
    """(wall seconds, stdout) of a command; exits with its stderr if it fails."""
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, check=False)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    return wall, result.stdout


def stembed_train(overrides: list[str], workdir: Path) -> tuple[float, Any]:
    """(wall seconds, the run's MLflow data: .metrics, .params) of `stembed train OVERRIDES`.

    Evaluation and checkpoints during training are off; the MLflow store lives in workdir.
    """
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{workdir / 'mlflow.db'}"
    args = [
        *overrides,
        "trainer.eval_strategy=no",
        "trainer.save_strategy=no",
        "trainer.logging_steps=25",
        "trainer.disable_tqdm=true",
        f"tracking.uri={store}",
        f"paths.output_root={workdir / 'outputs'}",
    ]
    wall, _ = run([STEMBED, "train", *args])
    client = MlflowClient(tracking_uri=store)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return wall, runs[0].data


def plain_train(train_csv: Path, output: Path, **options: Any) -> tuple[float, dict[str, float]]:
    """(wall seconds, printed metrics) of the plain sentence-transformers script."""
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    wall, stdout = run([sys.executable, PLAIN, f"--train={train_csv}", f"--output={output}", *flags])
    return wall, json.loads(stdout.strip().splitlines()[-1])


def compose_data(overrides: list[str]) -> Any:
    """The PairData that `stembed train OVERRIDES` trains on (same builder, same seed)."""
    from hydra import compose, initialize_config_dir

    from stembed.components.instantiate import instantiate
    from stembed.config import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    return instantiate(cfg.data, "data")


def write_pairs(dataset: Any, path: Path) -> Path:
    """sentence1, sentence2, score csv for the plain script."""
    dataset.select_columns(["sentence1", "sentence2", "score"]).to_csv(str(path), index=False)
    return path


def evaluate(model_dir: Path, overrides: list[str]) -> dict[str, float]:
    """Metrics of a saved model with the evaluator and held-out data that OVERRIDES compose."""
    from stembed.inference.evaluate_model import run_eval

    metrics, _ = run_eval(str(model_dir), overrides, log=False)
    return metrics


def seed_summary(values: list[float]) -> str:
    """One seed's value, or mean ± sd over seeds."""
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def task_arguments(doc: str) -> argparse.ArgumentParser:
    """The quality benches' options: --data, --only, --seeds, --scale."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--only", default="", help="comma-separated tasks")
    parser.add_argument("--seeds", default="42", help="comma-separated training seeds, e.g. 42,43,44")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every step budget")
    return parser


def measure_tasks(tasks: list[Any], only: str, measure: Callable[[Any, Path], dict[str, str]]) -> list[dict]:
    """Measure each selected task in one scratch directory, print its row as it ends, then the table."""
    selected = [t for t in tasks if not only or t.name in only.split(",")]
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in selected:
            results.append(measure(task, Path(tmp)))
            print(" | ".join(results[-1].values()), flush=True)
    print_table(results)
    print(f"\n{(time.perf_counter() - started) / 60:.1f} minutes in all.")
    return results


def print_table(rows: list[dict[str, Any]]) -> None:
    """A markdown table of rows that share their keys."""
    columns = list(rows[0])
    print("\n| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in columns) + " |")


# --- quality on held-out examples: per-example scores and a paired bootstrap ----------------------


@dataclass(frozen=True)
class Metric:
    """A held-out metric as stembed.analysis.bootstrap computes it (one implementation for `stembed
    compare`, `stembed ship` and the benchmarks): its recipe over named columns, and how a model's
    rows (from route() or similarities()) become those columns. Called on rows, it is the value."""

    spec: dict[str, Any]
    columns: Callable[[Any], dict[str, Any]]

    def __call__(self, rows: Any) -> float:
        from stembed.analysis.bootstrap import value

        return value(self.spec, self.columns(rows))

    def per_seed(self, seed: int) -> dict[str, Any]:
        """The recipe over one seed's columns (named `column/seed`)."""
        ((kind, names),) = self.spec.items()
        if isinstance(names, str):
            return {kind: f"{names}/{seed}"}
        return {kind: [f"{name}/{seed}" for name in names]}


def _routed(rows: Any) -> dict[str, Any]:
    gold, predicted = rows[:, 0].astype(int), rows[:, 1].astype(int)
    return {"gold": gold, "predicted": predicted, "correct": (gold == predicted).astype(float)}


def _scored_pairs(rows: Any) -> dict[str, Any]:
    return {"predicted": rows[:, 0].astype(float), "gold": rows[:, 1].astype(float)}


macro_f1 = Metric({"macro_f1": ["gold", "predicted"]}, _routed)  # over classes in truth or prediction
accuracy = Metric({"mean": "correct"}, _routed)
spearman = Metric({"spearman": ["predicted", "gold"]}, _scored_pairs)  # average ranks for ties


def paired_bootstrap(
    a_runs: list[Any], b_runs: list[Any], metric: Metric
) -> tuple[float, float, float, float]:
    """(diff, low, high, p) of B - A for the metric averaged over training seeds.

    a_runs and b_runs hold one rows array per seed, all over the same held-out examples in the same
    order; each resample draws the examples once for every seed (stembed's paired bootstrap, 10,000
    resamples, seeded), so the interval is that of the seed-averaged metric.
    """
    import numpy as np

    from stembed.analysis.bootstrap import interval, resampled_deltas, value

    def seeded(runs: list[Any]) -> dict[str, Any]:
        return {
            f"{name}/{i}": column
            for i, rows in enumerate(runs)
            for name, column in metric.columns(rows).items()
        }

    a, b = seeded(a_runs), seeded(b_runs)
    specs = {str(i): metric.per_seed(i) for i in range(len(a_runs))}
    deltas = resampled_deltas(a, b, specs)
    diff = float(np.mean([value(spec, b) - value(spec, a) for spec in specs.values()]))
    return (diff, *interval(np.mean(list(deltas.values()), axis=0)))


def route(model: Any, texts: list[str], labels: list[str], label_names: dict[str, str] | None) -> Any:
    """(truth, prediction) class indices of routing each text to the nearest label name."""
    import numpy as np

    from stembed.components.label_routing import label_text

    classes = sorted(set(labels) | set(label_names or {}))
    encode = {"batch_size": 64, "normalize_embeddings": True, "convert_to_numpy": True}
    scores = (
        model.encode(texts, **encode)
        @ model.encode([label_text(c, label_names) for c in classes], **encode).T
    )
    truth = np.array([classes.index(label) for label in labels])
    return np.stack([truth, scores.argmax(axis=1)], axis=1)


def similarities(model: Any, first: list[str], second: list[str], gold: list[float]) -> Any:
    """(cosine similarity, gold score) rows of sentence pairs."""
    import numpy as np

    encode = {"batch_size": 64, "normalize_embeddings": True, "convert_to_numpy": True}
    predicted = (model.encode(first, **encode) * model.encode(second, **encode)).sum(axis=1)
    return np.stack([predicted, np.asarray(gold, dtype=float)], axis=1)


def load_model_dir(path: str | Path) -> Any:
    """A saved model (or the packaged all-MiniLM-L6-v2 for 'base'), offline."""
    from sentence_transformers import SentenceTransformer

    if str(path) == "base":
        from stembed.components.model import PACKAGED_MODELS

        path = PACKAGED_MODELS["sentence-transformers/all-MiniLM-L6-v2"][1]()
    return SentenceTransformer(str(path), device="cpu")


def run_model_dir(run_data: Any) -> Path:
    """The saved model of a `stembed train` run (its run directory's model/)."""
    return Path(run_data.tags["stembed.run_dir"]) / "model"
