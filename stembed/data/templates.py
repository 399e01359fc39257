"""Pairs rendered from records by text templates (repair guides, user/item interactions)."""

from __future__ import annotations

import string
from typing import Any

from datasets import Dataset

from stembed.data.loading import PairData, finish_pairs, holdout, load_source, sample
from stembed.errors import StembedError


def render(template: str, record: dict[str, Any], field_name: str) -> str:
    """Fill `{field}`s from the record; lists become 'a, b, c', missing values ''."""
    fields = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    missing = [name for name in fields if name not in record]
    if missing:
        raise StembedError(
            f"{field_name}={template!r}: field(s) {missing} are not in the data. Fields found: "
            f"{sorted(record)}. Use those names in the template."
        )
    values = {name: _text(record[name]) for name in fields}
    return template.format(**values)


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(_text(item) for item in value)
    if hasattr(value, "tolist"):  # numpy arrays from parquet/jsonl lists
        return _text(value.tolist())
    return str(value)


def templated_pairs(
    source: str,
    anchor: str,
    positive: str,
    name: str | None = None,
    explode: str | None = None,
    subset: str | None = None,
    split: str = "train",
    eval_fraction: float = 0.1,
    eval_limit: int | None = None,
    limit: int | None = None,
    read_options: dict[str, Any] | None = None,
    positive_min_score: float = 0.5,
    seed: int = 42,
) -> PairData:
    """(anchor, positive) pairs, one per record; `explode` makes one record per item of a list field."""

    raw, hub_id = load_source(source, subset, split, read_options)
    frame = raw.to_pandas()
    rows_in = len(frame)
    if explode:
        if explode not in frame.columns:
            raise StembedError(
                f"data.explode={explode}: no such field. Fields found: {list(frame.columns)}. "
                "Name the list field that holds one text per pair, or set data.explode=null."
            )
        frame = frame.explode(explode, ignore_index=True)
    records = frame.to_dict(orient="records")
    pairs: dict[str, list[str]] = {"anchor": [], "positive": []}
    for record in records:
        pairs["anchor"].append(render(anchor, record, "data.anchor"))
        pairs["positive"].append(render(positive, record, "data.positive"))
    dataset = Dataset.from_dict(pairs).filter(lambda row: row["anchor"].strip() and row["positive"].strip())
    dataset = sample(dataset, limit, seed)
    train, eval_ = holdout(dataset, eval_fraction, seed, eval_limit)
    data = finish_pairs(
        train, eval_, name=name or hub_id or source, source=source, hub_id=hub_id, rows_in=rows_in,
        positive_min_score=positive_min_score,
    )  # fmt: skip
    data.stats["records_after_explode"] = len(records)
    return data
