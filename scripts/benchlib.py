"""Shared by the benchmarks: run `stembed train` and the plain script, build their data, print tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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
