"""The model registry: versions and aliases (`models:/NAME@champion`).

An alias is a movable name for one version: deployments load `models:/NAME@ALIAS` and follow it when
it moves, without a code change. In a sweep only the best job's model gets the alias, when the sweep
ends (stembed.scale.sweep), so the alias always names the sweep's winner.
"""

from __future__ import annotations

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from stembed.errors import StembedError
from stembed.internals import validate_registered_model_name
from stembed.tracking.store import retry_when_locked

ALIAS_TAG = "stembed.registered_alias"


def check_alias(alias: str | None, register_model: str | None) -> None:
    """tracking.alias needs tracking.register_model, and must be a name MLflow accepts as an alias."""
    if not alias:
        return
    if not register_model:
        raise StembedError(
            f"tracking.alias={alias}: an alias names a registered model version, but "
            "tracking.register_model is not set. Add tracking.register_model=NAME."
        )
    reserved = alias.lower() == "latest" or (alias.lower().startswith("v") and alias[1:].isdigit())
    if reserved or not alias.replace("-", "").replace("_", "").isalnum():
        raise StembedError(
            f"tracking.alias={alias}: not a valid MLflow alias (letters, digits, '-' and '_'; not "
            "'latest' or v<number>). Use e.g. tracking.alias=champion."
        )


def check_model_name(name: str | None, field: str = "tracking.register_model") -> None:
    """A registry name MLflow refuses ('/' or ':' in it) fails here, before training, not after it."""
    if name is None:
        return
    try:
        validate_registered_model_name(str(name))  # MLflow's own rule, so the two agree
    except MlflowException as err:
        raise StembedError(
            f"{field}={name}: not a valid MLflow registered model name ({err.message}). Use letters, digits, "
            f"'-', '_' and '.', e.g. {field}=support-embeddings."
        ) from err


def set_alias(uri: str, name: str, alias: str, version: str) -> None:
    """Point models:/name@alias at this version (moving it from any other)."""

    retry_when_locked(MlflowClient(tracking_uri=uri).set_registered_model_alias, name, alias, version)


def register_run_model(uri: str, name: str, run_id: str, alias: str | None = None) -> str:
    """The version of `name` holding runs:/run_id/model (registered now if none does), aliased."""

    client = MlflowClient(tracking_uri=uri)
    existing = [
        v for v in client.search_model_versions(f"name = '{name}'") if v.run_id == run_id
    ]  # SQL filters on run_id are not supported by every store; the list per name is short
    if not existing:
        return register_model_version(uri, f"runs:/{run_id}/model", name, alias)
    version = str(max(int(v.version) for v in existing))
    if alias:
        set_alias(uri, name, alias, version)
    return version


def register_model_version(uri: str, model_uri: str, name: str, alias: str | None = None) -> str:
    """Register model_uri as a new version of name in the store at uri (retried while the store is
    locked), and point models:/name@alias at it when alias is given; the version number."""

    mlflow.set_tracking_uri(uri)  # mlflow.register_model writes to the global store
    version = str(retry_when_locked(mlflow.register_model, model_uri, name).version)
    if alias:
        set_alias(uri, name, alias, version)
    return version
