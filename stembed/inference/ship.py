"""`stembed ship RUN_ID`: choose how to deploy a trained model from measurements on its own eval data.

A grid of deployment variants is evaluated with the run's evaluator on the run's eval split:
runtime (PyTorch fp32, PyTorch bf16 where the CPU computes bf16 natively, ONNX fp32, ONNX int8) x
output dimension (the full one and truncations, what Matryoshka training is for) x embedding
precision (float32, int8, binary; sentence-transformers' `quantize_embeddings`). Each runtime
encodes the texts once; truncation and quantization are applied to those embeddings, so the grid
costs one encoding per runtime, not one per cell. Each row's difference to the full-precision
PyTorch model comes with a paired-bootstrap interval over the eval examples (stembed.analysis).
`--max-drop` picks the variant with the smallest index, then the smallest model, then the fastest,
among those within that loss of the reference metric; `ship/` holds it with a manifest and the table.

Similarity of quantized embeddings is computed on their values as floats: int8 values as they are,
binary bits as -1/+1, whose cosine is 1 - 2 * hamming / dims, so ranking by it is ranking by Hamming
distance, as a binary index does. `binary-rescore` is the rescoring step of sentence-transformers'
quantization docs: documents stored as bits, the query kept in float32 and scored against the bits
(its ranking is the float query's dot product with the unpacked bits). It applies where the
evaluator encodes queries and documents apart (retrieval, label routing), and is left out elsewhere.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stembed.analysis.bootstrap import paired_bootstrap
from stembed.analysis.compare import columns
from stembed.components.evaluators import build_evaluators
from stembed.components.instantiate import instantiate
from stembed.components.per_example import METRICS, tables
from stembed.config import compose_train
from stembed.data.loading import text_columns
from stembed.errors import StembedError
from stembed.inference.encode import load_any_model
from stembed.inference.export import FP32_FILE, INT8_FILE, export_onnx
from stembed.inference.runtimes import (
    Encoder,
    OnnxEncoder,
    TorchEncoder,
    as_texts,
    bf16_copy,
    directory_megabytes,
    embedding_dimension,
)
from stembed.speed.hardware import cpu_has_native_bf16
from stembed.tracking.model_logging import INPUT_EXAMPLE, requirements
from stembed.tracking.runs import client, get_run
from stembed.tracking.store import retry_when_locked

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers import SentenceTransformer

PRECISIONS = ("float32", "int8", "binary", "binary-rescore")
BYTES_PER_DIMENSION = {"float32": 4.0, "int8": 1.0, "binary": 1 / 8, "binary-rescore": 1 / 8}
REFERENCE = ("torch-fp32", "float32")  # with the full dimension: what every delta is measured from
STANDARD_DIMS = (64, 128, 256, 512, 768, 1024)
CALIBRATION_TEXTS = 1000  # training texts that set the int8 ranges (never the eval texts)
SPEED_TEXTS, SPEED_BATCH, SPEED_REPEATS, LATENCY_CALLS = 256, 64, 3, 15
MANIFEST, TABLE_MD, TABLE_CSV = "ship.json", "table.md", "table.csv"
BF16_DIR = "model-bf16"  # the bf16 copy, measured beside the fp32 model; kept only when chosen


@dataclass
class Variant:
    """One deployment variant: how it encodes, how many dimensions it keeps, how it stores them."""

    runtime: str
    dims: int
    precision: str

    @property
    def label(self) -> str:
        return f"{self.runtime} / {self.dims}d / {self.precision}"


@dataclass
class Row:
    """One variant's measurements."""

    variant: Variant
    metric: float
    delta: float = 0.0
    low: float = float("nan")  # 95% paired-bootstrap interval of delta (nan: no per-example scores)
    high: float = float("nan")
    texts_per_second: float = 0.0
    p50_ms: float = 0.0
    model_mb: float = 0.0
    index_mb_per_million: float = 0.0
    chosen: bool = False


@dataclass
class ShipResult:
    """The measured grid (best first), the chosen row and where it was written."""

    metric_name: str
    rows: list[Row]
    chosen: Row
    output: Path
    registered: str | None = None
    notes: list[str] = field(default_factory=list)


def truncation_dims(full: int, requested: list[int] | None = None) -> list[int]:
    """The full dimension and the truncations below it: the standard ones, else halves and quarters."""
    if requested:
        dims = sorted({d for d in requested if 0 < d <= full} | {full}, reverse=True)
        return dims
    dims = [d for d in STANDARD_DIMS if d < full]
    if len(dims) < 2:  # small models (the tiny test model): halves and quarters
        dims = sorted({full // 2, full // 4} - {0})
    return sorted({*dims, full}, reverse=True)


def quantize(embeddings: np.ndarray, precision: str, ranges: np.ndarray | None) -> np.ndarray:
    """Embeddings as stored at this precision (float32, int8 values, or bits packed in uint8)."""
    from sentence_transformers.quantization import quantize_embeddings

    if precision == "float32":
        return embeddings.astype("float32", copy=False)
    if precision == "int8":
        return quantize_embeddings(embeddings, "int8", ranges=ranges)
    return quantize_embeddings(embeddings, "ubinary")  # binary, binary-rescore (documents)


def as_comparable(stored: np.ndarray, precision: str, dims: int) -> np.ndarray:
    """Stored embeddings as float32 vectors whose cosine is what the index compares (see module doc)."""
    import numpy as np

    if precision.startswith("binary"):
        bits = np.unpackbits(stored.astype(np.uint8), axis=1)[:, :dims]
        return bits.astype(np.float32) * 2 - 1
    return stored.astype(np.float32)


def int8_ranges(calibration: np.ndarray, dims: int) -> np.ndarray:
    """Per-dimension [min, max] of the calibration embeddings (the int8 buckets' span)."""
    import numpy as np

    part = calibration[:, :dims]
    return np.stack([part.min(axis=0), part.max(axis=0)])


class VariantModel:
    """What an evaluator sees: a SentenceTransformer whose encode gives one variant's embeddings.

    Everything but encoding (similarity function, prompts, ...) is the real model's. Embeddings are
    cached per runtime and prompted text, so every dimension and precision of a runtime reuses one
    encoding. `sides_used` records whether the evaluator encoded queries and documents apart.
    """

    def __init__(self, model: SentenceTransformer, encoder: Encoder) -> None:
        self._model, self._encoder = model, encoder
        self._cache: dict[str, np.ndarray] = {}
        self.dims = embedding_dimension(model)
        self.precision, self.ranges = "float32", None
        self.sides_used = False
        self.model_card_data = _NoCardData()  # evaluators record metrics there; not in the real card

    def set(self, dims: int, precision: str, ranges: np.ndarray | None = None) -> VariantModel:
        self.dims, self.precision, self.ranges = dims, precision, ranges
        self.sides_used = False
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def full_embeddings(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            self._cache.update(
                zip(missing, self._encoder.encode(missing, batch_size=SPEED_BATCH), strict=True)
            )
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 0), np.float32)

    def encode(self, sentences: Any, convert_to_tensor: bool = False, **kwargs: Any) -> Any:
        return self._encode(sentences, self.precision, None, convert_to_tensor, **kwargs)

    def encode_query(self, sentences: Any, convert_to_tensor: bool = False, **kwargs: Any) -> Any:
        self.sides_used = True
        precision = "float32" if self.precision == "binary-rescore" else self.precision
        return self._encode(sentences, precision, "query", convert_to_tensor, **kwargs)

    def encode_document(self, sentences: Any, convert_to_tensor: bool = False, **kwargs: Any) -> Any:
        self.sides_used = True
        return self._encode(sentences, self.precision, "document", convert_to_tensor, **kwargs)

    def _encode(
        self, sentences: Any, stored_as: str, side: str | None, convert_to_tensor: bool, **kwargs: Any
    ) -> Any:
        """kwargs are SentenceTransformer.encode's; its `precision` is the evaluator's, not the variant's."""
        import numpy as np
        import torch

        single = isinstance(sentences, str)
        texts = as_texts([sentences] if single else sentences)
        prompt = prompt_text(self._model, kwargs.get("prompt"), kwargs.get("prompt_name"), side)
        full = self.full_embeddings([prompt + text for text in texts])[:, : self.dims]
        vectors = as_comparable(quantize(full, stored_as, self.ranges), stored_as, self.dims)
        if kwargs.get("normalize_embeddings"):
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.where(norms == 0, 1, norms)
        if single:
            vectors = vectors[0]
        return torch.from_numpy(np.ascontiguousarray(vectors)) if convert_to_tensor else vectors


def prompt_text(model: SentenceTransformer, prompt: str | None, name: str | None, side: str | None) -> str:
    """The prompt `SentenceTransformer.encode` would prepend: the given one, the named one, else the
    side's own (encode_query uses a saved "query" prompt) or the model's default prompt."""
    if prompt is not None:
        return prompt
    prompts = model.prompts or {}
    name = name or (side if side in prompts else None) or model.default_prompt_name
    return prompts.get(name, "") if name else ""


class _NoCardData:
    def set_evaluation_metrics(self, *args: Any, **kwargs: Any) -> None:
        return None


def evaluate_variant(evaluator: Any, proxy: VariantModel) -> tuple[str, float]:
    """(primary metric name, value) of the evaluator on this variant."""
    metrics = evaluator(proxy)
    name = evaluator.primary_metric
    if name not in metrics:  # some evaluators keep the unprefixed name
        name = next(k for k in metrics if k.endswith(str(name)))
    return name, float(metrics[name])


def measure_speed(encoder: Encoder, texts: list[str]) -> tuple[float, float]:
    """(texts/s at batch 64, median of 3; p50 latency of one text in ms) on this machine."""
    sample = (texts * (SPEED_TEXTS // max(len(texts), 1) + 1))[:SPEED_TEXTS]
    encoder.encode(sample[:SPEED_BATCH], batch_size=SPEED_BATCH)  # warm-up
    rates = []
    for _ in range(SPEED_REPEATS):
        started = time.perf_counter()
        encoder.encode(sample, batch_size=SPEED_BATCH)
        rates.append(len(sample) / (time.perf_counter() - started))
    latencies = []
    for text in sample[:LATENCY_CALLS]:
        started = time.perf_counter()
        encoder.encode([text], batch_size=1)
        latencies.append((time.perf_counter() - started) * 1000)
    return statistics.median(rates), statistics.median(latencies)


def choose(rows: list[Row], max_drop: float) -> Row:
    """Within max_drop of the reference: the smallest index, then the smallest model, then the fastest."""
    eligible = [row for row in rows if row.delta >= -max_drop - 1e-12]
    return min(eligible, key=lambda r: (r.index_mb_per_million, r.model_mb, -r.texts_per_second))


def run_grid(
    model: SentenceTransformer,
    encoders: dict[str, Encoder],
    sizes: dict[str, float],
    evaluator: Any,
    calibration_texts: list[str],
    speed_texts: list[str],
    dims: list[int],
) -> tuple[str, list[Row], dict[tuple[str, int], np.ndarray]]:
    """Evaluate every runtime x dims x precision; rows best first, deltas to the PyTorch fp32 reference."""
    rows, ranges_of, metric_name, examples = [], {}, "", {}
    asymmetric = False  # whether the evaluator encodes queries and documents apart (known after float32)
    for runtime, encoder in encoders.items():
        proxy = VariantModel(model, encoder)
        # Not through the proxy's cache: ONNX int8 quantizes activations per batch, so a text's
        # embedding depends on its batch; eval texts are batched as a shipped model batches them.
        calibration = encoder.encode(calibration_texts, batch_size=SPEED_BATCH)
        speed = measure_speed(encoder, speed_texts or calibration_texts)
        for dim in dims:
            ranges_of[(runtime, dim)] = ranges = int8_ranges(calibration, dim)
            for precision in PRECISIONS:
                if precision == "binary-rescore" and not asymmetric:
                    continue  # the evaluator compares texts of one kind: nothing to rescore
                metric_name, value = evaluate_variant(evaluator, proxy.set(dim, precision, ranges))
                asymmetric = asymmetric or proxy.sides_used
                variant = Variant(runtime, dim, precision)
                rows.append(
                    Row(
                        variant,
                        value,
                        texts_per_second=speed[0],
                        p50_ms=speed[1],
                        model_mb=sizes[runtime],
                        index_mb_per_million=dim * BYTES_PER_DIMENSION[precision],
                    )
                )
                examples[variant.label] = per_example_table(evaluator, proxy, metric_name)
    reference = Variant(REFERENCE[0], dims[0], REFERENCE[1])
    add_intervals(rows, examples, reference)
    rows.sort(key=lambda r: (-r.metric, r.index_mb_per_million, r.model_mb, -r.texts_per_second))
    return metric_name, rows, ranges_of


def per_example_table(evaluator: Any, proxy: VariantModel, metric_name: str) -> tuple[Any, Any] | None:
    """(per-example table, the primary metric's recipe over it), or None where stembed cannot score
    this evaluator per example (then the row has no interval)."""

    with contextlib.redirect_stderr(io.StringIO()):  # its "no per-example scores" note, once per row
        found = list(tables([evaluator], proxy).values())
    spec = found[0].attrs.get(METRICS, {}).get(metric_name) if found else None
    return (found[0], spec) if spec else None


def add_intervals(rows: list[Row], examples: dict[str, Any], reference: Variant) -> None:
    """Each row's delta to the reference row and, where per-example scores exist, its paired interval."""

    base = next(r for r in rows if r.variant == reference)
    base_examples = examples.get(reference.label)
    for row in rows:
        row.delta = row.metric - base.metric
        mine = examples.get(row.variant.label)
        if row is base or not (mine and base_examples):
            continue
        (table, spec), (base_table, _) = mine, base_examples
        (comparison,) = paired_bootstrap(
            columns(base_table, like=table), columns(table, like=base_table), {"metric": spec}
        )
        row.low, row.high = comparison.low, comparison.high


def ship(
    reference: str,
    max_drop: float,
    output: Path | None,
    register: str | None,
    tracking_uri: str | None,
    dims: list[int] | None = None,
) -> ShipResult:
    """Measure the grid for a run, write ship/ with the chosen variant, log it to the run."""

    if max_drop < 0:
        raise StembedError(f"--max-drop {max_drop}: must be 0 or more (a loss in the primary metric).")
    store = client(tracking_uri)
    uri = store.tracking_uri
    run = get_run(store, reference.removeprefix("runs:/").split("/", 1)[0])
    output = output or _default_output(run)
    _clear(output)
    data, evaluator = _run_evaluation(run)
    model = _run_model(run, uri)
    onnx_dir = output / "onnx"
    export_onnx(model, onnx_dir, quantize="int8")
    model_dir = output / "model"
    model.save(str(model_dir))
    _use_run_card(model_dir / "README.md", run.info.run_id, uri)
    encoders: dict[str, Encoder] = {"torch-fp32": TorchEncoder(model)}
    sizes = {"torch-fp32": weights_megabytes(model_dir)}
    notes = []
    if cpu_has_native_bf16():  # elsewhere bf16 is slower than fp32
        bf16 = bf16_copy(model)
        bf16.save(str(output / BF16_DIR))
        encoders["torch-bf16"], sizes["torch-bf16"] = (
            TorchEncoder(bf16, "torch-bf16"),
            weights_megabytes(output / BF16_DIR),
        )
    else:
        notes.append("torch-bf16 left out: this CPU has no native bf16 (AVX512-BF16 or AMX), so it is slower")
    encoders["onnx-fp32"] = OnnxEncoder(model, onnx_dir / FP32_FILE, "onnx-fp32")
    encoders["onnx-int8"] = OnnxEncoder(model, onnx_dir / INT8_FILE, "onnx-int8")
    sizes["onnx-fp32"] = directory_megabytes(onnx_dir / FP32_FILE)
    sizes["onnx-int8"] = directory_megabytes(onnx_dir / INT8_FILE)
    full = embedding_dimension(model)
    calibration, speed_texts = split_texts(data.train), split_texts(data.eval)
    metric_name, rows, ranges_of = run_grid(
        model, encoders, sizes, evaluator, calibration, speed_texts, truncation_dims(full, dims)
    )
    chosen = choose(rows, max_drop)
    chosen.chosen = True
    result = ShipResult(metric_name, rows, chosen, output, notes=notes)
    _write(result, run, ranges_of, max_drop, data.fingerprint)
    _prune(output, chosen.variant)
    _log_to_run(result, run.info.run_id, uri)
    if register:
        result.registered = register_shipped(result, run.info.run_id, uri, register)
    return result


def load_shipped(directory: str | Path) -> ShippedModel:
    """The variant written by `stembed ship`, ready to encode as its manifest says."""
    return ShippedModel(Path(directory))


class ShippedModel:
    """A shipped variant: its runtime, dimensions and precision, as in ship.json.

    encode() returns what an index stores: float32, int8, or bits packed in uint8 (binary);
    comparable() returns float vectors whose cosine ranks like the index (see the module doc).
    """

    def __init__(self, directory: Path) -> None:
        import numpy as np
        from sentence_transformers import SentenceTransformer

        self.manifest = json.loads((directory / MANIFEST).read_text())
        variant = self.manifest["variant"]
        self.variant = Variant(variant["runtime"], int(variant["dims"]), variant["precision"])
        self.model = SentenceTransformer(str(directory / "model"), device="cpu")
        if self.variant.runtime == "torch-bf16":
            import torch

            self.model.to(torch.bfloat16)
        ranges = self.manifest.get("int8_ranges")
        self.ranges = np.asarray(ranges, dtype=np.float32) if ranges is not None else None
        onnx_file = self.manifest.get("onnx_model")
        self.encoder: Encoder = (
            OnnxEncoder(self.model, directory / onnx_file, self.variant.runtime)
            if onnx_file
            else TorchEncoder(self.model, self.variant.runtime)
        )

    def encode(self, texts: list[str], batch_size: int = 64, prompt_name: str | None = None) -> np.ndarray:
        """What the index stores for these texts (documents, for binary-rescore)."""
        full = self._truncated(texts, batch_size, prompt_name, None)
        return quantize(full, self.variant.precision, self.ranges)

    def encode_query(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Query vectors: float32 for binary-rescore (scored against the documents' bits), else encode()."""
        full = self._truncated(texts, batch_size, None, "query")
        if self.variant.precision == "binary-rescore":
            return full
        return quantize(full, self.variant.precision, self.ranges)

    def _truncated(self, texts: list[str], batch_size: int, prompt_name: str | None, side: str | None) -> Any:
        """The runtime's embeddings of the prompted texts, cut to the variant's dimensions."""
        prompt = prompt_text(self.model, None, prompt_name, side)
        full = self.encoder.encode([prompt + text for text in as_texts(texts)], batch_size=batch_size)
        return full[:, : self.variant.dims]

    def comparable(self, texts: list[str]) -> np.ndarray:
        return as_comparable(self.encode(texts), self.variant.precision, self.variant.dims)

    def evaluator_view(self) -> VariantModel:
        """The shipped variant as an evaluator sees it (to reproduce its row's metric)."""
        return VariantModel(self.model, self.encoder).set(
            self.variant.dims, self.variant.precision, self.ranges
        )


def _run_evaluation(run: Any) -> tuple[Any, Any]:
    """The run's data and eval-split evaluator, built from the run's own overrides."""
    overrides = json.loads(run.data.tags.get("stembed.overrides", "null") or "null")
    if overrides is None:
        raise StembedError(
            f"RUN_ID {run.info.run_id}: not a `stembed train` run (no stembed.overrides tag), so its eval "
            "data is unknown. Give the id of a training run (`stembed runs`)."
        )
    overrides = [o for o in overrides if not o.startswith(("hydra", "+resume="))]
    cfg = compose_train(
        overrides, f"RUN_ID {run.info.run_id}: its overrides {{overrides}} no longer compose ({{error}})."
    )
    data = instantiate(cfg.data, "data")
    evaluator = build_evaluators(cfg.evaluator, data)[0]
    if evaluator is None:
        raise StembedError(
            f"RUN_ID {run.info.run_id}: the run has no evaluator (evaluator=none), so variants cannot be "
            "compared. Train with an evaluator, e.g. evaluator=similarity."
        )
    expected = run.data.tags.get("stembed.data_fingerprint")
    if expected and expected != data.fingerprint:
        raise StembedError(
            f"RUN_ID {run.info.run_id}: its data changed since training (fingerprint {data.fingerprint}, "
            f"the run's {expected}). Restore the data the run used, or train again."
        )
    return data, evaluator


def _run_model(run: Any, uri: str) -> SentenceTransformer:

    run_dir = run.data.tags.get("stembed.run_dir")
    if run_dir and (Path(run_dir) / "model" / "config_sentence_transformers.json").is_file():
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(Path(run_dir) / "model"), device="cpu")
    return load_any_model(f"runs:/{run.info.run_id}/model", uri)[0].to("cpu")


def weights_megabytes(model_dir: Path) -> float:
    """The saved weights' size (the tokenizer and config files are the same for every runtime)."""
    weights = [p for p in model_dir.rglob("*") if p.suffix in (".safetensors", ".bin")]
    return sum(directory_megabytes(p) for p in weights) or directory_megabytes(model_dir)


def _clear(output: Path) -> None:
    """Replace an earlier ship/ (it has a ship.json); never empty a directory that holds other things."""
    if (output / MANIFEST).is_file():
        shutil.rmtree(output)
    elif output.exists() and any(output.iterdir()):
        raise StembedError(
            f"--output {output}: the directory exists and is not an earlier `stembed ship` output. "
            "Give a new or empty directory."
        )


def _use_run_card(card: Path, run_id: str, uri: str) -> None:
    """The shipped model's card is the run's own (redacted, with its stembed section), not a new one."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    try:
        card.write_text(mlflow.artifacts.load_text(f"runs:/{run_id}/README.md"), encoding="utf-8")
    except Exception:  # a run without a logged card keeps the card the library wrote
        return


def _default_output(run: Any) -> Path:
    run_dir = run.data.tags.get("stembed.run_dir")
    if run_dir and Path(run_dir).is_dir():
        return Path(run_dir) / "ship"
    return Path("outputs") / "ship" / run.info.run_id


def split_texts(rows: Any) -> list[str]:
    """Up to CALIBRATION_TEXTS distinct texts of a split, taken from its text columns in turn:
    training texts set the int8 ranges (never the eval texts), eval texts are what speed is measured
    on. In turn, so that short documents (category names beside tickets) shape the ranges too."""
    from itertools import chain, zip_longest

    columns = [list(dict.fromkeys(as_texts(rows[c]))) for c in text_columns(rows)] if rows is not None else []
    interleaved = (t for t in chain.from_iterable(zip_longest(*columns)) if t is not None)
    return list(dict.fromkeys(interleaved))[:CALIBRATION_TEXTS]


def table_markdown(result: ShipResult) -> str:
    """The grid as a markdown table, best first; the chosen row marked."""
    head = (
        f"| variant | {result.metric_name} | delta [95% CI] | texts/s | p50 ms | model MB | "
        "index MB / 1M docs |\n|---|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = [
        f"| {'**' + r.variant.label + '** (chosen)' if r.chosen else r.variant.label} | {r.metric:.4f} | "
        f"{_delta(r)} | {r.texts_per_second:.0f} | {r.p50_ms:.1f} | {_mb(r.model_mb)} | "
        f"{r.index_mb_per_million:.0f} |"
        for r in result.rows
    ]
    return head + "\n".join(lines) + "\n"


def _delta(row: Row) -> str:
    if row.low != row.low:  # nan: the reference row, or no per-example scores
        return f"{row.delta:+.4f}"
    return f"{row.delta:+.4f} [{row.low:+.4f}, {row.high:+.4f}]"


def _mb(value: float) -> str:
    return f"{value:.1f}" if value >= 1 else f"{value:.3f}"


def _write(result: ShipResult, run: Any, ranges_of: dict, max_drop: float, fingerprint: str) -> None:
    import pandas as pd

    out, chosen = result.output, result.chosen.variant
    records = [
        asdict(r.variant) | {k: v for k, v in asdict(r).items() if k != "variant"} for r in result.rows
    ]
    pd.DataFrame(records).to_csv(out / TABLE_CSV, index=False)
    (out / TABLE_MD).write_text(table_markdown(result))
    onnx_file = {"onnx-fp32": FP32_FILE, "onnx-int8": INT8_FILE}.get(chosen.runtime)
    ranges = ranges_of[(chosen.runtime, chosen.dims)] if chosen.precision == "int8" else None
    manifest = {
        "run_id": run.info.run_id,
        "variant": asdict(chosen),
        "metric": {"name": result.metric_name, "value": result.chosen.metric, "delta": result.chosen.delta},
        "max_drop": max_drop,
        "data_fingerprint": fingerprint,
        "model": "model",
        "onnx_model": f"onnx/{onnx_file}" if onnx_file else None,
        "int8_ranges": ranges.tolist() if ranges is not None else None,
        "similarity": {"binary": "hamming", "binary-rescore": "hamming, then float query x bits"}.get(
            chosen.precision, "cosine"
        ),
        "load": "from stembed.inference.ship import load_shipped; "
        "shipped = load_shipped('<this directory>'); "
        "stored = shipped.encode(documents); queries = shipped.encode_query(texts)",
        "how": _how_to_query(chosen),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    card = out / "model" / "README.md"
    if card.is_file():
        section = f"\n\n## Deployment variants (stembed ship)\n\n{table_markdown(result)}"
        card.write_text(card.read_text(encoding="utf-8") + section, encoding="utf-8")


def _how_to_query(variant: Variant) -> str:
    keep = f"keep the first {variant.dims} dimensions"
    runtime = variant.runtime
    if runtime == "torch-bf16":
        runtime = "torch-bf16 (SentenceTransformer(path, model_kwargs={'torch_dtype': 'bfloat16'}))"
    store = {
        "float32": "store float32 vectors and rank by cosine",
        "int8": "quantize with int8_ranges (sentence_transformers.quantization.quantize_embeddings) and "
        "rank by cosine/dot of the int8 values",
        "binary": "store ubinary bits (quantize_embeddings precision='ubinary') and rank by Hamming distance",
        "binary-rescore": "store documents as ubinary bits, keep queries float32; retrieve "
        "rescore_multiplier x top_k candidates by Hamming distance, then rescore them by the float "
        "query's dot product with their unpacked bits "
        "(sentence_transformers.quantization.semantic_search_faiss(..., rescore=True))",
    }[variant.precision]
    return f"encode with {runtime}, {keep}, {store}."


def _prune(output: Path, chosen: Variant) -> None:
    """Keep only the chosen runtime's files: its ONNX file, or the bf16 weights as `model/` (the
    PyTorch model dir is the tokenizer's home too, so it always stays)."""

    keep = {"onnx-fp32": FP32_FILE, "onnx-int8": INT8_FILE}.get(chosen.runtime)
    for name in (FP32_FILE, INT8_FILE):
        if name != keep:
            (output / "onnx" / name).unlink(missing_ok=True)
    bf16_dir = output / BF16_DIR
    if chosen.runtime == "torch-bf16":
        shutil.copy2(output / "model" / "README.md", bf16_dir / "README.md")
        shutil.rmtree(output / "model")
        bf16_dir.rename(output / "model")
    elif bf16_dir.exists():
        shutil.rmtree(bf16_dir)


def _log_to_run(result: ShipResult, run_id: str, uri: str) -> None:
    """ship/ as artifacts of the run, the choice as tags, the card with the table."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    retry_when_locked(client.log_artifacts, run_id, str(result.output), "ship")
    chosen = result.chosen
    tags = {
        "stembed.ship.variant": chosen.variant.label,
        "stembed.ship.metric": f"{result.metric_name}={chosen.metric:.4f} ({chosen.delta:+.4f})",
    }
    for key, value in tags.items():
        retry_when_locked(client.set_tag, run_id, key, value)
    card = result.output / "model" / "README.md"
    if card.is_file():
        retry_when_locked(client.log_text, run_id, card.read_text(encoding="utf-8"), "README.md")


class ShippedPyfunc:
    """An MLflow pyfunc model serving a shipped variant (registered with `--register`)."""

    def __new__(cls) -> Any:
        import mlflow

        class Model(mlflow.pyfunc.PythonModel):
            def load_context(self, context: Any) -> None:
                self.shipped = load_shipped(context.artifacts["ship"])

            def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
                texts = model_input.iloc[:, 0].tolist() if hasattr(model_input, "iloc") else list(model_input)
                return self.shipped.encode(texts)

        return Model()


def register_shipped(result: ShipResult, run_id: str, uri: str, name: str) -> str:
    """Log the shipped variant as a pyfunc model of the run and register it as a version of name."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="ship_model",
            python_model=ShippedPyfunc(),
            artifacts={"ship": str(result.output)},
            pip_requirements=[*requirements(), "onnxruntime"],
            input_example=INPUT_EXAMPLE,
        )
    version = retry_when_locked(mlflow.register_model, info.model_uri, name)
    return str(version.version)
