"""Where the MLflow store is and how processes share it (locks, retries, a server probe)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

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


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on <db>.lock while a process opens an SQLite store.

    The first process to open a new store creates its schema; two doing it at once corrupt it
    ("duplicate column name", failed migrations), and two jobs can race to create one experiment.
    """
    if not uri.startswith("sqlite:///"):
        yield
        return
    from filelock import FileLock

    with FileLock(uri.removeprefix("sqlite:///") + ".lock"):
        yield


def check_server_reachable(uri: str, timeout: float = 5.0) -> None:
    """For an http(s) store, one request to the server's /health: MLflow's client retries for minutes.

    urllib honours HTTPS_PROXY/HTTP_PROXY/NO_PROXY, as MLflow's client does. Any HTTP answer means
    a server is there (its own errors are MLflow's to report).
    """
    import urllib.error
    import urllib.request
    from urllib.parse import urlparse

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
