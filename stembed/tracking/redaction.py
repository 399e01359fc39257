"""Credential redaction for everything stembed writes: MLflow, the run directory and the console.

A value is a credential when its key names one (`hf_token`, `accessToken`, `MLFLOW_TRACKING_PASSWORD`),
when it is the password in a URL (`http://user:PASSWORD@host`), or when it is the value of such a key
in the environment or the config (then it is masked wherever it appears, e.g. inside a data path).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

# Anywhere in a key, any case: hub_token, accessToken, mytoken, DB_PASSWORD, client_secret, apiKey.
# Not `tokenizer` or `tokens` (a count), and not `PWD` (the shell's working directory).
_SECRET_KEY = re.compile(
    r"token(?!s|iz)|passw(or)?d|secret|api_?key|credential|private_?key|auth_?header|session_?key",
    re.IGNORECASE,
)
_URI_PASSWORD = re.compile(r"(://[^/:@\s]+:)([^/@\s]+)(@)")
_NOT_SECRETS = {"none", "null", "true", "false", "***"}
MASK = "***"
MAX_SCRUBBED_BYTES = 200_000_000  # larger files are not searched
WEIGHT_SUFFIXES = {".safetensors", ".pt", ".pth", ".onnx", ".npy", ".npz", ".arrow", ".parquet"}  # no text


def is_secret_key(key: str) -> bool:
    """Whether the last part of a dotted key names a credential."""
    return bool(_SECRET_KEY.search(str(key).rsplit(".", 1)[-1]))


def mask_secret(key: str, value: str) -> str:
    """'***' for values of credential-like keys; URIs keep everything but their password."""
    if is_secret_key(key) and value not in ("None", ""):
        return MASK
    return mask_url_passwords(value)


def mask_url_passwords(text: str) -> str:
    """text with the password of every URL in it masked: how a message names a store or quotes an error."""
    return _URI_PASSWORD.sub(rf"\1{MASK}\3", text)


def mask_overrides(overrides: list[str]) -> list[str]:
    """Command-line overrides with credential values masked (they become tags and the card's command)."""
    masked = []
    for override in overrides:
        key, sep, value = override.partition("=")
        masked.append(f"{key}{sep}{mask_secret(key.lstrip('+~'), value)}" if sep else override)
    return masked


def url_passwords(text: str) -> set[str]:
    """The passwords of every URL with user info in text."""
    return {match.group(2) for match in _URI_PASSWORD.finditer(text)}


def secret_values(
    config: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Iterable[str] = (),
) -> set[str]:
    """Values to keep out of every output: those of credential-like environment variables, config keys
    and command-line overrides, and every URL password found in any of them."""
    environ = os.environ if environ is None else environ
    found: set[str] = set()
    for key, value in environ.items():
        found |= {value} if is_secret_key(key) else url_passwords(value)
    for override in overrides:  # `key=value`, or any other argument (`--tracking-uri URI`)
        key, sep, value = override.lstrip("+~").partition("=")
        found |= {value} if sep and is_secret_key(key) else url_passwords(override)
    stack: list[Any] = [config or {}]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, Mapping) else enumerate(node)
        for key, value in items:
            if isinstance(value, Mapping | list | tuple):
                stack.append(value)
            elif value is not None and isinstance(key, str) and is_secret_key(key):
                found.add(str(value))
            elif isinstance(value, str):
                found |= url_passwords(value)
    return {value for value in found if len(value) >= 4 and value.lower() not in _NOT_SECRETS}


def redact(text: str, secrets: set[str]) -> str:
    """text with each of these credential values, and any URL password, replaced by ***."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return mask_url_passwords(text)


def redact_file(path: Path, secrets: set[str]) -> bool:
    """Rewrite one file without these credentials; return whether it changed.

    Text files get '***'; binary files (a pickled training_args.bin) get '*' of the same length, so
    their structure stays valid.
    """
    try:
        if path.suffix in WEIGHT_SUFFIXES or not path.is_file() or path.is_symlink():
            return False
        if path.stat().st_size > MAX_SCRUBBED_BYTES:
            return False
        data = path.read_bytes()
    except OSError:
        return False
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        new = data
        for secret in sorted(secrets, key=len, reverse=True):
            raw = secret.encode()
            new = new.replace(raw, b"*" * len(raw))
    else:
        new = redact(text, secrets).encode("utf-8")
    if new == data:
        return False
    path.write_bytes(new)
    return True


def scrub_directory(directory: Path, secrets: set[str]) -> int:
    """Redact every file under directory (the run directory, the model folder); return how many changed."""
    if not directory.is_dir():
        return 0
    return sum(redact_file(path, secrets) for path in directory.rglob("*"))


class RedactingStream:
    """A console stream that masks credentials in everything written to it."""

    def __init__(self, stream: TextIO, secrets: set[str]) -> None:
        self.stream = stream
        self.secrets = secrets

    def write(self, text: str) -> int:
        self.stream.write(redact(text, self.secrets))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def redact_console(secrets: set[str]) -> None:
    """Mask these credentials in all further output to stdout and stderr (prints, logging, progress bars).

    Installed once per process; later calls add secrets. Logging handlers already bound to the original
    streams (Hydra's console handler) are pointed at the redacting ones.
    """

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if isinstance(stream, RedactingStream):
            stream.secrets |= secrets
            continue
        wrapped = RedactingStream(stream, set(secrets))
        setattr(sys, name, wrapped)
        loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
        for logger in loggers:
            for handler in getattr(logger, "handlers", []):
                if type(handler) is logging.StreamHandler and handler.stream is stream:
                    handler.setStream(wrapped)
