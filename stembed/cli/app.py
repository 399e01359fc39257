"""The `stembed` command. Keep imports light: `stembed --help` must not import torch."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from stembed.errors import EXIT_USAGE, StembedError
from stembed.internals import exit_without_teardown
from stembed.tracking.redaction import mask_url_passwords, redact_console, secret_values

app = typer.Typer(
    help="Fine-tune sentence-embedding models: Hydra configs in, MLflow runs and model cards out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


TRACKING_URI = typer.Option(
    None, "--tracking-uri", help="Default: $MLFLOW_TRACKING_URI, else outputs/mlflow.db."
)


@contextmanager
def user_errors() -> Iterator[None]:
    """Print a StembedError as one paragraph and exit 2 (traceback with STEMBED_DEBUG=1)."""
    try:
        yield
    except StembedError as err:
        if os.environ.get("STEMBED_DEBUG") == "1":
            raise
        typer.echo(f"stembed: error: {mask_url_passwords(str(err))}", err=True)  # a store's password
        raise typer.Exit(EXIT_USAGE) from None


def main() -> None:
    """Console-script entry point: run the command, then exit without the interpreter's teardown.

    Every command's console output is redacted (stembed.tracking.redaction): the credentials of the
    environment and the command line (a password in --tracking-uri), and the password of any URL, are
    masked in what stembed, MLflow ("View run ... at: URL"), logging and tracebacks print.
    """
    redact_console(secret_values(overrides=sys.argv[1:]))
    try:
        app()
    except SystemExit as done:
        _exit_now(done.code)
    _exit_now(0)


def _exit_now(code: int | str | None) -> None:
    """Exit as Python would; after torch was used, without the interpreter's slow teardown."""
    if isinstance(code, str):  # sys.exit("message") prints the message, as Python does
        print(code, file=sys.stderr)
        code = 1
    code = code or 0
    if "torch" not in sys.modules:  # nothing slow to skip (--help, config commands)
        sys.exit(code)
    exit_without_teardown(code)


if __name__ == "__main__":
    main()
