"""Using a trained model: `stembed eval` and `stembed encode`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from stembed.components.model import load_model
from stembed.data.eval_sets import eval_evaluators
from stembed.data.loading import read_table
from stembed.errors import StembedError
from stembed.hub import decide_offline
from stembed.inference.outputs import check_writable_output
from stembed.inference.runtimes import BACKENDS, backend_encoder
from stembed.tracking.store import resolve_tracking_uri

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MLFLOW_SCHEMES = ("runs:/", "models:/")


def load_any_model(reference: str, tracking_uri: str | None = None) -> tuple[SentenceTransformer, str]:
    """(model, source) from an MLflow model URI (in tracking_uri's store), a local directory or a hub id."""

    decide_offline()  # the CLI decided already; a library caller gets the same decision here
    tracking_uri = resolve_tracking_uri(tracking_uri, Path("outputs"))
    if reference.startswith(MLFLOW_SCHEMES):
        import mlflow
        from mlflow.exceptions import MlflowException

        mlflow.set_tracking_uri(tracking_uri)
        try:
            return mlflow.sentence_transformers.load_model(reference), f"mlflow:{reference}"
        except (MlflowException, OSError) as err:
            raise StembedError(
                f"MODEL {reference}: no sentence-transformers model there in {tracking_uri} "
                f"({str(err).splitlines()[0]}). `stembed runs` lists runs; a model is runs:/<run_id>/model."
            ) from err
    from omegaconf import OmegaConf

    loaded = load_model(OmegaConf.create({"name_or_path": reference, "max_seq_length": None}))
    return loaded.model, loaded.source


def model_run_id(reference: str, tracking_uri: str) -> str | None:
    """The run that produced an MLflow model (runs:/ID/... or a registered version's run)."""
    if reference.startswith("runs:/"):
        return reference.removeprefix("runs:/").split("/", 1)[0]
    if reference.startswith("models:/"):
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri)
        name, _, version = reference.removeprefix("models:/").partition("/")
        name, _, alias = name.partition("@")
        try:
            found = client.get_model_version_by_alias(name, alias) if alias else None
            return (found or client.get_model_version(name, version)).run_id
        except Exception:  # stages resolve elsewhere; the link is a convenience
            return None
    return None


def build_eval(cfg: Any, model: SentenceTransformer) -> tuple[list[Any], Any]:
    """([evaluator on the eval split, on the test split or None], the data) from the composed config.

    The evaluators embed with the model's prompts (saved with it, or model.prompts); data=multi too.
    """

    evaluators, data = eval_evaluators(cfg, model)
    if evaluators[0] is None:
        raise StembedError(
            "evaluator=none: nothing to evaluate. Pick an evaluator, e.g. evaluator=similarity."
        )
    return evaluators, data


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

    backend torch is `model.encode` itself (length-sorted batches); onnx / onnx-int8 export the model
    to a temporary directory first and run it in ONNX Runtime (stembed.inference.runtimes).
    prompt_name: one of the model's saved prompts, as SentenceTransformer.encode(prompt_name=...) takes it.
    """
    import tempfile

    import numpy as np

    if prompt_name is not None and prompt_name not in model.prompts:
        saved = {name: text for name, text in model.prompts.items() if text}
        raise StembedError(
            f"--prompt-name {prompt_name}: the model has no such prompt. Its prompts: {saved or 'none'}. "
            "Train with model.prompts to save some, or leave --prompt-name out."
        )
    if output.suffix not in (".npy", ".parquet"):
        raise StembedError(f"--output {output}: must end in .npy or .parquet.")
    if backend not in BACKENDS:
        raise StembedError(f"--backend {backend}: not supported. Use one of: {', '.join(BACKENDS)}.")
    if not input_path.is_file():
        raise StembedError(f"--input {input_path}: no such file. Give a csv/tsv/jsonl/json/parquet file.")
    check_writable_output(output, "--output", directory=False)
    frame = read_table(input_path, field_name="--input")
    if len(frame) == 0:
        raise StembedError(f"--input {input_path}: no rows to embed (only a header?). Nothing was written.")
    if column not in frame.columns:
        raise StembedError(
            f"--column {column}: not in {input_path}. Columns found: {list(frame.columns)}. "
            "Pass --column with the one holding the texts."
        )
    texts = frame[column].fillna("").astype(str).tolist()
    if backend == "torch":
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
            encoder = backend_encoder(model, backend, Path(workdir))
            embeddings = encoder.encode([prompt + text for text in texts], batch_size=batch_size)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".npy":
        np.save(output, embeddings)
    else:
        import pandas as pd

        pd.DataFrame({column: texts, "embedding": list(embeddings)}).to_parquet(output)
    return embeddings.shape
