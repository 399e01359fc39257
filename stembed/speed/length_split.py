"""Length-split batches: the library's own batches, each computed in pieces of similar-length rows.

A random batch of variable-length texts is mostly padding (IT tickets at batch 32: 76% of the
tokens), because every row is padded to the batch's longest. For a loss that is a mean of
independent per-row terms (CosineSimilarityLoss, SoftmaxLoss, ContrastiveLoss, MSELoss), the
batch's loss equals the row-weighted sum of the losses of any split of its rows. So each training
batch is sorted by length, cut into pieces that each drop the padding their rows do not need, and
the pieces' losses are summed with weights rows/batch: the same rows, the same loss and gradient as
the unsplit batch (up to float rounding), with a fraction of the compute. Where to cut is chosen by
a small dynamic program over a cost model: tokens, attention that grows with length, and a fixed
cost per forward pass (per-pass weight-gradient buffers and kernel launches).

Selected by `speed.batches=split_by_length` (and by `auto` for such losses; stembed/speed/plan.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from sentence_transformers import SentenceTransformerTrainer
from sentence_transformers.sentence_transformer import losses

from stembed.components.losses import innermost_loss, splits_by_length

if TYPE_CHECKING:
    import torch
    from torch import nn

# Cost model, in token units, measured on this project's 2-core CPU with all-MiniLM-L6-v2 (forward +
# backward): ~0.65 ms per token, attention adding ~L/256 of that per token at length L, and ~55 ms
# per forward pass whatever its size (~85 tokens). On a GPU a pass costs far more than a token
# (kernel launches), so pieces there must save much more padding to be worth it (not measured here).
ATTENTION_LENGTH = 256
PASS_COST = {"cpu": 85, "cuda": 2048}
MAX_BLOCKS = 64  # batches larger than this are cut between blocks of rows, not single rows


def splits_exactly(loss: nn.Module) -> bool:
    """Whether the loss is a plain mean of per-row terms, so a batch may be computed in weighted pieces."""

    if loss is not innermost_loss(loss) or not splits_by_length(loss):
        return False
    if isinstance(loss, losses.ContrastiveLoss):
        return bool(loss.size_average)
    loss_fct = getattr(loss, "loss_fct", None)  # a class-weighted mean is not a plain mean over rows
    return getattr(loss_fct, "reduction", None) == "mean" and getattr(loss_fct, "weight", None) is None


def plan_pieces(lengths: list[list[int]], pass_cost: float) -> list[list[int]]:
    """Rows of each piece: rows sorted by length, cut where the cost model says it pays.

    `lengths[c][r]` is row r's token count in text column c; every piece runs one forward pass per
    column, padded to its longest row in that column. Cuts fall between blocks of rows: single rows
    up to MAX_BLOCKS rows, so that planning stays a few thousand steps for large batches.
    """
    rows = sorted(range(len(lengths[0])), key=lambda r: -sum(column[r] for column in lengths))
    size = -(-len(rows) // MAX_BLOCKS)  # rows per block
    bounds = [*range(0, len(rows), size), len(rows)]
    best = [0.0] + [float("inf")] * (len(bounds) - 1)  # best[j]: cheapest plan for rows[:bounds[j]]
    cut = [0] * len(bounds)
    for end in range(1, len(bounds)):
        longest = [0] * len(lengths)
        for start in range(end - 1, -1, -1):  # piece rows[bounds[start]:bounds[end]], growing backwards
            block = rows[bounds[start] : bounds[start + 1]]
            longest = [
                max(m, *(column[r] for r in block)) for m, column in zip(longest, lengths, strict=True)
            ]
            n = bounds[end] - bounds[start]
            cost = sum(n * m * (1 + m / ATTENTION_LENGTH) + pass_cost for m in longest)
            if best[start] + cost < best[end]:
                best[end], cut[end] = best[start] + cost, start
    pieces, end = [], len(bounds) - 1
    while end > 0:
        pieces.append(rows[bounds[cut[end]] : bounds[end]])
        end = cut[end]
    return pieces[::-1]


def split_inputs(inputs: dict[str, Any], pass_cost: float) -> list[tuple[dict[str, Any], float]]:
    """(piece inputs, share of the batch's rows) for a collated batch; one piece if it cannot split."""
    masks = {
        key[: -len("attention_mask")]: value
        for key, value in inputs.items()
        if key.endswith("attention_mask")
    }
    features = [key for key in inputs if key.endswith("input_ids")]
    if not masks or len(features) != len(masks):  # a column without a mask (no padding to drop)
        return [(inputs, 1.0)]
    size = next(iter(masks.values())).shape[0]
    lengths = [mask.sum(dim=1).tolist() for mask in masks.values()]
    pieces = plan_pieces(lengths, pass_cost)
    if len(pieces) == 1:
        return [(inputs, 1.0)]
    return [(_piece(inputs, masks, rows, size), len(rows) / size) for rows in pieces]


def _piece(
    inputs: dict[str, Any], masks: dict[str, torch.Tensor], rows: list[int], size: int
) -> dict[str, Any]:
    """The inputs of some rows, each text column cut to the positions those rows use."""

    index = torch.tensor(rows, device=next(iter(masks.values())).device)
    piece: dict[str, Any] = {}
    for key, value in inputs.items():
        if not isinstance(value, torch.Tensor) or value.dim() == 0 or value.shape[0] != size:
            piece[key] = value
            continue
        value = value[index]
        prefix = next((p for p in masks if key.startswith(p)), None)
        if prefix is not None and value.dim() >= 2 and value.shape[1] == masks[prefix].shape[1]:
            value = value[:, masks[prefix][index].any(dim=0)]  # padding on either side
        piece[key] = value
    return piece


class LengthSplitTrainer(SentenceTransformerTrainer):
    """SentenceTransformerTrainer that computes each training batch in length-sorted pieces."""

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        """The batch's loss as the row-weighted sum of its pieces' losses (training only)."""
        if return_outputs or not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        pass_cost = PASS_COST.get(self.args.device.type, PASS_COST["cuda"])
        pieces = split_inputs(inputs, pass_cost)
        if len(pieces) == 1:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss = 0.0
        for piece, share in pieces:  # a loop: zero-argument super() fails inside a generator
            loss = loss + share * super().compute_loss(model, piece)
        return loss
