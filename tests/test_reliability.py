"""Issue 17 reproductions that need real processes: run directories, read-only commands, other commands."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import STEMBED, TINY, job_runs, run_stembed, stembed_env, store_uri


@pytest.mark.e2e  # real training runs (or model exports) in subprocesses
def test_two_runs_started_together_get_their_own_directories(tmp_path: Path) -> None:
    """Issue 17.4: the default run directory is unique even for runs started in the same second."""
    processes = [
        subprocess.Popen([STEMBED, "train", *TINY], cwd=tmp_path, env=stembed_env(), text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]  # fmt: skip
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [p.returncode for p in processes] == [0, 0], [err[-2000:] for _, err in outputs]
    runs = job_runs(store_uri(tmp_path))
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["stembed.run_dir"] for r in runs}) == 2


@pytest.mark.e2e  # real training runs (or model exports) in subprocesses
def test_reused_run_directory_keeps_the_finished_model(tmp_path: Path) -> None:
    """Issue 17.4: training twice into one hydra.run.dir stops the second run before it trains."""
    first = run_stembed(["train", *TINY, "hydra.run.dir=fixed"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    weights = (tmp_path / "fixed" / "model" / "model.safetensors").read_bytes()
    second = run_stembed(["train", *TINY, "hydra.run.dir=fixed", "seed=7"], tmp_path)
    assert second.returncode == 2 and "earlier run's model" in second.stderr, second.stderr[-3000:]
    assert "Traceback" not in second.stderr
    assert (tmp_path / "fixed" / "model" / "model.safetensors").read_bytes() == weights
    assert not (tmp_path / "fixed" / "model.partial").exists()
    assert len(job_runs(store_uri(tmp_path))) == 1  # no run opened for the refused one


def _tables(path: Path) -> set[str]:
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(path)) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_read_only_commands_never_create_or_migrate_a_store(tmp_path: Path) -> None:
    """Issue 17.7 and 17.11: `stembed runs` on another application's SQLite file, a corrupt file or no
    file exits 2 and leaves the file as it was (MLflow would add its tables); `runs -n -1` is refused."""
    import sqlite3
    from contextlib import closing

    foreign = tmp_path / "app.db"
    with closing(sqlite3.connect(foreign)) as db:
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        db.commit()
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"not a database" * 200)
    cases = {
        "not an MLflow store": ["runs", "--tracking-uri", f"sqlite:///{foreign}"],
        "not a readable SQLite database": ["runs", "--tracking-uri", f"sqlite:///{corrupt}"],
        "does not exist": ["runs"],
        "no such run": ["resume", "0123456789abcdef0123456789abcdef"],
        "Invalid value for '--limit'": ["runs", "-n", "-1"],
    }
    for expected, args in cases.items():
        result = run_stembed(args, tmp_path)
        assert result.returncode == 2 and expected in result.stderr, (args, result.stderr[-2000:])
        assert "Traceback" not in result.stderr
    assert _tables(foreign) == {"invoices"}
    assert corrupt.read_bytes() == b"not a database" * 200
    assert not (tmp_path / "outputs").exists()


def test_ui_refuses_a_port_another_program_serves(tmp_path: Path) -> None:
    """Issue 17.14: `stembed ui --port P` with P taken exits non-zero instead of printing a foreign URL."""
    import socket

    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        result = run_stembed(["ui", "--port", str(port)], tmp_path, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"--port {port}" in result.stderr and "another program" in result.stderr
    assert "http://" not in result.stdout


def test_optuna_ranges_optuna_rejects_fail_before_the_sweep(tmp_path: Path) -> None:
    """Issue 17.13: a negative log-scale or inverted Optuna range: exit 2 naming it, no parent run."""
    sweep = [*TINY, "+hparams_search=demo_optuna", "hydra.sweeper.n_trials=2"]
    for override in (
        "trainer.learning_rate=tag(log, interval(-1e-5, 1e-3))",
        "trainer.warmup_steps=interval(0.2, 0.0)",
    ):
        result = run_stembed(["train", "-m", *sweep, override], tmp_path)
        assert result.returncode == 2, result.stderr[-2000:]
        assert override.partition("=")[0] in result.stderr and "Optuna rejects" in result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "outputs" / "mlflow.db").exists() or job_runs(store_uri(tmp_path)) == []


@pytest.mark.e2e  # real training runs (or model exports) in subprocesses
def test_sweep_job_with_bad_input_prints_its_message_without_traceback(tmp_path: Path) -> None:
    """Issue 17.15: a sweep job failing on bad input prints one line, not the input error's traceback."""
    result = run_stembed(["train", "-m", *TINY, "trainer.learning_rate=-0.1,0.5"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sweep job 0 failed (trainer.learning_rate=-0.1" in result.stderr
    assert "Traceback" not in result.stderr
    statuses = sorted(r.info.status for r in job_runs(store_uri(tmp_path)))
    assert statuses == ["FAILED", "FINISHED"]


@pytest.mark.e2e  # real training runs (or model exports) in subprocesses
def test_encode_and_export_refuse_bad_input_and_outputs(tmp_path: Path) -> None:
    """Issue 17.13 and 17.16: encode of a header-only or empty file (naming --input, writing nothing),
    export onto an existing file; a static-embedding export writes its tokenizer and valid JSON."""
    import json

    from stembed.components.model import tiny_static_model
    from stembed.data.demo import vocabulary

    tiny_static_model(vocabulary()).save(str(tmp_path / "tiny"))
    (tmp_path / "header.csv").write_text("text\n")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "taken").write_text("a file")
    cases = {
        "no rows to embed": ["encode", "tiny", "-i", "header.csv", "-o", "out.npy"],
        "--input": ["encode", "tiny", "-i", "empty.csv", "-o", "out.npy"],
        "is an existing file": ["export", "tiny", "-o", "taken"],
    }
    for expected, args in cases.items():
        result = run_stembed(args, tmp_path)
        assert result.returncode == 2 and expected in result.stderr, (args, result.stderr[-2000:])
        assert "Traceback" not in result.stderr and "data.source" not in result.stderr
    assert not (tmp_path / "out.npy").exists()
    (tmp_path / "read_only").mkdir()
    if subprocess.run(["chattr", "+i", str(tmp_path / "read_only")], check=False).returncode == 0:
        try:  # read-only even for root (plain permissions are not)
            refused = run_stembed(["export", "tiny", "-o", "read_only/onnx"], tmp_path)
        finally:
            subprocess.run(["chattr", "-i", str(tmp_path / "read_only")], check=False)
        assert refused.returncode == 2 and "cannot create" in refused.stderr, refused.stderr[-2000:]
    exported = run_stembed(["export", "tiny", "-o", "onnx"], tmp_path)
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert (tmp_path / "onnx" / "tokenizer.json").is_file()
    meta = json.loads((tmp_path / "onnx" / "stembed_export.json").read_text(), parse_constant=lambda c: 1 / 0)
    assert meta["max_seq_length"] is None
