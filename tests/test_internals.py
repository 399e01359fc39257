"""stembed/internals.py: each private API it relies on still exists, on the versions it was checked on.

When a library upgrade fails this test, re-check the internal (and its public alternative's cost in
`make bench-overhead`), then widen the checked range in stembed/internals.py.
"""

from __future__ import annotations

import sys
from importlib.metadata import version

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
