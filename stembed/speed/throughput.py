"""Training throughput: real and padded tokens, tokens/s and an estimate of achieved FLOP/s.

A forward pre-hook on the model's first module counts the attention masks of every training
batch (real tokens = mask sum, padded = mask size), whatever the batch sampler or the number of
dataloader workers. Evaluation passes (model.eval()) are not counted. The FLOP/s figures are
estimates for transformer encoders, to compare with `matmul_tflops()` on the same machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer


@dataclass
class TokenCounter:
    """Token counts of the training forward passes seen so far."""

    real: int = 0
    padded: int = 0
    attention: int = 0  # attention-score entries computed: batch * padded_length**2 per batch
    real_attention: int = 0  # the entries a padding-free run would compute: real_length**2 per text

    def __call__(self, module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        if not module.training or not args or not isinstance(args[0], dict):
            return
        mask = args[0].get("attention_mask")
        if mask is None:  # no padding (StaticEmbedding: one flat tensor of token ids per batch)
            tokens = args[0].get("input_ids")
            count = int(tokens.numel()) if tokens is not None else 0
            self.real += count
            self.padded += count
            return
        batch, length = mask.shape
        self.real += int(mask.sum())
        self.padded += batch * length
        self.attention += batch * length * length
        self.real_attention += int((mask.sum(dim=1) ** 2).sum())


def count_tokens(model: SentenceTransformer) -> TokenCounter:
    """Attach a TokenCounter to the model's first module (it stays attached for the model's life)."""
    counter = TokenCounter()
    model[0].register_forward_pre_hook(counter)
    return counter


def train_flops_per_token(model: SentenceTransformer) -> tuple[float, float]:
    """(FLOPs per token, FLOPs per attention-score entry) of one training step (forward + backward).

    The usual estimate: 6 x the non-embedding parameters per token, plus 12 x layers x hidden size
    per attention-score entry (QK^T and AV, forward and backward). Embedding lookups are free.
    """

    embeddings = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    embedding = sum(p.numel() for m in embeddings for p in m.parameters())
    dense = sum(p.numel() for p in model.parameters()) - embedding
    config = getattr(getattr(model[0], "auto_model", None), "config", None)
    layers, hidden = getattr(config, "num_hidden_layers", 0), getattr(config, "hidden_size", 0)
    return 6.0 * dense, 12.0 * layers * hidden


def throughput_metrics(counter: TokenCounter, model: SentenceTransformer, seconds: float) -> dict[str, float]:
    """Tokens, padding efficiency, tokens/s and estimated useful and executed TFLOP/s of training."""
    if not counter.padded or seconds <= 0:
        return {}
    per_token, per_entry = train_flops_per_token(model)
    executed = per_token * counter.padded + per_entry * counter.attention
    useful = per_token * counter.real + per_entry * counter.real_attention  # a padding-free run's work
    return {
        "train_tokens": counter.real,
        "train_padded_tokens": counter.padded,
        "train_padding_efficiency": counter.real / counter.padded,
        "train_tokens_per_second": counter.real / seconds,
        "train_useful_tflops": useful / seconds / 1e12,
        "train_executed_tflops": executed / seconds / 1e12,
    }


def matmul_tflops(size: int = 1024, seconds: float = 2.0, dtype: str = "float32") -> float:
    """This machine's measured dense matmul rate (TFLOP/s) with torch's current thread count."""

    a = torch.randn(size, size, dtype=getattr(torch, dtype))
    b = torch.randn(size, size, dtype=getattr(torch, dtype))
    torch.mm(a, b)  # warm-up
    runs, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        torch.mm(a, b)
        runs += 1
    return 2.0 * size**3 * runs / elapsed / 1e12
