"""`stembed diff RUN_ID`: what training changed, example by example (baseline -> final of one run).

The paired interval per metric says whether the gain is more than the luck of which examples were
evaluated; the examples that moved most show where the recipe works and where it does not (often:
bad labels). Written as diff.parquet and a short section of the run's card.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from stembed.analysis.bootstrap import RESAMPLES, SEED, Comparison, paired_bootstrap
from stembed.analysis.compare import columns, load_tables
from stembed.components.per_example import KIND
from stembed.errors import StembedError
from stembed.tracking.record import RUN_DIR_TAG
from stembed.tracking.run import metric_name

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.tracking import MlflowClient

SECTION_TITLE = "## What fine-tuning changed, example by example (stembed diff)"


@dataclass
class EvaluatorDiff:
    """Baseline -> final of one evaluator: the metric comparisons and the rows of diff.parquet."""

    evaluator: str
    kind: str
    comparisons: list[Comparison]
    examples: pd.DataFrame  # one row per example: before, after, change (positive = better)
    confusions: pd.DataFrame = field(default=None)  # type: ignore[assignment]  # label routing only


def run_diff(
    client: MlflowClient, run_id: str, resamples: int = RESAMPLES, seed: int = SEED
) -> list[EvaluatorDiff]:
    """Diff every evaluator that has both baseline_ and final_ per-example tables in the run."""

    baseline, final = load_tables(client, run_id, "baseline_"), load_tables(client, run_id, "final_")
    primary = client.get_run(run_id).data.tags.get("stembed.primary_metric", "").removeprefix("final_")
    shared = [name for name in final if name in baseline]
    if not shared:
        raise StembedError(
            f"run {run_id}: no baseline and final per-example scores (eval/baseline_*.parquet and "
            "eval/final_*.parquet). `stembed diff` needs a training run with an evaluator, trained by a "
            "stembed that logs per-example scores; `stembed runs` lists the runs."
        )
    diffs = []
    for name in shared:
        before, after = baseline[name], final[name]
        after = after.set_index("example_id").loc[before.example_id].reset_index()
        metrics = dict(before.attrs["stembed.metrics"])
        metrics = dict(sorted(metrics.items(), key=lambda item: metric_name(item[0]) != primary))
        comparisons = paired_bootstrap(columns(before), columns(after, like=before), metrics, resamples, seed)
        kind = before.attrs.get(KIND, "")
        diff = EvaluatorDiff(name, kind, comparisons, _examples(before, after, kind))
        if kind == "label":
            diff.confusions = _confusions(before, after)
        diffs.append(diff)
    return diffs


def _examples(before: pd.DataFrame, after: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Per example: text, gold, before, after, change (> 0: better) by the kind's own measure.

    Retrieval and label routing: the rank of the right answer (lower is better). Pairs: the distance
    of the predicted similarity from the gold score.
    """

    if kind in ("similarity", "binary"):
        score = next(c for c in before.columns if c.startswith("score_"))
        measure = "distance from gold"
        text = before.sentence1 + "  <->  " + before.sentence2
        was, now = (before[score] - before.gold).abs(), (after[score] - after.gold).abs()
        gold = before.gold.map(lambda g: f"{g:g}")
    else:
        rank = "rank" if "rank" in before.columns else next(c for c in before.columns if c.endswith("_rank"))
        measure = "rank of the right answer"
        text = before["text" if "text" in before.columns else "query"]
        was, now = before[rank], after[rank]
        gold = before["gold_label"] if "gold_label" in before.columns else pd.Series([""] * len(before))
    table = pd.DataFrame(
        {
            "example_id": before.example_id,
            "text": text,
            "gold": gold.astype(str),
            "measure": measure,
            "before": was.to_numpy(dtype=float),
            "after": now.to_numpy(dtype=float),
        }
    )
    table["change"] = table.before - table.after  # both measures: lower is better
    if kind == "label":
        table["predicted_before"] = before.predicted_label.to_numpy()
        table["predicted_after"] = after.predicted_label.to_numpy()
    return table


def _confusions(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """(gold, predicted) pairs of wrong routes, counted before and after; the ones that grew first."""

    def counts(table: pd.DataFrame) -> pd.Series:
        wrong = table[table.gold_label != table.predicted_label]
        return wrong.groupby(["gold_label", "predicted_label"]).size()

    merged = pd.concat({"before": counts(before), "after": counts(after)}, axis=1).fillna(0).astype(int)
    merged["grew"] = merged.after - merged.before
    merged = merged.reset_index().rename(columns={"gold_label": "gold", "predicted_label": "predicted"})
    return merged.sort_values(["grew", "after"], ascending=False, ignore_index=True)


def diff_frame(diffs: list[EvaluatorDiff]) -> pd.DataFrame:
    """All evaluators' rows in one table (row_kind: example | confusion), for diff.parquet."""

    parts = []
    for diff in diffs:
        examples = diff.examples.assign(evaluator=diff.evaluator, row_kind="example")
        parts.append(examples)
        if diff.confusions is not None and len(diff.confusions):
            c = diff.confusions
            parts.append(
                pd.DataFrame(
                    {
                        "evaluator": diff.evaluator,
                        "row_kind": "confusion",
                        "text": c.gold + " -> " + c.predicted,
                        "gold": c.gold,
                        "measure": "wrong routes (count)",
                        "before": c.before.astype(float),
                        "after": c.after.astype(float),
                        "change": -c.grew.astype(float),
                    }
                )
            )
    frame = pd.concat(parts, ignore_index=True)
    first = ["evaluator", "row_kind", "example_id", "text", "gold", "measure", "before", "after", "change"]
    return frame[first + [c for c in frame.columns if c not in first]]


def moved(examples: pd.DataFrame, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(most worse, most better) examples, each at most n rows, ties by text for a stable order."""
    ordered = examples.sort_values(["change", "text"], kind="stable")
    worse = ordered[ordered.change < 0].head(n)
    better = ordered[ordered.change > 0].sort_values(["change", "text"], ascending=[False, True]).head(n)
    return worse, better


def render(diffs: list[EvaluatorDiff], n: int, markdown: bool = False) -> str:
    """The console report (or, markdown=True, the card section) of a diff."""
    lines: list[str] = []
    for diff in diffs:
        count = diff.comparisons[0].examples if diff.comparisons else len(diff.examples)
        title = f"{diff.evaluator}: baseline -> final on {count} examples (paired bootstrap, 95% interval)"
        lines += [f"### {title}", ""] if markdown else [title]
        lines += _metric_lines(diff.comparisons, markdown)
        worse, better = moved(diff.examples, n)
        measure = diff.examples.measure.iloc[0] if len(diff.examples) else ""
        for heading, rows in ((f"Most worse ({measure}, before -> after)", worse), ("Most better", better)):
            lines += ["", _heading(heading, markdown)]
            shown = [_example_line(row, markdown) for row in rows.itertuples()]
            lines += shown or [_bullet(markdown) + "(none)"]
        if diff.confusions is not None:
            grew = diff.confusions[diff.confusions.grew > 0].head(n)
            heading = "Confusion pairs that grew (gold -> predicted: before -> after)"
            lines += ["", _heading(heading, markdown)]
            lines += [
                f"{_bullet(markdown)}{r.gold} -> {r.predicted}: {r.before} -> {r.after} ({r.grew:+d})"
                for r in grew.itertuples()
            ] or [_bullet(markdown) + "(none)"]
        lines.append("")
    return "\n".join(lines)


def _metric_lines(comparisons: list[Comparison], markdown: bool) -> list[str]:
    lines = ["", "| Metric | Baseline | Final | Gain | 95% interval | p |", "|:--|--:|--:|--:|:--|--:|"]
    lines = lines if markdown else []
    for c in comparisons:
        interval = f"[{c.low:+.4f}, {c.high:+.4f}]"
        cells = [c.metric, f"{c.a:.4f}", f"{c.b:.4f}", f"{c.delta:+.4f}", interval, f"{c.p_value:.4f}"]
        if markdown:
            lines.append("| " + " | ".join(cells) + " |")
        else:
            verdict = "" if c.differs else "  (no evidence of a difference)"
            change = f"({cells[3]}, {interval}, p={cells[5]})"
            lines.append(f"  {c.metric}: {cells[1]} -> {cells[2]} {change}{verdict}")
    return lines


def _heading(text: str, markdown: bool) -> str:
    return f"**{text}**" if markdown else f"  {text}:"


def _bullet(markdown: bool) -> str:
    return "- " if markdown else "    "


def _example_line(row: Any, markdown: bool) -> str:
    text = str(row.text).replace("\n", " ")
    text = text if len(text) <= 90 else text[:87] + "..."
    gold = f" [gold {row.gold}]" if row.gold else ""
    return f"{_bullet(markdown)}{_number(row.before)} -> {_number(row.after)}{gold}  {text}"


def _number(value: float) -> str:
    """Ranks as integers, distances with 3 decimals."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3f}"


def card_with_section(card: str, section: str) -> str:
    """The card with the diff section appended, replacing an earlier one."""
    start = card.find(SECTION_TITLE)
    if start != -1:
        following = card.find("\n## ", start + len(SECTION_TITLE))
        card = card[:start] + (card[following + 1 :] if following != -1 else "")
    return card.rstrip("\n") + "\n\n" + SECTION_TITLE + "\n\n" + section.rstrip("\n") + "\n"


def publish(client: MlflowClient, run_id: str, diffs: list[EvaluatorDiff], n: int) -> list[str]:
    """Log diff.parquet and the card (README.md) with the diff section to the run; also update the
    local card in the run directory when it is there. Returns what was written."""

    written = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "diff.parquet"
        diff_frame(diffs).to_parquet(path, index=False)
        client.log_artifact(run_id, str(path))
        written.append(f"runs:/{run_id}/diff.parquet")
        section = render(diffs, n, markdown=True)
        try:
            card = Path(client.download_artifacts(run_id, "README.md", tmp)).read_text(encoding="utf-8")
        except Exception:  # no card logged (e.g. a run that failed before it saved the model)
            card = None
        if card is not None:
            client.log_text(run_id, card_with_section(card, section), "README.md")
            written.append(f"runs:/{run_id}/README.md")
    run_dir = client.get_run(run_id).data.tags.get(RUN_DIR_TAG)
    local = Path(run_dir) / "model" / "README.md" if run_dir else None
    if local is not None and local.is_file():
        local.write_text(card_with_section(local.read_text(encoding="utf-8"), section), encoding="utf-8")
        written.append(str(local))
    return written
