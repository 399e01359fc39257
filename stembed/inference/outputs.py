"""Output paths checked before any work, so a long command never fails at its last step."""

from __future__ import annotations

import os
from pathlib import Path

from stembed.errors import StembedError


def check_writable_output(output: Path, option: str, directory: bool) -> None:
    """Fail before any work when the output cannot be written (read-only, or a file where a folder goes)."""
    if directory and output.exists() and not output.is_dir():
        raise StembedError(f"{option} {output}: is an existing file; give a directory (created if missing).")
    if not directory and output.is_dir():
        raise StembedError(f"{option} {output}: is a directory; give a file name.")
    parent = output if directory else output.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StembedError(
            f"{option} {output}: cannot create {parent} ({err.strerror}). Pick a writable place."
        ) from err
    probe = parent / f".stembed-write-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise StembedError(
            f"{option} {output}: cannot write in {parent} ({err.strerror}). Pick a writable place."
        ) from err
