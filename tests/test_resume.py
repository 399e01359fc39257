"""Determinism, and resuming killed or crashed runs into the same MLflow run: real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import STEMBED, TINY, all_runs, run_stembed, stembed_env, store_uri

STEPS = 40
pytestmark = pytest.mark.e2e  # real training runs in subprocesses: `make test`, not test-fast

# A loss that counts its steps in a file, can be slowed down (so a signal lands mid-run) and can crash.
COUNTING_LOSS = """
import os, time
from pathlib import Path
from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

class CountingLoss(CosineSimilarityLoss):
    def forward(self, *args, **kwargs):
        counter = Path(os.environ["STEP_FILE"])
        step = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(step))
        time.sleep(float(os.environ.get("STEP_SLEEP", "0")))
        if os.environ.get("CRASH_AT") == str(step):
            raise RuntimeError(f"crash in step {step}")
        return super().forward(*args, **kwargs)
"""
ARGS = [*TINY, f"trainer.max_steps={STEPS}", "loss._target_=counting_loss.CountingLoss"]


def _env(cwd: Path, **extra: str) -> dict[str, str]:
    (cwd / "counting_loss.py").write_text(COUNTING_LOSS)
    path = os.pathsep.join(filter(None, [str(cwd), os.environ.get("PYTHONPATH")]))  # keep the tree tested
    return stembed_env(PYTHONPATH=path, STEP_FILE=str(cwd / "steps.txt"), **extra)


def _train(cwd: Path, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    cwd.mkdir(exist_ok=True)
    result = run_stembed(["train", *ARGS, *extra], cwd, env=_env(cwd, **env))
    return result


def _losses(uri: str, run_id: str) -> dict[int, float]:
    """Per-step training loss; a step logged twice (before a crash and after a resume) keeps its last."""
    from mlflow.tracking import MlflowClient

    history = MlflowClient(tracking_uri=uri).get_metric_history(run_id, "loss")
    return {m.step: m.value for m in sorted(history, key=lambda m: m.timestamp)}


def _embeddings(cwd: Path):  # type: ignore[no-untyped-def]
    from sentence_transformers import SentenceTransformer

    (model_dir,) = (cwd / "outputs" / "runs").glob("*/*/model")
    return SentenceTransformer(str(model_dir)).encode(["where is my order", "reset my password"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, float], dict[str, float]]:
    """One uninterrupted run: its directory, per-step losses and final metrics."""
    cwd = tmp_path_factory.mktemp("reference")
    result = _train(cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = all_runs(store_uri(cwd))
    return cwd, _losses(store_uri(cwd), run.info.run_id), run.data.metrics


def test_same_seed_twice_gives_identical_losses_and_metrics(reference, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, losses, metrics = reference
    assert _train(tmp_path).returncode == 0
    (run,) = all_runs(store_uri(tmp_path))
    assert sorted(losses) == list(range(1, STEPS + 1))
    assert _losses(store_uri(tmp_path), run.info.run_id) == losses  # bit-identical on CPU
    assert run.data.metrics["final_val_spearman_cosine"] == metrics["final_val_spearman_cosine"]


def test_sigterm_saves_checkpoint_and_resume_matches_uninterrupted_run(reference, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    ref_dir, ref_losses, ref_metrics = reference
    env = _env(tmp_path, STEP_SLEEP="0.15")
    process = subprocess.Popen(
        [STEMBED, "train", *ARGS],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    counter = tmp_path / "steps.txt"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        if counter.exists() and counter.read_text() and int(counter.read_text()) >= 12:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)  # a cluster's pre-emption
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    assert "resume with: stembed resume" in stderr
    (run,) = all_runs(store_uri(tmp_path))
    assert run.info.status == "KILLED"
    stopped_at = max(_losses(store_uri(tmp_path), run.info.run_id))
    assert 12 <= stopped_at < STEPS
    assert run.data.tags["stembed.checkpoint"].endswith(f"checkpoint-{stopped_at}")
    assert not list((tmp_path / "outputs" / "runs").glob("*/*/model"))

    result = run_stembed(["resume", run.info.run_id], tmp_path, env=_env(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    (resumed,) = all_runs(store_uri(tmp_path))  # the same run, not a new one
    assert resumed.info.run_id == run.info.run_id and resumed.info.status == "FINISHED"
    losses = _losses(store_uri(tmp_path), run.info.run_id)
    assert sorted(losses) == list(range(1, STEPS + 1))
    assert max(abs(losses[step] - ref_losses[step]) for step in ref_losses) < 1e-5
    assert resumed.data.metrics["final_val_spearman_cosine"] == pytest.approx(
        ref_metrics["final_val_spearman_cosine"], abs=1e-5
    )
    np.testing.assert_allclose(_embeddings(tmp_path), _embeddings(ref_dir), atol=1e-5)


def test_crash_fails_the_run_and_its_last_checkpoint_resumes(reference, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import mlflow

    _, ref_losses, _ = reference
    saving = ["trainer.save_strategy=steps", "trainer.save_steps=10"]
    result = _train(tmp_path, *saving, CRASH_AT="25")
    assert result.returncode != 0 and "crash in step 25" in result.stderr
    (run,) = all_runs(store_uri(tmp_path))
    assert run.info.status == "FAILED"
    assert run.data.tags["stembed.checkpoint"].endswith("checkpoint-20")
    mlflow.set_tracking_uri(store_uri(tmp_path))
    assert "crash in step 25" in mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/error/traceback.txt")

    result = run_stembed(["train", f"+resume={run.info.run_id}"], tmp_path, env=_env(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    (resumed,) = all_runs(store_uri(tmp_path))
    assert resumed.info.status == "FINISHED" and resumed.data.tags["stembed.resumed_from"].endswith(
        "checkpoint-20"
    )
    losses = _losses(store_uri(tmp_path), run.info.run_id)
    assert max(abs(losses[step] - ref_losses[step]) for step in ref_losses) < 1e-5
    # A finished run cannot be resumed again.
    again = run_stembed(["resume", run.info.run_id], tmp_path, env=_env(tmp_path))
    assert again.returncode == 2 and "already FINISHED" in again.stderr


def test_resume_refuses_a_live_run_and_works_after_kill_9(tmp_path: Path) -> None:
    """Issue 17.2: while the training process lives, `stembed resume` exits 2 and changes nothing; the
    lock of a process killed by SIGKILL does not block the resume."""
    env = _env(tmp_path, STEP_SLEEP="0.5")
    saving = ["trainer.save_strategy=steps", "trainer.save_steps=3"]
    process = subprocess.Popen(
        [STEMBED, "train", *ARGS, *saving],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while not list(tmp_path.glob("outputs/runs/*/*/checkpoints/checkpoint-*/trainer_state.json")):
            assert process.poll() is None and time.monotonic() < deadline, "no checkpoint"
            time.sleep(0.2)
        (run,) = all_runs(store_uri(tmp_path))
        refused = run_stembed(["resume", run.info.run_id], tmp_path, env=_env(tmp_path))
        assert refused.returncode == 2, refused.stderr[-3000:]
        assert "still training" in refused.stderr and "Traceback" not in refused.stderr
        assert process.poll() is None  # the first process trains on, undisturbed
    finally:
        process.kill()  # SIGKILL: no handler runs, the run stays RUNNING, the lock file stays behind
        process.wait(timeout=60)
    (run,) = all_runs(store_uri(tmp_path))
    assert run.info.status == "RUNNING"
    assert list(tmp_path.glob("outputs/runs/*/*/.stembed.lock"))
    # Issue 17.8: the resume's own overrides are recorded (a tag per resume, the changed params).
    longer = f"trainer.max_steps={STEPS + 4}"
    result = run_stembed(["resume", run.info.run_id, longer], tmp_path, env=_env(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    (resumed,) = all_runs(store_uri(tmp_path))
    assert resumed.info.run_id == run.info.run_id and resumed.info.status == "FINISHED"
    assert sorted(_losses(store_uri(tmp_path), run.info.run_id)) == list(range(1, STEPS + 5))
    assert resumed.data.params["trainer.max_steps"] == str(STEPS)  # MLflow never changes a param
    assert resumed.data.params["resume_1.trainer.max_steps"] == str(STEPS + 4)
    assert longer in resumed.data.tags["stembed.resume_1.overrides"]
