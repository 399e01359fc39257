"""Issue 24 reproductions that need real processes: `stembed ui` on a database that is not its own,
a run whose final metrics are NaN."""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from conftest import run_stembed


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("what", "expected"),
    [
        ("foreign", "not an MLflow store"),
        ("corrupt", "not a readable SQLite database"),
        ("port", "--port 99999"),
    ],
)
def test_ui_refuses_bad_input_before_starting_the_server(what: str, expected: str, tmp_path: Path) -> None:
    """24.2: another application's database is never migrated; a corrupt file or a port outside 1..65535
    is one paragraph and exit 2, before "MLflow UI for ..." is printed."""
    database = tmp_path / "app.db"
    if what == "foreign":
        with closing(sqlite3.connect(database)) as db:
            db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
            db.commit()
    elif what == "corrupt":
        database.write_bytes(b"this is not an sqlite database" * 100)
    args = ["ui", "--backend-store-uri", "sqlite:///app.db", "--port", "99999" if what == "port" else "5999"]
    before = _md5(database) if database.exists() else None
    result = run_stembed(args, tmp_path, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert "MLflow UI for" not in result.stdout
    assert len(result.stderr.strip().splitlines()) == 1  # one paragraph
    if before is not None:
        assert _md5(database) == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--register", "bad/name:1"], "--register=bad/name:1: not a valid MLflow registered model name"),
        (["--max-drop", "nan"], "--max-drop nan: must be 0 or more"),
    ],
)
def test_ship_refuses_a_bad_registry_name_or_drop_before_measuring(
    args: list[str], expected: str, tmp_path: Path
) -> None:
    """Issue 24.8 and 24.12: checked before the run is even looked up, so nothing is measured or written."""
    result = run_stembed(["ship", "0" * 32, *args], tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists()
