"""Runner overhead: `stembed train` vs the plain sentence-transformers script on the same work.

Same data (STS-B train, real, from ../shared/data, in one csv file that both sides read), model
(all-MiniLM-L6-v2), loss (CosineSimilarityLoss), arguments and number of steps; stembed with its
speed-ups switched off (random batches, fp32) so only the runner differs. Each side runs once
untimed (file caches, the MLflow store), then they alternate. Wall time covers everything: start-up,
data, training, saving, and for stembed the MLflow params, metrics, card and logged model.

Usage: .venv/bin/python scripts/bench_overhead.py [--repeat 3] [--steps 200] [--batch-size 4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from benchlib import STSB_DATA, compose_data, plain_train, print_table, stembed_train, write_pairs


def measure(repeat: int, steps: int, batch_size: int) -> dict[str, str]:
    """Median wall seconds of each side and their ratio."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train_csv = write_pairs(compose_data(["+experiment=stsb", *STSB_DATA]).train, work / "train.csv")

        def stembed(n_steps: int) -> float:
            overrides = [
                "data=pairs",  # the plain script's own file: the same rows, one split
                f"data.source={train_csv}",
                "data.eval_fraction=0",
                "evaluator=none",
                "task_name=overhead",
                f"trainer.max_steps={n_steps}",
                f"trainer.per_device_train_batch_size={batch_size}",
                "trainer.warmup_steps=0",
                "speed=plain",  # the plain script's batches, fp32
            ]
            return stembed_train(overrides, work)[0]

        def plain(n_steps: int) -> float:
            return plain_train(train_csv, work / "plain", steps=n_steps, batch_size=batch_size)[0]

        stembed(5), plain(5)  # untimed: warm caches, create the MLflow store
        times: dict[str, list[float]] = {"stembed": [], "plain": []}
        for i in range(repeat):
            first, second = ("plain", "stembed") if i % 2 == 0 else ("stembed", "plain")
            for side in (first, second):
                times[side].append((plain if side == "plain" else stembed)(steps))
                print(f"  overhead run {i + 1}/{repeat} {side}: {times[side][-1]:.1f} s", flush=True)
    plain_s, stembed_s = statistics.median(times["plain"]), statistics.median(times["stembed"])
    return {
        "benchmark": f"runner overhead ({steps} steps x {batch_size}, STS-B, median of {repeat})",
        "plain script": f"{plain_s:.1f} s",
        "stembed": f"{stembed_s:.1f} s",
        "ratio": f"{stembed_s / plain_s:.3f}",
        "target": "<= 1.05",
        "met": "yes" if stembed_s / plain_s <= 1.05 else "NO",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=4)
    options = parser.parse_args()
    print_table([measure(options.repeat, options.steps, options.batch_size)])


if __name__ == "__main__":
    main()
