"""Helpers for tests that run the real `stembed` command and read the MLflow store back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# In-process tests load models after huggingface_hub is imported, too late for stembed to decide;
# tests/test_hub.py runs the CLI without the variable, as a new user would.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
STEMBED = str(Path(sys.executable).with_name("stembed"))
# The tiny model trains in seconds; a high learning rate makes its progress visible in a few steps.
TINY = [
    "+experiment=demo",
    "model=tiny",
    "trainer=smoke",
    "trainer.learning_rate=0.5",
    "trainer.logging_steps=1",
    "tracking.log_model=false",
]

# The tiny reranker (a 1-layer BERT with a one-score head) on the demo pairs, model logged.
TINY_CROSS = [
    "+experiment=demo",
    "model=tiny_cross",
    "loss=ce_bce",
    "evaluator=ce_correlation",
    "trainer=smoke",
    "tracking.log_model=true",
]


def require(found: object, what: str) -> None:
    """Skip a test whose outside tool is missing, with the reason; under CI (CI=true) fail instead."""
    if found:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} is not installed; CI must run this test (`make test` installs it).")
    pytest.skip(f"{what} is not installed (`make test` installs it)")


def stembed_env(**extra: str) -> dict[str, str]:
    """The environment for a stembed subprocess: offline hub, no inherited tracking URI."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR")}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1", **extra)
    return env


def run_stembed(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    """Run `stembed ARGS` in cwd and return the finished process (output captured as text)."""
    return subprocess.run(
        [STEMBED, *args], cwd=cwd, env=env or stembed_env(), capture_output=True, text=True, timeout=timeout
    )


def store_uri(cwd: Path) -> str:
    """The embedded store a run in cwd writes to."""
    return f"sqlite:///{cwd / 'outputs' / 'mlflow.db'}"


def all_runs(uri: str) -> list:
    """Every run in every experiment of the store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment_ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiment_ids) if experiment_ids else []


def job_runs(uri: str) -> list:
    """The runs of training jobs: every run but a sweep's parent."""
    return [run for run in all_runs(uri) if run.data.tags.get("stembed.sweep") != "parent"]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One real tiny training run with the model logged, shared by the tests that read it back."""
    cwd = tmp_path_factory.mktemp("tiny_run")
    args = [arg for arg in TINY if arg != "tracking.log_model=false"]
    result = run_stembed(["train", *args, "trainer.max_steps=12"], cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd, result


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One 2-job sweep (CosineSimilarityLoss, CoSENTLoss), models logged and registered, shared by the
    tests that read a sweep back. Tests may add runs to its store (eval runs): filter by tags."""
    cwd = tmp_path_factory.mktemp("tiny_sweep")
    args = [arg for arg in TINY if arg != "tracking.log_model=false"]
    result = run_stembed(
        ["train", "-m", *args, "loss=cosine,cosent", "tracking.register_model=support-demo"], cwd
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd, result


def sweep_job_runs(uri: str) -> list:
    """The runs of a sweep's jobs (not its parent, not eval runs added later)."""
    return [run for run in all_runs(uri) if "stembed.sweep_job" in run.data.tags]
