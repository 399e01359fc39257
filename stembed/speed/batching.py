"""Length-grouped batches: pairs of similar length train together, so little compute goes to padding.

Random batches of variable-length texts are mostly padding (IT tickets at batch 32: 79% of the
tokens). `LengthGroupedBatchSampler` shuffles the rows, cuts the order into mega-batches of
`megabatch` batches, sorts each by length and cuts it into batches, then shuffles the batch order:
every epoch still sees every row once in a fresh order, while a batch holds rows of similar length.
With `no_duplicates` a batch never holds the same text twice (as sentence-transformers'
NoDuplicatesBatchSampler), which in-batch-negative losses such as MNRL need.

Selected by `speed.batches=group_by_length` (stembed/speed/plan.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sentence_transformers.base.sampler import DefaultBatchSampler

from stembed.data.loading import text_columns
from stembed.data.sanity import token_lengths

if TYPE_CHECKING:
    import numpy as np
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer


class TokenLengths:
    """Token counts of texts, cut at the model's max_seq_length (picklable, for checkpoints)."""

    def __init__(self, tokenizer: Any, max_length: int | None) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, texts: list[str]) -> list[int]:

        limit = self.max_length if isinstance(self.max_length, int) else None  # StaticEmbedding: inf
        lengths = token_lengths(self.tokenizer, texts)
        return lengths if limit is None else [min(n, limit) for n in lengths]


def row_lengths(dataset: Dataset, lengths: Callable[[list[str]], list[int]] | None = None) -> np.ndarray:
    """Each row's summed length over its text columns: tokens, or characters without a tokenizer."""

    lengths = lengths or (lambda texts: [len(t) for t in texts])
    total = np.zeros(len(dataset), dtype=np.int64)
    for column in text_columns(dataset):
        total += np.asarray(lengths([str(t) for t in dataset[column][:]]), dtype=np.int64)
    return total


class LengthGroupedBatchSampler(DefaultBatchSampler):
    """Batches of rows of similar length, in a random order that changes every epoch."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: torch.Generator | None = None,
        seed: int = 0,
        no_duplicates: bool = False,
        megabatch: int = 50,
        lengths: Callable[[list[str]], list[int]] | None = None,
    ) -> None:
        super().__init__(
            dataset,
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            seed=seed,
        )
        self.lengths = row_lengths(dataset, lengths)
        self.megabatch = megabatch
        self.texts = _row_texts(dataset) if no_duplicates else None

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:

        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        size = self.batch_size * self.megabatch
        batches: list[list[int]] = []
        carry: list[int] = []  # rows that did not fill a batch in their mega-batch
        for start in range(0, len(order), size):
            rows = carry + order[start : start + size]
            rows.sort(key=lambda i: -self.lengths[i])
            full, carry = self._fill(rows)
            batches += full
        while carry:  # the remainder: smaller batches (dropped if drop_last)
            batch, carry = self._take_batch(carry)
            if len(batch) == self.batch_size or not self.drop_last:
                batches.append(batch)
        for i in torch.randperm(len(batches), generator=generator).tolist():
            yield batches[i]

    def _fill(self, rows: list[int]) -> tuple[list[list[int]], list[int]]:
        """Full batches from rows in length order, plus the rows left over."""
        batches = []
        while len(rows) >= self.batch_size:
            batch, rest = self._take_batch(rows)
            if len(batch) < self.batch_size:
                break
            batches.append(batch)
            rows = rest
        return batches, rows

    def _take_batch(self, rows: list[int]) -> tuple[list[int], list[int]]:
        """The first batch_size rows (skipping rows that repeat a text already in the batch) and the rest."""
        if self.texts is None:
            return rows[: self.batch_size], rows[self.batch_size :]
        batch: list[int] = []
        rest: list[int] = []
        seen: set[str] = set()
        for i in rows:
            if len(batch) < self.batch_size and seen.isdisjoint(self.texts[i]):
                batch.append(i)
                seen |= self.texts[i]
            else:
                rest.append(i)
        return batch, rest


def _row_texts(dataset: Dataset) -> list[frozenset[str]]:
    columns = [dataset[c][:] for c in text_columns(dataset)]  # lists: a Column reads row by row
    return [frozenset(map(str, values)) for values in zip(*columns, strict=True)]


def pads_batches(model: SentenceTransformer) -> bool:
    """Whether the model pads a batch to its longest text (transformers do; StaticEmbedding does not)."""
    return "attention_mask" in model.preprocess(["a", "a a a"])


def length_grouped(no_duplicates: bool, model: SentenceTransformer | None = None) -> Any:
    """The `batch_sampler` callable for SentenceTransformerTrainingArguments.

    Rows are measured in the model's tokens (characters for a model without a tokenizer).
    """

    tokenizer = getattr(model, "tokenizer", None)
    lengths = TokenLengths(tokenizer, model.max_seq_length) if tokenizer is not None else None
    return functools.partial(LengthGroupedBatchSampler, no_duplicates=no_duplicates, lengths=lengths)
