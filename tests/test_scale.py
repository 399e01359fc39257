"""Scale-out: DDP under torchrun on 2 CPU processes, a team server (PostgreSQL + served artifacts), the
model registry. Real processes, read back from MLflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY, all_runs, require, run_stembed, stembed_env, store_uri, sweep_job_runs
from team_server import mlflow_server, postgres_database, postgres_installed, psql

pytestmark = pytest.mark.e2e  # real training runs in subprocesses: `make test`, not test-fast

WITH_MODEL = [arg for arg in TINY if arg != "tracking.log_model=false"]


def test_torchrun_trains_one_model_on_two_cpu_processes(tmp_path: Path) -> None:
    """480 pairs, batch 8, one epoch: 60 steps alone, 30 when two processes split the data."""
    args = [
        *TINY,
        "trainer.max_steps=-1",
        "trainer.num_train_epochs=1",
        "trainer.per_device_train_batch_size=8",
    ]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "stembed"]
    result = subprocess.run(
        [*command, "train", *args],
        cwd=tmp_path,
        env=stembed_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]

    from mlflow.tracking import MlflowClient

    uri = store_uri(tmp_path)
    (run,) = all_runs(uri)  # rank 0 logs, rank 1 does not
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert (tags["stembed.world_size"], tags["stembed.parallel_mode"]) == ("2", "distributed")
    assert tags["stembed.effective_batch_size"] == "16"
    final = MlflowClient(tracking_uri=uri).get_metric_history(run.info.run_id, "final_val_spearman_cosine")
    assert [m.step for m in final] == [30]
    assert run.data.metrics["final_val_spearman_cosine"] > run.data.metrics["baseline_val_spearman_cosine"]
    # One run directory (both ranks agreed on it), one model, one card; only rank 0 wrote .hydra/.
    (run_dir,) = (tmp_path / "outputs" / "runs").glob("*/*")
    assert (run_dir / "model" / "README.md").is_file() and (run_dir / ".hydra" / "config.yaml").is_file()
    assert result.stdout.count("FINISHED in") == 1


def test_team_server_with_postgresql_and_served_artifacts(tmp_path: Path) -> None:
    """tracking.uri=http://...: runs land in PostgreSQL, artifacts on the server, read back over HTTP."""
    import mlflow

    require(postgres_installed(), "PostgreSQL's server (make postgres)")
    (tmp_path / "client").mkdir()
    with postgres_database() as database, mlflow_server(database, tmp_path / "served") as url:
        args = [*WITH_MODEL, f"tracking.uri={url}", "tracking.register_model=team-demo"]
        result = run_stembed(["train", *args], tmp_path / "client", env=stembed_env())
        assert result.returncode == 0, result.stderr[-4000:]
        assert f"UI:     {url}/#/experiments/" in result.stdout

        (run,) = all_runs(url)
        run_id = run.info.run_id
        assert run.info.status == "FINISHED" and run.data.params["trainer.learning_rate"] == "0.5"
        assert "final_val_spearman_cosine" in run.data.metrics
        assert psql(database, f"SELECT status FROM runs WHERE run_uuid = '{run_id}'") == "FINISHED"
        assert psql(database, "SELECT name, version FROM model_versions") == "team-demo|1"

        mlflow.set_tracking_uri(url)
        assert run_id in mlflow.artifacts.load_text(f"runs:/{run_id}/README.md")
        model_dir = Path(
            mlflow.artifacts.download_artifacts("models:/team-demo/1", dst_path=str(tmp_path / "got"))
        )
        assert "sentence_transformers:" in (model_dir / "MLmodel").read_text()
        assert list(model_dir.rglob("model.safetensors"))  # the weights came back over HTTP
    # The artifacts live where the server keeps them, not on the client.
    assert list((tmp_path / "served").glob(f"*/{run_id}/artifacts/README.md"))
    assert not (tmp_path / "client" / "outputs" / "mlartifacts").exists()
    assert not (tmp_path / "client" / "mlruns").exists()


def test_register_model_adds_a_version_per_run(tiny_sweep) -> None:  # type: ignore[no-untyped-def]
    """Two jobs (a 2-job sweep, one process) register versions 1 and 2 of one name in the SQLite store."""
    import mlflow
    from mlflow.tracking import MlflowClient

    tmp_path, result = tiny_sweep
    for version in (1, 2):
        assert (
            f"registry: 'support-demo' version {version}  (models:/support-demo/{version})" in result.stdout
        )
    uri = store_uri(tmp_path)
    versions = MlflowClient(tracking_uri=uri).search_model_versions("name = 'support-demo'")
    jobs = {run.data.tags["stembed.sweep_job"]: run.info.run_id for run in sweep_job_runs(uri)}
    assert {int(v.version): v.run_id for v in versions} == {1: jobs["0"], 2: jobs["1"]}
    mlflow.set_tracking_uri(uri)
    assert mlflow.sentence_transformers.load_model("models:/support-demo/2").encode(["hi"]).shape == (1, 32)


def test_register_model_needs_the_model_logged() -> None:
    from omegaconf import OmegaConf

    from stembed.errors import StembedError
    from stembed.tracking.run import Tracker

    cfg = OmegaConf.create({"uri": None, "experiment": "x", "log_model": False, "register_model": "support"})
    with pytest.raises(StembedError, match=r"tracking.register_model=support: .*tracking.log_model=true"):
        Tracker.from_config(cfg, "outputs")
