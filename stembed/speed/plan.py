"""The `speed` config group: stembed's own choices about precision and batches, resolved for one run.

These are not SentenceTransformerTrainingArguments fields (the `trainer` group holds only those);
they decide some of those fields (bf16, batch_sampler) once the hardware, the loss and the model are
known. They are the one place to set them: the first release's `trainer.bf16` and
`trainer.batch_sampler` are moved here, with a deprecation warning, before a run starts
(stembed.recipe.app).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sentence_transformers import SentenceTransformerTrainer

from stembed.components.kinds import BI_ENCODER, ModelKind, kind_of
from stembed.components.losses import uses_in_batch_negatives
from stembed.errors import StembedError
from stembed.speed import AUTO, GROUP_BY_LENGTH, RANDOM, SPLIT_BY_LENGTH, hardware
from stembed.speed.batching import length_grouped, pads_batches
from stembed.speed.length_split import LengthSplitTrainer, splits_exactly

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from torch import nn

REGROUPABLE_SAMPLERS = ("batch_sampler", "no_duplicates")  # others decide their batches themselves


def resolve_bf16(speed_bf16: Any, trainer_values: dict[str, Any]) -> dict[str, Any]:
    """Training-argument values with `speed.bf16` applied: `auto` autocasts only where bf16 is native.

    That is a CUDA GPU with bf16, or a CPU with AVX512-BF16/AMX (then `use_cpu`, which the library
    requires for bf16 on a CPU). Elsewhere bf16 is emulated: on an AVX2 CPU it trained 17x slower.
    """

    values = dict(trainer_values)
    if values.get("fp16"):  # the trainer's own fp16 mixed precision (speed.bf16=true with it is refused)
        return values
    if speed_bf16 != AUTO:
        return values | {"bf16": bool(speed_bf16)}
    import torch

    values["bf16"] = False
    if torch.cuda.is_available() and not values.get("use_cpu"):
        values["bf16"] = torch.cuda.is_bf16_supported()
    elif hardware.cpu_has_native_bf16():  # a module attribute, so tests can stand in for the CPU
        values.update(bf16=True, use_cpu=True)
    return values


@dataclass
class BatchPlan:
    """The batch sampler and how batches skip padding, as the run's `stembed.batch_sampler` tag says."""

    sampler: Any  # a BatchSamplers name, or a sampler factory for length-grouped batches
    sampler_name: str
    batches: str  # split_by_length, group_by_length or random
    kind: ModelKind = BI_ENCODER

    @property
    def trainer_class(self) -> type[SentenceTransformerTrainer]:
        """The kind's trainer; a length split has its own (bi-encoders only)."""
        return LengthSplitTrainer if self.batches == SPLIT_BY_LENGTH else self.kind.resolve("trainer_class")

    @property
    def description(self) -> str:
        return self.sampler_name if self.batches == RANDOM else f"{self.sampler_name}, {self.batches}"


def plan_batches(speed: Any, loss: nn.Module, model: SentenceTransformer) -> BatchPlan:
    """Choose the sampler (no duplicates for in-batch negatives) and the batching (length split/grouping).

    split_by_length keeps the library's batches and computes each in length-sorted pieces: the same
    loss and gradient, for losses that are a mean of per-row terms. Other losses get batches of
    similar-length rows (group_by_length). Models that pad nothing (StaticEmbedding) keep their batches.
    """
    in_batch = uses_in_batch_negatives(loss)
    kind = kind_of(model)
    name = str(getattr(speed.batch_sampler, "value", speed.batch_sampler))
    if name == AUTO:
        name = "no_duplicates" if in_batch else "batch_sampler"
    batches = str(speed.batches)
    splits = kind.splits_batches and splits_exactly(loss)
    if batches == SPLIT_BY_LENGTH and not splits:
        why = (
            f"a {kind.name}'s loss tokenizes inside the loss"
            if not kind.splits_batches
            else "in-batch negatives or batch-wide ranking"
        )
        raise StembedError(
            f"speed.batches={SPLIT_BY_LENGTH}: {type(loss).__name__} cannot be computed in length-sorted "
            f"pieces ({why}). Use speed=group_by_length (or speed=auto) with this loss."
        )
    if batches == AUTO:
        batches = SPLIT_BY_LENGTH if splits else GROUP_BY_LENGTH
    if not pads_batches(model) or (batches == GROUP_BY_LENGTH and name not in REGROUPABLE_SAMPLERS):
        batches = RANDOM
    sampler: Any = name
    if batches == GROUP_BY_LENGTH:
        sampler = length_grouped(no_duplicates=name == "no_duplicates", model=model)
    return BatchPlan(sampler=sampler, sampler_name=name, batches=batches, kind=kind)
