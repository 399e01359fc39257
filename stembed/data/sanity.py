"""Sanity checks that catch real mistakes in training data: warnings with counts (errors with strict=true).

- identical labels with a loss that learns from labels (all 1.0 collapses CosineSimilarityLoss);
- repeated texts, which become false in-batch negatives for MNRL-family losses;
- rows shared between train and eval (leakage: the eval metric flatters the model);
- texts longer than max_seq_length (silently truncated).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from stembed.errors import StembedError

if TYPE_CHECKING:
    from datasets import Dataset

from stembed.data.loading import text_columns

TRUNCATION_SAMPLE = 2000  # texts tokenized to estimate the truncated share


@dataclass
class Finding:
    """One sanity problem: a short name, the count behind it (a metric) and what to do."""

    name: str
    count: float
    message: str


def check_training_data(
    train: Dataset,
    eval_: Dataset | None,
    label_column: str | None,
    in_batch_negatives: bool,
    no_duplicates_sampler: bool,
    model: Any,
) -> list[Finding]:
    """Every check that finds something, in a fixed order."""
    checks = [
        _identical_labels(train, label_column) if not in_batch_negatives else None,
        _repeated_texts(train, no_duplicates_sampler) if in_batch_negatives else None,
        _identical_pair_texts(train),
        _leakage(train, eval_),
        _truncation(train, model),
    ]
    return [finding for finding in checks if finding is not None]


def raise_if_strict(findings: list[Finding], strict: bool) -> None:
    """With strict=true any finding stops the run before it starts."""
    if strict and findings:
        problems = " ".join(f"[{f.name}] {f.message}" for f in findings)
        raise StembedError(f"strict=true: the data failed {len(findings)} sanity check(s). {problems}")


def _identical_labels(train: Dataset, label_column: str | None) -> Finding | None:
    if label_column is None or len(train) < 2:
        return None
    values = pc.unique(_arrow(train, label_column)).to_pylist()  # column operations: a million rows
    if len(values) != 1:
        return None
    return Finding(
        "identical_labels",
        len(train),
        f"all {len(train)} training labels are {values.pop()}: a loss that learns from labels has nothing "
        "to contrast and collapses (every pair pulled together). Add negative pairs with other labels, or "
        "use an in-batch-negative loss (loss=mnrl) on these positive pairs.",
    )


def _repeated_texts(train: Dataset, no_duplicates_sampler: bool) -> Finding | None:
    repeated = 0
    for column in text_columns(train):
        counts = pc.value_counts(_arrow(train, column)).field("counts").to_numpy()
        repeated += int(counts[counts > 1].sum())
    if not repeated or no_duplicates_sampler:
        return None
    return Finding(
        "repeated_texts",
        repeated,
        f"{repeated} training rows repeat a text that appears in another row: in the same batch these "
        "become false negatives for an in-batch-negative loss. Use speed.batch_sampler=no_duplicates "
        "(the default, speed.batch_sampler=auto, picks it for these losses).",
    )


def _identical_pair_texts(train: Dataset) -> Finding | None:
    """Rows whose first two texts are the same (e.g. one column mapped to both inputs): nothing to learn."""
    columns = text_columns(train)[:2]
    if len(columns) < 2 or not len(train):
        return None
    same = pc.sum(pc.equal(_arrow(train, columns[0]), _arrow(train, columns[1]))).as_py() or 0
    if same < max(1, 0.01 * len(train)):
        return None
    return Finding(
        "identical_pair_texts",
        same,
        f"{same} of {len(train)} training rows pair a text with itself ({columns[0]} == {columns[1]}): such "
        "pairs teach nothing. Check data.columns (is one column mapped to two inputs?) or deduplicate.",
    )


def _leakage(train: Dataset, eval_: Dataset | None) -> Finding | None:
    if eval_ is None:
        return None
    columns = [c for c in text_columns(train) if c in eval_.column_names]
    if not columns:
        return None
    shared = pc.sum(pc.is_in(_row_keys(eval_, columns), value_set=_row_keys(train, columns).combine_chunks()))
    shared = shared.as_py() or 0
    if not shared:
        return None
    return Finding(
        "leaked_eval_rows",
        shared,
        f"{shared} of {len(eval_)} eval rows also appear in the training data ({', '.join(columns)}): the "
        "eval metric overstates the model. Deduplicate the data or hold out with data.eval_fraction.",
    )


def _truncation(train: Dataset, model: Any) -> Finding | None:
    tokenizer = getattr(model, "tokenizer", None)
    limit = getattr(model, "max_seq_length", None)
    limit = limit if isinstance(limit, int) else None  # StaticEmbedding reports inf
    if hasattr(tokenizer, "encode_batch"):  # a `tokenizers.Tokenizer` (StaticEmbedding) truncates itself
        limit = limit or (tokenizer.truncation or {}).get("max_length")
    if not limit or tokenizer is None:
        return None
    texts = _sampled_texts(train, TRUNCATION_SAMPLE)
    # A tokenizer makes at most 2 tokens per UTF-8 byte (a byte-fallback token plus a word marker),
    # so only texts longer than that can reach the limit: the rest need no tokenizing.
    candidates = [text for text in texts if 2 * len(str(text).encode()) + 8 > limit]
    lengths = token_lengths(tokenizer, candidates) if candidates else []
    share = sum(length > limit for length in lengths) / max(len(texts), 1)
    if share < 0.01:
        return None
    return Finding(
        "truncated_share",
        round(share, 4),
        f"{share:.1%} of training texts are longer than model.max_seq_length={limit} tokens and are cut "
        "off. Raise model.max_seq_length (up to the model's limit) or shorten the texts.",
    )


def _arrow(dataset: Dataset, column: str) -> pa.ChunkedArray:
    """One column as Arrow: datasets' Column turns a million rows into Python objects one by one."""
    return dataset.with_format("arrow")[column]


def _sampled_texts(train: Dataset, size: int) -> list[str]:
    """Evenly spaced texts of all text columns, sampled before any text becomes a Python string."""
    chunks = [
        chunk.cast(pa.large_string())
        if pa.types.is_string(chunk.type)
        else pa.array(map(str, chunk.to_pylist()))
        for column in text_columns(train)
        for chunk in _arrow(train, column).chunks
    ]
    every = pa.chunked_array([c.cast(pa.large_string()) for c in chunks], pa.large_string())
    if len(every) > size:
        every = every.take(pa.array([int(i * len(every) / size) for i in range(size)]))
    return every.to_pylist()


def _row_keys(dataset: Dataset, columns: list[str]) -> pa.ChunkedArray:
    """One string per row of these columns (joined by a unit separator), for Arrow's set lookups."""
    values = [_arrow(dataset, c).cast(pa.large_string()) for c in columns]
    return (
        pc.binary_join_element_wise(*values, pa.scalar("\x1f", pa.large_string()))
        if len(values) > 1
        else values[0]
    )


def token_lengths(tokenizer: Any, texts: list[str]) -> list[int]:
    """Untruncated token counts with special tokens, for a transformers or a `tokenizers` tokenizer."""
    if hasattr(tokenizer, "encode_batch"):
        from tokenizers import Tokenizer

        untruncated = Tokenizer.from_str(tokenizer.to_str())
        untruncated.no_truncation()
        return [len(encoding.ids) for encoding in untruncated.encode_batch(texts)]
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]]
