"""Logging the saved model with MLflow's sentence-transformers flavor."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

EMBEDDING_TASK = "llm/v1/embeddings"  # MLflow's task name for embedding models (recorded in metadata)
INPUT_EXAMPLE = ["How do I reset my password?", "The printer on the third floor keeps jamming."]


def serving_arguments(model: Any) -> dict[str, Any]:
    """log_model arguments that make the logged model servable as it is.

    A signature (strings in, float32 vectors of the model's dimension out) lets `mlflow models serve`
    check requests, the input example shows callers the payload, and the task marks the model as an
    embedding model. The signature is given, not inferred, so MLflow does not run the model for it.
    """
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    from stembed.inference.runtimes import embedding_dimension

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
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("sentence-transformers", "transformers", "torch")]


class SavedModel:
    """The trained model as MLflow's flavor sees it, whose save() reuses the directory stembed saved.

    The flavor would serialize the model a second time (about 0.6 s for MiniLM); this links the
    files already written instead (copies them across file systems). The card is written redacted,
    with its stembed section, as it is logged next to the run. Everything else is the model's.
    """

    def __init__(self, model: Any, directory: Path, redact: Callable[[str], str]) -> None:
        self._model = model
        self._directory = directory
        self._redact = redact

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def save(self, path: str, **kwargs: Any) -> None:
        """Link (or copy) the saved directory into `path`, the card redacted."""
        import shutil

        def link(source: str, target: str) -> None:
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)

        shutil.copytree(
            self._directory,
            path,
            copy_function=link,
            ignore=shutil.ignore_patterns("README.md"),
            dirs_exist_ok=True,
        )
        card = (self._directory / "README.md").read_text(encoding="utf-8")
        (Path(path) / "README.md").write_text(self._redact(card), encoding="utf-8")


def skip_package_scan() -> None:
    """Spare log_model MLflow's scan of every installed file (about 1 s) to map modules to packages.

    MLflow scans only to warn when the given requirements differ from the installed versions; ours
    (`_requirements`, plus MLflow's own pin) are read from the installed versions, so they cannot.
    The map is MLflow's private cache: if it ever moves, MLflow simply scans as before.
    """
    from mlflow.utils import requirements_utils

    if getattr(requirements_utils, "_MODULES_TO_PACKAGES", ...) is None:
        modules = {"sentence_transformers": "sentence-transformers", "transformers": "transformers"}
        modules |= {"torch": "torch", "mlflow": "mlflow"}
        requirements_utils._MODULES_TO_PACKAGES = {module: [name] for module, name in modules.items()}
