"""Load pair data from a local file or a hub data set into train/eval `datasets.Dataset`s."""

from __future__ import annotations

import hashlib
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from stembed.errors import StembedError

# `datasets` is imported inside functions: it loads huggingface_hub, and `stembed train` imports this
# module (through tracking) before it decides offline mode (stembed.hub).
if TYPE_CHECKING:
    from datasets import Dataset

LABEL_COLUMNS = ("score", "label", "scores", "labels")
FILE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}


@dataclass
class PairData:
    """Train and eval pairs plus what the run records about them."""

    train: Dataset
    eval: Dataset | None  # what the evaluator reads (pairs, or texts with labels)
    name: str
    source: str
    hub_id: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    eval_pairs: Dataset | None = None  # pairs for the trainer's eval loss, shaped like train
    test: Dataset | None = None  # evaluated before and after training only

    @property
    def label_column(self) -> str | None:
        """The column the trainer treats as the label, if any."""
        return next((c for c in self.train.column_names if c in LABEL_COLUMNS), None)

    _fingerprint: tuple[tuple[int, ...], str] | None = field(default=None, repr=False, compare=False)

    @property
    def fingerprint(self) -> str:
        """A short content hash of train, eval and test data; computed once per set of splits (a run
        reads it for its tags, its MLflow inputs and its card)."""
        parts = (self.train, self.eval, self.test)
        key = tuple(id(part) for part in parts)
        if self._fingerprint is None or self._fingerprint[0] != key:
            digest = hashlib.sha256()
            for part in parts:
                if part is not None:
                    digest.update(_hash_rows(part))
            self._fingerprint = (key, digest.hexdigest()[:16])
        return self._fingerprint[1]


def _hash_rows(dataset: Dataset) -> pa.Buffer:
    """The rows as one Arrow IPC stream (one chunk, no metadata): hashed at memory speed, not row by row."""
    table = dataset.with_format("arrow")[:].combine_chunks().replace_schema_metadata(None)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _hash_frame(frame: pd.DataFrame) -> bytes:

    return pd.util.hash_pandas_object(frame, index=False).values.tobytes() + ",".join(frame.columns).encode()


def text_columns(dataset: Dataset) -> list[str]:
    """The columns that hold texts (everything but a label column)."""
    return [c for c in dataset.column_names if c not in LABEL_COLUMNS]


def file_format(path: Path) -> str | None:
    """csv/tsv/jsonl/json/parquet from the suffix (a trailing .gz is allowed), or None."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return FILE_SUFFIXES.get(suffixes[-1]) if suffixes else None


def _looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or file_format(Path(source)) is not None


def read_table(
    path: Path, read_options: dict[str, Any] | None = None, field_name: str = "data.source"
) -> pd.DataFrame:
    """Read a local csv/tsv/jsonl/json/parquet file (optionally gzipped) into a DataFrame.

    read_options go to pandas' reader, e.g. {header: null, names: [a, b]} for a csv without header.
    """

    options = dict(read_options or {})

    fmt = file_format(path)
    if fmt is None:
        raise StembedError(
            f"{field_name}={path}: unknown file type '{''.join(path.suffixes)}'. "
            f"Use one of {', '.join(FILE_SUFFIXES)} (optionally .gz), or a hub data set id."
        )
    try:
        if fmt in ("csv", "tsv"):
            options = {
                "sep": "\t" if fmt == "tsv" else ",",
                "keep_default_na": False,
                "na_values": [""],
            } | options
            return pd.read_csv(path, **options)
        if fmt == "jsonl":
            return pd.read_json(path, lines=True, **options)
        if fmt == "json":
            try:
                return pd.read_json(path, **options)  # an array of records
            except ValueError:
                return pd.read_json(path, lines=True, **options)  # JSON lines saved as .json
        return pd.read_parquet(path, **options)
    except (ValueError, OSError, TypeError, pd.errors.ParserError) as err:
        raise StembedError(
            f"{field_name}={path}: could not read it as {fmt} ({err}). Check the file's format and encoding."
        ) from err


def load_source(
    source: str,
    subset: str | None = None,
    split: str = "train",
    read_options: dict[str, Any] | None = None,
    field_name: str = "data.source",
) -> tuple[Dataset, str | None]:
    """(rows, hub id or None) from a local file or a hub data set.

    A local path may contain `{split}`, e.g. `stsb/{split}.csv`, so one source serves every split.
    """
    path = Path(source.replace("{split}", split)).expanduser()
    if path.is_file():
        return _to_dataset(read_table(path, read_options, field_name), f"{field_name}={source}"), None
    if _looks_like_path(source):
        raise StembedError(
            f"{field_name}={source}: no such file (looked in {path.resolve().parent}). "
            "Give an existing csv/tsv/jsonl/json/parquet path (relative paths start from the directory "
            "you ran stembed in) or a hub data set id."
        )
    return _load_hub(source, subset, split, field_name), source


def _to_dataset(frame: pd.DataFrame, where: str) -> Dataset:
    """A Dataset from a table; a column that mixes types (texts and numbers) is named, not a traceback."""
    from datasets import Dataset

    try:
        return Dataset.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as err:
        column = next((c for c in frame.columns if _mixed_types(frame[c])), None)
        what = (
            f"column '{column}' mixes {', '.join(sorted(_mixed_types(frame[column])))} values"
            if column is not None
            else str(err).splitlines()[0]
        )
        raise StembedError(
            f"{where}: {what}. Every column needs one type (all texts, or all numbers): fix the rows "
            "that differ, or quote numbers that are texts."
        ) from err


def _mixed_types(values: pd.Series) -> set[str]:
    kinds = {"number" if isinstance(v, int | float) else type(v).__name__ for v in values.dropna()}
    return kinds if len(kinds) > 1 else set()


def _load_hub(hub_id: str, subset: str | None, split: str, field_name: str) -> Dataset:
    import datasets

    try:
        return datasets.load_dataset(hub_id, subset, split=split)
    except Exception as err:  # datasets raises many types: offline, not found, bad split
        raise StembedError(
            f"{field_name}={hub_id} (subset={subset}, split={split}): could not load this hub data set: "
            f"{str(err).splitlines()[0] if str(err) else type(err).__name__}. Without hub access, download "
            f"it once or point {field_name} at a local csv/tsv/jsonl/json/parquet file."
        ) from err


def select_columns(dataset: Dataset, columns: dict[str, str], where: str) -> Dataset:
    """Keep and rename the mapped columns (output name -> source column), in mapping order."""
    found = dataset.column_names
    missing = [src for src in columns.values() if src not in found]
    if missing:
        raise StembedError(
            f"{where}: column(s) {missing} not found. Columns found: {found}. Columns expected "
            f"(data.columns, output: source): {dict(columns)}. Map them with "
            f"data.columns.<output>=<column in your data>."
        )
    if len(dataset) == 0:
        raise StembedError(f"{where}: no rows. Check the file (it has only a header?) or the split.")
    table = dataset.with_format("arrow")[:].combine_chunks()  # data.limit's shuffle: one chunk per row
    features = {out: dataset.features[src] for out, src in columns.items()}  # e.g. a hub ClassLabel stays
    return _from_arrow(pa.table({out: table.column(src) for out, src in columns.items()}), features)


def _from_arrow(table: pa.Table, features: dict[str, Any] | None = None) -> Dataset:
    """A Dataset over an Arrow table: column operations instead of a row-by-row `map`."""
    from datasets import Dataset, DatasetInfo, Features

    return Dataset(table, info=DatasetInfo(features=Features(features)) if features else None)


def _column(dataset: Dataset, name: str) -> pa.ChunkedArray:
    """One column as Arrow (honours a select/shuffle's indices); datasets' Column iterates row by row."""
    return dataset.with_format("arrow")[name]


MIN_EVAL_ROWS = 2  # a correlation or a ranking over one row is undefined


def _clean(dataset: Dataset, where: str) -> Dataset:
    """Drop rows with an empty text (counted in a warning); fail on texts that are not strings and on
    labels that are not finite numbers; make the label float32. Column operations: a million rows take
    seconds."""
    texts = text_columns(dataset)
    for column in texts:
        _check_texts(_column(dataset, column), column, where)
    rows = len(dataset)
    labels = [c for c in dataset.column_names if c in LABEL_COLUMNS]
    for column in labels:
        check_labels(_column(dataset, column), column, where)
    keep = _non_empty_rows(dataset, texts)
    if keep is not None:  # Arrow's filter: datasets' select + flatten_indices copies row by row
        kept = dataset.with_format("arrow")[:].filter(pa.array(keep)).combine_chunks()
        dataset = _from_arrow(kept, dict(dataset.features))
    _warn_dropped(rows, len(dataset), texts, where)
    if len(dataset) == 0:
        raise StembedError(
            f"{where}: all {rows} rows have an empty text in one of the columns {texts}. Check data.columns "
            "(does each output name the right column?) and the file."
        )
    return _float_labels(dataset, labels, where)


def _non_empty_rows(dataset: Dataset, texts: list[str]) -> np.ndarray | None:
    """A mask of the rows whose texts are all non-blank, or None when every row is."""
    keep = np.ones(len(dataset), dtype=bool)
    for column in texts:
        values = _column(dataset, column)
        if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
            return np.zeros(len(dataset), dtype=bool)  # all empty (_check_texts passed)
        length = pc.utf8_length(pc.utf8_trim_whitespace(values))
        keep &= pc.fill_null(pc.greater(length, 0), False).to_numpy(zero_copy_only=False)
    return None if keep.all() else keep


def _float_labels(dataset: Dataset, labels: list[str], where: str) -> Dataset:
    from datasets import Value

    for column in labels:
        try:
            dataset = dataset.cast_column(column, Value("float32"))
        except (ValueError, TypeError, pa.ArrowInvalid) as err:
            sample = _column(dataset, column).slice(0, 3).to_pylist()
            raise StembedError(
                f"{where}: label column '{column}' is not numeric (first values: {sample}). "
                "Map a numeric column to it with data.columns, or drop it for losses without labels."
            ) from err
    return dataset


def _is_text(values: pa.ChunkedArray) -> bool:
    kind = values.type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)


def _check_texts(values: pa.ChunkedArray, column: str, where: str) -> None:
    """A text column holds strings (or empty cells); numbers or lists mean a wrong column or file."""
    if _is_text(values):
        return
    items = values.to_pylist()
    bad = [(i, v) for i, v in enumerate(items) if v is not None and not isinstance(v, str)]
    if not bad:
        return
    row, value = bad[0]
    raise StembedError(
        f"{where}: text column data.columns.{column} holds {type(value).__name__} values, not texts "
        f"({len(bad)} of {len(items)} rows; first: {value!r} in row {row + 1}). Map a column of texts to "
        f"it with data.columns.{column}=<column>, or quote the values in the file."
    )


def check_labels(values: pa.ChunkedArray | list[Any], column: str, where: str) -> None:
    """Empty, NaN or infinite labels are bad input (they train to NaN): name the count and the rows."""
    rows = (np.flatnonzero(_bad_labels(values)) + 1).tolist()
    if rows:
        shown = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
        raise StembedError(
            f"{where}: label column '{column}' has {len(rows)} empty or non-finite (NaN/inf) value(s), in "
            f"row(s) {shown} (1 = the first data row). Fill or remove those rows: a NaN label turns the "
            "loss and then the model into NaN."
        )


def _bad_labels(values: pa.ChunkedArray | list[Any]) -> np.ndarray:
    """A mask of empty, NaN and infinite labels: column operations for numbers, else value by value."""
    if isinstance(values, pa.ChunkedArray | pa.Array) and (
        pa.types.is_floating(values.type) or pa.types.is_integer(values.type)
    ):
        numbers = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)  # nulls become NaN
        return ~np.isfinite(numbers)
    items = values.to_pylist() if isinstance(values, pa.ChunkedArray | pa.Array) else list(values)

    def bad(value: Any) -> bool:
        if value is None or (isinstance(value, str) and not value.strip()):
            return True
        try:
            return not math.isfinite(float(value))
        except (TypeError, ValueError):
            return False  # a non-numeric label fails the numeric check with its own message

    return np.fromiter((bad(v) for v in items), dtype=bool, count=len(items))


def _warn_dropped(before: int, after: int, texts: list[str], where: str) -> None:
    """Any dropped row is counted: a few thousand silently missing rows look like a smaller file."""
    dropped = before - after
    if after and dropped:
        share = f"{dropped / before:.0%}" if dropped >= before / 100 else "under 1%"
        print(
            f"stembed: warning: {where}: dropped {dropped} of {before} rows ({share}) with "
            f"an empty text in {texts}; data_stats in the run records the counts. Check data.columns.",
            file=sys.stderr,
        )


def finish_pairs(
    train: Dataset,
    eval_: Dataset | None,
    *,
    name: str,
    source: str,
    hub_id: str | None,
    rows_in: int,
    positive_min_score: float = 0.5,
) -> PairData:
    """Wrap built datasets in PairData with the statistics every run records."""
    stats: dict[str, Any] = {
        "rows_in": rows_in,
        "train_pairs": len(train),
        "eval_pairs": len(eval_) if eval_ is not None else 0,
        "positive_min_score": positive_min_score,
    }
    data = PairData(train=train, eval=eval_, name=name, source=source, hub_id=hub_id, stats=stats)
    if eval_ is not None and set(eval_.column_names) == set(train.column_names):
        data.eval_pairs = eval_
    if data.label_column and len(train):
        labels = pc.cast(_column(train, data.label_column), pa.float64()).to_numpy(zero_copy_only=False)
        stats["train_label_mean"] = round(float(labels.mean()), 4)
        stats["train_positive_share"] = round(float((labels >= positive_min_score).mean()), 4)
    return data


def load_pairs(
    source: str,
    columns: dict[str, str],
    name: str | None = None,
    subset: str | None = None,
    split: str = "train",
    eval_source: str | None = None,
    eval_split: str | None = None,
    eval_fraction: float | None = 0.1,
    test_split: str | None = None,
    limit: int | None = None,
    eval_limit: int | None = None,
    label_scale: float | None = None,
    read_options: dict[str, Any] | None = None,
    positive_min_score: float = 0.5,
    seed: int = 42,
) -> PairData:
    """Plain column pairs from a file or hub id.

    Eval comes from eval_source, eval_split, or a seeded hold-out of eval_fraction (at most eval_limit
    rows); test_split (of the same source) is evaluated before and after training too. label_scale
    divides the label (5 turns STS 0..5 scores into 0..1).
    """
    columns = dict(columns)

    def load(split_name: str, from_source: str = source, field_name: str = "data.source") -> Dataset:
        if from_source == source and "{split}" not in source and _looks_like_path(source):
            split_key = "data.test_split" if split_name == test_split else "data.eval_split"
            raise StembedError(
                f"{split_key}={split_name}: data.source={source} is one file, so it has no "
                f"'{split_name}' split (it would be the training rows again). Put {{split}} in the path "
                "(e.g. data/{split}.csv), give data.eval_source, or hold out with data.eval_fraction."
            )
        rows, _ = load_source(from_source, subset, split_name, read_options, field_name)
        where = f"{field_name}={from_source}" + (f" (split {split_name})" if split_name != "train" else "")
        return _scale(_clean(select_columns(rows, columns, where), where), label_scale)

    raw, hub_id = load_source(source, subset, split, read_options)
    rows_in = len(raw)
    where = f"data.source={source}"
    for output, column in columns.items():  # in file order, before data.limit shuffles the rows
        if output in LABEL_COLUMNS and column in raw.column_names:
            check_labels(_column(raw, column), output, where)
    raw = sample(raw, limit, seed)
    train = _scale(_clean(select_columns(raw, columns, where), where), label_scale)
    if eval_source or eval_split:
        eval_ = load(
            eval_split or split, eval_source or source, "data.eval_source" if eval_source else "data.source"
        )
        check_eval_rows(
            eval_, f"data.eval_source={eval_source}" if eval_source else f"data.eval_split={eval_split}"
        )
    elif eval_fraction:
        train, eval_ = holdout(train, capped_fraction(eval_fraction, eval_limit, len(train)), seed)
    else:
        eval_ = None
    data = finish_pairs(
        train, eval_, name=name or hub_id or Path(source).name, source=source, hub_id=hub_id, rows_in=rows_in,
        positive_min_score=positive_min_score,
    )  # fmt: skip
    if test_split:
        data.test = load(test_split)
        data.stats["test_rows"] = len(data.test)
    return data


def check_eval_rows(eval_: Dataset, where: str) -> None:
    """An eval set of one row fails every evaluator (a correlation or ranking over one row is undefined)."""
    if len(eval_) < MIN_EVAL_ROWS:
        raise StembedError(
            f"{where}: {len(eval_)} eval row(s) after dropping empty texts, but an evaluator needs at "
            f"least {MIN_EVAL_ROWS}. Add rows to it, hold out part of data.source (data.eval_fraction=0.1) "
            "instead, or train without evaluation (data.eval_fraction=null evaluator=none)."
        )


def capped_fraction(fraction: float, eval_limit: int | None, rows: int) -> float:
    """data.eval_fraction, lowered so at most data.eval_limit rows are held out (the rest train): on a
    million rows, 10% is an evaluation that takes longer than the training steps between evaluations."""
    if eval_limit is None or not 0 < fraction < 1 or math.ceil(fraction * rows) <= eval_limit:
        return fraction
    if not isinstance(eval_limit, int) or isinstance(eval_limit, bool) or eval_limit < MIN_EVAL_ROWS:
        raise StembedError(
            f"data.eval_limit={eval_limit}: must be a whole number of {MIN_EVAL_ROWS} or more held-out rows "
            "(e.g. data.eval_limit=10000), or null to hold out all of data.eval_fraction."
        )
    print(
        f"stembed: note: data.eval_fraction={fraction} would hold out {math.ceil(fraction * rows)} of {rows} "
        f"rows; holding out data.eval_limit={eval_limit} instead (the rest train). Set data.eval_limit=null "
        "to hold out the whole fraction.",
        file=sys.stderr,
    )
    return eval_limit / rows


def sample(dataset: Dataset, limit: int | None, seed: int) -> Dataset:
    """At most `limit` rows, shuffled by seed (data.limit); all rows when limit is None."""
    if limit is None:
        return dataset
    if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
        raise StembedError(
            f"data.limit={limit}: must be a positive whole number of rows (e.g. data.limit=1000), or null "
            "for all rows."
        )
    return dataset.shuffle(seed=seed).select(range(min(limit, len(dataset))))


def holdout(
    dataset: Dataset, fraction: float, seed: int, eval_limit: int | None = None
) -> tuple[Dataset, Dataset]:
    """(rest, held-out fraction) split by seed; at most eval_limit held-out rows are kept."""

    if not 0 < fraction < 1 or len(dataset) < 2:
        raise StembedError(
            f"data.eval_fraction={fraction}: must be between 0 and 1 with at least 2 rows "
            f"(have {len(dataset)}). Use 0 or null for no eval split."
        )
    held = math.ceil(fraction * len(dataset))
    if held < MIN_EVAL_ROWS or len(dataset) - held < 1:
        raise StembedError(
            f"data.eval_fraction={fraction}: holds out {held} of {len(dataset)} rows, but an evaluator needs "
            f"at least {MIN_EVAL_ROWS} eval rows and training at least 1. Use more data, a larger "
            "data.eval_fraction, or data.eval_fraction=null with evaluator=none."
        )
    parts = dataset.train_test_split(test_size=fraction, seed=seed)
    held_out = parts["test"]
    if eval_limit is not None and len(held_out) > eval_limit:
        held_out = held_out.select(range(eval_limit))
    return _flat(parts["train"]), _flat(held_out)


def _flat(dataset: Dataset) -> Dataset:
    """The rows a split's index mapping points at, taken once with Arrow: every later column read of a
    mapped million-row dataset would take them again."""
    rows = dataset.with_format("arrow")[:]  # a shuffled mapping comes back as one chunk per row
    return _from_arrow(rows.combine_chunks(), dict(dataset.features))


def _scale(dataset: Dataset, label_scale: float | None) -> Dataset:
    labels = [c for c in dataset.column_names if c in LABEL_COLUMNS]
    if not label_scale or label_scale == 1 or not labels:
        return dataset
    table = dataset.with_format("arrow")[:]
    for column in labels:
        scaled = pc.divide(pc.cast(table.column(column), pa.float64()), float(label_scale))
        table = table.set_column(table.schema.get_field_index(column), column, pc.cast(scaled, pa.float32()))
    return _from_arrow(table)
