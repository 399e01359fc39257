"""Rerankers and sparse encoders as MLflow pyfunc models (MLflow's sentence-transformers flavour takes
only bi-encoders): `mlflow models serve`, `stembed serve` and `mlflow.pyfunc.load_model(...).predict`
answer with a score per (query, document) pair, or a sparse vector per text.

The saved model directory is the artifact `model`; the classes below load it by its kind. The
serving environment needs stembed installed (`stembed serve` runs in this one: `--env-manager local`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, Schema

from stembed.components.model import load_saved

PAIR_COLUMNS = ("query", "document")
PAIR_EXAMPLE = pd.DataFrame(
    {
        "query": ["How do I reset my password?", "How do I reset my password?"],
        "document": ["Open Settings, then Security, then Reset password.", "The printer on floor 3 jams."],
    }
)
TEXT_EXAMPLE = pd.DataFrame({"text": ["How do I reset my password?"]})
SPARSE_TOP = 64  # active dimensions returned per text (the largest weights)


def _frame(model_input: Any) -> pd.DataFrame:
    return model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)


class RerankerModel(mlflow.pyfunc.PythonModel):
    """A CrossEncoder: a table of (query, document) pairs in, one float score per pair out."""

    def load_context(self, context: Any) -> None:
        self.model = load_saved(context.artifacts["model"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        frame = _frame(model_input)
        missing = [c for c in PAIR_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"columns {missing} missing: send a table with columns query and document")
        pairs = list(zip(frame["query"].astype(str), frame["document"].astype(str), strict=True))
        scores = self.model.predict(pairs, batch_size=32, show_progress_bar=False)
        return np.asarray(scores, dtype=np.float64)


class SparseEncoderModel(mlflow.pyfunc.PythonModel):
    """A SparseEncoder: a `text` column in, per text a JSON object of its largest token weights."""

    def load_context(self, context: Any) -> None:
        self.model = load_saved(context.artifacts["model"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> list[str]:
        frame = _frame(model_input)
        texts = frame["text" if "text" in frame.columns else frame.columns[0]].astype(str).tolist()
        embeddings = self.model.encode(texts, convert_to_tensor=True, show_progress_bar=False)
        decoded = self.model.decode(embeddings, top_k=SPARSE_TOP)
        return [json.dumps({token: round(float(w), 4) for token, w in row}) for row in decoded]


PYFUNC_MODELS = {  # kind name -> (python model, signature, input example)
    "cross-encoder": (
        RerankerModel,
        ModelSignature(
            inputs=Schema([ColSpec("string", "query"), ColSpec("string", "document")]),
            outputs=Schema([ColSpec("double")]),
        ),
        PAIR_EXAMPLE,
    ),
    "sparse-encoder": (
        SparseEncoderModel,
        ModelSignature(inputs=Schema([ColSpec("string", "text")]), outputs=Schema([ColSpec("string")])),
        TEXT_EXAMPLE,
    ),
}


def log_pyfunc(kind_name: str, model_dir: str, requirements: list[str]) -> Any:
    """Log the saved model directory as the run's `model`, a pyfunc of its kind.

    The model is logged from code (a two-line script naming the class above), not pickled: MLflow
    stores the script, and loading imports this module instead of unpickling an object.
    """
    python_model, signature, example = PYFUNC_MODELS[kind_name]
    script = Path(model_dir).with_name(Path(model_dir).name + "_pyfunc.py")
    script.write_text(
        f"import mlflow\nfrom {__name__} import {python_model.__name__}\n\n"
        f"mlflow.models.set_model({python_model.__name__}())\n",
        encoding="utf-8",
    )
    try:
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(script),
            artifacts={"model": model_dir},
            signature=signature,
            input_example=example,
            pip_requirements=requirements,  # MLflow loads the logged model once to check the example answers
        )
    finally:
        script.unlink(missing_ok=True)
