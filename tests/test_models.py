"""Better models (issue 15, items 1-3): hard-negative mining, several data sets in one run, prompts.

Every test runs the real CLI on the tiny model and reads the result back from MLflow or the files.
The mining-and-cache test is in the fast tier; the others are e2e (`make test`).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TINY, job_runs, run_stembed, store_uri

from stembed.data.fixtures import write_fixtures

MINING = [*TINY, "loss=mnrl", "mining=hard_negatives", "trainer.max_steps=2"]


def _metrics_by_run(cwd: Path) -> list:
    return sorted(job_runs(store_uri(cwd)), key=lambda r: r.info.start_time)


def test_mining_logs_metrics_and_a_second_run_reuses_the_cache(tmp_path: Path) -> None:
    import mlflow

    first = run_stembed(["train", *MINING], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "mining: cache miss" in first.stderr
    second = run_stembed(["train", *MINING], tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "mining: cache hit" in second.stderr and "not mined again" in second.stderr
    # another mining config, another cache entry (`stembed mine`: the same stage without training)
    changed = run_stembed(
        ["mine", "-o", "m.parquet", "--no-log", *MINING[:-1], "mining.relative_margin=0.2"], tmp_path
    )
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert "mining.relative_margin=0.2 is deprecated" in changed.stderr  # the first release's spelling
    assert "use mining.call.relative_margin=0.2" in changed.stderr
    assert "mining: cache miss" in changed.stderr and "mined in" in changed.stdout

    runs = _metrics_by_run(tmp_path)
    assert [r.info.status for r in runs] == ["FINISHED"] * 2
    mined, reused = (r.data for r in runs)
    names = [
        "mining_anchors",
        "mining_negatives_per_anchor",
        "mining_anchors_without_negative",
        "mining_positive_score_mean",
        "mining_negative_score_mean",
        "mining_seconds",
    ]
    assert set(names) <= set(mined.metrics) and set(names) <= set(reused.metrics)
    assert mined.metrics["mining_anchors"] > 50 and mined.metrics["mining_negatives_per_anchor"] > 0
    assert mined.metrics["mining_cache_hit"] == 0 and reused.metrics["mining_cache_hit"] == 1
    assert reused.metrics["mining_seconds"] < 0.5
    for key in names[:5]:  # the cached mining is the same mining
        assert reused.metrics[key] == mined.metrics[key]
    key = mined.tags["stembed.mining_cache_key"]
    assert reused.tags["stembed.mining_cache_key"] == key and f"cache key {key})" not in changed.stdout
    assert (mined.tags["stembed.mining_cache"], reused.tags["stembed.mining_cache"]) == ("miss", "hit")
    assert (
        key in second.stderr and (tmp_path / "outputs" / "cache" / "mining" / key / "mined.parquet").is_file()
    )
    assert (
        mined.params["mining.call.relative_margin"] == "0.05"
        and mined.params["mining.call.num_negatives"] == "1"
    )
    # MNRL reads (anchor, positive, negative) rows; a sample of them is an artifact of the run
    mlflow.set_tracking_uri(store_uri(tmp_path))
    sample = json.loads(mlflow.artifacts.load_text(f"runs:/{runs[0].info.run_id}/mining/sample.json"))
    assert sample and {"sentence1", "sentence2", "negative_1", "scores"} <= set(sample[0])
    assert all(row["negative_1"] != row["sentence2"] for row in sample)
    card = mlflow.artifacts.load_text(f"runs:/{runs[0].info.run_id}/README.md")
    assert "| Mining |" in card and key in card


@pytest.mark.e2e
def test_mine_command_label_names_get_the_closest_wrong_category(tmp_path: Path) -> None:
    """it_tickets (ticket <-> category name, cosine loss): mined rows are (ticket, wrong category, 0)."""
    write_fixtures(tmp_path / "data")
    args = ["+experiment=it_tickets", "datasets=local", "model=tiny", "mining.call.relative_margin=null"]
    result = run_stembed(["mine", "-o", "mined.parquet", "--no-log", *args], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "written to mined.parquet" in result.stdout and not (tmp_path / "outputs" / "mlflow.db").exists()
    rows = pd.read_parquet(tmp_path / "mined.parquet")
    assert list(rows.columns) == ["sentence1", "sentence2", "score"]  # labelled pairs for the loss
    categories = set(rows.loc[rows.score == 1.0, "sentence2"])
    positives = rows[rows.score == 1.0]
    truth = dict(zip(positives.sentence1, positives.sentence2, strict=True))
    original = 4000  # the preset's pairs are kept (keep_pairs), the mined negatives added
    mined = rows.iloc[original:]
    assert len(mined) > 0 and (mined.score == 0.0).all()
    assert set(mined.sentence2) <= categories
    assert all(
        truth[ticket] != category for ticket, category in zip(mined.sentence1, mined.sentence2, strict=True)
    )

    logged = run_stembed(["mine", "-o", "mined.parquet", *args], tmp_path)  # from the cache, logged
    assert logged.returncode == 0, logged.stderr[-3000:]
    assert "from the cache" in logged.stdout
    (run,) = job_runs(store_uri(tmp_path))
    assert run.data.metrics["mining_cache_hit"] == 1 and run.data.metrics["mining_anchors"] > 0
    assert run.data.params["mining.output_format"] == "auto"
    from mlflow.tracking import MlflowClient

    artifacts = [a.path for a in MlflowClient(store_uri(tmp_path)).list_artifacts(run.info.run_id, "mined")]
    assert artifacts == ["mined/mined.parquet"]


@pytest.mark.e2e
def test_faiss_and_exact_search_mine_the_same_negatives(tmp_path: Path) -> None:
    """faiss (the `faiss` extra, installed with dev) and exact search rank by the same inner product."""
    pytest.importorskip("faiss")
    mined = {}
    for use_faiss in ("true", "false"):
        out = f"{use_faiss}.parquet"
        args = ["mine", "-o", out, "--no-log", *MINING[:-1], f"mining.use_faiss={use_faiss}"]
        result = run_stembed(args, tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "mining: cache miss" in result.stderr  # the search is part of the cache key
        mined[use_faiss] = pd.read_parquet(tmp_path / out)
    assert len(mined["true"]) > 50
    pd.testing.assert_frame_equal(mined["true"], mined["false"], check_exact=False, atol=1e-4)


@pytest.mark.e2e
def test_mining_config_errors_name_the_key(tmp_path: Path) -> None:
    bad = run_stembed(["train", *MINING, "+mining.call.num_negativs=2"], tmp_path)
    assert bad.returncode == 2
    assert "mining.call.num_negativs" in bad.stderr and "num_negatives" in bad.stderr
    wrong = run_stembed(["train", *MINING, "mining.output_format=labeled-pair"], tmp_path)
    assert wrong.returncode == 2 and "MultipleNegativesRankingLoss reads triplet or n-tuple" in wrong.stderr
    assert "Traceback" not in bad.stderr + wrong.stderr
    assert not job_runs(store_uri(tmp_path))  # refused before any run opened


@pytest.mark.e2e
def test_multi_data_trains_two_named_sets_with_two_losses(tmp_path: Path) -> None:
    args = [
        *TINY,
        "data=multi",
        "+data@data.sets.pairs=demo",
        "+data@data.sets.support=demo",
        "data.sets.support.n_train=200",
        "+loss@data.sets.support.loss=mnrl",
        "data.primary=support",
        "trainer.multi_dataset_batch_sampler=round_robin",
    ]
    result = run_stembed(["train", *args], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = job_runs(store_uri(tmp_path))
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert (
        params["data_stats.pairs.train_pairs"] == "480" and params["data_stats.support.train_pairs"] == "200"
    )
    # the MNRL set keeps its positive pairs only; the cosine set all its pairs
    assert params["data_stats.pairs.train_rows_used"] == "480"
    assert int(params["data_stats.support.train_rows_used"]) < 200
    for name in ("pairs", "support"):
        assert f"baseline_{name}_spearman_cosine" in metrics and f"final_{name}_spearman_cosine" in metrics
    assert tags["stembed.primary_metric"] == "final_support_spearman_cosine"
    assert tags["stembed.data_sets"] == "pairs, support"
    assert params["trainer.multi_dataset_batch_sampler"] == "round_robin"
    card = Path(tags["stembed.run_dir"], "model", "README.md").read_text(encoding="utf-8")
    assert "`pairs`: stembed demo support pairs (480 rows, CosineSimilarityLoss)" in card
    assert "MultipleNegativesRankingLoss)" in card


def test_support_multi_preset_composes_bitext_and_banking77() -> None:
    from hydra import compose, initialize_config_dir

    from stembed.config import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["+experiment=support_multi"])
    assert list(cfg.data.sets) == ["bitext", "banking77"]
    assert cfg.data.sets.banking77.source == cfg.datasets.banking77
    assert cfg.loss._target_.endswith("MultipleNegativesRankingLoss")


@pytest.mark.e2e
def test_prompts_are_trained_saved_evaluated_and_encoded(
    tmp_path: Path, tiny_run: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    from mlflow.tracking import MlflowClient
    from sentence_transformers import SentenceTransformer

    prompts = 'model.prompts={query: "query: ", document: "passage: "}'
    result = run_stembed(["train", *TINY, prompts, "trainer.max_steps=12"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = job_runs(store_uri(tmp_path))
    model_dir = Path(run.data.tags["stembed.run_dir"]) / "model"
    saved = json.loads((model_dir / "config_sentence_transformers.json").read_text())
    assert saved["prompts"] == {"query": "query: ", "document": "passage: "}
    card = (model_dir / "README.md").read_text(encoding="utf-8")
    assert "| Prompts | `query`: 'query: ', `document`: 'passage: '" in card

    # Training used them: the first batch's loss (before any update) differs from the same run without.
    plain_cwd, _ = tiny_run
    (plain,) = job_runs(store_uri(plain_cwd))

    def first_loss(cwd: Path, run_id: str) -> float:
        history = MlflowClient(store_uri(cwd)).get_metric_history(run_id, "loss")
        return next(m.value for m in history if m.step == 1)

    assert first_loss(tmp_path, run.info.run_id) != first_loss(plain_cwd, plain.info.run_id)

    # `stembed eval` applies the saved prompts as training's evaluator did: the same metric.
    evaluated = run_stembed(["eval", str(model_dir), "+experiment=demo", "--no-log"], tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    value = float(
        next(line for line in evaluated.stdout.splitlines() if "val_spearman_cosine" in line).split()[-1]
    )
    assert abs(value - run.data.metrics["final_val_spearman_cosine"]) < 1e-4

    texts = ["where is my laptop order?", "How do I reset my password?"]
    pd.DataFrame({"text": texts}).to_csv(tmp_path / "in.csv", index=False)
    encoded = run_stembed(
        ["encode", str(model_dir), "-i", "in.csv", "-o", "q.npy", "--prompt-name", "query"], tmp_path
    )
    assert encoded.returncode == 0, encoded.stderr[-3000:]
    model = SentenceTransformer(str(model_dir))
    expected = model.encode(texts, prompt_name="query")
    np.testing.assert_allclose(np.load(tmp_path / "q.npy"), expected, atol=1e-6)
    assert np.abs(model.encode(texts) - expected).max() > 1e-3  # the prompt changes the embedding
    unknown = run_stembed(
        ["encode", str(model_dir), "-i", "in.csv", "-o", "x.npy", "--prompt-name", "qury"], tmp_path
    )
    assert unknown.returncode == 2 and "--prompt-name qury" in unknown.stderr and "query: " in unknown.stderr


@pytest.mark.e2e
def test_mining_works_with_every_in_batch_and_label_name_preset(tmp_path: Path) -> None:
    """One sweep over the MNRL presets, the label-name preset and data=multi, mining on fixtures."""
    write_fixtures(tmp_path / "data")
    presets = ["banking77", "customer_support_mnrl", "ifixit", "recsys", "it_tickets", "support_multi"]
    args = ["-m", f"+experiment={','.join(presets)}", "datasets=local", "model=tiny", "trainer=smoke"]
    # the tiny model is random: without a margin every anchor finds a negative
    args += ["tracking.log_model=false", "mining=hard_negatives", "mining.call.relative_margin=null"]
    result = run_stembed(["train", *args], tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    runs = {r.data.tags["stembed.task"]: r for r in job_runs(store_uri(tmp_path))}
    assert sorted(runs) == sorted(presets) and {r.info.status for r in runs.values()} == {"FINISHED"}
    for task in presets[:5]:
        assert runs[task].data.metrics["mining_negatives_per_anchor"] > 0, task
    multi = runs["support_multi"].data
    for name in ("bitext", "banking77"):  # each set mined for its own loss; the single-set runs' cache reused
        assert multi.metrics[f"{name}.mining_cache_hit"] == 1
        assert multi.tags[f"stembed.mining_cache_key.{name}"]
    assert (
        multi.tags["stembed.mining_cache_key.bitext"]
        == runs["customer_support_mnrl"].data.tags["stembed.mining_cache_key"]
    )
