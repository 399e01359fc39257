"""User-facing errors: one paragraph that names the field, the value and the fix."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # as a shell reports a Ctrl-C


class StembedError(Exception):
    """A problem with the user's input or environment, reported without a traceback (exit code 2)."""


def debug_requested() -> bool:
    """Whether the user asked for tracebacks (`--debug`, STEMBED_DEBUG=1 or HYDRA_FULL_ERROR=1)."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1" or os.environ.get("STEMBED_DEBUG") == "1"


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """' Did you mean X?' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""
