"""Every use of another library's private internals, in one place, with the versions it was checked on.

Each is kept because its public alternative costs more than 2% of a run's wall time
(`make bench-overhead`); tests/test_internals.py fails loudly when a new version moves one.
docs/development.md lists the outcome for every private API stembed used.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from typing import Any

# CPython's finalization steps, checked on 3.10-3.13 (threading._shutdown, atexit._run_exitfuncs).
CHECKED_PYTHON = ((3, 10), (3, 13))
# MLflow's module -> package cache, checked on mlflow 3.0-3.17 (mlflow.utils.requirements_utils).
CHECKED_MLFLOW = ((3, 0), (3, 17))


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


def internals_present() -> dict[str, Any]:
    """Whether each internal still exists (for tests/test_internals.py)."""
    from mlflow.utils import requirements_utils

    return {
        "threading._shutdown": callable(getattr(threading, "_shutdown", None)),
        "atexit._run_exitfuncs": callable(getattr(atexit, "_run_exitfuncs", None)),
        "requirements_utils._MODULES_TO_PACKAGES": hasattr(requirements_utils, "_MODULES_TO_PACKAGES"),
    }
