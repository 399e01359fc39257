"""No credential reaches MLflow: params, tags, run name and every artifact are searched for planted values."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TINY, all_runs, run_stembed, stembed_env, store_uri

pytestmark = pytest.mark.e2e  # real training runs in subprocesses: `make test`, not test-fast

PLANTED = {
    "HF_TOKEN": "hf_PLANTEDenvToken123",
    "MLFLOW_TRACKING_PASSWORD": "PLANTEDtrackingPw456",
    "MY_SERVICE_API_KEY": "PLANTEDserviceKey789",
}
CLI_SECRET = "PLANTEDcliPassword000"


def test_planted_credentials_are_masked_everywhere(tmp_path: Path) -> None:
    import mlflow

    args = [arg for arg in TINY if arg != "tracking.log_model=false"]  # the model artifact is searched too
    args += [
        "+trainer.hub_token=${oc.env:HF_TOKEN}",  # a credential reaching the config through the environment
        f"+tracking.password={CLI_SECRET}",  # typed on the command line
        "tracking.run_name=run-${oc.env:MY_SERVICE_API_KEY}",  # a credential under an innocent key
    ]
    result = run_stembed(["train", *args], tmp_path, env=stembed_env(**PLANTED))
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = all_runs(store_uri(tmp_path))
    secrets = [*PLANTED.values(), CLI_SECRET]

    logged = [*run.data.params.values(), *run.data.tags.values(), *run.data.metrics, run.info.run_name]
    assert not [text for text in logged for secret in secrets if secret in str(text)]
    assert run.data.params["trainer.hub_token"] == "***" and run.data.params["tracking.password"] == "***"
    assert CLI_SECRET not in run.data.tags["stembed.command"] and "***" in run.data.tags["stembed.command"]

    mlflow.set_tracking_uri(store_uri(tmp_path))
    local = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path / "a")))
    files = [p for p in local.rglob("*") if p.is_file()]
    assert {"README.md", "config/resolved.yaml", "config/overrides.yaml"} <= {
        str(p.relative_to(local)) for p in files
    }
    # MLflow 3 keeps the logged model apart from the run's artifacts: search it too.
    model = Path(
        mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/model", dst_path=str(tmp_path / "m"))
    )
    files += [p for p in model.rglob("*") if p.is_file()]
    assert (model / "MLmodel").is_file() and any(p.name == "README.md" for p in model.rglob("*"))
    leaks = [(p.name, s) for p in files for s in secrets if s.encode() in p.read_bytes()]
    assert leaks == []


def test_trust_remote_code_is_off_unless_a_config_sets_it() -> None:
    from hydra import compose, initialize_config_dir

    from stembed.config import conf_dir
    from stembed.recipe.configs import groups

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        for experiment in groups()["experiment"]:
            cfg = compose(config_name="train", overrides=[f"+experiment={experiment}"])
            assert cfg.model.get("trust_remote_code", False) is False, experiment
