"""Real sweeps (grid, Optuna) on real launchers (joblib workers, submitit), read back from MLflow."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY, all_runs, job_runs, run_stembed, stembed_env, store_uri

pytestmark = pytest.mark.e2e  # real training runs in subprocesses: `make test`, not test-fast

TINY_LR = [arg for arg in TINY if not arg.startswith("trainer.learning_rate=")]


def sweep_parent(uri: str):  # type: ignore[no-untyped-def]
    (parent,) = [r for r in all_runs(uri) if r.data.tags.get("stembed.sweep") == "parent"]
    return parent


def test_grid_of_four_jobs_on_two_parallel_workers(tmp_path: Path) -> None:
    """loss x learning rate = 4 jobs on 2 joblib workers sharing the SQLite store: nothing lost."""
    grid = ["loss=cosine,cosent", "trainer.learning_rate=0.1,0.5"]
    result = run_stembed(["train", "-m", *TINY_LR, *grid, "hydra/launcher=local_parallel"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "database is locked" not in result.stdout + result.stderr
    assert "Joblib.Parallel(n_jobs=2" in result.stdout

    from mlflow.tracking import MlflowClient

    uri = store_uri(tmp_path)
    client = MlflowClient(tracking_uri=uri)
    assert [e.name for e in client.search_experiments()].count("demo") == 1
    parent, jobs = sweep_parent(uri), job_runs(uri)
    assert len(jobs) == 4
    assert {r.info.status for r in jobs} == {"FINISHED"}
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parent.info.run_id}
    assert sorted(r.data.tags["stembed.sweep_job"] for r in jobs) == ["0", "1", "2", "3"]
    combos = {
        (r.data.params["loss._target_"].rsplit(".")[-1], r.data.params["trainer.learning_rate"]) for r in jobs
    }
    assert combos == {(loss, lr) for loss in ("CosineSimilarityLoss", "CoSENTLoss") for lr in ("0.1", "0.5")}
    for run in jobs:
        assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2, 3, 4]
        assert "final_val_spearman_cosine" in run.data.metrics

    # The parent: the sweep's overrides and launcher, the job counts, the best job and its metric.
    assert parent.info.status == "FINISHED"
    assert parent.data.params["sweep_overrides"].endswith("loss=cosine,cosent trainer.learning_rate=0.1,0.5")
    assert parent.data.params["sweep_launcher"] == "JoblibLauncher"
    metrics = parent.data.metrics
    assert (metrics["sweep_jobs"], metrics["sweep_jobs_finished"], metrics["sweep_jobs_failed"]) == (4, 4, 0)
    best = max(jobs, key=lambda r: r.data.metrics["final_val_spearman_cosine"])
    assert parent.data.tags["stembed.best_run_id"] == best.info.run_id
    assert metrics["final_val_spearman_cosine"] == best.data.metrics["final_val_spearman_cosine"]

    # Two workers: some jobs' runs overlap in time.
    spans = sorted((r.info.start_time, r.info.end_time) for r in jobs)
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))


def test_sweep_survives_a_crash_a_nan_and_bad_input(tmp_path: Path) -> None:
    """lr=-1 and optim=bogus are bad input (before training), lr=1e30 diverges to NaN:
    each job is a FAILED child run with its traceback, the other job finishes, the parent counts them."""
    grid = ["trainer.learning_rate=0.5,1e30,-1", "trainer.optim=adamw_torch,bogus"]
    result = run_stembed(["train", "-m", *TINY_LR, *grid], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    import mlflow

    uri = store_uri(tmp_path)
    mlflow.set_tracking_uri(uri)
    parent, jobs = sweep_parent(uri), job_runs(uri)
    assert len(jobs) == 6
    by_values = {_swept_values(r): r for r in jobs}
    finished = by_values[(0.5, "adamw_torch")]
    assert finished.info.status == "FINISHED"
    expected_errors = {
        (1e30, "adamw_torch"): "training diverged at trainer.learning_rate=1e+30",
        (-1.0, "adamw_torch"): "trainer.learning_rate=-1: it must be positive",  # issue 17.9
        (0.5, "bogus"): "bogus is not a valid OptimizerNames",
    }
    for values, error in expected_errors.items():
        run = by_values[values]
        assert run.info.status == "FAILED", values
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        traceback = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/error/traceback.txt")
        assert error in traceback, (values, traceback[-1500:])
    assert [r.info.status for r in jobs].count("FAILED") == 5
    metrics = parent.data.metrics
    assert (metrics["sweep_jobs"], metrics["sweep_jobs_finished"], metrics["sweep_jobs_failed"]) == (6, 1, 5)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["stembed.best_run_id"] == finished.info.run_id
    assert "1 of 6 jobs finished, 5 failed" in result.stdout
    assert len(list((tmp_path / "outputs" / "multirun").glob("*/*/*/model"))) == 1


def _swept_values(run) -> tuple[float, str]:  # type: ignore[no-untyped-def]
    """(learning rate, optimizer) of a job, from its overrides tag (failed jobs may have no params)."""
    overrides = dict(o.split("=", 1) for o in json.loads(run.data.tags["stembed.overrides"]))
    return float(overrides["trainer.learning_rate"]), overrides["trainer.optim"]


def test_a_single_run_that_diverges_fails_with_exit_code_2(tmp_path: Path) -> None:
    result = run_stembed(["train", *TINY_LR, "trainer.learning_rate=1e30"], tmp_path)
    assert result.returncode == 2
    assert "training diverged at trainer.learning_rate=1e+30" in result.stderr
    (run,) = all_runs(store_uri(tmp_path))
    assert run.info.status == "FAILED"
    assert not list((tmp_path / "outputs" / "runs").glob("*/*/model"))


def test_optuna_study_trials_are_child_runs(tmp_path: Path) -> None:
    """+hparams_search=demo_optuna: each trial a child run; a failing trial does not stop the study."""
    args = [*TINY_LR, "+hparams_search=demo_optuna", "hydra.sweeper.n_trials=3"]
    # Learning rate -1 fails a trial; with this seed the sampler draws 0.5, -1, 0.5.
    args += ["trainer.learning_rate=choice(0.5,-1)", "hydra.sweeper.sampler.seed=44"]
    result = run_stembed(["train", *args], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    uri = store_uri(tmp_path)
    parent, trials = sweep_parent(uri), job_runs(uri)
    assert len(trials) == 3
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parent.info.run_id}
    statuses = [r.info.status for r in sorted(trials, key=lambda r: int(r.data.tags["stembed.sweep_job"]))]
    assert statuses == ["FINISHED", "FAILED", "FINISHED"]
    for trial in trials:
        assert trial.data.tags["stembed.overrides"].count("=") >= 4  # the sampled values are overrides
    finished = [r for r in trials if r.info.status == "FINISHED"]
    for trial in finished:
        assert trial.data.params["trainer.per_device_train_batch_size"] in {"8", "16", "32"}
        assert trial.data.params["loss._target_"].endswith(("CosineSimilarityLoss", "CoSENTLoss"))
        assert 0.0 <= float(trial.data.params["trainer.warmup_steps"]) <= 0.2

    assert parent.data.tags["stembed.sweeper"] == "OptunaSweeper"
    assert parent.data.params["sweep_n_trials"] == "3" and parent.data.params["sweep_direction"] == "maximize"
    searched = {key.removeprefix("sweep_params.") for key in parent.data.params}
    assert {
        "trainer.learning_rate",
        "trainer.per_device_train_batch_size",
        "loss",
        "trainer.warmup_steps",
    } <= searched
    assert parent.data.metrics["sweep_jobs_failed"] == statuses.count("FAILED")
    # Optuna received the metric each finished trial returned: its best value is the best child's.
    import yaml

    (results,) = (tmp_path / "outputs" / "multirun").glob("*/*/optimization_results.yaml")
    best = max(finished, key=lambda r: r.data.metrics["final_val_spearman_cosine"])
    assert yaml.safe_load(results.read_text())["best_value"] == pytest.approx(
        best.data.metrics["final_val_spearman_cosine"]
    )
    assert parent.data.tags["stembed.best_run_id"] == best.info.run_id


def test_slurm_launcher_path_through_submitit_local(tmp_path: Path) -> None:
    """hydra/launcher=slurm_local: submitit pickles each job and runs it in its own process."""
    result = run_stembed(["train", "-m", *TINY, "loss=cosine,cosent", "hydra/launcher=slurm_local"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    uri = store_uri(tmp_path)
    parent, jobs = sweep_parent(uri), job_runs(uri)
    assert len(jobs) == 2 and {r.info.status for r in jobs} == {"FINISHED"}
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parent.info.run_id}
    assert parent.data.params["sweep_launcher"] == "LocalLauncher"
    assert parent.data.metrics["sweep_jobs_finished"] == 2
    (submitit,) = (tmp_path / "outputs" / "multirun").glob("*/*/.submitit")
    assert len(list(submitit.glob("*/*_submitted.pkl"))) == 2  # the pickled jobs
    assert len(list(submitit.glob("*/*_result.pkl"))) == 2


def test_slurm_launcher_config() -> None:
    from hydra import compose, initialize_config_dir

    from stembed.config import conf_dir

    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("train", ["hydra/launcher=slurm", "+experiment=demo"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.timeout_min, launcher.gpus_per_node, launcher.tasks_per_node) == (240, 1, 1)
    assert "partition" in launcher and "account" in launcher
    from stembed.recipe.configs import groups

    assert groups()["hydra/launcher"] == ["local_parallel", "slurm", "slurm_local"]  # `stembed config list`


def test_parent_run_found_without_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a cluster that does not pass the environment on, jobs read the parent id from the sweep dir."""
    from stembed.scale.sweep import PARENT_ENV, PARENT_FILE, parent_run_id

    monkeypatch.delenv(PARENT_ENV, raising=False)
    assert parent_run_id(tmp_path) is None
    (tmp_path / PARENT_FILE).write_text("abc123\n")
    assert parent_run_id(tmp_path) == "abc123"
    monkeypatch.setenv(PARENT_ENV, "fromenv")
    assert parent_run_id(tmp_path) == "fromenv"


def test_processes_opening_a_new_sqlite_store_at_once(tmp_path: Path) -> None:
    """Three processes connect to one new store together: one schema, one experiment, no error.
    (Without stembed's lock, two of three typically fail: "duplicate column name", failed migration.)"""
    code = (
        "import sys, time, pathlib\n"
        "import mlflow\n"
        "from stembed.tracking.run import Tracker\n"
        "print('ready', flush=True)\n"
        "go = pathlib.Path(sys.argv[2])\n"
        "while not go.exists(): time.sleep(0.001)\n"
        "print(Tracker(sys.argv[1], 'race').connect())\n"
    )
    uri, go = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, uri, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=stembed_env(),
        )
        for _ in range(3)
    ]
    assert [p.stdout.readline().strip() for p in processes] == ["ready"] * 3  # type: ignore[union-attr]
    go.touch()  # all three start opening the store at once
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], [err[-1500:] for _, err in outputs]
    assert len({out.strip() for out, _ in outputs}) == 1  # the same experiment id for all

    from mlflow.tracking import MlflowClient

    assert [e.name for e in MlflowClient(tracking_uri=uri).search_experiments()].count("race") == 1


def test_database_is_locked_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    from stembed.tracking import store as tracking

    monkeypatch.setattr(tracking.time, "sleep", lambda seconds: None)
    calls = []

    def flaky(value: int) -> int:
        calls.append(value)
        if len(calls) < 3:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return value * 2

    assert tracking.retry_when_locked(flaky, 21) == 42 and len(calls) == 3
    with pytest.raises(ValueError, match="other"):
        tracking.retry_when_locked(lambda: (_ for _ in ()).throw(ValueError("other")))


def test_what_a_sweep_job_returns_to_the_sweeper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The optimized metric; None (a failed Optuna trial) for an error or a NaN, which crash Optuna's
    sweeper; in a single run the error propagates."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from stembed.config import conf_dir
    from stembed.scale.sweep import PARENT_ENV, run_job

    monkeypatch.delenv(PARENT_ENV, raising=False)

    def crash(cfg: object) -> float:
        raise RuntimeError("out of memory")

    for mode, expected in (("MULTIRUN", (0.5, None, None)), ("RUN", (0.5, "nan", RuntimeError))):
        overrides = [
            f"hydra.mode={mode}",
            f"hydra.sweep.dir={tmp_path}",
            "hydra.job.num=3",
            "+experiment=demo",
        ]
        with initialize_config_dir(str(conf_dir()), version_base="1.3"):
            cfg = compose("train", overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        assert run_job(lambda cfg: 0.5, cfg) == expected[0]
        nan = run_job(lambda cfg: float("nan"), cfg)
        assert nan is None if expected[1] is None else nan != nan
        if expected[2] is None:
            assert run_job(crash, cfg) is None
        else:
            with pytest.raises(RuntimeError, match="out of memory"):
                run_job(crash, cfg)
