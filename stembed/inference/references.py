"""A model named on the command line: an MLflow model URI (runs:/, models:/), a local folder or a hub id."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from stembed.components.model import load_model
from stembed.errors import StembedError
from stembed.hub import decide_offline
from stembed.inference.serve import RUN_ID
from stembed.tracking.redaction import mask_url_passwords
from stembed.tracking.store import resolve_tracking_uri

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MLFLOW_SCHEMES = ("runs:/", "models:/")


def load_any_model(reference: str, tracking_uri: str | None = None) -> tuple[SentenceTransformer, str]:
    """(model, source) from an MLflow model URI (in tracking_uri's store), a local directory or a hub id.

    The model is of the kind it was saved as (a reranker loads as a CrossEncoder, not a bi-encoder):
    callers that need one kind check it (stembed.components.kinds.kind_of).
    """

    decide_offline()  # the CLI decided already; a library caller gets the same decision here
    tracking_uri = resolve_tracking_uri(tracking_uri, Path("outputs"))
    if RUN_ID.match(reference) and not Path(reference).exists():  # a bare run id, as `stembed serve` takes
        reference = f"runs:/{reference}/model"
    if reference.startswith(MLFLOW_SCHEMES):
        mlflow.set_tracking_uri(tracking_uri)
        try:
            model = _load_logged(reference)
        except (MlflowException, OSError) as err:
            raise StembedError(
                mask_url_passwords(  # the store's password, in its name or quoted by MLflow
                    f"MODEL {reference}: no sentence-transformers model there in {tracking_uri} "
                    f"({str(err).splitlines()[0]}). `stembed runs` lists runs; a model is "
                    "runs:/<run_id>/model."
                )
            ) from err
        if model is None:
            raise StembedError(
                f"MODEL {reference}: an MLflow pyfunc model that holds no sentence-transformers model (not "
                "logged by stembed). Give a stembed run's model: `stembed runs` lists runs."
            )
        return model, f"mlflow:{reference}"
    loaded = load_model(OmegaConf.create({"name_or_path": reference, "max_seq_length": None}))
    return loaded.model, loaded.source


def _load_logged(uri: str) -> Any:
    """A logged model: a bi-encoder in MLflow's sentence-transformers flavour, or a reranker / sparse
    encoder logged as a pyfunc (that flavour takes bi-encoders only) unwrapped to its library model;
    None for a pyfunc that wraps no such model."""
    if "sentence_transformers" in mlflow.models.get_model_info(uri).flavors:
        return mlflow.sentence_transformers.load_model(uri)
    python_model = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    return getattr(python_model, "model", None)  # stembed.tracking.pyfunc_models loads it there


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
