"""CLI start-up: median wall time of `stembed --help` and of composing a config, and which heavy
libraries each path imports (none is the goal: torch alone takes seconds to import).

Usage: .venv/bin/python scripts/bench_cli.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from benchlib import ENV, STEMBED, print_table

HEAVY = ("torch", "transformers", "sentence_transformers", "mlflow", "datasets")
COMMANDS = {  # name -> (arguments, target seconds)
    "stembed --help": (["--help"], 0.5),
    "stembed train --cfg job +experiment=quora": (["train", "--cfg", "job", "+experiment=quora"], 2.0),
}


def median_seconds(command: list[str], repeat: int) -> float:
    """Median wall time of `repeat` runs (after one warm-up run)."""
    subprocess.run(command, check=True, capture_output=True, env=ENV)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=ENV)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def heavy_imports(arguments: list[str]) -> list[str]:
    """The heavy libraries a command imports (from `python -X importtime`)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", STEMBED, *arguments], capture_output=True, text=True, env=ENV
    )
    names = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    return sorted(name for name in HEAVY if name in names)


def measure(repeat: int) -> list[dict[str, str]]:
    rows = []
    for name, (arguments, target) in COMMANDS.items():
        seconds = median_seconds([STEMBED, *arguments], repeat)
        heavy = heavy_imports(arguments)
        rows.append(
            {
                "benchmark": f"CLI start-up: {name} (median of {repeat})",
                "plain script": "",
                "stembed": f"{seconds:.2f} s",
                "ratio": f"heavy imports: {', '.join(heavy) or 'none'}",
                "target": f"<= {target} s",
                "met": "yes" if seconds <= target and not heavy else "NO",
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    print_table(measure(parser.parse_args().repeat))


if __name__ == "__main__":
    main()
