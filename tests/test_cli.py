"""The command line itself: fast help, Hydra's flags forwarded untouched, config found from any directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import run_stembed


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from stembed.cli import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "assert 'train' in result.output and 'ui' in result.output\n"
        "print(sorted(m for m in ('torch', 'transformers', 'mlflow', 'sentence_transformers', 'datasets')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_train_help_lists_config_groups(tmp_path: Path) -> None:
    result = run_stembed(["train", "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    for expected in (
        "== Configuration groups ==",
        "experiment: banking77",
        "demo",
        "loss: ",
        "cosent",
        "model: ",
    ):
        assert expected in result.stdout, expected


def test_cfg_job_prints_composed_config_and_trains_nothing(tmp_path: Path) -> None:
    result = run_stembed(["train", "--cfg", "job", "+experiment=demo", "loss=mnrl"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "task_name: demo" in result.stdout
    assert "MultipleNegativesRankingLoss" in result.stdout
    assert "name_or_path: sentence-transformers/all-MiniLM-L6-v2" in result.stdout
    assert not (tmp_path / "outputs").exists()


def test_unknown_group_option_is_a_hydra_error(tmp_path: Path) -> None:
    result = run_stembed(["train", "--cfg", "job", "loss=cosin"], tmp_path)
    assert result.returncode != 0
    assert "cosine" in result.stderr  # Hydra lists the available options


def test_version(tmp_path: Path) -> None:
    result = run_stembed(["version"], tmp_path)
    assert result.returncode == 0 and result.stdout.strip()
