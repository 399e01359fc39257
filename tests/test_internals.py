"""stembed/internals.py: each private API it relies on still exists, on the versions it was checked on.

When a library upgrade fails this test, re-check the internal (and its public alternative's cost in
`make bench-overhead`), then widen the checked range in stembed/internals.py.
"""

from __future__ import annotations

import sys
from importlib.metadata import version

import pytest

from stembed import internals


def _major_minor(text: str) -> tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


def test_private_apis_still_exist() -> None:
    assert internals.internals_present() == dict.fromkeys(internals.internals_present(), True)


def test_versions_are_the_checked_ones() -> None:
    low, high = internals.CHECKED_PYTHON
    assert low <= sys.version_info[:2] <= high, "re-check threading._shutdown / atexit._run_exitfuncs"
    low, high = internals.CHECKED_MLFLOW
    assert low <= _major_minor(version("mlflow")) <= high, "re-check requirements_utils._MODULES_TO_PACKAGES"
    low, high = internals.CHECKED_OPTUNA_SWEEPER
    checked = _major_minor(version("hydra-optuna-sweeper"))
    assert low <= checked <= high, "re-check hydra_optuna_sweeper._impl.create_params_from_overrides"


def test_optuna_search_space_parsed_as_the_sweeper_does() -> None:
    """What stembed.scale.sweep.check_search_space relies on: ranges become distributions, plain
    values stay fixed, and a range Optuna rejects raises before the sweep starts."""
    space, fixed = internals.optuna_search_space(
        ["lr=tag(log, interval(1e-5, 1e-3))", "batch=choice(8, 16)", "warmup=interval(0.0, 0.2)", "seed=3"]
    )
    assert sorted(space) == ["batch", "lr", "warmup"] and fixed == {"seed": "3"}
    lr = space["lr"]
    assert (lr.low, lr.high) == (1e-5, 1e-3)
    assert getattr(lr, "log", "Log" in type(lr).__name__)  # optuna 2: LogUniform..., 3: Float...(log=True)
    assert space["batch"].choices == (8, 16)
    for rejected in ("lr=interval(1e-3, 1e-5)", "lr=tag(log, interval(0.0, 1e-3))"):
        with pytest.raises((ValueError, AssertionError)):
            internals.optuna_search_space([rejected])


def test_package_scan_skipped_only_before_mlflow_fills_its_cache() -> None:
    from mlflow.utils import requirements_utils

    saved = requirements_utils._MODULES_TO_PACKAGES
    try:
        requirements_utils._MODULES_TO_PACKAGES = None
        internals.skip_mlflow_package_scan()
        assert requirements_utils._MODULES_TO_PACKAGES["sentence_transformers"] == ["sentence-transformers"]
        filled = {"x": ["y"]}
        requirements_utils._MODULES_TO_PACKAGES = filled
        internals.skip_mlflow_package_scan()
        assert requirements_utils._MODULES_TO_PACKAGES is filled
    finally:
        requirements_utils._MODULES_TO_PACKAGES = saved
