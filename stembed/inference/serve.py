"""`stembed serve`: MLflow's model server for a logged model, from a plain (not activated) environment.

`mlflow models serve` shells out to `uvicorn`, which is found only when the environment's bin
directory is on PATH; called as `.venv/bin/mlflow` without activation it exits 127. This puts that
directory first on PATH and runs the server in this environment (`--env-manager local`: no new
environment is built, the model runs with the packages that trained it).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from stembed.errors import StembedError
from stembed.tracking.redaction import mask_url_passwords
from stembed.tracking.store import resolve_tracking_uri

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def model_uri(reference: str) -> str:
    """RUN_ID -> runs:/RUN_ID/model; an MLflow model URI stays as it is."""
    if RUN_ID.match(reference):
        return f"runs:/{reference}/model"
    if reference.startswith(("runs:/", "models:/")):
        return reference
    raise StembedError(
        f"MODEL {reference}: not a run id or an MLflow model URI. Give a run id (`stembed runs` lists "
        "them), runs:/<run_id>/model or models:/<name>@<alias>."
    )


def check_servable(uri: str, tracking_uri: str) -> None:
    """Fail with one paragraph if there is no MLflow model at uri (before the server starts)."""

    mlflow.set_tracking_uri(tracking_uri)
    try:
        mlflow.models.get_model_info(uri)
    except (MlflowException, OSError) as err:
        raise StembedError(
            mask_url_passwords(  # the store's password, in its name or quoted by MLflow
                f"MODEL {uri}: no logged MLflow model there in {tracking_uri} ({str(err).splitlines()[0]}). "
                "Train with tracking.log_model=true; `stembed runs` lists runs."
            )
        ) from None


def serve_command(uri: str, host: str, port: int, workers: int = 1) -> list[str]:
    """The `mlflow models serve` command line, with this environment's mlflow."""
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    return [
        str(mlflow_bin),
        "models",
        "serve",
        "-m",
        uri,
        "--env-manager",
        "local",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def serve_environment(tracking_uri: str) -> dict[str, str]:
    """This process's environment, the interpreter's bin directory first on PATH, the store set."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    return env


def serve(reference: str, host: str, port: int, workers: int, tracking_uri: str | None) -> None:
    """Replace this process with MLflow's model server for the referenced model."""

    uri = model_uri(reference)
    store = resolve_tracking_uri(tracking_uri, Path("outputs"))
    check_servable(uri, store)
    command = serve_command(uri, host, port, workers)
    if not Path(command[0]).is_file():
        raise StembedError(f"{command[0]}: MLflow's command is not installed here; run `make install`.")
    print(f"serving {uri} on http://{host}:{port}/invocations (Ctrl-C to stop)", flush=True)
    os.execve(command[0], command, serve_environment(store))
