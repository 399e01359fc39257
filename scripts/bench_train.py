"""Training speed and quality: stembed's defaults vs the plain sentence-transformers script.

Throughput: the IT-ticket routing preset on the real tickets in ../shared/data, one epoch of the
same pairs (built once by the preset's own builder) at batch 32 on each side; pairs/s and tokens/s
of the training loop, the share of real (non-padding) tokens, and an estimate of useful FLOP/s as a
fraction of this machine's matmul rate measured in the same run. Both models are then routed on the
same held-out tickets (macro-F1).

Quality: the `stsb` preset on real STS-B at the plain script's budget (same steps, batch, learning
rate, warmup); sts-test spearman of each.

Usage: .venv/bin/python scripts/bench_train.py [--it-pairs 1600] [--stsb-steps 300]
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path
from typing import Any

from benchlib import (
    IT_TICKETS,
    STSB_DATA,
    compose_data,
    evaluate,
    plain_train,
    print_table,
    stembed_train,
    write_pairs,
)

NO_MODEL_LOG = "tracking.log_model=false"


def throughput(work: Path, n_pairs: int, batch_size: int = 32) -> list[dict[str, str]]:
    """Rows: speed-up (target >= 2.5x at equal or better macro-F1) and FLOP/s efficiency."""
    from stembed.throughput import matmul_tflops

    overrides = ["+experiment=it_tickets", f"data.source={IT_TICKETS}", f"data.n_pairs={n_pairs}"]
    data = compose_data(overrides)
    steps = math.ceil(len(data.train) / batch_size)  # one epoch: every pair once on each side
    train_csv = write_pairs(data.train, work / "it_train.csv")
    _, plain = plain_train(train_csv, work / "plain_it", steps=steps, batch_size=batch_size)
    plain_f1 = _macro_f1(evaluate(work / "plain_it" / "model", overrides))
    ours = stembed_train([*overrides, f"trainer.max_steps={steps}", NO_MODEL_LOG], work)[1].metrics
    ours_f1 = ours["final_it-tickets_macro_f1"]
    peak = matmul_tflops(size=2048, seconds=3.0)

    ours_runtime = ours["train_tokens"] / ours["train_tokens_per_second"]
    useful_flops = ours["train_useful_tflops"] * ours_runtime  # the same pairs: the same useful work
    speedup = ours["train_samples_per_second"] / plain["train_samples_per_second"]
    random_share = _random_batch_real_share(data.train, batch_size)
    budget = f"{steps} steps x {batch_size}, IT tickets"
    return [
        {
            "benchmark": f"training throughput, pairs/s ({budget})",
            "plain script": f"{plain['train_samples_per_second']:.1f}",
            "stembed": f"{ours['train_samples_per_second']:.1f}",
            "ratio": f"{speedup:.2f}x",
            "target": ">= 2.5x",
            "met": "yes" if speedup >= 2.5 else "NO",
        },
        {
            "benchmark": "  held-out routing macro-F1 (1000 tickets)",
            "plain script": f"{plain_f1:.4f}",
            "stembed": f"{ours_f1:.4f}",
            "ratio": f"{ours_f1 - plain_f1:+.4f}",
            "target": ">= plain",
            "met": "yes" if ours_f1 >= plain_f1 else "NO",
        },
        {
            "benchmark": "  tokens/s (real tokens)",
            "plain script": f"{ours['train_tokens'] / plain['train_runtime']:.0f}",
            "stembed": f"{ours['train_tokens_per_second']:.0f}",
            "ratio": f"{plain['train_runtime'] / ours_runtime:.2f}x",
            "target": "",
            "met": "",
        },
        {
            "benchmark": "  real / padded tokens",
            "plain script": f"{random_share:.2f} (random batches)",
            "stembed": f"{ours['train_padding_efficiency']:.2f}",
            "ratio": "",
            "target": "",
            "met": "",
        },
        {
            "benchmark": f"  useful TFLOP/s, share of matmul {peak:.3f} TFLOP/s (fp32)",
            "plain script": _share(useful_flops / plain["train_runtime"], peak),
            "stembed": _share(ours["train_useful_tflops"], peak),
            "ratio": "",
            "target": "",
            "met": "",
        },
        {
            "benchmark": "  executed TFLOP/s (padding included)",
            "plain script": "",
            "stembed": _share(ours["train_executed_tflops"], peak),
            "ratio": "",
            "target": "",
            "met": "",
        },
    ]


def quality(work: Path, steps: int, batch_size: int = 16) -> list[dict[str, str]]:
    """Row: sts-test spearman of the stsb preset vs the plain script on the same budget."""
    overrides = ["+experiment=stsb", *STSB_DATA]
    data = compose_data(overrides)
    train_csv = write_pairs(data.train, work / "stsb_train.csv")
    test_csv = write_pairs(data.test, work / "stsb_test.csv")
    _, plain = plain_train(
        train_csv, work / "plain_stsb", steps=steps, batch_size=batch_size, warmup_ratio=0.1, test=test_csv
    )
    ours = stembed_train([*overrides, f"trainer.max_steps={steps}", NO_MODEL_LOG], work)[1].metrics
    plain_s, ours_s = plain["test_spearman_cosine"], ours["final_sts-test_spearman_cosine"]
    speedup = ours["train_samples_per_second"] / plain["train_samples_per_second"]
    return [
        {
            "benchmark": f"STS-B test spearman, same budget ({steps} steps x {batch_size})",
            "plain script": f"{plain_s:.4f}",
            "stembed": f"{ours_s:.4f}",
            "ratio": f"{ours_s - plain_s:+.4f}",
            "target": ">= plain",
            "met": "yes" if ours_s >= plain_s else "NO",
        },
        {
            "benchmark": "  STS-B pairs/s",
            "plain script": f"{plain['train_samples_per_second']:.1f}",
            "stembed": f"{ours['train_samples_per_second']:.1f}",
            "ratio": f"{speedup:.2f}x",
            "target": "",
            "met": "",
        },
    ]


def _macro_f1(metrics: dict[str, float]) -> float:
    return next(v for k, v in metrics.items() if k.endswith("macro_f1"))


def _share(tflops: float, peak: float) -> str:
    return f"{tflops:.4f} ({tflops / peak:.0%})"


def _random_batch_real_share(dataset: Any, batch_size: int, seed: int = 42) -> float:
    """Real / padded tokens of random batches (the plain script's sampler) over one shuffled epoch."""
    import numpy as np
    from transformers import AutoTokenizer

    from stembed.data.batching import TokenLengths
    from stembed.data.loading import text_columns
    from stembed.models import PACKAGED_MODELS

    _, model_path = PACKAGED_MODELS["sentence-transformers/all-MiniLM-L6-v2"]
    lengths = TokenLengths(AutoTokenizer.from_pretrained(str(model_path())), 256)
    columns = [np.asarray(lengths([str(t) for t in dataset[c]])) for c in text_columns(dataset)]
    order = np.random.default_rng(seed).permutation(len(dataset))
    real = padded = 0
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        for column in columns:
            real += int(column[rows].sum())
            padded += int(column[rows].max()) * len(rows)
    return real / padded


def measure(it_pairs: int, stsb_steps: int) -> list[dict[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        rows = throughput(Path(tmp), it_pairs)
        print(" | ".join(rows[0].values()), flush=True)
        rows += quality(Path(tmp), stsb_steps)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--it-pairs", type=int, default=1600, help="IT-ticket pairs (one epoch)")
    parser.add_argument("--stsb-steps", type=int, default=300)
    options = parser.parse_args()
    print_table(measure(options.it_pairs, options.stsb_steps))


if __name__ == "__main__":
    main()
