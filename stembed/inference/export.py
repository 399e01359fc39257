"""`stembed export`: a model to ONNX (one graph from token ids to sentence embeddings), checked for parity.

The exporter is torch's TorchScript-based one (`torch.onnx.export(..., dynamo=False)`): the
torch.export-based default needs onnxscript, and sentence-transformers' own ONNX backend needs
optimum-onnx, which does not install beside transformers 5. torch marks the TorchScript exporter
deprecated (a DeprecationWarning since 2.9); `check_exporter` turns its removal into a clear error
instead of a silent change of exporter, and tests/test_ship.py pins what it relies on.
int8 is onnxruntime's dynamic quantization (weights int8, activations quantized at run time).
"""

from __future__ import annotations

import inspect
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from stembed.errors import StembedError
from stembed.inference.outputs import check_writable_output
from stembed.inference.references import load_any_model

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers import SentenceTransformer

FORMATS = ("onnx",)
QUANTIZATIONS = ("int8",)
FP32_FILE, INT8_FILE, MANIFEST = "model.onnx", "model_int8.onnx", "stembed_export.json"
LEGACY_EXPORTER_WARNING = "You are using the legacy TorchScript-based ONNX export"
SAMPLE_SENTENCES = [
    "How do I reset my password?",
    "The printer on the third floor keeps jamming since this morning, can someone from IT have a look?",
    "A man is playing a guitar.",
    "ok",
    "Refund for order 113542617735902 has not arrived after two weeks, please check the status.",
]


@dataclass
class ExportReport:
    """What was written and how close its embeddings are to the PyTorch model's."""

    path: Path
    max_abs_diff: float
    mean_cosine: float
    min_cosine: float
    sentences: int
    megabytes: float


def check_exporter() -> None:
    """Fail clearly if this torch no longer has the exporter (and arguments) stembed relies on."""

    parameters = inspect.signature(torch.onnx.export).parameters
    needed = {"dynamo", "dynamic_axes", "opset_version", "input_names", "output_names"}
    if missing := needed - set(parameters):
        raise StembedError(
            f"torch {torch.__version__}: torch.onnx.export has no {sorted(missing)} any more, which the "
            "TorchScript-based exporter stembed uses needs. Install the tested torch (make install) "
            "or export with sentence-transformers' ONNX backend where optimum-onnx installs."
        )


def preprocess(model: SentenceTransformer, texts: list[str]) -> dict[str, Any]:
    """The model's input features (token ids, masks, offsets) for texts."""
    method = getattr(model, "preprocess", None) or model.tokenize  # tokenize: before sentence-transformers 6
    return method(texts)


def export_model(
    reference: str, tracking_uri: str | None, output: Path, fmt: str, opset: int, quantize: str | None
) -> ExportReport:
    """`stembed export MODEL`: any model stembed can load (stembed.inference.references), exported."""
    if fmt not in FORMATS:
        raise StembedError(f"--format {fmt}: not supported. Formats: {', '.join(FORMATS)}.")
    model, _ = load_any_model(reference, tracking_uri)
    return export_onnx(model, output, opset, quantize)


def export_onnx(
    model: SentenceTransformer, output: Path, opset: int = 17, quantize: str | None = None
) -> ExportReport:
    """Write output/model.onnx (+ tokenizer files; + model_int8.onnx with quantize=int8) and compare
    the embeddings of the written model (the int8 one when quantized) with PyTorch's."""
    onnxruntime = _onnxruntime()
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise StembedError(f"--quantize {quantize}: not supported. Use one of: {', '.join(QUANTIZATIONS)}.")

    check_writable_output(output, "--output", directory=True)  # before any work
    model = model.to("cpu").eval()
    names = _export_graph(model, output / FP32_FILE, opset)
    _save_tokenizer(model, output)
    path = output / FP32_FILE
    if quantize == "int8":
        path = quantize_int8(output / FP32_FILE, output / INT8_FILE)
    length = model.max_seq_length if isinstance(model.max_seq_length, int) else None  # Static: inf, not JSON
    manifest = {"inputs": names, "output": "sentence_embedding", "max_seq_length": length}
    (output / MANIFEST).write_text(json.dumps(manifest | {"model": path.name}, indent=2, allow_nan=False))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_embeddings = run_session(session, preprocess(model, SAMPLE_SENTENCES))
    torch_embeddings = model.encode(SAMPLE_SENTENCES, convert_to_numpy=True)
    cos = row_cosines(onnx_embeddings, torch_embeddings)
    return ExportReport(
        path,
        float(abs(onnx_embeddings - torch_embeddings).max()),
        float(cos.mean()),
        float(cos.min()),
        len(SAMPLE_SENTENCES),
        path.stat().st_size / 2**20,
    )


def quantize_int8(source: Path, target: Path) -> Path:
    """Dynamic int8 quantization of an fp32 ONNX model (onnxruntime), written to target."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # optional extra (stembed[onnx])

    # Per-channel weight scales: on all-MiniLM-L6-v2 the mean cosine to fp32 goes from 0.947 (per tensor)
    # to 0.986 on the sample sentences; the int8 weights stay one quarter of the fp32 size.
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)
    return target


def run_session(session: Any, features: dict[str, Any]) -> np.ndarray:
    """Sentence embeddings from an ONNX session for already preprocessed features."""
    wanted = [i.name for i in session.get_inputs()]
    feeds = {name: features[name].numpy() for name in wanted}
    return session.run(None, feeds)[0]


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of a with the same row of b."""

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.where(norms == 0, 1.0, norms)


def _onnxruntime() -> Any:
    try:
        import onnxruntime  # optional extra (stembed[onnx])
    except ImportError as err:
        raise StembedError(
            "--format onnx needs onnx and onnxruntime: pip install 'stembed[onnx]' (make install has them)."
        ) from err
    return onnxruntime


def _export_graph(model: SentenceTransformer, path: Path, opset: int) -> list[str]:
    """torch.onnx.export of token features -> sentence embedding; returns the graph's input names."""

    check_exporter()
    features = preprocess(model, SAMPLE_SENTENCES)
    names = [name for name, value in features.items() if isinstance(value, torch.Tensor)]
    axes = {name: dict(enumerate(["batch", "sequence"][: features[name].dim()])) for name in names}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=LEGACY_EXPORTER_WARNING, category=DeprecationWarning)
        torch.onnx.export(
            _EmbeddingGraph(model, names),
            tuple(features[name] for name in names),
            str(path),
            input_names=names,
            output_names=["sentence_embedding"],
            dynamic_axes=axes | {"sentence_embedding": {0: "batch"}},
            opset_version=opset,
            dynamo=False,  # the TorchScript exporter needs no onnxscript and handles these models
        )
    return names


def _save_tokenizer(model: SentenceTransformer, output: Path) -> None:
    tokenizer = getattr(model, "tokenizer", None)
    if hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(str(output))
    elif hasattr(tokenizer, "save"):  # a tokenizers.Tokenizer (StaticEmbedding)
        tokenizer.save(str(output / "tokenizer.json"))


class _EmbeddingGraph:
    """Positional tensors in, sentence embeddings out (torch.onnx.export wants positional inputs)."""

    def __new__(cls, model: SentenceTransformer, names: list[str]):  # type: ignore[no-untyped-def]

        class Graph(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
                return self.model(dict(zip(names, tensors, strict=True)))["sentence_embedding"]

        return Graph()
