"""`stembed ui` serves the project's store on loopback; headless Chromium shows the trained runs, their
datasets, and MLflow's comparison of two runs of a sweep (screenshots in outputs/ui-*.png)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import STEMBED, all_runs, require, stembed_env, store_uri, sweep_job_runs

pytestmark = pytest.mark.e2e  # real training runs in subprocesses: `make test`, not test-fast

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1600,1000",
    "--virtual-time-budget=20000",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(cwd: Path) -> Iterator[str]:
    """`stembed ui` on a free loopback port over the store in cwd; yields the base URL."""
    port = free_port()
    server = subprocess.Popen(
        [STEMBED, "ui", "--port", str(port)],
        cwd=cwd,
        env=stembed_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=5).close()
                break
            except OSError:
                time.sleep(1)
        assert server.poll() is None, server.stdout.read().decode()[-3000:]
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def ui(tiny_run: tuple[Path, subprocess.CompletedProcess[str]]) -> Iterator[tuple[Path, str]]:
    """The UI over the tiny run's store; yields (cwd, base URL)."""
    cwd, _ = tiny_run
    with serving(cwd) as base:
        yield cwd, base


@pytest.fixture
def chromium(tmp_path: Path) -> Callable[..., str]:
    """Headless Chromium: chromium(url) is the page's DOM after its scripts ran;
    chromium(url, screenshot=NAME) also saves outputs/NAME."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    require(binary, "Debian's chromium (make browser)")
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]

    def load(url: str, screenshot: str | None = None) -> str:
        dom = subprocess.run(
            [binary, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
        ).stdout
        if screenshot:
            Path("outputs").mkdir(exist_ok=True)
            path = (Path("outputs") / screenshot).resolve()
            command = [binary, *flags, f"--screenshot={path}", url]
            subprocess.run(command, capture_output=True, timeout=120, check=True)
            assert path.stat().st_size > 10_000
        return dom

    return load


def test_ui_serves_the_runs_of_the_embedded_store(ui: tuple[Path, str]) -> None:
    _, base = ui
    with urllib.request.urlopen(
        f"{base}/api/2.0/mlflow/experiments/search?max_results=10", timeout=10
    ) as reply:
        experiments = json.load(reply)["experiments"]
    demo = next(e for e in experiments if e["name"] == "demo")
    assert {"key": "mlflow.experimentKind", "value": "custom_model_development"} in demo["tags"]


def test_browser_shows_runs_sorted_by_their_metric_and_their_datasets(
    ui: tuple[Path, str], chromium: Callable[..., str]
) -> None:
    cwd, base = ui
    (run,) = all_runs(store_uri(cwd))
    sort = "orderByKey=metrics.%60final_val_spearman_cosine%60"
    page = f"{base}/#/experiments/{run.info.experiment_id}/runs?{sort}"
    dom = chromium(page, screenshot="ui-experiment.png")
    assert run.info.run_name in dom  # the trained run is listed
    assert "final_val_spearman_cosine" in dom  # ... sorted by its metric
    train_set = next(d.dataset for d in run.inputs.dataset_inputs if _context(d) == "training")
    assert train_set.name in dom  # ... with its training set in the Dataset column
    run_page = f"{base}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    run_dom = chromium(run_page, screenshot="ui-run.png")
    value = run.data.metrics["final_val_spearman_cosine"]
    assert "final_val_spearman_cosine" in run_dom and f"{value:.4f}"[:5] in run_dom  # the metrics table
    shown = re.escape(f"{train_set.name} ({train_set.digest}) training")
    assert re.search(rf"Datasets {shown}", _text(run_dom))  # the run page's Datasets section


def test_browser_compares_two_runs_of_a_sweep(
    tiny_sweep: tuple[Path, subprocess.CompletedProcess[str]], chromium: Callable[..., str]
) -> None:
    """MLflow's compare view of the sweep's two jobs: both runs, the parameter the sweep varied, and
    the metric it moved."""
    cwd, _ = tiny_sweep
    runs = sorted(sweep_job_runs(store_uri(cwd)), key=lambda r: r.data.tags["stembed.sweep_job"])
    ids = json.dumps([r.info.run_id for r in runs], separators=(",", ":"))
    experiment = json.dumps([runs[0].info.experiment_id])
    with serving(cwd) as base:
        page = f"{base}/#/compare-runs?runs={quote(ids)}&experiments={quote(experiment)}"
        text = _text(chromium(page, screenshot="ui-compare.png"))
    assert "Comparing 2 Runs" in text
    for run in runs:
        assert run.info.run_id in text and run.info.run_name in text
        assert run.data.params["loss._target_"] in text  # CosineSimilarityLoss vs CoSENTLoss
    metric = [r.data.metrics["final_val_spearman_cosine"] for r in runs]
    assert metric[0] != metric[1] and "final_val_spearman_cosine" in text
    assert all(f"{value:.3f}" in text for value in metric)  # the compare view rounds to 3 places


def _context(dataset_input: Any) -> str:
    return next((t.value for t in dataset_input.tags if t.key == "mlflow.data.context"), "")


def _text(dom: str) -> str:
    """The page's visible text, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))
