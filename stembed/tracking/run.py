"""One MLflow run per job: params, tags, metrics, artifacts, the logged model and its dataset inputs."""

from __future__ import annotations

import contextlib
import json
import re
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from mlflow.exceptions import MlflowException

from stembed.components.kinds import kind_of
from stembed.errors import StembedError
from stembed.internals import SavedModel, skip_mlflow_package_scan
from stembed.tracking.lineage import dataset_inputs
from stembed.tracking.model_logging import log_saved_model
from stembed.tracking.redaction import mask_secret, redact, secret_values
from stembed.tracking.registry import check_alias, check_model_name, register_model_version
from stembed.tracking.store import (
    check_server_reachable,
    check_sqlite_store,
    resolve_tracking_uri,
    retry_when_locked,
    store_lock,
)

if TYPE_CHECKING:
    from transformers import TrainerCallback

MAX_PARAM_LENGTH = 6000  # MLflow's limit for a param value
EXPERIMENT_KIND_TAG, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
_METRIC_NAME_UNSAFE = re.compile(r"[^\w\-. /:]")


def metric_name(name: str) -> str:
    """A name MLflow accepts: '@' (as in ndcg@10) becomes '_at_', other odd characters '_'."""
    return _METRIC_NAME_UNSAFE.sub("_", name.replace("@", "_at_"))


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted keys -> string values (lists as JSON), each within MLflow's length limit."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{dotted}."))
            continue
        text = json.dumps(value) if isinstance(value, list | tuple | dict) else str(value)
        text = mask_secret(dotted, text)
        if len(text) > MAX_PARAM_LENGTH:
            text = text[: MAX_PARAM_LENGTH - 40] + " ...[truncated; see config/ artifact]"
        flat[dotted] = text
    return flat


class Tracker:
    """One MLflow experiment in one store; opens a run per training job.

    Every param, tag and text artifact goes through `redact`, which masks credential values.
    Under torchrun only rank 0 tracks: on the other processes every method does nothing.
    """

    def __init__(
        self,
        uri: str,
        experiment: str,
        artifact_location: str | None = None,
        register_model: str | None = None,
        alias: str | None = None,
        secrets: set[str] | None = None,
        active: bool = True,
    ) -> None:
        self.uri = uri
        self.experiment_name = experiment
        self.artifact_location = artifact_location
        self.register_model = register_model
        self.alias = alias  # set on the registered version; in a sweep, on the best job's (at the end)
        self.registered_version: str | None = None
        self.experiment_id: str | None = None
        self.run_id: str | None = None
        self.active = active  # False on torchrun's other ranks: only rank 0 tracks
        self.secrets = secret_values() if secrets is None else set(secrets)

    def redact(self, text: str) -> str:
        """text with every known credential value replaced by ***."""
        return redact(text, self.secrets)

    def _redacted(self, values: Mapping[str, str]) -> dict[str, str]:
        return {key: self.redact(str(value)) for key, value in values.items()}

    @classmethod
    def from_config(
        cls, cfg: Any, output_root: str, secrets: set[str] | None = None, active: bool = True
    ) -> Tracker:
        """Build from the `tracking` group; the embedded store gets an artifact root beside it.

        secrets: the job's credential values, found once (stembed.scale.run_dir.guarded_run_dir).
        """
        root = Path(output_root)
        uri = resolve_tracking_uri(cfg.get("uri"), root)
        artifacts = cfg.get("artifact_location")
        if artifacts is None and uri.startswith("sqlite:"):
            artifacts = (root / "mlartifacts").resolve().as_uri()
        register = cfg.get("register_model")
        check_model_name(register)  # MLflow refuses it only after training, when the model is registered
        if register and not cfg.get("log_model"):
            raise StembedError(
                f"tracking.register_model={register}: registering needs the model logged to the run, "
                "but tracking.log_model=false. Set tracking.log_model=true or drop tracking.register_model."
            )
        experiment = cfg.get("experiment")
        if experiment is None or not str(experiment).strip():
            raise StembedError(
                f"tracking.experiment={experiment!r}: an MLflow experiment needs a name. Leave it unset (the "
                "task name, e.g. demo) or give one, e.g. tracking.experiment=my-project."
            )
        alias = cfg.get("alias")
        check_alias(alias, register)
        return cls(
            uri,
            str(experiment),
            artifacts,
            str(register) if register else None,
            str(alias) if alias else None,
            secrets,
            active,
        )

    def connect(self) -> str | None:
        """Check the store answers and get or create the experiment; fail before any training."""
        if not self.active:
            return None
        if self.uri.startswith("sqlite:///"):
            db_path = Path(self.uri.removeprefix("sqlite:///"))
            try:
                db_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StembedError(
                    f"tracking.uri={self.uri}: cannot create {db_path.parent} ({err.strerror}). "
                    "Set paths.output_root to a writable directory or tracking.uri to another store."
                ) from err
        check_server_reachable(self.uri)
        with store_lock(self.uri):
            check_sqlite_store(self.uri, read_only=False)
            return self._get_or_create_experiment()

    def _get_or_create_experiment(self) -> str:

        mlflow.set_tracking_uri(self.uri)
        try:
            experiment = mlflow.get_experiment_by_name(self.experiment_name)
            if experiment is not None and experiment.lifecycle_stage == "deleted":
                raise StembedError(
                    f"tracking.experiment={self.experiment_name}: this experiment is deleted in "
                    f"{mask_secret('uri', self.uri)}. Restore it (mlflow experiments restore "
                    f"--experiment-id {experiment.experiment_id} with MLFLOW_TRACKING_URI set to this store) "
                    "or pick another name with tracking.experiment=NAME."
                )
            if experiment is None:
                try:
                    self.experiment_id = mlflow.create_experiment(
                        self.experiment_name, artifact_location=self.artifact_location
                    )
                except MlflowException:  # created meanwhile by a parallel job
                    self.experiment_id = mlflow.get_experiment_by_name(self.experiment_name).experiment_id
            else:
                self.experiment_id = experiment.experiment_id
            if experiment is None or EXPERIMENT_KIND_TAG not in experiment.tags:
                # MLflow 3's UI opens such an experiment on its training-runs table, not the GenAI overview.
                mlflow.MlflowClient().set_experiment_tag(
                    self.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_KIND
                )
        except StembedError:
            raise
        except Exception as err:  # MlflowException, or the database driver's own errors
            raise StembedError(
                f"tracking.uri={mask_secret('uri', self.uri)}: the MLflow store did not answer "
                f"({str(err).splitlines()[0] if str(err) else type(err).__name__}). "
                "Start the tracking server, fix the URI, or unset it to use the embedded store."
            ) from err
        return self.experiment_id

    @contextmanager
    def run(
        self, run_name: str | None, params: dict[str, str], tags: dict[str, str], resume_id: str | None = None
    ) -> Iterator[str | None]:
        """An MLflow run that ends FINISHED, or FAILED (traceback logged) / KILLED, never RUNNING.

        With resume_id the stopped run is reopened: its params stay, its tags are updated.
        """
        if not self.active:
            yield None
            return

        tags = self._redacted(tags)
        if resume_id:
            before = retry_when_locked(mlflow.MlflowClient().get_run, resume_id).data
            run = retry_when_locked(mlflow.start_run, run_id=resume_id)
            self._record_resume(before, self._redacted(params), tags)
            retry_when_locked(mlflow.set_tags, tags)
        else:
            name = self.redact(run_name) if run_name else None
            run = retry_when_locked(
                mlflow.start_run, experiment_id=self.experiment_id, run_name=name, tags=tags
            )
        self.run_id = run.info.run_id
        try:
            if not resume_id:
                retry_when_locked(mlflow.log_params, self._redacted(params))
            yield self.run_id
        except KeyboardInterrupt:
            mlflow.set_tag("stembed.ended_by", "interrupt")
            retry_when_locked(mlflow.end_run, "KILLED")
            raise
        except BaseException as err:
            status = "FAILED"
            if isinstance(err, SystemExit) and not err.code:
                status = "FINISHED"
            else:
                self._log_text("".join(traceback.format_exception(err)), "error/traceback.txt")
            retry_when_locked(mlflow.end_run, status)
            raise
        else:
            retry_when_locked(mlflow.end_run, "FINISHED")

    def _record_resume(self, before: Any, params: dict[str, str], tags: dict[str, str]) -> None:
        """Each resume N records its own overrides (tag stembed.resume_N.overrides) and, as params
        resume_N.KEY, the values that differ from the run's first params (MLflow never changes a param)."""

        number = 1 + sum(k.startswith("stembed.resume_") and k.endswith(".overrides") for k in before.tags)
        first = json.loads(before.tags.get("stembed.overrides", "[]"))
        now = json.loads(tags.get("stembed.overrides", "[]"))
        added = [o for o in now if o not in first and not o.lstrip("+").startswith("resume=")]
        tags[f"stembed.resume_{number}.overrides"] = json.dumps(added)
        changed = {
            f"resume_{number}.{key}": value
            for key, value in params.items()
            if before.params.get(key) != value and not key.startswith("resume_")
        }
        if changed:
            retry_when_locked(mlflow.log_params, changed)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Tag the open run."""

        if self.active:
            retry_when_locked(mlflow.set_tags, self._redacted(tags))

    def log_metrics(self, metrics: Mapping[str, float], step: int, prefix: str = "") -> None:
        """Log numeric values under MLflow-safe names."""

        values = {metric_name(prefix + k): float(v) for k, v in metrics.items() if _is_number(v)}
        if values and self.active:
            retry_when_locked(mlflow.log_metrics, values, step=step)

    def set_primary_metric(self, name: str) -> None:
        """Tag the metric that ranks this run (`stembed runs`, `stembed compare`)."""

        if self.active:
            tag = metric_name(name.removeprefix("final_").join(("final_", "")))
            retry_when_locked(mlflow.set_tag, "stembed.primary_metric", tag)

    def trainer_callback(self) -> TrainerCallback:
        """A transformers callback that logs every `logs` dict as metrics at the global step."""
        # Local: transformers loads huggingface_hub, and `stembed train` imports this module before it
        # decides offline mode (stembed.hub).
        from transformers import TrainerCallback

        tracker = self

        class MlflowMetrics(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
                if state.is_world_process_zero and logs:
                    tracker.log_metrics(logs, step=state.global_step)

        return MlflowMetrics()

    def log_datasets(self, data: Any, training: bool = True) -> None:
        """Log the run's data as MLflow dataset inputs (contexts training/evaluation/testing).

        The MLflow UI then shows what the model was trained and evaluated on, and runs can be searched
        by it, e.g. `dataset.digest = '<stembed.data_fingerprint>'`.
        """

        if not self.active:
            return
        inputs = dataset_inputs(data, training, self.redact)
        if inputs:
            datasets, contexts = zip(*inputs, strict=True)
            tags = [{"stembed.split": dataset.name.rsplit("[", 1)[-1].rstrip("]")} for dataset in datasets]
            retry_when_locked(mlflow.log_inputs, list(datasets), list(contexts), tags)

    def log_outputs(self, card: Path, config_dir: Path, resolved: str, model: Any, log_model: bool) -> str:
        """Log the card, the configs (composed and resolved) and the model (sentence-transformers flavor);
        register the model as a new version of `tracking.register_model` when that is set."""

        retry_when_locked(mlflow.log_text, self.redact(card.read_text(encoding="utf-8")), card.name)
        for path in sorted(config_dir.glob("*.yaml")):  # Hydra's config.yaml, overrides.yaml, hydra.yaml
            text = self.redact(path.read_text(encoding="utf-8"))
            retry_when_locked(mlflow.log_text, text, f"config/{path.name}")
        retry_when_locked(mlflow.log_text, self.redact(resolved), "config/resolved.yaml")
        if log_model:
            started = time.perf_counter()
            skip_mlflow_package_scan()
            saved = SavedModel(model, card.parent, self.redact)
            info = retry_when_locked(log_saved_model, saved, kind_of(model))
            self.log_metrics({"stembed_log_model_seconds": time.perf_counter() - started}, step=0)
            if self.register_model:
                alias = None if in_sweep() else self.alias  # a sweep aliases its best job when it ends
                self.registered_version = register_model_version(
                    self.uri, info.model_uri, self.register_model, alias
                )
        return f"runs:/{self.run_id}/model"

    def _log_text(self, text: str, artifact_file: str) -> None:

        with contextlib.suppress(Exception):  # never hide the original error behind a logging failure
            mlflow.log_text(self.redact(text), artifact_file)


def in_sweep() -> bool:
    """True inside a job of a Hydra multirun (sweep)."""

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value
