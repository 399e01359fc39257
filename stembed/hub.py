"""Decide once per process whether the Hugging Face Hub is reachable, before heavy imports."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def hub_is_offline() -> bool:
    """True when the user asked for offline mode (HF_HUB_OFFLINE=1 and friends)."""
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes", "on") for name in OFFLINE_VARIABLES)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub endpoint opens within `timeout` seconds."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_offline_mode_if_unreachable() -> bool:
    """Switch the HF libraries to offline mode when the hub cannot be reached; return offline-ness.

    Without this, every hub lookup on a machine with no internet retries for about a minute.
    Must run before huggingface_hub is imported (it reads the variables at import).
    """
    if hub_is_offline():
        return True
    if hub_reachable():
        return False
    for name in OFFLINE_VARIABLES:
        os.environ[name] = "1"
    return True
