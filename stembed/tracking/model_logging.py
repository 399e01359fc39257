"""Logging the saved model: a bi-encoder with MLflow's sentence-transformers flavour, the other kinds as
pyfunc models (stembed.tracking.pyfunc_models)."""

from __future__ import annotations

import tempfile
from importlib.metadata import version
from typing import Any

import mlflow
import numpy as np
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, Schema, TensorSpec

from stembed.components.kinds import BI_ENCODER, ModelKind
from stembed.components.model import embedding_dimension
from stembed.tracking.pyfunc_models import log_pyfunc

EMBEDDING_TASK = "llm/v1/embeddings"  # MLflow's task name for embedding models (recorded in metadata)
INPUT_EXAMPLE = ["How do I reset my password?", "The printer on the third floor keeps jamming."]


def serving_arguments(model: Any) -> dict[str, Any]:
    """log_model arguments that make the logged model servable as it is.

    A signature (strings in, float32 vectors of the model's dimension out) lets `mlflow models serve`
    check requests, the input example shows callers the payload, and the task marks the model as an
    embedding model. The signature is given, not inferred, so MLflow does not run the model for it.
    """

    dimension = embedding_dimension(model)
    signature = ModelSignature(
        inputs=Schema([ColSpec("string")]),
        outputs=Schema([TensorSpec(np.dtype("float32"), (-1, dimension if dimension else -1))]),
    )
    return {
        "signature": signature,
        "input_example": INPUT_EXAMPLE,
        "task": EMBEDDING_TASK,
        "validate_serving_input": False,
    }


def requirements() -> list[str]:
    """Pinned requirements of the logged model (given, so MLflow does not re-load it to infer them)."""

    return [f"{name}=={version(name)}" for name in ("sentence-transformers", "transformers", "torch")]


def log_saved_model(saved: Any, kind: ModelKind) -> Any:
    """Log `saved` (an internals.SavedModel: the run's model directory, card redacted) as the run's model."""
    if kind is BI_ENCODER:
        return mlflow.sentence_transformers.log_model(
            saved, name="model", pip_requirements=requirements(), **serving_arguments(saved.wrapped)
        )
    with tempfile.TemporaryDirectory(prefix="stembed-model-") as folder:
        saved.save(folder)  # the redacted copy is what MLflow stores
        return log_pyfunc(kind.name, folder, requirements())
