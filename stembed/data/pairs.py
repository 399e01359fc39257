"""Pair builders for labelled texts: same-label pairs, and text <-> label-name pairs with negatives.

Both hold out a seeded share of the texts (not pairs) for evaluation, so no eval text is trained on;
the held-out rows keep their labels (columns `text`, `label`) for label-retrieval evaluators.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from datasets import Dataset

from stembed.components.label_routing import label_text
from stembed.data.loading import (
    PairData,
    _looks_like_path,
    finish_pairs,
    holdout,
    load_source,
    sample,
    select_columns,
)
from stembed.errors import StembedError

if TYPE_CHECKING:
    from datasets import Dataset


def labelled_rows(
    source: str,
    text_column: str,
    label_column: str,
    subset: str | None = None,
    split: str = "train",
    read_options: dict[str, Any] | None = None,
    limit: int | None = None,
    seed: int = 42,
) -> tuple[Dataset, str | None, int]:
    """(rows with string columns text and label, hub id, rows read) from a file or hub data set."""
    raw, hub_id = load_source(source, subset, split, read_options)
    rows_in = len(raw)
    feature = raw.features.get(label_column)
    if feature is not None and hasattr(feature, "int2str"):  # a hub ClassLabel: use the names
        raw = raw.map(lambda batch: {label_column: feature.int2str(batch[label_column])}, batched=True)
    rows = select_columns(raw, {"text": text_column, "label": label_column}, f"data.source={source}")
    rows = rows.map(lambda batch: {"label": [str(v) for v in batch["label"]]}, batched=True)
    rows = rows.filter(lambda row: isinstance(row["text"], str) and row["text"].strip() and row["label"])
    rows = _drop_repeated_texts(rows)  # a repeated text would otherwise leak across the eval split
    rows = sample(rows, limit, seed)
    if len(set(rows["label"])) < 2:
        raise StembedError(
            f"data.label_column={label_column}: fewer than two distinct labels in {source}. "
            "Point data.label_column at the column that holds the class of each text."
        )
    return rows, hub_id, rows_in


def _drop_repeated_texts(rows: Dataset) -> Dataset:
    seen: set[str] = set()
    keep = [i for i, text in enumerate(rows["text"]) if not (text in seen or seen.add(text))]
    return rows.select(keep) if len(keep) < len(rows) else rows


def _by_label(rows: Dataset) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for text, label in zip(rows["text"], rows["label"], strict=True):
        groups[label].append(text)
    return dict(sorted(groups.items()))


def _build(
    make_pairs: Callable[[dict[str, list[str]], random.Random], dict[str, list]],
    source: str,
    text_column: str,
    label_column: str,
    name: str | None,
    subset: str | None,
    split: str,
    eval_fraction: float,
    eval_limit: int | None,
    limit: int | None,
    read_options: dict[str, Any] | None,
    positive_min_score: float,
    seed: int,
    test_split: str | None = None,
) -> PairData:
    """Load labelled texts, hold out a share of them, make pairs from the rest, record statistics.

    test_split (a split of the same source, e.g. BANKING77's test.csv) is kept whole as labelled
    rows, evaluated before and after training only.
    """

    rows, hub_id, rows_in = labelled_rows(
        source, text_column, label_column, subset, split, read_options, limit, seed
    )
    train_rows, eval_rows = holdout(rows, eval_fraction, seed, eval_limit)
    groups = _by_label(train_rows)
    pairs = Dataset.from_dict(make_pairs(groups, random.Random(seed)))
    data = finish_pairs(
        pairs, eval_rows, name=name or hub_id or source, source=source, hub_id=hub_id, rows_in=rows_in,
        positive_min_score=positive_min_score,
    )  # fmt: skip
    sizes = [len(texts) for texts in groups.values()]
    data.stats.update(labels=len(groups), label_min_texts=min(sizes), label_max_texts=max(sizes))
    data.stats["eval_texts"] = len(eval_rows)
    if test_split:
        _check_split_source(source, test_split)
        data.test, _, _ = labelled_rows(source, text_column, label_column, subset, test_split, read_options)
        data.stats["test_rows"] = len(data.test)
    return data


def _check_split_source(source: str, test_split: str) -> None:
    if "{split}" not in source and _looks_like_path(source):
        raise StembedError(
            f"data.test_split={test_split}: data.source={source} is one file, so it has no '{test_split}' "
            "split (it would be the training texts again). Put {split} in the path (e.g. "
            "banking77/{split}.csv) or set data.test_split=null."
        )


def same_label_pairs(
    source: str,
    text_column: str,
    label_column: str,
    n_pairs: int = 15000,
    score: float = 1.0,
    name: str | None = None,
    subset: str | None = None,
    split: str = "train",
    eval_fraction: float = 0.1,
    eval_limit: int | None = None,
    limit: int | None = None,
    read_options: dict[str, Any] | None = None,
    positive_min_score: float = 0.5,
    seed: int = 42,
    test_split: str | None = None,
) -> PairData:
    """Pairs of two different texts with the same label (sentence1, sentence2, score), labels in turn."""

    def make_pairs(groups: dict[str, list[str]], rng: random.Random) -> dict[str, list]:
        groups = {label: texts for label, texts in groups.items() if len(texts) >= 2}
        labels = list(groups)
        pairs: dict[str, list] = {"sentence1": [], "sentence2": [], "score": []}
        seen: set[frozenset[str]] = set()
        for attempt in range(n_pairs * 20):  # bounded: small groups run out of new pairs
            if len(pairs["score"]) == n_pairs:
                break
            first, second = rng.sample(groups[labels[attempt % len(labels)]], 2)
            if frozenset((first, second)) in seen:
                continue
            seen.add(frozenset((first, second)))
            pairs["sentence1"].append(first)
            pairs["sentence2"].append(second)
            pairs["score"].append(float(score))
        return pairs

    return _build(
        make_pairs, source, text_column, label_column, name, subset, split, eval_fraction, eval_limit, limit,
        read_options, positive_min_score, seed, test_split,
    )  # fmt: skip


def label_name_pairs(
    source: str,
    text_column: str,
    label_column: str,
    n_pairs: int = 4000,
    negative_share: float = 0.5,
    label_names: dict[str, str] | None = None,
    name: str | None = None,
    subset: str | None = None,
    split: str = "train",
    eval_fraction: float = 0.1,
    eval_limit: int | None = None,
    limit: int | None = None,
    read_options: dict[str, Any] | None = None,
    positive_min_score: float = 0.5,
    seed: int = 42,
    test_split: str | None = None,
) -> PairData:
    """(text, label name, 1.0) positives and (text, another label's name, 0.0) negatives, labels in turn."""

    def make_pairs(groups: dict[str, list[str]], rng: random.Random) -> dict[str, list]:
        labels = list(groups)
        n_negatives = round(n_pairs * negative_share)
        rows = []
        for index in range(n_pairs):
            label = labels[index % len(labels)]
            negative = index < n_negatives
            target = rng.choice([other for other in labels if other != label]) if negative else label
            rows.append(
                (rng.choice(groups[label]), label_text(target, label_names), 0.0 if negative else 1.0)
            )
        rng.shuffle(rows)
        return {
            "sentence1": [r[0] for r in rows],
            "sentence2": [r[1] for r in rows],
            "score": [r[2] for r in rows],
        }

    return _build(
        make_pairs, source, text_column, label_column, name, subset, split, eval_fraction, eval_limit, limit,
        read_options, positive_min_score, seed, test_split,
    )  # fmt: skip
