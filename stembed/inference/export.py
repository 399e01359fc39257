"""`stembed export`: a model to ONNX (one graph from token ids to sentence embeddings), checked for parity."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stembed.errors import StembedError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

FORMATS = ("onnx",)
SAMPLE_SENTENCES = [
    "How do I reset my password?",
    "The printer on the third floor keeps jamming since this morning, can someone from IT have a look?",
    "A man is playing a guitar.",
    "ok",
    "Refund for order 113542617735902 has not arrived after two weeks, please check the status.",
]


@dataclass
class ExportReport:
    """What was written and how close it is to the PyTorch model."""

    path: Path
    max_abs_diff: float
    sentences: int
    megabytes: float


def export_onnx(model: SentenceTransformer, output: Path, opset: int = 17) -> ExportReport:
    """Write output/model.onnx (+ tokenizer files) and compare its embeddings with PyTorch's."""
    import torch

    try:
        import onnxruntime
    except ImportError as err:
        raise StembedError(
            "--format onnx needs onnx and onnxruntime: pip install 'stembed[onnx]' (make install has them)."
        ) from err
    model = model.to("cpu").eval()
    features = model.tokenize(SAMPLE_SENTENCES)
    names = [name for name, value in features.items() if isinstance(value, torch.Tensor)]
    output.mkdir(parents=True, exist_ok=True)
    path = output / "model.onnx"
    with torch.no_grad():
        torch.onnx.export(
            _EmbeddingGraph(model, names),
            tuple(features[name] for name in names),
            str(path),
            input_names=names,
            output_names=["sentence_embedding"],
            dynamic_axes={
                name: dict(enumerate(["batch", "sequence"][: features[name].dim()])) for name in names
            }
            | {"sentence_embedding": {0: "batch"}},
            opset_version=opset,
            dynamo=False,  # the TorchScript exporter needs no onnxscript and handles these models
        )
    tokenizer = getattr(model, "tokenizer", None)
    if hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(str(output))
    (output / "stembed_export.json").write_text(
        json.dumps(
            {"inputs": names, "output": "sentence_embedding", "max_seq_length": model.max_seq_length},
            indent=2,
        )
    )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_embeddings = session.run(None, {name: features[name].numpy() for name in names})[0]
    torch_embeddings = model.encode(SAMPLE_SENTENCES, convert_to_numpy=True)
    diff = float(abs(onnx_embeddings - torch_embeddings).max())
    return ExportReport(path, diff, len(SAMPLE_SENTENCES), path.stat().st_size / 2**20)


class _EmbeddingGraph:
    """Positional tensors in, sentence embeddings out (torch.onnx.export wants positional inputs)."""

    def __new__(cls, model: SentenceTransformer, names: list[str]):  # type: ignore[no-untyped-def]
        import torch

        class Graph(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
                return self.model(dict(zip(names, tensors, strict=True)))["sentence_embedding"]

        return Graph()
