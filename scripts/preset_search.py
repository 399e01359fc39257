"""Choose an improved preset from evidence: train one candidate, score it on validation data.

Validation data is never the bench's held-out data: IT tickets 1,000..2,000 of the held-out
tickets (the bench routes the first 1,000), BANKING77 the 10% held out of train.csv (the bench
reads test.csv), STS-B the dev split (the bench reads test). Each result is one JSON line, also
appended to outputs/preset_search.jsonl.

Usage: .venv/bin/python scripts/preset_search.py TASK OVERRIDE... (TASK: it_tickets, banking77, stsb)
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import (
    IT_TICKETS,
    SHARED_DATA,
    STSB_DATA,
    accuracy,
    compose_data,
    load_model_dir,
    macro_f1,
    route,
    run_model_dir,
    similarities,
    spearman,
    stembed_train,
)

BANKING = f"data.source='{SHARED_DATA / 'banking77' / '{split}.csv'}'"
DATA = {
    "it_tickets": [f"data.source={IT_TICKETS}"],
    "banking77": [BANKING],
    "stsb": STSB_DATA,
}
LOG = Path(__file__).resolve().parents[1] / "outputs" / "preset_search.jsonl"


def validation(task: str) -> Any:
    """A scorer: model -> {metric: value} on the task's validation data."""
    if task == "it_tickets":
        from stembed.data.loading import holdout
        from stembed.data.pairs import labelled_rows

        rows, _, _ = labelled_rows(str(IT_TICKETS), "Document", "Topic_group")
        held = holdout(rows, 0.1, 42)[1].select(range(1000, 2000))
        return lambda m: _routing(route(m, held["text"], held["label"], None))
    if task == "banking77":
        data = compose_data(["+experiment=banking77", BANKING])
        return lambda m: _routing(route(m, data.eval["text"], data.eval["label"], None))
    data = compose_data(["+experiment=stsb", *STSB_DATA])
    dev = data.eval
    return lambda m: {"spearman": spearman(similarities(m, dev["sentence1"], dev["sentence2"], dev["score"]))}


def _routing(rows: Any) -> dict[str, float]:
    return {"macro_f1": macro_f1(rows), "accuracy@1": accuracy(rows)}


def main() -> None:
    task, overrides = sys.argv[1], sys.argv[2:]
    work = LOG.parent / "search"
    started = time.perf_counter()
    wall, run = stembed_train([*DATA[task], *overrides, "evaluator=none", "tracking.log_model=false"], work)
    scores = validation(task)(load_model_dir(run_model_dir(run)))
    result = {
        "task": task,
        "overrides": overrides,
        **{k: round(v, 4) for k, v in scores.items()},
        "train_s": round(run.metrics.get("train_runtime", float("nan")), 1),
        "steps": int(run.params["trainer.max_steps"]),
        "pairs/s": round(run.metrics.get("train_samples_per_second", float("nan")), 1),
        "wall_s": round(wall),
        "total_s": round(time.perf_counter() - started),
        "time": time.strftime("%H:%M"),
    }
    shutil.rmtree(run_model_dir(run).parent, ignore_errors=True)
    print(json.dumps(result), flush=True)
    with LOG.open("a") as log:
        log.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
