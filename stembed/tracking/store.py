"""Where the MLflow store is and how processes share it (locks, retries, a server probe)."""

from __future__ import annotations

import os
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from filelock import FileLock

from stembed.errors import StembedError
from stembed.tracking.redaction import mask_secret

LOCKED_RETRIES = 8  # an SQLite write that finds the database locked is retried, backing off up to ~25 s


T = TypeVar("T")


def default_tracking_uri(output_root: Path) -> str:
    """The embedded store: SQLite in <output_root>/mlflow.db (absolute, so any cwd finds it)."""
    return f"sqlite:///{(output_root / 'mlflow.db').resolve()}"


def resolve_tracking_uri(configured: str | None, output_root: Path) -> str:
    """tracking.uri from the command line wins, then $MLFLOW_TRACKING_URI, then the embedded store."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(output_root)


def retry_when_locked(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """call(*args, **kwargs), retried with backoff while an SQLite store answers "database is locked".

    Parallel jobs share one SQLite file; SQLite lets one writer in at a time and, when two
    transactions would deadlock, fails one of them at once instead of waiting. The write is retried.
    """
    attempt = 0
    while True:
        try:
            return call(*args, **kwargs)
        except Exception as err:
            if attempt >= LOCKED_RETRIES or "database is locked" not in str(err):
                raise
            time.sleep(0.1 * 2**attempt)
            attempt += 1


MLFLOW_TABLES = {"experiments", "runs", "alembic_version"}


def sqlite_path(uri: str) -> Path | None:
    """The database file of an sqlite:/// URI, else None."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def check_sqlite_store(uri: str, read_only: bool) -> None:
    """An SQLite store must be an MLflow database stembed can open; read-only commands (`stembed runs`)
    never create or migrate one, since MLflow adds its tables to any database it opens."""

    path = sqlite_path(uri)
    if path is None:
        return
    shown = mask_secret("uri", uri)
    if not path.exists():
        if read_only:
            raise StembedError(
                f"tracking store {shown} does not exist. Run `stembed train` here first, or pass "
                "--tracking-uri (or set MLFLOW_TRACKING_URI) to the store your runs are in."
            )
        return
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as err:
        raise StembedError(
            f"tracking store {shown}: {path} is not a readable SQLite database ({err}). Point the tracking "
            "URI at your MLflow store, or move the damaged file away (a new store starts empty)."
        ) from err
    if (tables or read_only) and not tables >= MLFLOW_TABLES:
        raise StembedError(
            f"tracking store {shown}: {path} is not an MLflow store (its tables: {sorted(tables)[:8]}); "
            "stembed does not add MLflow's tables to another application's database. Point the tracking URI "
            "at your MLflow store (default: outputs/mlflow.db)."
        )
    if not read_only:
        _check_writable(path, shown)


def _check_writable(path: Path, shown: str) -> None:
    """SQLite silently opens a file it cannot write read-only and fails later, deep in MLflow."""
    try:
        path.open("r+b").close()  # opens for writing, changes nothing
    except OSError as err:
        raise StembedError(
            f"tracking store {shown}: cannot write {path} ({err.strerror}). Make the file and its directory "
            "writable, or set paths.output_root / tracking.uri to a store you can write to."
        ) from err


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on <db>.lock while a process opens an SQLite store.

    The first process to open a new store creates its schema; two doing it at once corrupt it
    ("duplicate column name", failed migrations), and two jobs can race to create one experiment.
    """
    if not uri.startswith("sqlite:///"):
        yield
        return

    lock = Path(uri.removeprefix("sqlite:///") + ".lock")
    try:
        lock.open("a").close()  # the lock file must be creatable: a read-only directory is named here
    except OSError as err:
        raise StembedError(
            f"tracking store {mask_secret('uri', uri)}: cannot create the lock file {lock} ({err.strerror}). "
            "Make that directory writable, or set paths.output_root / tracking.uri to a writable place."
        ) from err
    with FileLock(str(lock)):
        yield


def check_server_reachable(uri: str, timeout: float = 5.0) -> None:
    """For an http(s) store, one request to the server's /health: MLflow's client retries for minutes.

    urllib honours HTTPS_PROXY/HTTP_PROXY/NO_PROXY, as MLflow's client does. Any HTTP answer means
    a server is there (its own errors are MLflow's to report).
    """
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    health = f"{parsed.scheme}://{parsed.hostname}:{port}{parsed.path.rstrip('/')}/health"  # no userinfo
    request = urllib.request.Request(health)
    try:
        with urllib.request.build_opener().open(request, timeout=timeout):
            return
    except urllib.error.HTTPError:
        return
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise StembedError(
            f"tracking.uri={mask_secret('uri', uri)}: no MLflow server answers at {parsed.hostname}:{port} "
            f"({getattr(reason, 'strerror', None) or reason}). Start the server (mlflow server --host "
            f"127.0.0.1 --port {port}), fix the URI, or unset tracking.uri and MLFLOW_TRACKING_URI to use "
            "the embedded store."
        ) from err
