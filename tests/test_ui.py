"""`stembed ui` serves the project's store on loopback; headless Chromium shows the trained runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import STEMBED, all_runs, require, stembed_env, store_uri

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


@pytest.fixture(scope="module")
def ui(tiny_run: tuple[Path, subprocess.CompletedProcess[str]]) -> Iterator[tuple[Path, str]]:
    """`stembed ui` on a free loopback port over the tiny run's store; yields (cwd, base URL)."""
    cwd, _ = tiny_run
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
        yield cwd, base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_ui_serves_the_runs_of_the_embedded_store(ui: tuple[Path, str]) -> None:
    _, base = ui
    with urllib.request.urlopen(
        f"{base}/api/2.0/mlflow/experiments/search?max_results=10", timeout=10
    ) as reply:
        experiments = json.load(reply)["experiments"]
    demo = next(e for e in experiments if e["name"] == "demo")
    assert {"key": "mlflow.experimentKind", "value": "custom_model_development"} in demo["tags"]


def test_browser_shows_runs_sorted_by_their_metric(ui: tuple[Path, str], tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    require(chromium, "Debian's chromium (make browser)")
    cwd, base = ui
    (run,) = all_runs(store_uri(cwd))
    sort = "orderByKey=metrics.%60final_val_spearman_cosine%60"
    page = f"{base}/#/experiments/{run.info.experiment_id}/runs?{sort}"
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", page], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert run.info.run_name in dom  # the trained run is listed
    assert "final_val_spearman_cosine" in dom  # ... sorted by its metric
    run_page = f"{base}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    run_dom = subprocess.run(
        [chromium, *flags, "--dump-dom", run_page], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    value = run.data.metrics["final_val_spearman_cosine"]
    assert "final_val_spearman_cosine" in run_dom and f"{value:.4f}"[:5] in run_dom  # the metrics table
    Path("outputs").mkdir(exist_ok=True)
    for name, url in (("ui-experiment.png", page), ("ui-run.png", run_page)):
        screenshot = (Path("outputs") / name).resolve()
        command = [chromium, *flags, f"--screenshot={screenshot}", url]
        subprocess.run(command, capture_output=True, timeout=120, check=True)
        assert screenshot.stat().st_size > 10_000
