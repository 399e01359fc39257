"""Logging the saved model with MLflow's sentence-transformers flavor."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import numpy as np
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, Schema, TensorSpec

from stembed.components.model import embedding_dimension

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
