"""`stembed mine`: the training recipe's mining stage alone, written to parquet for inspection or reuse.

The same config groups as `stembed train` (data, loss, model, mining) and the same cache: mining
here and then training with the same settings mines once.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from omegaconf import OmegaConf
from transformers import set_seed

from stembed.components.instantiate import instantiate
from stembed.components.model import load_model
from stembed.config import compose_train
from stembed.data.mining import mining_enabled
from stembed.errors import StembedError
from stembed.recipe.inputs import build_train_inputs, log_inputs
from stembed.tracking.run import Tracker, flatten
from stembed.tracking.store import resolve_tracking_uri


@dataclass
class MinedFile:
    """One written parquet file and the mining that produced it."""

    path: Path
    rows: int
    set_name: str
    metrics: dict[str, float]
    cache_key: str
    cache_hit: bool


def run_mine(
    overrides: list[str], output: Path, log: bool = True, tracking_uri: str | None = None
) -> tuple[list[MinedFile], str | None]:
    """Mine as the composed config says; write parquet (one file per set for data=multi); log a run."""

    if output.suffix != ".parquet":
        raise StembedError(f"--output {output}: must end in .parquet.")
    if not any(o.lstrip("+").startswith("mining=") for o in overrides):
        overrides = [*overrides, "mining=hard_negatives"]
    cfg = compose_train(overrides)
    if not mining_enabled(cfg.get("mining")):
        raise StembedError("mining=none: nothing to mine. Use mining=hard_negatives (the default here).")
    set_seed(cfg.seed)
    data = instantiate(cfg.data, "data")  # before the model: cheaper to load, and to fail
    loaded = load_model(cfg.model)
    inputs = build_train_inputs(cfg, loaded.model, data)
    written = []
    for name, part in inputs.sets.items():
        path = output if not name else output.with_name(f"{output.stem}.{name}.parquet")
        path.parent.mkdir(parents=True, exist_ok=True)
        part.train.to_pandas().to_parquet(path, index=False)
        mined = part.mining
        assert mined is not None  # mining is enabled
        item = MinedFile(path, len(part.train), name, mined.metrics, mined.cache_key, mined.cache_hit)
        written.append(item)
    run_id = _log(cfg, overrides, inputs, written, tracking_uri, loaded.source) if log else None
    return written, run_id


def _log(
    cfg: Any, overrides: list[str], inputs: Any, written: list[MinedFile], uri: str | None, source: str
) -> str | None:
    """One MLflow run: the mining config as params, mining_* metrics, the sample and the parquet files."""

    uri = resolve_tracking_uri(uri or cfg.tracking.get("uri"), Path(cfg.paths.output_root))
    tracker = Tracker(uri, f"{cfg.task_name}-mine")
    tracker.connect()
    params = flatten(OmegaConf.to_container(cfg.mining, resolve=True), "mining.")
    params |= flatten(OmegaConf.to_container(cfg.data, resolve=True), "data.")
    params |= flatten(OmegaConf.to_container(cfg.model, resolve=True), "model.")
    params |= flatten(OmegaConf.to_container(cfg.loss, resolve=True), "loss.")
    tags = {
        "stembed.command": "stembed mine " + " ".join(shlex.quote(o) for o in overrides),
        "stembed.model_source": source,
        "stembed.data_fingerprint": inputs.data.fingerprint,
        **inputs.tags,
    }
    with tracker.run(None, params, tags) as run_id:
        log_inputs(tracker, inputs)
        for item in written:
            mlflow.log_artifact(str(item.path), "mined")
    return run_id
