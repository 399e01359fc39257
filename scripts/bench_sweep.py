"""Wall time of a 4-job grid sweep, one job at a time vs two joblib workers, and what landed in MLflow.

Usage: .venv/bin/python scripts/bench_sweep.py [--epochs N]
The tiny model on the demo data (offline); --epochs 0 uses trainer=smoke's 4 steps per job.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time

from benchlib import STEMBED

GRID = ["loss=cosine,cosent", "trainer.learning_rate=0.1,0.5"]
LAUNCHERS = {
    "basic (1 job at a time)": [],
    "joblib, n_jobs=2": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
}


def sweep(extra: list[str], epochs: int) -> tuple[float, list]:  # type: ignore[type-arg]
    """Run the grid in a fresh directory; (wall seconds, the MLflow runs of the sweep)."""
    from mlflow.tracking import MlflowClient

    args = ["train", "-m", "+experiment=demo", "model=tiny", "trainer=smoke", "tracking.log_model=false"]
    if epochs:
        args += ["trainer.max_steps=-1", f"trainer.num_train_epochs={epochs}", "trainer.logging_steps=20"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as cwd:
        started = time.perf_counter()
        subprocess.run([STEMBED, *args, *GRID, *extra], cwd=cwd, env=env, check=True, capture_output=True)
        seconds = time.perf_counter() - started
        client = MlflowClient(tracking_uri=f"sqlite:///{cwd}/outputs/mlflow.db")
        experiments = [e.experiment_id for e in client.search_experiments()]
        return seconds, client.search_runs(experiments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=60, help="epochs per job (0: trainer=smoke)")
    epochs = parser.parse_args().epochs
    print(f"4 jobs ({' x '.join(GRID)}), tiny model, {epochs or 'smoke: 4 steps'} epochs per job")
    for name, extra in LAUNCHERS.items():
        seconds, runs = sweep(extra, epochs)
        print(f"\n{name}: {seconds:.1f} s wall")
        for run in sorted(runs, key=lambda r: r.data.tags.get("stembed.sweep_job", "-")):
            metrics = run.data.metrics
            if run.data.tags.get("stembed.sweep") == "parent":
                counts = [int(metrics[k]) for k in ("sweep_jobs", "sweep_jobs_finished", "sweep_jobs_failed")]
                print(f"  parent {run.info.run_id[:8]} {run.info.status:<8} jobs/finished/failed {counts}")
                continue
            params = run.data.params
            print(
                f"  job {run.data.tags['stembed.sweep_job']} {run.info.run_id[:8]} {run.info.status:<8} "
                f"{params['loss._target_'].rsplit('.')[-1]:<21} lr={params['trainer.learning_rate']:<4} "
                f"spearman {metrics['baseline_val_spearman_cosine']:.4f} -> "
                f"{metrics['final_val_spearman_cosine']:.4f}  "
                f"{(run.info.end_time - run.info.start_time) / 1000:.1f} s in run"
            )


if __name__ == "__main__":
    main()
