"""Decide once per process, before huggingface_hub is imported, whether the Hugging Face Hub is reachable.

huggingface_hub reads HF_HUB_OFFLINE once, when it is first imported. Without a decision made
first, a machine with no hub access retries every file lookup for about a minute. So every command
that loads a model or data calls `decide_offline()` before anything imports sentence_transformers,
transformers or datasets.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
HUB_LIBRARIES = ("huggingface_hub", "transformers", "sentence_transformers", "datasets")
PROBE_TIMEOUT = 3.0  # seconds; a refused or unresolvable host answers at once
_reachable: bool | None = None  # this process's answer, so that several callers probe once


def hub_is_offline() -> bool:
    """True when the user (or `decide_offline`) asked for offline mode (HF_HUB_OFFLINE=1 and friends)."""
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes", "on") for name in OFFLINE_VARIABLES)


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_reachable(timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether the hub endpoint answers one HTTP HEAD request.

    urllib honours HTTPS_PROXY/HTTP_PROXY/NO_PROXY, as huggingface_hub does; a raw TCP connect
    would call a hub behind a proxy unreachable. Any HTTP answer, even an error status, means reachable.
    """
    request = urllib.request.Request(f"{hub_endpoint()}/api/health", method="HEAD")
    try:
        with urllib.request.build_opener().open(request, timeout=timeout):  # proxies as set now
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def decide_offline() -> bool:
    """Switch the HF libraries to offline mode when the hub cannot be reached; return offline-ness.

    Idempotent: the first call decides (and sets the variables for child processes too, e.g. sweep
    workers). Called after a hub library was imported, it cannot take effect: it says so.
    """
    global _reachable
    if hub_is_offline():
        return True
    if _reachable is None:
        _reachable = hub_reachable()
    if _reachable:
        return False
    for name in OFFLINE_VARIABLES:
        os.environ[name] = "1"
    if imported := [name for name in HUB_LIBRARIES if name in sys.modules]:
        print(
            f"stembed: warning: the hub is unreachable but {imported[0]} was imported before stembed could "
            "switch to offline mode; set HF_HUB_OFFLINE=1 to skip its retries.",
            file=sys.stderr,
        )
    return True
