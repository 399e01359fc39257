"""ship/ in MLflow: the run's card as the shipped card, ship/ logged to the run, and (`--register`)
the shipped variant as a registered pyfunc model that serves what the index stores (or, where the
reranker alone was chosen, a score per (query, document) pair)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from stembed.inference.runtimes import MODEL_DIR
from stembed.inference.shipped import load_shipped
from stembed.inference.variants import ShipResult
from stembed.tracking.model_logging import INPUT_EXAMPLE, requirements
from stembed.tracking.pyfunc_models import PAIR_EXAMPLE
from stembed.tracking.registry import register_model_version
from stembed.tracking.store import retry_when_locked


def use_run_card(card: Path, run_id: str, uri: str) -> None:
    """The shipped model's card is the run's own (redacted, with its stembed section), not a new one."""

    mlflow.set_tracking_uri(uri)
    try:
        card.write_text(mlflow.artifacts.load_text(f"runs:/{run_id}/README.md"), encoding="utf-8")
    except Exception:  # a run without a logged card keeps the card the library wrote
        return


def log_to_run(result: ShipResult, run_id: str, uri: str) -> None:
    """ship/ as artifacts of the run, the choice as tags, the card with the table."""

    client = MlflowClient(tracking_uri=uri)
    retry_when_locked(client.log_artifacts, run_id, str(result.output), "ship")
    chosen = result.chosen
    tags = {
        "stembed.ship.variant": chosen.variant.label,
        "stembed.ship.metric": f"{result.metric_name}={chosen.metric:.4f} ({chosen.delta:+.4f})",
    }
    for key, value in tags.items():
        retry_when_locked(client.set_tag, run_id, key, value)
    card = result.output / MODEL_DIR / "README.md"
    if card.is_file():
        retry_when_locked(client.log_text, run_id, card.read_text(encoding="utf-8"), "README.md")


class ShippedPyfunc:
    """An MLflow pyfunc model serving a shipped variant (registered with `--register`)."""

    def __new__(cls) -> Any:

        class Model(mlflow.pyfunc.PythonModel):
            def load_context(self, context: Any) -> None:
                self.shipped = load_shipped(context.artifacts["ship"])

            def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
                if self.shipped.encoder is None:  # the reranker alone: (query, document) pairs in
                    rows = (
                        model_input.iloc[:, :2].itertuples(index=False)
                        if hasattr(model_input, "iloc")
                        else model_input
                    )
                    return self.shipped.score_pairs([tuple(row) for row in rows])
                texts = model_input.iloc[:, 0].tolist() if hasattr(model_input, "iloc") else list(model_input)
                return self.shipped.encode(texts)

        return Model()


def register_shipped(result: ShipResult, run_id: str, uri: str, name: str) -> str:
    """Log the shipped variant as a pyfunc model of the run and register it as a version of name."""

    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="ship_model",
            python_model=ShippedPyfunc(),
            artifacts={"ship": str(result.output)},
            pip_requirements=[*requirements(), "onnxruntime"],
            input_example=INPUT_EXAMPLE if result.chosen.variant.runtime else PAIR_EXAMPLE,
        )
    return register_model_version(uri, info.model_uri, name)
