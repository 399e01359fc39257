"""Data stages on their own: `mine`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stembed.cli.app import TRACKING_URI, app, user_errors
from stembed.hub import decide_offline


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def mine(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("--output", "-o", help="FILE.parquet for the mined rows.")],
    no_log: Annotated[bool, typer.Option("--no-log", help="Do not log an MLflow run.")] = False,
    tracking_uri: str = TRACKING_URI,
) -> None:
    """Mine hard negatives as `stembed train` would, and write them to parquet.

    Takes the training overrides: stembed mine -o mined.parquet +experiment=demo loss=mnrl
    (mining=hard_negatives unless a mining=... override is given; mining.* keys change it).
    The result is cached, so a training run with the same settings does not mine again.
    """
    decide_offline()  # before anything imports huggingface_hub
    # Local: mining imports sentence-transformers (torch), which `stembed --help` must not load.
    from stembed.recipe.mine import run_mine

    with user_errors():
        written, run_id = run_mine(list(ctx.args), output, log=not no_log, tracking_uri=tracking_uri)
    for item in written:
        where = f" (set {item.set_name})" if item.set_name else ""
        m = item.metrics
        typer.echo(
            f"{item.rows} rows{where} written to {item.path}: {m['mining_anchors']:.0f} anchors, "
            f"{m['mining_negatives_per_anchor']:.2f} negatives each, "
            f"{m['mining_anchors_without_negative']:.0f} without one; "
            f"{'from the cache' if item.cache_hit else 'mined'} in {m['mining_seconds']:.1f} s "
            f"(cache key {item.cache_key})"
        )
    if run_id:
        typer.echo(f"logged as MLflow run {run_id}")
