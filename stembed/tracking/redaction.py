"""Credential redaction: values of credential-like keys, URL passwords, known secret values."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

_SECRET_KEY = re.compile(r"(^|_)(token|password|passwd|secret|api_?key|credentials?)(_|$)", re.IGNORECASE)


_URI_PASSWORD = re.compile(r"(://[^/:@\s]+:)[^/@\s]+@")


def mask_secret(key: str, value: str) -> str:
    """'***' for values of credential-like keys; URIs keep everything but their password."""
    if _SECRET_KEY.search(key.rsplit(".", 1)[-1]) and value not in ("None", ""):
        return "***"
    return _URI_PASSWORD.sub(r"\1***@", value)


def mask_overrides(overrides: list[str]) -> list[str]:
    """Command-line overrides with credential values masked (they become tags and the card's command)."""
    masked = []
    for override in overrides:
        key, sep, value = override.partition("=")
        masked.append(f"{key}{sep}{mask_secret(key.lstrip('+~'), value)}" if sep else override)
    return masked


def secret_values(
    config: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> set[str]:
    """Values to keep out of MLflow: those of credential-like environment variables and config keys."""
    environ = os.environ if environ is None else environ
    found = {value for key, value in environ.items() if _SECRET_KEY.search(key)}
    stack = [config or {}]
    while stack:
        for key, value in stack.pop().items():
            if isinstance(value, Mapping):
                stack.append(value)
            elif value is not None and _SECRET_KEY.search(str(key)):
                found.add(str(value))
    return {value for value in found if len(value) >= 4}  # never mask trivial strings like "true"


def redact(text: str, secrets: set[str]) -> str:
    """text with each of these credential values replaced by ***."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
