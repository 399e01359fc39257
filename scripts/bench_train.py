"""Training speed and quality: stembed's defaults vs the plain sentence-transformers script.

Throughput: the IT-ticket routing preset on the real tickets in ../shared/data, one epoch of the
same pairs (built once by the preset's own builder) at batch 32 on each side; pairs/s and tokens/s
of the training loop, the share of real (non-padding) tokens, and an estimate of useful FLOP/s as a
fraction of this machine's matmul rate measured in the same run. Both models are then routed on the
same held-out tickets (macro-F1).

Quality: the `stsb` preset on real STS-B at the plain script's budget (same steps, batch, learning
rate, warmup); sts-test spearman of each.

With --seeds 42,43,44 every training run is repeated with each seed on both sides; quality is then
the mean (± standard deviation) over the seeds and speed the median, so a difference can be read
against the seed-to-seed spread.

Usage: .venv/bin/python scripts/bench_train.py [--it-pairs 1600] [--stsb-steps 300] [--seeds 42]
"""

from __future__ import annotations

import argparse
import math
import statistics
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


def throughput(work: Path, n_pairs: int, seeds: list[int], batch_size: int = 32) -> list[dict[str, str]]:
    """Rows: speed-up (target >= 2.5x at equal or better macro-F1) and FLOP/s efficiency."""
    from stembed.speed.throughput import matmul_tflops

    overrides = ["+experiment=it_tickets", f"data.source={IT_TICKETS}", f"data.n_pairs={n_pairs}"]
    data = compose_data(overrides)
    steps = math.ceil(len(data.train) / batch_size)  # one epoch: every pair once on each side
    train_csv = write_pairs(data.train, work / "it_train.csv")
    plain_runs, plain_f1, our_runs, our_f1 = [], [], [], []
    for seed in seeds:
        output = work / f"plain_it_{seed}"
        plain_runs.append(plain_train(train_csv, output, steps=steps, batch_size=batch_size, seed=seed)[1])
        plain_f1.append(_macro_f1(evaluate(output / "model", overrides)))
        run = [*overrides, f"trainer.max_steps={steps}", *_training_seed(seed), NO_MODEL_LOG]
        our_runs.append(stembed_train(run, work)[1].metrics)
        our_f1.append(our_runs[-1]["final_it-tickets_macro_f1"])
        print(
            f"  IT tickets, seed {seed}: macro-F1 plain {plain_f1[-1]:.4f}, stembed {our_f1[-1]:.4f}",
            flush=True,
        )
    plain, ours = (
        _median_run(plain_runs, "train_samples_per_second"),
        _median_run(our_runs, "train_samples_per_second"),
    )
    peak = matmul_tflops(size=2048, seconds=3.0)

    ours_runtime = ours["train_tokens"] / ours["train_tokens_per_second"]
    useful_flops = ours["train_useful_tflops"] * ours_runtime  # the same pairs: the same useful work
    speedup = ours["train_samples_per_second"] / plain["train_samples_per_second"]
    random_share = _random_batch_real_share(data.train, batch_size)
    budget = f"{steps} steps x {batch_size}, IT tickets{_seeds_note(seeds)}"
    return [
        {
            "benchmark": f"training throughput, pairs/s ({budget})",
            "plain script": f"{plain['train_samples_per_second']:.1f}",
            "stembed": f"{ours['train_samples_per_second']:.1f}",
            "ratio": f"{speedup:.2f}x",
            "target": ">= 2.5x",
            "met": "yes" if speedup >= 2.5 else "NO",
        },
        _quality_row("  held-out routing macro-F1 (1000 tickets)", plain_f1, our_f1),
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


def quality(work: Path, steps: int, seeds: list[int], batch_size: int = 16) -> list[dict[str, str]]:
    """Row: sts-test spearman of the stsb preset vs the plain script on the same budget."""
    overrides = ["+experiment=stsb", *STSB_DATA]
    data = compose_data(overrides)
    train_csv = write_pairs(data.train, work / "stsb_train.csv")
    test_csv = write_pairs(data.test, work / "stsb_test.csv")
    plain_runs, our_runs = [], []
    for seed in seeds:
        plain_runs.append(
            plain_train(
                train_csv,
                work / f"plain_stsb_{seed}",
                steps=steps,
                batch_size=batch_size,
                warmup_ratio=0.1,
                test=test_csv,
                seed=seed,
            )[1]
        )
        run = [*overrides, f"trainer.max_steps={steps}", *_training_seed(seed), NO_MODEL_LOG]
        our_runs.append(stembed_train(run, work)[1].metrics)
        print(
            f"  STS-B, seed {seed}: spearman plain {plain_runs[-1]['test_spearman_cosine']:.4f}, "
            f"stembed {our_runs[-1]['final_sts-test_spearman_cosine']:.4f}",
            flush=True,
        )
    plain_s = [run["test_spearman_cosine"] for run in plain_runs]
    ours_s = [run["final_sts-test_spearman_cosine"] for run in our_runs]
    plain_speed = statistics.median(run["train_samples_per_second"] for run in plain_runs)
    our_speed = statistics.median(run["train_samples_per_second"] for run in our_runs)
    return [
        _quality_row(
            f"STS-B test spearman, same budget ({steps} steps x {batch_size}{_seeds_note(seeds)})",
            plain_s,
            ours_s,
        ),
        {
            "benchmark": "  STS-B pairs/s",
            "plain script": f"{plain_speed:.1f}",
            "stembed": f"{our_speed:.1f}",
            "ratio": f"{our_speed / plain_speed:.2f}x",
            "target": "",
            "met": "",
        },
    ]


def _quality_row(benchmark: str, plain: list[float], ours: list[float]) -> dict[str, str]:
    """A metric of both sides: the mean (± sd over seeds), the difference of the means, >= plain."""
    difference = statistics.mean(ours) - statistics.mean(plain)
    return {
        "benchmark": benchmark,
        "plain script": _mean_sd(plain),
        "stembed": _mean_sd(ours),
        "ratio": f"{difference:+.4f}",
        "target": ">= plain",
        "met": "yes" if difference >= 0 else "NO",
    }


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def _seeds_note(seeds: list[int]) -> str:
    return f"; seeds {','.join(map(str, seeds))}" if len(seeds) > 1 else ""


def _median_run(runs: list[dict[str, float]], key: str) -> dict[str, float]:
    """The run whose `key` is the median (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda run: run[key])
    return ordered[(len(ordered) - 1) // 2]


def _training_seed(seed: int) -> list[str]:
    """Overrides that seed training (weights, batches, dropout) but keep the data built with seed 42."""
    return [f"trainer.seed={seed}", f"trainer.data_seed={seed}"]


def _macro_f1(metrics: dict[str, float]) -> float:
    return next(v for k, v in metrics.items() if k.endswith("macro_f1"))


def _share(tflops: float, peak: float) -> str:
    return f"{tflops:.4f} ({tflops / peak:.0%})"


def _random_batch_real_share(dataset: Any, batch_size: int, seed: int = 42) -> float:
    """Real / padded tokens of random batches (the plain script's sampler) over one shuffled epoch."""
    import numpy as np
    from transformers import AutoTokenizer

    from stembed.components.model import PACKAGED_MODELS
    from stembed.data.loading import text_columns
    from stembed.speed.batching import TokenLengths

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


def measure(it_pairs: int, stsb_steps: int, seeds: tuple[int, ...] = (42,)) -> list[dict[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        rows = throughput(Path(tmp), it_pairs, list(seeds))
        print(" | ".join(rows[0].values()), flush=True)
        rows += quality(Path(tmp), stsb_steps, list(seeds))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--it-pairs", type=int, default=1600, help="IT-ticket pairs (one epoch)")
    parser.add_argument("--stsb-steps", type=int, default=300)
    parser.add_argument("--seeds", default="42", help="comma-separated training seeds, e.g. 42,43,44")
    options = parser.parse_args()
    seeds = tuple(int(seed) for seed in options.seeds.split(","))
    print_table(measure(options.it_pairs, options.stsb_steps, seeds))


if __name__ == "__main__":
    main()
