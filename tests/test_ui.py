"""`stembed ui` serves the project's store on loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from conftest import STEMBED, stembed_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ui_serves_the_runs_of_the_embedded_store(
    tiny_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
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
    url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=10"
    try:
        body = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    body = json.load(response)
                break
            except OSError:
                time.sleep(1)
        assert body is not None, (
            server.stdout.read().decode()[-3000:] if server.poll() is not None else "no answer"
        )
        assert "demo" in [e["name"] for e in body["experiments"]]
    finally:
        import os
        import signal

        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
