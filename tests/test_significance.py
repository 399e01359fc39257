"""Per-example scores, the paired bootstrap, `compare --significance / --by-config` and `stembed diff`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, run_stembed, store_uri

from stembed.analysis import bootstrap

# --- the bootstrap, on known data -------------------------------------------------------------


def _expand(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return np.repeat(values, counts.astype(int))


def test_resample_counts_are_seeded_resamples() -> None:
    first = bootstrap.resample_counts(50, 20, np.random.default_rng(3))
    again = bootstrap.resample_counts(50, 20, np.random.default_rng(3))
    assert first.shape == (20, 50)
    assert (first.sum(axis=1) == 50).all()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, bootstrap.resample_counts(50, 20, np.random.default_rng(4)))


def test_weighted_statistics_equal_the_statistic_of_the_resample() -> None:
    from scipy.stats import pearsonr, spearmanr

    from stembed.components.label_routing import _macro_f1

    rng = np.random.default_rng(1)
    x = np.round(rng.normal(size=120), 1)  # rounded: many ties, as in gold scores
    y = x + rng.normal(size=120)
    gold = rng.integers(0, 5, 120)
    predicted = np.where(rng.random(120) < 0.6, gold, rng.integers(0, 6, 120))
    for counts in bootstrap.resample_counts(120, 5, rng):
        weights = counts[None]
        xs, ys = _expand(x, counts), _expand(y, counts)
        assert bootstrap.weighted_mean(x, weights)[0] == pytest.approx(xs.mean())
        assert bootstrap.weighted_pearson(x, y, weights)[0] == pytest.approx(pearsonr(xs, ys)[0])
        assert bootstrap.weighted_spearman(x, y, weights)[0] == pytest.approx(spearmanr(xs, ys)[0])
        expected_f1 = _macro_f1(list(_expand(gold, counts)), list(_expand(predicted, counts)), 6)
        assert bootstrap.weighted_macro_f1(gold, predicted, weights)[0] == pytest.approx(expected_f1)


def test_weighted_threshold_metrics_equal_the_binary_evaluator() -> None:
    from sentence_transformers.sentence_transformer.evaluation import BinaryClassificationEvaluator as B
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(2)
    gold = (rng.random(150) < 0.4).astype(float)
    score = np.round(gold * 0.3 + rng.random(150), 2)  # rounded: ties between pairs
    for counts in bootstrap.resample_counts(150, 5, rng):
        weights = counts[None]
        ys, ss = _expand(gold, counts), _expand(score, counts)
        accuracy = B.find_best_acc_and_threshold(ss, ys, True)[0]
        assert bootstrap.weighted_best_accuracy(score, gold, weights)[0] == pytest.approx(accuracy)
        f1 = B.find_best_f1_and_threshold(ss, ys, True)[0]
        assert bootstrap.weighted_best_f1(score, gold, weights)[0] == pytest.approx(f1)
        ap = average_precision_score(ys, ss)
        assert bootstrap.weighted_average_precision(score, gold, weights)[0] == pytest.approx(ap)


def test_paired_bootstrap_of_a_known_accuracy_gain() -> None:
    # 100 questions: A answers 50, B the same 50 and 10 more. B - A = 0.10; the paired differences are
    # 10 ones and 90 zeros, so the interval is about 0.10 ± 1.96 * sqrt(0.1 * 0.9 / 100) = [0.04, 0.16].
    a = np.r_[np.ones(50), np.zeros(50)]
    b = np.r_[np.ones(60), np.zeros(40)]
    spec = {"accuracy@1": {"mean": "correct"}}
    (result,) = bootstrap.paired_bootstrap({"correct": a}, {"correct": b}, spec, seed=7)
    assert (result.a, result.b, result.examples) == (0.5, 0.6, 100)
    assert result.delta == pytest.approx(0.1)
    assert 0.03 <= result.low <= 0.05 and 0.15 <= result.high <= 0.17
    assert result.differs and result.p_value < 0.01
    (again,) = bootstrap.paired_bootstrap({"correct": a}, {"correct": b}, spec, seed=7)
    assert again == result  # seeded: the same interval every time


def test_paired_bootstrap_finds_no_difference_where_there_is_none() -> None:
    rng = np.random.default_rng(0)
    gold = rng.normal(size=300)
    a = {"score": gold + rng.normal(size=300), "gold": gold}
    same = bootstrap.paired_bootstrap(a, a, {"s": {"spearman": ["score", "gold"]}}, resamples=500)[0]
    assert (same.low, same.high, same.p_value, same.differs) == (0.0, 0.0, 1.0, False)
    # Two models whose errors are independent draws of the same size: no real difference.
    b = {"score": gold + rng.normal(size=300), "gold": gold}
    noise = bootstrap.paired_bootstrap(a, b, {"s": {"spearman": ["score", "gold"]}}, resamples=2000)[0]
    assert noise.low < 0 < noise.high and not noise.differs and noise.p_value > 0.05


# --- per-example tables reproduce the evaluators' own metrics -----------------------------------


def test_per_example_tables_recompute_every_metric_without_encoding_again() -> None:
    from sentence_transformers.sentence_transformer.evaluation import (
        BinaryClassificationEvaluator,
        EmbeddingSimilarityEvaluator,
        InformationRetrievalEvaluator,
    )

    from stembed.analysis.compare import columns
    from stembed.components.evaluators import retrieval_inputs, run_evaluators
    from stembed.components.label_routing import LabelRetrievalEvaluator
    from stembed.components.model import tiny_static_model
    from stembed.components.per_example import METRICS, tables
    from stembed.data.demo import INTENTS, demo_pairs, vocabulary

    model = tiny_static_model(vocabulary())
    pairs = demo_pairs(n_train=16, n_eval=120).eval
    texts = [p.format(p="phone") for intents in INTENTS.values() for ps in intents.values() for p in ps]
    labels = [i for intents in INTENTS.values() for i, ps in intents.items() for _ in ps]
    evaluators = [
        EmbeddingSimilarityEvaluator(pairs["sentence1"], pairs["sentence2"], pairs["score"], name="val"),
        InformationRetrievalEvaluator(
            **retrieval_inputs(pairs, "sentence1", "sentence2", "score", 0.5), name="ir"
        ),
        LabelRetrievalEvaluator(texts, labels, name="route"),
        BinaryClassificationEvaluator(
            pairs["sentence1"], pairs["sentence2"], [int(s == 1.0) for s in pairs["score"]], name="dup"
        ),
    ]
    metrics = run_evaluators(evaluators, model)
    calls = []
    encode = model.encode
    model.encode = lambda *args, **kwargs: calls.append(1) or encode(*args, **kwargs)
    found = tables(evaluators, model)
    assert calls == []  # the embeddings the evaluators computed were reused
    assert set(found) == {"val", "ir", "route", "dup"}
    checked = 0
    for table in found.values():
        ones = np.ones((1, len(table)))
        for name, spec in table.attrs[METRICS].items():
            assert bootstrap.statistic(spec, columns(table), ones)[0] == pytest.approx(metrics[name]), name
            checked += 1
    # pearson, spearman; {accuracy,precision,recall}@{1,3,5,10}, mrr, ndcg, map; routing; accuracy, f1, ap
    assert checked == 2 + 15 + 3 + 3
    assert (found["ir"]["cosine_rank"] >= 1).all() and (found["route"]["rank"] >= 1).all()
    assert found["val"].example_id.is_unique and found["ir"].example_id.is_unique


# --- the real CLI --------------------------------------------------------------------------------


def _train(cwd: Path, *overrides: str) -> str:
    keys = {o.split("=")[0] + "=" for o in overrides}
    base = [arg for arg in TINY if not arg.startswith(tuple(keys))]  # an override replaces TINY's value
    result = run_stembed(["train", *base, *overrides], cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.split("stembed: run ")[1].split()[0]


@pytest.fixture(scope="module")
def seed_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Demo runs: two that differ only in their training seeds, one on other eval examples.

    trainer.data_seed changes with trainer.seed: the batch order follows data_seed (accelerate's
    seedable sampler), so runs differing in trainer.seed alone are identical here. At lr 0.1 the
    tiny model converges far enough in 60 steps that the two seeds' models are close.
    """
    cwd = tmp_path_factory.mktemp("significance")
    same = ["trainer.max_steps=60", "trainer.learning_rate=0.1"]
    runs = {
        "a": _train(cwd, *same, "trainer.seed=1", "trainer.data_seed=1"),
        "b": _train(cwd, *same, "trainer.seed=2", "trainer.data_seed=2"),
        "other_data": _train(cwd, "trainer.max_steps=4", "data.n_eval=100"),
    }
    return cwd, runs


def _artifacts(cwd: Path, run_id: str, path: str = "") -> list[str]:
    from mlflow.tracking import MlflowClient

    return sorted(f.path for f in MlflowClient(store_uri(cwd)).list_artifacts(run_id, path))


@pytest.mark.e2e
def test_training_logs_per_example_scores(seed_runs: tuple[Path, dict[str, str]]) -> None:
    import pandas as pd
    from mlflow.tracking import MlflowClient

    cwd, runs = seed_runs
    assert _artifacts(cwd, runs["a"], "eval") == ["eval/baseline_val.parquet", "eval/final_val.parquet"]
    local = MlflowClient(store_uri(cwd)).download_artifacts(runs["a"], "eval/final_val.parquet", str(cwd))
    table = pd.read_parquet(local)
    assert len(table) == 200 and table.example_id.is_unique
    assert {"sentence1", "sentence2", "gold", "score_cosine"} <= set(table.columns)


@pytest.mark.e2e
def test_compare_significance_of_seed_only_runs(seed_runs: tuple[Path, dict[str, str]]) -> None:
    cwd, runs = seed_runs
    result = run_stembed(["compare", runs["a"], runs["b"], "--significance", "--format", "json"], cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    rows = json.loads(result.stdout)
    primary = rows[0]  # the primary metric is marked and listed first
    assert (primary["metric"], primary["primary"]) == ("val_spearman_cosine", "*")
    low, high = (float(v) for v in primary["95% interval"].strip("[]").split(","))
    assert low <= 0.0 <= high and primary["verdict"] == "no evidence of a difference"
    assert primary["examples"] == 200 and [r["metric"] for r in rows[1:]] == ["val_pearson_cosine"]
    table = run_stembed(["compare", runs["a"], runs["b"], "--significance"], cwd)
    assert "10,000 resamples" in table.stdout and "no evidence of a difference" in table.stdout


@pytest.mark.e2e
def test_compare_significance_refuses_other_examples(seed_runs: tuple[Path, dict[str, str]]) -> None:
    cwd, runs = seed_runs
    result = run_stembed(["compare", runs["a"], runs["other_data"], "--significance"], cwd)
    assert result.returncode == 2, result.stdout
    assert "different examples" in result.stderr and "200 and 100 examples" in result.stderr
    assert "Traceback" not in result.stderr
    one = run_stembed(["compare", runs["a"], "--significance"], cwd)
    assert one.returncode == 2 and "exactly two run ids" in one.stderr


@pytest.mark.e2e
def test_compare_by_config_groups_seeds(seed_runs: tuple[Path, dict[str, str]]) -> None:
    import json

    cwd, _ = seed_runs
    result = run_stembed(["compare", "-e", "demo", "--by-config", "--format", "json"], cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(result.stdout)
    assert sorted(row["runs"] for row in rows) == [1, 2]
    grouped = next(row for row in rows if row["runs"] == 2)
    assert "±" in grouped["final_val_spearman_cosine"]
    assert "trainer.seed=1" in grouped["seeds"] and "trainer.seed=2" in grouped["seeds"]
    assert {"data.n_eval", "trainer.max_steps"} <= set(grouped)  # what tells the configurations apart
    assert "trainer.data_seed" not in grouped and "seed" not in grouped


@pytest.mark.e2e
def test_diff_shows_the_gain_with_its_interval(seed_runs: tuple[Path, dict[str, str]]) -> None:
    import pandas as pd
    from mlflow.tracking import MlflowClient

    cwd, runs = seed_runs
    result = run_stembed(["diff", runs["a"]], cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(li for li in result.stdout.splitlines() if li.strip().startswith("val_spearman_cosine:"))
    low, high = (float(v) for v in line.split("[")[1].split("]")[0].split(","))
    assert 0 < low < high, line  # training helped, beyond the luck of the examples
    assert "no evidence" not in line
    assert "Most worse" in result.stdout and "Most better" in result.stdout
    client = MlflowClient(store_uri(cwd))
    assert "diff.parquet" in _artifacts(cwd, runs["a"])
    frame = pd.read_parquet(client.download_artifacts(runs["a"], "diff.parquet", str(cwd)))
    assert len(frame) == 200 and set(frame.row_kind) == {"example"}
    card = Path(client.download_artifacts(runs["a"], "README.md", str(cwd))).read_text(encoding="utf-8")
    assert card.count("(stembed diff)") == 1 and "| val_spearman_cosine |" in card
    again = run_stembed(["diff", runs["a"]], cwd)  # the section is replaced, not appended twice
    card = Path(client.download_artifacts(runs["a"], "README.md", str(cwd))).read_text(encoding="utf-8")
    assert again.returncode == 0 and card.count("(stembed diff)") == 1


@pytest.mark.e2e
def test_stembed_eval_logs_per_example_scores(seed_runs: tuple[Path, dict[str, str]]) -> None:
    from mlflow.tracking import MlflowClient

    cwd, runs = seed_runs
    run_dir = MlflowClient(store_uri(cwd)).get_run(runs["a"]).data.tags["stembed.run_dir"]
    result = run_stembed(["eval", f"{run_dir}/model", "+experiment=demo", "model=tiny"], cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    eval_run = next(
        r.info.run_id
        for r in MlflowClient(store_uri(cwd)).search_runs(
            [MlflowClient(store_uri(cwd)).get_experiment_by_name("demo-eval").experiment_id]
        )
    )
    assert _artifacts(cwd, eval_run, "eval") == ["eval/val.parquet"]
    # The same model on the same examples: the paired test finds exactly no difference.
    same = run_stembed(["compare", runs["a"], eval_run, "--significance", "--format", "csv"], cwd)
    assert same.returncode == 0, same.stderr[-2000:]
    assert '+0.0000,"[+0.0000, +0.0000]"' in same.stdout


@pytest.mark.e2e
def test_diff_of_a_run_without_per_example_scores(tmp_path: Path) -> None:
    run_id = _train(tmp_path, "evaluator=none")
    result = run_stembed(["diff", run_id], tmp_path)
    assert result.returncode == 2 and "no baseline and final per-example scores" in result.stderr
    compared = run_stembed(["compare", run_id, run_id, "--significance"], tmp_path)
    assert compared.returncode == 2 and "has no per-example scores" in compared.stderr
    assert "Traceback" not in result.stderr + compared.stderr


@pytest.mark.e2e
def test_diff_of_label_routing_counts_the_confusions(tmp_path: Path) -> None:
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from stembed.data.fixtures import write_fixtures

    write_fixtures(tmp_path / "data")
    overrides = ["+experiment=it_tickets", "datasets=local", "trainer.max_steps=30"]
    run_id = _train(tmp_path, *[a for a in TINY if a != "+experiment=demo"], *overrides)
    result = run_stembed(["diff", run_id], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    metrics = [li.split(":")[0].strip() for li in lines if li.startswith("  it-tickets_")]
    assert metrics[0] == "it-tickets_macro_f1"  # the preset's primary metric first
    assert "Confusion pairs that grew (gold -> predicted: before -> after):" in result.stdout
    client = MlflowClient(store_uri(tmp_path))
    frame = pd.read_parquet(client.download_artifacts(run_id, "diff.parquet", str(tmp_path)))
    final = pd.read_parquet(client.download_artifacts(run_id, "eval/final_it-tickets.parquet", str(tmp_path)))
    confusions = frame[frame.row_kind == "confusion"]
    assert confusions.after.sum() == (final.gold_label != final.predicted_label).sum()
    examples = frame[frame.row_kind == "example"]
    assert len(examples) == len(final) and examples.before.min() >= 1  # ranks of the right label
