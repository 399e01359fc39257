"""CLI start-up times: median wall time of `stembed --help` and of composing a config.

Usage: .venv/bin/python scripts/bench_cli.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

STEMBED = str(Path(sys.executable).with_name("stembed"))
COMMANDS = {
    "stembed --help": [STEMBED, "--help"],
    "stembed train --cfg job +experiment=demo": [STEMBED, "train", "--cfg", "job", "+experiment=demo"],
}


def median_seconds(command: list[str], repeat: int) -> float:
    """Median wall time of `repeat` runs (after one warm-up run)."""
    subprocess.run(command, check=True, capture_output=True)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    repeat = parser.parse_args().repeat
    print(f"{'command':<45} {'median s':>9}")
    for name, command in COMMANDS.items():
        print(f"{name:<45} {median_seconds(command, repeat):>9.3f}")


if __name__ == "__main__":
    main()
