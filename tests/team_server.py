"""A throwaway team setup on loopback for tests: a PostgreSQL cluster and an MLflow server using it.

PostgreSQL comes from Debian's `postgresql` package (`make postgres` installs it). It refuses to run
as root, so as root the cluster belongs to the `postgres` user and its commands run through `runuser`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_installed() -> bool:
    try:
        postgres_bin()
    except RuntimeError:
        return False
    return True


def postgres_bin() -> Path:
    """The directory with initdb and pg_ctl (Debian keeps them out of PATH)."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if candidates:
        return candidates[-1].parent
    if initdb := shutil.which("initdb"):
        return Path(initdb).parent
    raise RuntimeError("PostgreSQL server binaries not found: run `make postgres` (Debian's postgresql).")


@contextmanager
def postgres_database(name: str = "mlflow") -> Iterator[str]:
    """Start a fresh PostgreSQL cluster on a free loopback port; yield a URI of an empty database."""
    bindir = postgres_bin()
    as_root = os.geteuid() == 0
    run_as = ["runuser", "-u", "postgres", "--"] if as_root else []
    home = Path(tempfile.mkdtemp(prefix="stembed-pg-"))  # not under pytest's root-only tmp dirs
    password, port = secrets.token_hex(8), free_port()
    (home / "pw").write_text(password)
    if as_root:
        for path in (home, home / "pw"):
            shutil.chown(path, "postgres")

    def run(*command: str) -> None:
        subprocess.run([*run_as, *command], check=True, capture_output=True, text=True, timeout=120)

    data = home / "data"
    run(str(bindir / "initdb"), "-D", str(data), "-U", "stembed", f"--pwfile={home / 'pw'}",
        "--auth=scram-sha-256", "-E", "UTF8")  # fmt: skip
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(home / "log"), "-w", "start")
    try:
        env = {**os.environ, "PGPASSWORD": password}
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "stembed", "-d", "postgres",
             "-c", f"CREATE DATABASE {name}"],
            check=True, capture_output=True, env=env, timeout=60,
        )  # fmt: skip
        yield f"postgresql://stembed:{password}@127.0.0.1:{port}/{name}"
    finally:
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(home, ignore_errors=True)


def psql(uri: str, query: str) -> str:
    """One query's rows, unaligned, through the psql client."""
    out = subprocess.run(
        ["psql", uri, "-At", "-c", query], check=True, capture_output=True, text=True, timeout=60
    )
    return out.stdout.strip()


@contextmanager
def mlflow_server(backend_uri: str, artifacts: Path) -> Iterator[str]:
    """`mlflow server` on a free loopback port, PostgreSQL as its store, serving artifacts from a folder."""
    port = free_port()
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    command = [
        mlflow, "server", "--backend-store-uri", backend_uri,
        "--artifacts-destination", artifacts.as_uri(), "--serve-artifacts",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    log = artifacts.parent / "mlflow-server.log"
    with log.open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # the server and the uvicorn worker it started
            try:
                server.wait(timeout=3)
            except subprocess.TimeoutExpired:  # a throwaway server need not shut down gracefully
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=30)
