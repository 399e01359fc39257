"""`make bench`: every performance benchmark, one table (under 30 minutes on 2 cores).

CLI start-up (bench_cli), runner overhead against a plain sentence-transformers script
(bench_overhead), training throughput, FLOP/s efficiency and quality at equal budget
(bench_train), encode speed against model.encode and ONNX int8 against PyTorch
(bench_encode), and a 1,000,000-row csv's time to first step and peak RSS (bench_million). Reads the
real data in ../shared/data in place.

Usage: .venv/bin/python scripts/bench.py [--quick]   (--quick: tiny budgets, checks the plumbing)
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import bench_cli
import bench_encode
import bench_million
import bench_overhead
import bench_train
from benchlib import print_table


def machine() -> str:
    """CPU model, cores and memory, as the tables in docs/benchmarks.md state them."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    from stembed.speed.hardware import cpu_has_native_bf16

    # speed.bf16=auto autocasts only where bf16 is native: it changes stembed's speed
    bf16 = "native bf16" if cpu_has_native_bf16() else "no native bf16"
    return f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, {bf16}, no GPU"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args().quick
    started = time.perf_counter()
    rows = bench_cli.measure(repeat=3 if quick else 7)
    rows.append(bench_overhead.measure(repeat=1 if quick else 3, steps=10 if quick else 200, batch_size=4))
    rows += bench_train.measure(it_pairs=96 if quick else 1600, stsb_steps=6 if quick else 300)
    rows += bench_encode.measure(texts=1000 if quick else 50_000)
    rows += bench_million.measure(rows=10_000 if quick else bench_million.ROWS)
    print(f"\nstembed benchmarks, {datetime.date.today()}, {machine()}")
    print_table(rows)
    print(f"\n{(time.perf_counter() - started) / 60:.1f} minutes")


if __name__ == "__main__":
    main()
