"""Online or offline is decided before any hub library loads, by an HTTP request that honours proxies."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import run_stembed, stembed_env

from stembed import hub


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket closes


class _AnswerEverything(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass


def test_probe_goes_through_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AnswerEverything)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", "http://hub.invalid")  # unresolvable: only a proxy reaches it
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert not hub.hub_reachable(timeout=2)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_port}")
        assert hub.hub_reachable(timeout=2)
    finally:
        server.shutdown()


def test_unreachable_hub_switches_to_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in hub.OFFLINE_VARIABLES:
        monkeypatch.setenv(name, "0")  # not offline; restored after the test (decide_offline sets them)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setattr(hub, "_reachable", None)
    started = time.monotonic()
    assert hub.decide_offline() and hub.hub_is_offline()
    assert time.monotonic() - started < 2  # a refused connection answers at once


@pytest.mark.slow
def test_new_user_without_hub_access_waits_for_no_retries(tmp_path: Path) -> None:
    """The demo with the real all-MiniLM-L6-v2, HF_HUB_OFFLINE unset and the hub unreachable."""
    env = stembed_env(HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}")
    for name in hub.OFFLINE_VARIABLES:
        env.pop(name, None)
    started = datetime.now()
    args = ["train", "+experiment=demo", "trainer=smoke", "tracking.log_model=false"]
    result = run_stembed(args, tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "Retrying" not in output and "thrown while requesting" not in output
    (log,) = tmp_path.glob("outputs/runs/*/*/train.log")
    loaded = next(line for line in log.read_text().splitlines() if "Loading SentenceTransformer" in line)
    seconds = (datetime.strptime(loaded[1:24], "%Y-%m-%d %H:%M:%S,%f") - started).total_seconds()
    assert seconds < 30, loaded  # hub retries alone take over a minute; loading itself takes seconds
