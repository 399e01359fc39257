"""Shared by the benchmarks: run `stembed train` and the plain script, build their data, print tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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

    from stembed.config import conf_dir
    from stembed.recipe.instantiate import instantiate

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    return instantiate(cfg.data, "data")


def write_pairs(dataset: Any, path: Path) -> Path:
    """sentence1, sentence2, score csv for the plain script."""
    dataset.select_columns(["sentence1", "sentence2", "score"]).to_csv(str(path), index=False)
    return path


def evaluate(model_dir: Path, overrides: list[str]) -> dict[str, float]:
    """Metrics of a saved model with the evaluator and held-out data that OVERRIDES compose."""
    from stembed.inference.evaluate import run_eval

    metrics, _ = run_eval(str(model_dir), overrides, log=False)
    return metrics


def print_table(rows: list[dict[str, Any]]) -> None:
    """A markdown table of rows that share their keys."""
    columns = list(rows[0])
    print("\n| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in columns) + " |")


# --- quality on held-out examples: per-example scores and a paired bootstrap ----------------------


def paired_bootstrap(
    a: Any, b: Any, resamples: int = 10_000, seed: int = 0, statistic: Any = None
) -> tuple[float, float, float, float]:
    """(diff, low, high, p) of statistic(b) - statistic(a) over examples resampled together.

    a and b hold one row per held-out example, in the same order (a per-example score, or columns
    such as (truth, prediction) for macro-F1 and (prediction, gold) for spearman); statistic maps
    such rows to one number (default: the mean). The interval is the 2.5..97.5 percentile of the
    resampled differences; p is the two-sided share of them on the far side of 0.
    """
    import numpy as np

    a, b = np.asarray(a), np.asarray(b)
    if len(a) != len(b):
        raise ValueError(f"paired_bootstrap: {len(a)} and {len(b)} examples; they must be the same ones")
    statistic = statistic or np.mean
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    for i in range(resamples):
        rows = rng.integers(0, len(a), len(a))
        diffs[i] = statistic(b[rows]) - statistic(a[rows])
    low, high = np.percentile(diffs, [2.5, 97.5])
    p = min(1.0, 2 * min(np.mean(diffs <= 0), np.mean(diffs >= 0)))
    return float(statistic(b) - statistic(a)), float(low), float(high), float(p)


def macro_f1(rows: Any) -> float:
    """Mean F1 over the classes in truth or prediction; rows are (truth, prediction) class indices."""
    import numpy as np

    truth, predicted = rows[:, 0], rows[:, 1]
    size = int(rows.max()) + 1
    tp = np.bincount(truth[truth == predicted], minlength=size)
    wrong_pred = np.bincount(predicted[truth != predicted], minlength=size)  # false positives
    missed = np.bincount(truth[truth != predicted], minlength=size)  # false negatives
    present = (tp + wrong_pred + missed) > 0
    return float(np.mean(2 * tp[present] / (2 * tp[present] + wrong_pred[present] + missed[present])))


def accuracy(rows: Any) -> float:
    """Share of (truth, prediction) rows predicted right."""
    return float((rows[:, 0] == rows[:, 1]).mean())


def spearman(rows: Any) -> float:
    """Spearman correlation of (prediction, gold) rows (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(rows[:, 0], rows[:, 1]).statistic)


def route(model: Any, texts: list[str], labels: list[str], label_names: dict[str, str] | None) -> Any:
    """(truth, prediction) class indices of routing each text to the nearest label name."""
    import numpy as np

    from stembed.data.pairs import label_text

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
        from stembed.recipe.model import PACKAGED_MODELS

        path = PACKAGED_MODELS["sentence-transformers/all-MiniLM-L6-v2"][1]()
    return SentenceTransformer(str(path), device="cpu")


def run_model_dir(run_data: Any) -> Path:
    """The saved model of a `stembed train` run (its run directory's model/)."""
    return Path(run_data.tags["stembed.run_dir"]) / "model"
