"""Every use of another library's private internals, in one place, with the versions it was checked on.

Each is kept because its public alternative costs more than 2% of a run's wall time
(`make bench-overhead`), or because there is none (the Optuna sweeper's search-space parser);
tests/test_internals.py fails loudly when a new version moves one.
docs/development.md lists the outcome for every private API stembed used.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

# CPython's finalization steps, checked on 3.10-3.13 (threading._shutdown, atexit._run_exitfuncs).
CHECKED_PYTHON = ((3, 10), (3, 13))
# MLflow's module -> package cache (mlflow.utils.requirements_utils), the sentence-transformers
# flavour calling `model.save(path)` once, and its registered-model name rule
# (mlflow.utils.validation._validate_model_name), checked on mlflow 3.0-3.17.
CHECKED_MLFLOW = ((3, 0), (3, 17))
# hydra-optuna-sweeper's parser of search-space overrides into Optuna distributions
# (hydra_plugins.hydra_optuna_sweeper._impl.create_params_from_overrides), checked on 1.2-1.3.
CHECKED_OPTUNA_SWEEPER = ((1, 2), (1, 3))


def exit_without_teardown(code: int) -> None:
    """Exit as Python would, but skip freeing every object one by one at shutdown.

    After torch has been used, that teardown takes 2-3 s of a run's wall time and does nothing a
    finished process needs. What it does that matters still happens, in Python's own order: thread
    pools are shut down and non-daemon threads waited for (threading._shutdown), the atexit handlers
    run (MLflow, the sweep's parent run), logs and output streams are flushed. Public alternative:
    sys.exit, 2-3 s slower per run.
    """
    threading._shutdown()  # type: ignore[attr-defined]  # Python's first step of finalizing
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def skip_mlflow_package_scan() -> None:
    """Spare mlflow's log_model its scan of every installed file (about 1 s) to map modules to packages.

    MLflow scans only to warn when the given requirements differ from the installed versions; ours
    are read from the installed versions, so they cannot. If the cache moves, MLflow scans as before.
    """
    from mlflow.utils import requirements_utils

    if getattr(requirements_utils, "_MODULES_TO_PACKAGES", ...) is None:
        modules = {"sentence_transformers": "sentence-transformers", "transformers": "transformers"}
        modules |= {"torch": "torch", "mlflow": "mlflow"}
        requirements_utils._MODULES_TO_PACKAGES = {module: [name] for module, name in modules.items()}


class SavedModel:
    """The trained model as MLflow's flavour sees it, whose save() reuses the directory stembed saved.

    Relies on mlflow.sentence_transformers.save_model calling `model.save(path)` once and reading
    other attributes through `__getattr__`. The flavour would serialize the model a second time
    (about 0.6 s for MiniLM); this links the files already written instead (copies them across file
    systems), and writes the card redacted, with its stembed section. Public alternative: pass the
    model itself, which saves it again and logs the library's card without stembed's section.
    """

    def __init__(self, model: Any, directory: Path, redact: Callable[[str], str]) -> None:
        self.wrapped = model
        self.directory = directory
        self.redact = redact

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)

    def save(self, path: str, **kwargs: Any) -> None:
        """Link (or copy) the saved directory into `path`, the card redacted."""
        import shutil

        def link(source: str, target: str) -> None:
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)

        shutil.copytree(
            self.directory,
            path,
            copy_function=link,
            ignore=shutil.ignore_patterns("README.md"),
            dirs_exist_ok=True,
        )
        card = (self.directory / "README.md").read_text(encoding="utf-8")
        (Path(path) / "README.md").write_text(self.redact(card), encoding="utf-8")


def optuna_search_space(overrides: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parse sweep overrides (`KEY=tag(log, interval(1e-5, 1e-3))`) exactly as the Optuna sweeper will:
    ({key: Optuna distribution}, {key: fixed value}). A range Optuna rejects (inverted, or <= 0 on a log
    scale) raises its ValueError (or the sweeper's AssertionError/NotImplementedError).

    The plugin has no public parser: its sweeper parses the search space only once the sweep has
    started, after the parent run is open. Public alternative: re-implement the parser with Hydra's
    `OverridesParser` and `optuna.distributions`, about 50 lines that would drift from the sweeper's.
    """
    # Local: the plugin imports Optuna, which only a sweep needs (`stembed --help` stays light).
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    return create_params_from_overrides(overrides)


def validate_registered_model_name(name: str) -> None:
    """MLflow's own rule for registered model names (raises MlflowException), so a name is refused
    before training rather than after it. Public alternative: register and catch the error, which
    happens only once the model is trained and logged."""
    from mlflow.utils.validation import _validate_model_name

    _validate_model_name(name)


def internals_present() -> dict[str, Any]:
    """Whether each internal still exists (for tests/test_internals.py)."""
    import inspect

    import mlflow.sentence_transformers
    from hydra_plugins.hydra_optuna_sweeper import _impl as optuna_sweeper
    from mlflow.utils import requirements_utils, validation

    flavour_save = inspect.getsource(mlflow.sentence_transformers.save_model)
    return {
        "flavour calls model.save(path)": "model.save(str(model_data_path)" in flavour_save,
        "threading._shutdown": callable(getattr(threading, "_shutdown", None)),
        "atexit._run_exitfuncs": callable(getattr(atexit, "_run_exitfuncs", None)),
        "requirements_utils._MODULES_TO_PACKAGES": hasattr(requirements_utils, "_MODULES_TO_PACKAGES"),
        "validation._validate_model_name": callable(getattr(validation, "_validate_model_name", None)),
        "hydra_optuna_sweeper._impl.create_params_from_overrides": callable(
            getattr(optuna_sweeper, "create_params_from_overrides", None)
        ),
    }
