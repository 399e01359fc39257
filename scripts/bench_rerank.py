"""Rerankers against the bi-encoder, on the held-out data of `make bench-quality`.

Per task and training seed, the improved bi-encoder preset and its reranker preset train on the same
data; both are scored on the same held-out examples (never used to choose a recipe):
- STS-B test (1,379 pairs): spearman of the bi-encoder's cosine against the cross-encoder's score
  (`stsb_improved` vs `stsb_cross`);
- IT tickets (the first 1,000 held-out tickets): macro-F1 of routing to the nearest category name
  against the reranker scoring all 8 names (`it_tickets_improved` vs `it_tickets_rerank`);
- BANKING77 test.csv (3,080 utterances): accuracy@1 of the bi-encoder against the bi-encoder's top 10
  intent names reranked (`banking77_improved` vs its retrieval + `banking77_rerank`).
reranked − bi-encoder comes with the 95% paired-bootstrap interval of the seed-averaged metric
(10,000 resamples; with --bi-seeds shorter than --seeds, every reranker seed is paired with the
bi-encoder of the same seed where there is one, else with the first), and the latency per query of
each pipeline on this machine (batch scoring of the held-out set, divided by the queries: what a
batch job pays, not a single request's latency).

Usage: .venv/bin/python scripts/bench_rerank.py [--data ../shared/data] [--only stsb,it_tickets]
       [--seeds 42,43,44] [--bi-seeds 42] [--scale 1]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from benchlib import (
    Metric,
    accuracy,
    compose_data,
    load_model_dir,
    macro_f1,
    measure_tasks,
    paired_bootstrap,
    run_model_dir,
    seed_summary,
    spearman,
    stembed_train,
    task_arguments,
)

QUIET = ["evaluator=none", "tracking.log_model=false"]
TOP_K = 10


@dataclass
class Task:
    name: str
    data: list[str]
    bi_encoder: str
    reranker: str
    metric: str
    statistic: Metric
    goal: float
    split: str  # the held-out split scored: eval or test
    held_out_name: str


def tasks(data: Path) -> list[Task]:
    stsb = data / "stsb-multi-mt-en" / "stsb-en-{split}.csv"
    tickets = data / "it-service-tickets" / "all_tickets_processed_improved_v3.csv"
    return [
        Task(
            "stsb",
            [
                f"data.source='{stsb}'",  # quoted: '{split}' is not a Hydra dict
                "data.eval_split=dev",
                "data.test_split=test",
                "data.read_options={header:null,names:[sentence1,sentence2,score]}",
                "data.label_scale=5",
            ],
            "stsb_improved",
            "stsb_cross",
            "spearman",
            spearman,
            0.88,
            "test",
            "test, 1,379 pairs",
        ),
        Task(
            "it_tickets",
            [f"data.source={tickets}"],
            "it_tickets_improved",
            "it_tickets_rerank",
            "macro-F1",
            macro_f1,
            0.85,
            "eval",
            "1,000 held-out tickets",
        ),
        Task(
            "banking77",
            [f"data.source='{data / 'banking77' / '{split}.csv'}'", "data.test_split=test"],
            "banking77_improved",
            "banking77_rerank",
            "accuracy@1",
            accuracy,
            0.90,
            "test",
            "test.csv, 3,080 utterances",
        ),
    ]


def _timed(score: Callable[[], Any], queries: int) -> tuple[Any, float]:
    started = time.perf_counter()
    rows = score()
    return rows, 1000 * (time.perf_counter() - started) / queries


def bi_rows(model: Any, task: Task, rows: Any) -> tuple[Any, Any]:
    """(metric rows, the score matrix for routing tasks) of a bi-encoder."""
    encode = {"batch_size": 64, "normalize_embeddings": True, "convert_to_numpy": True}
    if task.name == "stsb":
        predicted = (
            model.encode(rows["sentence1"], **encode) * model.encode(rows["sentence2"], **encode)
        ).sum(1)
        return np.stack([predicted, np.asarray(rows["score"], dtype=float)], axis=1), None
    classes, names = _classes(rows)
    scores = model.encode(rows["text"], **encode) @ model.encode(names, **encode).T
    truth = np.array([classes.index(label) for label in rows["label"]])
    return np.stack([truth, scores.argmax(axis=1)], axis=1), scores


def reranked_rows(model: Any, task: Task, rows: Any, bi_scores: Any) -> Any:
    """Metric rows of the reranker: pair scores, or (banking77) the bi-encoder's top 10 reranked."""
    if task.name == "stsb":
        predicted = model.predict(list(zip(rows["sentence1"], rows["sentence2"], strict=True)), batch_size=64)
        return np.stack([np.asarray(predicted, dtype=float), np.asarray(rows["score"], dtype=float)], axis=1)
    classes, names = _classes(rows)
    k = TOP_K if task.name == "banking77" else len(names)
    candidates = np.argsort(-bi_scores, axis=1, kind="stable")[:, :k]
    pairs = [(text, names[j]) for text, row in zip(rows["text"], candidates, strict=True) for j in row]
    scores = np.asarray(model.predict(pairs, batch_size=64), dtype=float).reshape(candidates.shape)
    predicted = candidates[np.arange(len(candidates)), scores.argmax(axis=1)]
    truth = np.array([classes.index(label) for label in rows["label"]])
    return np.stack([truth, predicted], axis=1)


def _classes(rows: Any) -> tuple[list[str], list[str]]:
    from stembed.components.label_routing import label_text

    classes = sorted(set(rows["label"]))
    return classes, [label_text(c) for c in classes]


def train(preset: str, task: Task, seed: int, scale: float, work: Path) -> tuple[Path, float]:
    """Train a preset with one seed: (its saved model directory, training seconds)."""
    overrides = [f"+experiment={preset}", *task.data, f"trainer.seed={seed}", f"trainer.data_seed={seed}"]
    if scale != 1:
        overrides.append(f"trainer.max_steps={max(1, round(_steps(preset) * scale))}")
    _, run = stembed_train([*overrides, *QUIET], work)
    return run_model_dir(run), float(run.metrics["train_runtime"])


def _steps(preset: str) -> int:
    return {"it_tickets_rerank": 200, "banking77_rerank": 400, "stsb_cross": 720}.get(preset, 200)


def measure(task: Task, seeds: list[int], bi_seeds: list[int], scale: float, work: Path) -> dict[str, str]:
    from sentence_transformers import CrossEncoder

    held_out = getattr(compose_data([f"+experiment={task.bi_encoder}", *task.data]), task.split)
    queries = len(held_out)
    arms: dict[str, list[dict[str, Any]]] = {"bi": [], "rerank": []}
    for seed in bi_seeds:
        bi_dir, bi_train = train(task.bi_encoder, task, seed, scale, work)
        (rows, scores), bi_ms = _timed(lambda d=bi_dir: bi_rows(load_model_dir(d), task, held_out), queries)
        arms["bi"].append(
            {"rows": rows, "scores": scores, "value": task.statistic(rows), "train_s": bi_train, "ms": bi_ms}
        )
        print(f"  {task.name} bi-encoder seed {seed}: {arms['bi'][-1]['value']:.4f}, train {bi_train:.0f} s")
    for i, seed in enumerate(seeds):
        bi = arms["bi"][i % len(bi_seeds)]  # the bi-encoder of the same seed, else the first one
        ce_dir, ce_train = train(task.reranker, task, seed, scale, work)
        reranker = CrossEncoder(str(ce_dir), device="cpu")
        ce_rows, ce_ms = _timed(
            lambda m=reranker, b=bi: reranked_rows(m, task, held_out, b["scores"]), queries
        )
        total_ms = ce_ms + (bi["ms"] if task.name == "banking77" else 0.0)  # retrieval, then rerank
        arms["rerank"].append(
            {"rows": ce_rows, "value": task.statistic(ce_rows), "train_s": ce_train, "ms": total_ms}
        )
        print(
            f"  {task.name} reranker seed {seed}: {arms['rerank'][-1]['value']:.4f}, train {ce_train:.0f} s, "
            f"{total_ms:.1f} ms/query (bi-encoder {bi['ms']:.1f})",
            flush=True,
        )
    paired = [arms["bi"][i % len(bi_seeds)]["rows"] for i in range(len(seeds))]
    diff, low, high, p = paired_bootstrap(paired, [r["rows"] for r in arms["rerank"]], task.statistic)
    reranked = statistics.mean(r["value"] for r in arms["rerank"])
    return {
        "task": task.name,
        "metric (held out)": f"{task.metric}, {task.held_out_name}",
        "bi-encoder": _arm(arms["bi"], task.bi_encoder),
        "reranked": _arm(arms["rerank"], task.reranker),
        "reranked − bi-encoder [95% CI]": f"{diff:+.4f} [{low:+.4f}, {high:+.4f}]",
        "p": f"{p:.4f}",
        "goal": f"≥ {task.goal}",
        "met": "yes" if reranked >= task.goal else "NO",
    }


def _arm(runs: list[dict[str, Any]], preset: str) -> str:
    train = statistics.mean(r["train_s"] for r in runs)
    ms = statistics.mean(r["ms"] for r in runs)
    return f"{seed_summary([r['value'] for r in runs])} ({preset}, train {train:.0f} s, {ms:.1f} ms/query)"


def main() -> None:
    parser = task_arguments(__doc__)
    parser.add_argument("--bi-seeds", default="", help="the bi-encoder's seeds (default: --seeds)")
    options = parser.parse_args()
    seeds = [int(s) for s in options.seeds.split(",")]
    bi_seeds = [int(s) for s in options.bi_seeds.split(",")] if options.bi_seeds else seeds
    results = measure_tasks(
        tasks(options.data.resolve()),
        options.only,
        lambda task, work: measure(task, seeds, bi_seeds, options.scale, work),
    )
    print(f"seeds {','.join(map(str, seeds))} (bi-encoder: {','.join(map(str, bi_seeds))})")
    if any(r["met"] == "NO" for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
