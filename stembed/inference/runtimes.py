"""Runtimes that turn texts into sentence embeddings, and RUNTIMES, the one list of them; reranking
stages that score (query, candidate) pairs after retrieval, and RERANKERS, the list of those.

A runtime is one subclass of Runtime: its name, whether `stembed ship` measures it here, the files it
runs from (written into a ship/ directory, or a temporary one for `stembed encode --backend`), how it
loads from a shipped directory, its encoder and its size on disk. ship's grid, its pruning and
manifest, `stembed encode --backend` and load_shipped all go through RUNTIMES, so a new runtime is one
class plus `RUNTIMES[runtime.name] = runtime`.

Every encoder takes texts and returns float32 numpy embeddings of the model's full dimension, so
runtimes swap freely. The ONNX encoder tokenizes with the model's own preprocessing and sorts texts
by length before batching, as `SentenceTransformer.encode` does, so batches carry little padding.

A reranking stage (RerankStage) composes with any runtime: the runtime's embeddings retrieve the top-k
candidates of a query, the stage's reranker (a CrossEncoder) orders them. It is registered the same
way (`RERANKERS[stage.name] = stage`), writes its files into ship/ the same way and is pruned the same
way; its scorer takes pairs and returns one float32 score per pair.
"""

from __future__ import annotations

import copy
import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from stembed.components.model import embedding_dimension, load_saved
from stembed.errors import StembedError
from stembed.inference.export import FP32_FILE, INT8_FILE, export_onnx, preprocess, quantize_int8, run_session
from stembed.speed.hardware import cpu_has_native_bf16

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers import SentenceTransformer

MODEL_DIR, ONNX_DIR, BF16_DIR = "model", "onnx", "model-bf16"  # inside a ship/ directory
RERANKER_DIR = "reranker"  # the reranker's saved CrossEncoder, inside a ship/ directory
REFERENCE_RUNTIME = "torch-fp32"  # the model as trained: what every variant's delta is measured from


class Encoder(Protocol):
    """Texts in, float32 embeddings (one row per text) out.

    model is the SentenceTransformer whose prompts and similarity function the embeddings follow.
    """

    name: str
    model: SentenceTransformer

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray: ...


class TorchEncoder:
    """The PyTorch model, through `SentenceTransformer.encode`."""

    def __init__(self, model: SentenceTransformer, name: str = REFERENCE_RUNTIME) -> None:
        self.model, self.name = model, name

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        embeddings = self.model.encode(
            texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return embeddings.astype("float32", copy=False)


class OnnxEncoder:
    """An exported graph (stembed export) in ONNX Runtime, fed by the model's own preprocessing."""

    def __init__(self, model: SentenceTransformer, path: Path, name: str = "onnx-fp32") -> None:
        import onnxruntime  # optional extra (stembed[onnx])

        self.model, self.path, self.name = model, path, name
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # no graph-rewrite notes on every load
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:

        if not texts:
            return np.zeros((0, embedding_dimension(self.model)), dtype=np.float32)
        order = np.argsort([-len(text) for text in texts], kind="stable")  # longest first, like ST
        parts = []
        for start in range(0, len(texts), batch_size):
            batch = [texts[i] for i in order[start : start + batch_size]]
            parts.append(run_session(self.session, preprocess(self.model, batch)))
        embeddings = np.concatenate(parts).astype(np.float32, copy=False)
        result = np.empty_like(embeddings)
        result[order] = embeddings
        return result


class Runtime(ABC):
    """One way to run a model. A subclass sets name and implements encoder and size_mb; the other
    defaults fit a runtime that runs the shipped model/ directory as it is."""

    name: str
    backend: str | None = None  # its `stembed encode --backend` name, where that differs from name
    files: tuple[str, ...] = ()  # what prepare() writes beside model/ (removed from ship/ unless chosen)
    onnx_model: str | None = None  # the ONNX graph it runs, relative to ship/ (ship.json's onnx_model)
    usage = ""  # how to run it outside stembed, where the name does not say (ship.json's how)
    left_out_because = ""  # ship's note when available() is False

    def available(self) -> bool:
        """Whether ship measures it on this machine."""
        return True

    @abstractmethod
    def encoder(self, model: SentenceTransformer, workdir: Path) -> Encoder:
        """Its encoder of model; what it runs from (an ONNX graph) is written into workdir first."""

    def prepare(self, model: SentenceTransformer, directory: Path) -> Encoder:
        """Write its files into a ship/ directory (model/ is there already); the encoder of them."""
        return self.encoder(model, directory)

    @abstractmethod
    def size_mb(self, directory: Path) -> float:
        """Its model's size on disk in a prepared ship/ directory, in MB (ship's model MB column)."""

    def finish(self, directory: Path) -> None:
        """As the chosen runtime, once the others' files are gone: put its files where load() reads them."""
        return None  # most runtimes load their files where prepare() wrote them

    def load(self, directory: Path) -> Encoder:
        """At serving time: its encoder of the variant shipped in directory."""
        return self.encoder(shipped_model(directory), directory)


class TorchFp32(Runtime):
    """The PyTorch model as trained: ship's reference, and `stembed encode`'s default."""

    name, backend = REFERENCE_RUNTIME, "torch"

    def encoder(self, model: SentenceTransformer, workdir: Path) -> Encoder:
        return TorchEncoder(model, self.name)

    def size_mb(self, directory: Path) -> float:
        return weights_megabytes(directory / MODEL_DIR)


class TorchBf16(Runtime):
    """A bfloat16 copy of the PyTorch model: half the weights' bytes, faster only with native bf16."""

    name, files = "torch-bf16", (BF16_DIR,)
    usage = "SentenceTransformer(path, model_kwargs={'torch_dtype': 'bfloat16'})"
    left_out_because = "this CPU has no native bf16 (AVX512-BF16 or AMX), so it is slower"

    def available(self) -> bool:
        return cpu_has_native_bf16()  # elsewhere bf16 is slower than fp32

    def encoder(self, model: SentenceTransformer, workdir: Path) -> Encoder:
        return TorchEncoder(bf16_copy(model), self.name)

    def prepare(self, model: SentenceTransformer, directory: Path) -> Encoder:
        """Measured in memory beside the fp32 model; its weights are saved to ship if it is chosen."""
        encoder = self.encoder(model, directory)
        encoder.model.save(str(directory / BF16_DIR))
        return encoder

    def size_mb(self, directory: Path) -> float:
        return weights_megabytes(directory / BF16_DIR)

    def finish(self, directory: Path) -> None:
        """The bf16 weights become model/, with the fp32 model's card (it holds the table)."""
        shutil.copy2(directory / MODEL_DIR / "README.md", directory / BF16_DIR / "README.md")
        shutil.rmtree(directory / MODEL_DIR)
        (directory / BF16_DIR).rename(directory / MODEL_DIR)

    def load(self, directory: Path) -> Encoder:

        return TorchEncoder(shipped_model(directory).to(torch.bfloat16), self.name)


class OnnxRuntime(Runtime):
    """An ONNX graph of the model in ONNX Runtime: fp32 as exported, or int8 (dynamic quantization)."""

    def __init__(self, name: str, file: str, quantize: str | None = None, backend: str | None = None) -> None:
        self.name, self.quantize, self.backend = name, quantize, backend
        self.onnx_model = f"{ONNX_DIR}/{file}"
        self.files = (self.onnx_model,)

    def encoder(self, model: SentenceTransformer, workdir: Path) -> Encoder:
        path = workdir / self.onnx_model
        if not path.is_file():
            self._write(model, path)
        return OnnxEncoder(model, path, self.name)

    def _write(self, model: SentenceTransformer, path: Path) -> None:
        """Export the graph; int8 quantizes an fp32 graph already there instead of exporting again."""
        fp32 = path.with_name(FP32_FILE)
        if self.quantize == "int8" and fp32.is_file():
            quantize_int8(fp32, path)
        else:
            export_onnx(model, path.parent, quantize=self.quantize)

    def size_mb(self, directory: Path) -> float:
        return directory_megabytes(directory / self.onnx_model)

    def load(self, directory: Path) -> Encoder:
        """The shipped graph as it is (a missing one is an error, not a new export)."""
        return OnnxEncoder(shipped_model(directory), directory / self.onnx_model, self.name)


RUNTIMES: dict[str, Runtime] = {
    runtime.name: runtime
    for runtime in (
        TorchFp32(),
        TorchBf16(),
        OnnxRuntime("onnx-fp32", FP32_FILE, backend="onnx"),
        OnnxRuntime("onnx-int8", INT8_FILE, quantize="int8"),
    )
}


class PairScorer(Protocol):
    """(query, candidate) pairs in, one float32 score per pair (higher: more relevant) out."""

    name: str
    model: Any

    def score(self, pairs: list[tuple[str, str]], batch_size: int = 64) -> np.ndarray: ...


class TorchPairScorer:
    """A CrossEncoder in PyTorch, through `CrossEncoder.predict`."""

    def __init__(self, model: Any, name: str) -> None:
        self.model, self.name = model, name

    def score(self, pairs: list[tuple[str, str]], batch_size: int = 64) -> np.ndarray:
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        scores = self.model.predict(
            [list(pair) for pair in pairs],
            batch_size=batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return np.asarray(scores, dtype=np.float32).reshape(len(pairs))


class RerankStage(ABC):
    """A reranking stage after any runtime's retrieval. A subclass sets name and implements scorer and
    size_mb; ship measures it (`stembed ship --reranker`), prunes it, and load_shipped loads it."""

    name: str
    files: tuple[str, ...] = ()  # what prepare() writes into ship/ (removed unless a chosen row reranks)
    usage = ""  # how to run it outside stembed (ship.json's how)

    def available(self) -> bool:
        """Whether ship measures it on this machine."""
        return True

    @abstractmethod
    def scorer(self, model: Any, workdir: Path) -> PairScorer:
        """Its scorer of a reranker (a CrossEncoder)."""

    def prepare(self, model: Any, directory: Path) -> PairScorer:
        """Write its files into a ship/ directory; the scorer of them."""
        return self.scorer(model, directory)

    @abstractmethod
    def size_mb(self, directory: Path) -> float:
        """Its reranker's size on disk in a prepared ship/ directory, in MB."""

    def load(self, directory: Path) -> PairScorer:
        """At serving time: its scorer of the reranker shipped in directory."""
        return self.scorer(load_saved(str(directory / RERANKER_DIR)), directory)


class TorchRerank(RerankStage):
    """The reranker as trained, in PyTorch fp32, saved beside the bi-encoder as ship/reranker/."""

    name, files = "rerank", (RERANKER_DIR,)
    usage = "CrossEncoder(path).rank(query, candidates)"

    def scorer(self, model: Any, workdir: Path) -> PairScorer:
        return TorchPairScorer(model, self.name)

    def prepare(self, model: Any, directory: Path) -> PairScorer:
        model.save(str(directory / RERANKER_DIR))
        return self.scorer(model, directory)

    def size_mb(self, directory: Path) -> float:
        return weights_megabytes(directory / RERANKER_DIR)


RERANKERS: dict[str, RerankStage] = {stage.name: stage for stage in (TorchRerank(),)}


def backend_runtime(backend: str) -> Runtime:
    """The registered runtime `stembed encode --backend` names."""
    by_backend = {runtime.backend or runtime.name: runtime for runtime in RUNTIMES.values()}
    if backend not in by_backend:
        raise StembedError(f"--backend {backend}: not supported. Use one of: {', '.join(by_backend)}.")
    return by_backend[backend]


def backend_encoder(model: SentenceTransformer, backend: str, workdir: Path) -> Encoder:
    """The encoder for `--backend`: torch as it is, onnx / onnx-int8 exported into workdir first."""
    return backend_runtime(backend).encoder(model, workdir)


def shipped_model(directory: Path) -> SentenceTransformer:
    """The SentenceTransformer in a ship/ directory (the tokenizer's home for every runtime), on CPU."""

    return SentenceTransformer(str(directory / MODEL_DIR), device="cpu")


def bf16_copy(model: SentenceTransformer) -> SentenceTransformer:
    """A bfloat16 copy of the model (half the weights' bytes); the caller's model stays float32."""

    return copy.deepcopy(model).to(torch.bfloat16)


def weights_megabytes(model_dir: Path) -> float:
    """The saved weights' size (the tokenizer and config files are the same for every runtime)."""
    weights = [p for p in model_dir.rglob("*") if p.suffix in (".safetensors", ".bin")]
    return sum(directory_megabytes(p) for p in weights) or directory_megabytes(model_dir)


def directory_megabytes(path: Path) -> float:
    """Size on disk of a file or a directory tree, in MB (10^6 bytes)."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def as_texts(values: Any) -> list[str]:
    """A list of strings from any sequence of values (None becomes '')."""
    return ["" if value is None else str(value) for value in values]
