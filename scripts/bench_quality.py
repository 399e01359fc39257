"""Quality on real data: base model -> faithful preset -> improved preset, on held-out data.

For every task the faithful preset (the reference recipe) and the improved one train on the same
data for a comparable budget (steps x batch, chosen so both take about the same training time; each
run's training seconds are printed), then the base model and both trained models are scored on the
same held-out examples, never used to choose a recipe: IT tickets, the first 1,000 held-out tickets
(macro-F1 of routing to the nearest category name); BANKING77, test.csv (accuracy@1 of the nearest
intent name); STS-B, the test split (spearman of cosine similarity). improved - faithful comes with
a 95% paired-bootstrap interval over those examples (10,000 resamples) and a two-sided p-value.

Reads the data sets in place from ../shared/data (see each folder's SOURCE.txt); runs the real
`stembed train` with all-MiniLM-L6-v2. iFixit and recsys have no real data there: their improved
presets are only smoke-tested on fixtures (tests/test_presets.py) and listed as skipped.

With --seeds 42,43,44 every training run is repeated per training seed (the data stays the same);
each arm shows mean ± sd over seeds, and the interval is that of the seed-averaged metric.

Usage: .venv/bin/python scripts/bench_quality.py [--data ../shared/data] [--only stsb,it_tickets]
       [--seeds 42] [--scale 1]
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import (
    Metric,
    accuracy,
    compose_data,
    load_model_dir,
    macro_f1,
    measure_tasks,
    paired_bootstrap,
    route,
    run_model_dir,
    seed_summary,
    similarities,
    spearman,
    stembed_train,
    task_arguments,
)

# The in-run evaluators are off: the bench scores every model itself, on the same rows.
QUIET = ["evaluator=none", "tracking.log_model=false"]


@dataclass
class Task:
    name: str
    data: list[str]  # overrides that point the presets at the real data
    faithful: tuple[str, int]  # (preset, steps)
    improved: tuple[str, int]
    metric: str
    statistic: Metric
    goal: float
    heldout: Callable[[Any], Callable[[Any], Any]] = field(repr=False)  # data -> (model -> rows)
    held_out_name: str = ""


def _routing_rows(split: str) -> Callable[[Any], Callable[[Any], Any]]:
    def scorer(data: Any) -> Callable[[Any], Any]:
        rows = getattr(data, split)
        return lambda model: route(model, rows["text"], rows["label"], None)

    return scorer


def _similarity_rows(data: Any) -> Callable[[Any], Any]:
    test = data.test
    return lambda model: similarities(model, test["sentence1"], test["sentence2"], test["score"])


def tasks(data: Path) -> list[Task]:
    stsb = data / "stsb-multi-mt-en" / "stsb-en-{split}.csv"
    return [
        Task(
            "it_tickets",
            [f"data.source={data / 'it-service-tickets' / 'all_tickets_processed_improved_v3.csv'}"],
            ("it_tickets", 200),
            ("it_tickets_improved", 200),
            "macro-F1",
            macro_f1,
            0.80,
            _routing_rows("eval"),
            "1,000 held-out tickets",
        ),
        Task(
            "banking77",
            [f"data.source='{data / 'banking77' / '{split}.csv'}'", "data.test_split=test"],
            ("banking77", 200),
            ("banking77_improved", 200),
            "accuracy@1",
            accuracy,
            0.85,
            _routing_rows("test"),
            "test.csv, 3,080 utterances",
        ),
        Task(
            "stsb",
            [
                f"data.source='{stsb}'",  # quoted: '{split}' is not a Hydra dict
                "data.eval_split=dev",
                "data.test_split=test",
                "data.read_options={header:null,names:[sentence1,sentence2,score]}",
                "data.label_scale=5",
            ],
            ("stsb", 300),
            ("stsb_improved", 400),
            "spearman",
            spearman,
            0.87,
            _similarity_rows,
            "test, 1,379 pairs",
        ),
    ]


def train_and_score(
    task: Task, preset: str, steps: int, seed: int, score: Callable[[Any], Any], work: Path
) -> dict[str, Any]:
    """Train one preset with one seed; its per-example rows, training seconds and wall seconds."""
    overrides = [
        f"+experiment={preset}",
        *task.data,
        f"trainer.max_steps={steps}",
        f"trainer.seed={seed}",
        f"trainer.data_seed={seed}",
        *QUIET,
    ]
    wall, run = stembed_train(overrides, work)
    rows = score(load_model_dir(run_model_dir(run)))
    batch = int(run.params["trainer.per_device_train_batch_size"])
    result = {
        "rows": rows,
        "value": task.statistic(rows),
        "train_s": run.metrics["train_runtime"],
        "wall_s": wall,
        "budget": f"{steps}×{batch}",
    }
    print(
        f"  {task.name} {preset} seed {seed}: {task.metric} {result['value']:.4f}, "
        f"{steps} steps × {batch}, train {result['train_s']:.0f} s, wall {wall:.0f} s",
        flush=True,
    )
    return result


def measure(task: Task, seeds: list[int], scale: float, work: Path) -> dict[str, str]:
    data = compose_data([f"+experiment={task.faithful[0]}", *task.data])
    score = task.heldout(data)
    base = task.statistic(score(load_model_dir("base")))
    arms = {}
    for arm, (preset, steps) in (("faithful", task.faithful), ("improved", task.improved)):
        steps = max(1, round(steps * scale))
        arms[arm] = [train_and_score(task, preset, steps, seed, score, work) for seed in seeds]
    diff, low, high, p = paired_bootstrap(
        [r["rows"] for r in arms["faithful"]], [r["rows"] for r in arms["improved"]], task.statistic
    )
    improved = statistics.mean(r["value"] for r in arms["improved"])
    return {
        "task": task.name,
        "metric (held out)": f"{task.metric}, {task.held_out_name}",
        "base": f"{base:.4f}",
        "faithful": _arm(arms["faithful"], task.faithful[0]),
        "improved": _arm(arms["improved"], task.improved[0]),
        "improved − faithful [95% CI]": f"{diff:+.4f} [{low:+.4f}, {high:+.4f}]",
        "p": f"{p:.4f}",
        "goal": f"≥ {task.goal}",
        "met": "yes" if improved >= task.goal else "NO",
    }


def _arm(runs: list[dict[str, Any]], preset: str) -> str:
    train = statistics.mean(r["train_s"] for r in runs)
    return f"{seed_summary([r['value'] for r in runs])} ({preset}, {runs[0]['budget']}, train {train:.0f} s)"


def main() -> None:
    options = task_arguments(__doc__).parse_args()
    seeds = [int(s) for s in options.seeds.split(",")]
    results = measure_tasks(
        tasks(options.data.resolve()),
        options.only,
        lambda task, work: measure(task, seeds, options.scale, work),
    )
    print(f"seeds {','.join(map(str, seeds))}")
    for name in ("ifixit", "recsys"):
        if not (options.data / name).exists():
            print(
                f"{name}: skipped, no real data in {options.data} (improved preset smoke-tested on fixtures)."
            )
    if any(r["met"] == "NO" for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
