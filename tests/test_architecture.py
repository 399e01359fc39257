"""The architecture written down in pyproject.toml ([tool.importlinter]) holds: layers, no circles, imports
at module top, and the entry points stay free of the hub libraries until offline mode is decided."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "stembed"
MAX_LOCAL_OWN_IMPORTS = 15


def test_layer_and_acyclic_contracts_are_kept() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "import-linter is not installed (`make install` installs the dev extra)"
    result = subprocess.run([lint_imports], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout and "2 kept" in result.stdout


def local_own_imports() -> list[tuple[str, int, str]]:
    """(module path, line, the comment that says why) of every function-local import of stembed's own."""
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for function in (n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)):
            for node in ast.walk(function):
                if not isinstance(node, ast.Import | ast.ImportFrom):
                    continue
                module = (node.module or "") if isinstance(node, ast.ImportFrom) else node.names[0].name
                if module.startswith("stembed"):
                    before = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                    why = before if before.startswith("#") else lines[node.lineno - 1].partition("#")[2]
                    found.add((str(path.relative_to(ROOT)), node.lineno, why.strip("# ")))
    return sorted(found)


def test_stembeds_own_imports_sit_at_module_top_but_for_the_fast_cli() -> None:
    local = local_own_imports()
    assert len(local) <= MAX_LOCAL_OWN_IMPORTS, local
    unexplained = [(path, line) for path, line, why in local if not why]
    assert not unexplained, f"a function-local import of stembed needs a comment saying why: {unexplained}"
    assert all(path.startswith(("stembed/cli/", "stembed/recipe/app.py")) for path, _, _ in local), local


def test_entry_points_import_no_hub_library_before_deciding_offline_mode() -> None:
    """huggingface_hub reads HF_HUB_OFFLINE once, at import: `stembed train` decides before it loads."""
    code = (
        "import sys\n"
        "import stembed.cli, stembed.recipe.app, stembed.recipe.checks, stembed.recipe.configs\n"
        "print(sorted(m for m in ('torch', 'huggingface_hub', 'transformers', 'sentence_transformers',"
        " 'datasets') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
