"""`stembed encode`: embeddings of one column of a table file, with any runtime of the registry."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stembed.components.kinds import kind_of
from stembed.data.loading import read_table
from stembed.errors import StembedError
from stembed.inference.outputs import check_writable_output
from stembed.inference.references import load_any_model
from stembed.inference.runtimes import REFERENCE_RUNTIME, backend_runtime

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def encode_file(
    model: SentenceTransformer,
    input_path: Path,
    column: str,
    output: Path,
    batch_size: int,
    backend: str = "torch",
    prompt_name: str | None = None,
) -> tuple[int, int]:
    """Embed one column of a table file into .npy (one row per text) or .parquet (text, embedding).

    backend: a runtime's `--backend` name (stembed.inference.runtimes.RUNTIMES). torch is `model.encode`
    itself (length-sorted batches); onnx / onnx-int8 export the model to a temporary directory first
    and run it in ONNX Runtime.
    prompt_name: one of the model's saved prompts, as SentenceTransformer.encode(prompt_name=...) takes it.
    """

    if prompt_name is not None and prompt_name not in model.prompts:
        saved = {name: text for name, text in model.prompts.items() if text}
        raise StembedError(
            f"--prompt-name {prompt_name}: the model has no such prompt. Its prompts: {saved or 'none'}. "
            "Train with model.prompts to save some, or leave --prompt-name out."
        )
    if output.suffix not in (".npy", ".parquet"):
        raise StembedError(f"--output {output}: must end in .npy or .parquet.")
    runtime = backend_runtime(backend)  # an unknown name fails here, before any work
    frame = read_input(input_path, output, "--column", [column], "the one holding the texts")
    texts = frame[column].fillna("").astype(str).tolist()
    if runtime.name == REFERENCE_RUNTIME:  # model.encode itself: its progress bar, its prompt handling
        embeddings = model.encode(
            texts,
            batch_size=batch_size,
            show_progress_bar=True,
            convert_to_numpy=True,
            prompt_name=prompt_name,
        )
    else:
        prompt = model.prompts.get(prompt_name, "") if prompt_name else ""  # as model.encode prepends it
        with tempfile.TemporaryDirectory(prefix="stembed-onnx-") as workdir:
            encoder = runtime.encoder(model, Path(workdir))
            embeddings = encoder.encode([prompt + text for text in texts], batch_size=batch_size)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".npy":
        np.save(output, embeddings)
    else:
        pd.DataFrame({column: texts, "embedding": list(embeddings)}).to_parquet(output)
    return embeddings.shape


def read_input(
    input_path: Path, output: Path, option: str, columns: list[str], holding: str, task: str = "embed"
) -> pd.DataFrame:
    """The input table, checked before any model work: the file exists and has rows and the named
    columns, and the output can be written. `option`, `holding` and `task` word the errors."""
    if not input_path.is_file():
        raise StembedError(f"--input {input_path}: no such file. Give a csv/tsv/jsonl/json/parquet file.")
    check_writable_output(output, "--output", directory=False)
    frame = read_table(input_path, field_name="--input")
    if len(frame) == 0:
        raise StembedError(f"--input {input_path}: no rows to {task} (only a header?). Nothing was written.")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise StembedError(
            f"{option} {','.join(columns)}: {', '.join(missing)} not in {input_path}. "
            f"Columns found: {list(frame.columns)}. Pass {option} with {holding}."
        )
    return frame


def check_embeds(model: Any, reference: str) -> None:
    """A reranker has no embeddings: say which command scores with it instead of failing on .encode."""
    kind = kind_of(model)
    if kind.scores_pairs:
        raise StembedError(
            f"MODEL {reference}: a {kind.name} (reranker) scores (query, document) pairs; it makes no "
            f"embeddings. Use `stembed score {reference} -i pairs.csv -c query,document -o scores.parquet` "
            "(or `stembed rerank` to rank candidates per query), or give a bi-encoder to `stembed encode`."
        )


def encode_model_file(
    reference: str,
    tracking_uri: str | None,
    input_path: Path,
    column: str,
    output: Path,
    batch_size: int,
    backend: str = "torch",
    prompt_name: str | None = None,
) -> tuple[int, int]:
    """`stembed encode MODEL`: load the model (stembed.inference.references), then `encode_file`."""
    model, _ = load_any_model(reference, tracking_uri)
    check_embeds(model, reference)
    return encode_file(model, input_path, column, output, batch_size, backend, prompt_name)
