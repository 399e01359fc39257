"""The improved presets (conf/experiment/*_improved.yaml), test splits of label data, and the bench's
paired bootstrap (scripts/benchlib.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import job_runs, run_stembed, store_uri

from stembed.components.label_routing import _macro_f1
from stembed.data.fixtures import write_fixtures

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from benchlib import accuracy, macro_f1, paired_bootstrap, spearman

IMPROVED = [
    "banking77_improved",
    "ifixit_improved",
    "it_tickets_improved",
    "recsys_improved",
    "stsb_improved",
]


@pytest.mark.e2e
def test_improved_presets_train_on_fixtures(tmp_path: Path) -> None:
    """Each improved preset trains (smoke) with its own loss and sampler; BANKING77's test split is scored."""
    data = write_fixtures(tmp_path / "data")
    args = ["-m", f"+experiment={','.join(IMPROVED)}", "datasets=local", "model=tiny", "trainer=smoke"]
    result = run_stembed(["train", *args, "tracking.log_model=false"], tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    runs = {r.data.tags["stembed.task"]: r for r in job_runs(store_uri(tmp_path))}
    assert sorted(runs) == IMPROVED and {r.info.status for r in runs.values()} == {"FINISHED"}
    banking = runs["banking77_improved"].data
    test_texts = pd.read_csv(data / "banking77" / "test.csv")["text"]
    assert int(banking.params["data_stats.test_rows"]) == test_texts.nunique()  # repeats dropped
    assert {"baseline_banking77-test_accuracy_at_1", "final_banking77-test_accuracy_at_1"} <= set(
        banking.metrics
    )
    # ticket -> category name positives only; names repeat in a batch on purpose (plain sampler)
    tickets = runs["it_tickets_improved"].data
    assert tickets.params["data_stats.train_positive_share"] == "1.0"
    assert tickets.params["loss._target_"].endswith("MultipleNegativesRankingLoss")
    assert tickets.tags["stembed.batch_sampler"].startswith("batch_sampler")
    assert runs["recsys_improved"].data.tags["stembed.batch_sampler"].startswith("no_duplicates")
    stsb = runs["stsb_improved"].data.params  # the recipe's loss, twice the pairs a step
    assert stsb["loss._target_"].endswith("CosineSimilarityLoss")
    assert stsb["trainer.per_device_train_batch_size"] == "32"
    assert runs["ifixit_improved"].data.params["trainer.per_device_train_batch_size"] == "64"


@pytest.mark.e2e
def test_test_split_of_a_single_file_is_refused(tmp_path: Path) -> None:
    data = write_fixtures(tmp_path / "data")
    args = [
        "+experiment=banking77_improved",
        "model=tiny",
        "trainer=smoke",
        f"data.source={data}/banking77/train.csv",
    ]
    result = run_stembed(["train", *args], tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "data.test_split=test" in result.stderr and "{split}" in result.stderr
    assert "Traceback" not in result.stderr


def test_paired_bootstrap_pairs_the_examples_and_averages_seeds() -> None:
    """The bench's interval is stembed's paired bootstrap over the seed-averaged metric."""
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 5, 400)
    coin = [np.stack([truth, rng.integers(0, 5, 400)], axis=1) for _ in range(2)]  # two seeds
    mostly = [np.stack([truth, np.where(rng.random(400) < 0.8, truth, 0)], axis=1) for _ in range(2)]
    diff, low, high, p = paired_bootstrap(coin, mostly, accuracy)
    assert diff == pytest.approx(
        np.mean([accuracy(b) - accuracy(a) for a, b in zip(coin, mostly, strict=True)])
    )
    assert 0 < low <= diff <= high and p < 0.001
    assert paired_bootstrap(coin, [c.copy() for c in coin], macro_f1) == (0.0, 0.0, 0.0, 1.0)
    other = [np.stack([truth, rng.integers(0, 5, 400)], axis=1) for _ in range(2)]
    noise = paired_bootstrap(coin, other, macro_f1)
    assert noise[1] < 0 < noise[2] and noise[3] > 0.05
    assert paired_bootstrap(coin, other, macro_f1) == noise  # seeded


def test_statistics_match_the_evaluator_and_scipy() -> None:
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    truth, predicted = rng.integers(0, 6, 400), rng.integers(0, 7, 400)
    rows = np.stack([truth, predicted], axis=1)
    assert macro_f1(rows) == pytest.approx(_macro_f1(truth.tolist(), predicted.tolist(), 7))
    assert accuracy(rows) == pytest.approx(np.mean(truth == predicted))
    gold = rng.normal(size=200)
    assert spearman(np.stack([gold**3, gold], axis=1)) == pytest.approx(1.0)
    tied = np.round(gold + rng.normal(size=200), 1)
    assert spearman(np.stack([tied, gold], axis=1)) == pytest.approx(spearmanr(tied, gold).statistic)
