"""The command line: the typer app and one module per command family.

Keep imports light: `stembed --help` must not import torch.
"""

import importlib

import typer

from stembed import __version__
from stembed.cli.app import app, main

# each module registers its commands, in this order
for _family in ("train", "data", "runs", "model", "config"):
    importlib.import_module(f"stembed.cli.{_family}")


@app.command()
def version() -> None:
    """Print stembed's version."""
    typer.echo(__version__)


__all__ = ["app", "main"]
