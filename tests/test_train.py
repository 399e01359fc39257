"""Real `stembed train` runs (tiny model) read back from the MLflow store and the run directory."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import TINY, all_runs, run_stembed, stembed_env, store_uri, sweep_job_runs


def test_run_is_logged_to_mlflow(tiny_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    from mlflow.tracking import MlflowClient

    cwd, result = tiny_run
    runs = all_runs(store_uri(cwd))
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.info.run_id in result.stdout and "val_spearman_cosine:" in result.stdout

    params = run.data.params
    assert params["trainer.learning_rate"] == "0.5"
    assert params["model.call._target_"] == "stembed.components.model.tiny_static_model"
    assert params["data.name"] == "stembed demo support pairs"
    assert params["data_stats.train_pairs"] == "480"
    assert not any(key.startswith("hydra") for key in params)

    tags = run.data.tags
    assert tags["stembed.command"].startswith("stembed train +experiment=demo model=tiny")
    assert json.loads(tags["stembed.overrides"])[0] == "+experiment=demo"
    assert tags["stembed.model_source"] == "built:stembed.components.model.tiny_static_model"
    assert len(tags["stembed.data_fingerprint"]) == 16
    assert tags["stembed.version"]
    # StaticEmbedding pads nothing, so length grouping (the default) leaves its batches alone
    assert tags["stembed.batch_sampler"] == "batch_sampler"
    assert run.data.metrics["train_tokens"] > 0 and run.data.metrics["train_padding_efficiency"] == 1.0
    assert "tokens/s" in result.stdout

    client = MlflowClient(tracking_uri=store_uri(cwd))
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in losses] == list(range(1, 13))
    assert {"baseline_val_spearman_cosine", "final_val_spearman_cosine", "learning_rate", "epoch"} <= set(
        run.data.metrics
    )
    # 12 real optimisation steps on the tiny model must improve the eval correlation.
    assert (
        run.data.metrics["final_val_spearman_cosine"]
        > run.data.metrics["baseline_val_spearman_cosine"] + 0.05
    )


def test_card_and_config_artifacts(tiny_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    import mlflow

    cwd, _ = tiny_run
    run = all_runs(store_uri(cwd))[0]
    mlflow.set_tracking_uri(store_uri(cwd))
    card = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/README.md")
    assert "Unnamed Dataset" not in card
    assert "stembed demo support pairs" in card
    assert run.info.run_id in card
    assert run.data.tags["stembed.command"] in card
    assert "| val_spearman_cosine |" in card  # baseline vs fine-tuned table
    config = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/config/config.yaml")
    assert "task_name: demo" in config
    overrides = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/config/overrides.yaml")
    assert "model=tiny" in overrides
    resolved = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/config/resolved.yaml")
    assert "seed: ${seed}" not in resolved and "data_seed: 42" in resolved


def test_model_artifact_loads_and_encodes(tiny_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    import mlflow

    cwd, _ = tiny_run
    run = all_runs(store_uri(cwd))[0]
    mlflow.set_tracking_uri(store_uri(cwd))
    model = mlflow.sentence_transformers.load_model(f"runs:/{run.info.run_id}/model")
    assert model.encode(["where is my laptop order?"]).shape == (1, 32)
    run_dirs = list((cwd / "outputs" / "runs").glob("*/*"))
    assert len(run_dirs) == 1
    assert (run_dirs[0] / "model" / "README.md").is_file()
    assert not (run_dirs[0] / "model.partial").exists()


@pytest.mark.e2e
def test_multirun_is_a_parent_run_with_one_finished_child_per_job(tiny_sweep) -> None:  # type: ignore[no-untyped-def]
    tmp_path, _ = tiny_sweep
    runs = sweep_job_runs(store_uri(tmp_path))
    (parent,) = [r for r in all_runs(store_uri(tmp_path)) if r.data.tags.get("stembed.sweep") == "parent"]
    assert parent.info.status == "FINISHED" and "loss=cosine,cosent" in parent.data.params["sweep_overrides"]
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    assert parent.data.metrics["sweep_jobs_finished"] == 2 and parent.data.metrics["sweep_jobs_failed"] == 0
    best = max(runs, key=lambda r: r.data.metrics["final_val_spearman_cosine"])
    assert parent.data.tags["stembed.best_run_id"] == best.info.run_id
    assert sorted(r.data.params["loss._target_"].rsplit(".", 1)[1] for r in runs) == [
        "CoSENTLoss",
        "CosineSimilarityLoss",
    ]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert len(list((tmp_path / "outputs" / "multirun").glob("*/*/*/model"))) == 2


@pytest.mark.e2e
def test_matryoshka_mnrl_with_retrieval_evaluator(tmp_path: Path) -> None:
    """A wrapped in-batch-negatives loss on scored pairs: positives only, '@' metric names made safe."""
    args = [*TINY, "loss=matryoshka", "loss.matryoshka_dims=[32,16]", "evaluator=retrieval"]
    result = run_stembed(["train", *args], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = all_runs(store_uri(tmp_path))
    assert run.info.status == "FINISHED"
    assert int(run.data.params["data_stats.train_rows_used"]) == 160  # the score-1.0 third of 480
    assert "final_val_cosine_ndcg_at_10" in run.data.metrics
    assert "baseline_val_cosine_recall_at_1" in run.data.metrics


@pytest.mark.e2e
def test_crash_during_training_ends_run_failed_with_traceback(tmp_path: Path) -> None:
    """Any loss class can be named by _target_; this one fails mid-training."""
    (tmp_path / "crashing.py").write_text(
        "from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss\n"
        "class CrashingLoss(CosineSimilarityLoss):\n"
        "    calls = 0\n"
        "    def forward(self, *args, **kwargs):\n"
        "        CrashingLoss.calls += 1\n"
        "        if CrashingLoss.calls > 2:\n"
        "            raise RuntimeError('boom in step 3')\n"
        "        return super().forward(*args, **kwargs)\n"
    )
    env = stembed_env(PYTHONPATH=str(tmp_path))
    result = run_stembed(["train", *TINY, "loss._target_=crashing.CrashingLoss"], tmp_path, env=env)
    assert result.returncode != 0
    assert "boom in step 3" in result.stderr
    (run,) = all_runs(store_uri(tmp_path))
    assert run.info.status == "FAILED"
    import mlflow

    mlflow.set_tracking_uri(store_uri(tmp_path))
    assert "boom in step 3" in mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/error/traceback.txt")
    assert not list((tmp_path / "outputs" / "runs").glob("*/*/model"))


@pytest.mark.e2e
def test_bad_input_is_one_paragraph_exit_2_and_no_run(tmp_path: Path) -> None:
    cases = {
        "+trainer.learnig_rate=0.1": ["trainer.learnig_rate=0.1", "Did you mean 'learning_rate'?"],
        "trainer.per_device_train_batch_size=0": ["per_device_train_batch_size=0", "positive"],
        "model.max_seq_length=4096": ["model.max_seq_length=4096", "512"],
        "model.name_or_path=./no/such/model": ["model.name_or_path=./no/such/model", "no such directory"],
        "tracking.uri=http://127.0.0.1:9": ["tracking.uri=http://127.0.0.1:9", "no MLflow server answers"],
    }
    for override, expected in cases.items():
        args = ["+experiment=demo", "trainer=smoke", override]
        if not override.startswith("model"):
            args.append("model=tiny")
        result = run_stembed(["train", *args], tmp_path)
        assert result.returncode == 2, (override, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, override
        for text in expected:
            assert text in result.stderr, (override, text, result.stderr[-1000:])
    assert not any(r.info.status == "RUNNING" for r in all_runs(store_uri(tmp_path)))
    assert all_runs(store_uri(tmp_path)) == []
    # Without '+', Hydra itself refuses a key the trainer config lacks, naming it.
    result = run_stembed(["train", "+experiment=demo", "trainer.learnig_rate=0.1"], tmp_path)
    assert result.returncode != 0 and "trainer.learnig_rate" in result.stderr


@pytest.mark.e2e
def test_bad_data_file_names_file_and_columns(tmp_path: Path) -> None:
    (tmp_path / "pairs.csv").write_text("question1,question2,is_duplicate\na,b,1\nc,d,0\ne,f,1\n")
    args = ["+experiment=demo", "model=tiny", "trainer=smoke", "data=pairs", "data.source=pairs.csv"]
    result = run_stembed(["train", *args], tmp_path)
    assert result.returncode == 2
    assert "pairs.csv" in result.stderr and "['question1', 'question2', 'is_duplicate']" in result.stderr
    assert "data.columns" in result.stderr
    fixed = [*args, "data.columns.sentence1=question1", "data.columns.sentence2=question2"]
    # evaluator=none: one eval row of unknown words has no defined correlation (a NaN metric fails a run)
    fixed += ["data.columns.score=is_duplicate", "data.eval_fraction=0.34", "evaluator=none"]
    result = run_stembed(["train", *fixed], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = all_runs(store_uri(tmp_path))
    assert run.info.status == "FINISHED" and run.data.tags["stembed.data_name"] == "pairs.csv"


@pytest.mark.e2e
def test_interrupt_ends_run_killed(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) and a cluster's pre-emption (SIGTERM) end the MLflow run KILLED, not RUNNING."""
    import signal
    import time

    from conftest import STEMBED

    for sig in (signal.SIGINT, signal.SIGTERM):
        cwd = tmp_path / sig.name
        cwd.mkdir()
        args = [*TINY, "trainer.max_steps=1000000"]  # TINY logs every step to train.log
        process = subprocess.Popen(
            [STEMBED, "train", *args],
            cwd=cwd,
            env=stembed_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        # Wait for the first logged training step (the store is not read meanwhile: a second process
        # would race the first one's schema creation).
        while time.monotonic() < deadline and process.poll() is None:
            logs = list((cwd / "outputs" / "runs").glob("*/*/train.log"))
            if logs and "[stembed.trainer]" in logs[0].read_text():
                break
            time.sleep(0.2)
        assert process.poll() is None, process.communicate()[1][-3000:]
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 130, stderr[-3000:]
        (run,) = all_runs(store_uri(cwd))
        assert run.info.status == "KILLED"
        assert not list((cwd / "outputs" / "runs").glob("*/*/model"))
