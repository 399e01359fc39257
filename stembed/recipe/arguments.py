"""Training arguments from the `trainer` group (plus the speed group's precision), of the class the model
kind trains with (SentenceTransformerTrainingArguments, CrossEncoderTrainingArguments, ...)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from sentence_transformers import SentenceTransformerTrainingArguments

from stembed.components.kinds import BI_ENCODER, ModelKind
from stembed.errors import StembedError, did_you_mean
from stembed.recipe.checks import check_trainer_ranges, check_trainer_value
from stembed.scale.distributed import training_arguments as ddp_arguments
from stembed.speed.plan import resolve_bf16

FIELDS_DOCS = "https://sbert.net/docs/package_reference/sentence_transformer/training_args.html"


def training_arguments(
    trainer_cfg: Any, speed_cfg: Any, output_dir: Path, kind: ModelKind = BI_ENCODER
) -> SentenceTransformerTrainingArguments:
    """The `trainer` group as training arguments; an unknown key or a wrong type fails at once, naming it."""
    values = OmegaConf.to_container(trainer_cfg, resolve=True)
    arguments_class = kind.resolve("arguments_class")
    fields = {f.name: f for f in dataclasses.fields(arguments_class) if f.init}
    for key, value in values.items():
        if key not in fields or key == "output_dir":
            hint = " The output directory is the Hydra run directory." if key == "output_dir" else ""
            raise StembedError(
                f"trainer.{key}={value}: not a {arguments_class.__name__} field.{hint}"
                f"{did_you_mean(key, fields)} Remove it or use a field listed at {FIELDS_DOCS}."
            )
        check_trainer_value(key, value, fields[key].type)
    check_trainer_ranges(values)  # in the job, so a sweep job with such a value fails alone
    values = resolve_bf16(speed_cfg.bf16, values)
    values = ddp_arguments(values)  # under torchrun: CPU processes train together, one GPU per rank
    try:
        return arguments_class(output_dir=str(output_dir), **values)
    except (ValueError, TypeError) as err:
        raise StembedError(f"trainer: invalid training arguments ({err}). Fix the trainer.* values.") from err
