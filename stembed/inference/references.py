"""A model named on the command line: an MLflow model URI (runs:/, models:/), a local folder or a hub id."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from stembed.components.model import load_model
from stembed.errors import StembedError
from stembed.hub import decide_offline
from stembed.tracking.store import resolve_tracking_uri

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MLFLOW_SCHEMES = ("runs:/", "models:/")


def load_any_model(reference: str, tracking_uri: str | None = None) -> tuple[SentenceTransformer, str]:
    """(model, source) from an MLflow model URI (in tracking_uri's store), a local directory or a hub id."""

    decide_offline()  # the CLI decided already; a library caller gets the same decision here
    tracking_uri = resolve_tracking_uri(tracking_uri, Path("outputs"))
    if reference.startswith(MLFLOW_SCHEMES):
        mlflow.set_tracking_uri(tracking_uri)
        try:
            return mlflow.sentence_transformers.load_model(reference), f"mlflow:{reference}"
        except (MlflowException, OSError) as err:
            raise StembedError(
                f"MODEL {reference}: no sentence-transformers model there in {tracking_uri} "
                f"({str(err).splitlines()[0]}). `stembed runs` lists runs; a model is runs:/<run_id>/model."
            ) from err
    loaded = load_model(OmegaConf.create({"name_or_path": reference, "max_seq_length": None}))
    return loaded.model, loaded.source


def model_run_id(reference: str, tracking_uri: str) -> str | None:
    """The run that produced an MLflow model (runs:/ID/... or a registered version's run)."""
    if reference.startswith("runs:/"):
        return reference.removeprefix("runs:/").split("/", 1)[0]
    if reference.startswith("models:/"):
        client = MlflowClient(tracking_uri=tracking_uri)
        name, _, version = reference.removeprefix("models:/").partition("/")
        name, _, alias = name.partition("@")
        try:
            found = client.get_model_version_by_alias(name, alias) if alias else None
            return (found or client.get_model_version(name, version)).run_id
        except Exception:  # stages resolve elsewhere; the link is a convenience
            return None
    return None
