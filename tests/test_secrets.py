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
    assert leaks == [], leaks


def test_trust_remote_code_is_off_unless_a_config_sets_it() -> None:
    from hydra import compose, initialize_config_dir

    from stembed.config import conf_dir
    from stembed.recipe.configs import groups

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        for experiment in groups()["experiment"]:
            cfg = compose(config_name="train", overrides=[f"+experiment={experiment}"])
            assert cfg.model.get("trust_remote_code", False) is False, experiment


URL_PASSWORD, ENV_URL_PASSWORD = "S3cretPLANTEDurlPw", "PLANTEDenvUrlPw42"
ACCESS_TOKEN, MY_TOKEN = "PLANTEDaccessTok1", "PLANTEDmyTok2"


def _leaks(paths: list[Path], secrets: list[str]) -> list[tuple[str, str]]:
    files = [f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()]
    return [(str(f), s) for f in files for s in secrets if s.encode() in f.read_bytes()]


def test_no_credential_in_store_artifacts_run_directory_or_console(tmp_path: Path) -> None:
    """Issue 17.1: a password in tracking.uri and in $MLFLOW_TRACKING_URI, keys with 'token' inside a
    word, and an environment secret inside a data path: none of them in any byte stembed writes."""
    from team_server import mlflow_server

    from stembed.data.demo import vocabulary

    data_dir = tmp_path / "data" / PLANTED["HF_TOKEN"]  # an environment secret echoed in a path
    data_dir.mkdir(parents=True)
    # words the tiny model knows (an all-unknown text embeds as all others: NaN metrics, run FAILED)
    words = [word for word in vocabulary() if word.isalpha()]
    rows = [f"where is my {words[i]} order,{words[i + 40]} about {words[i]},{i % 2}" for i in range(40)]
    (data_dir / "pairs.csv").write_text("sentence1,sentence2,score\n" + "\n".join(rows) + "\n")
    server_dir, work = tmp_path / "server", tmp_path / "work"
    (server_dir / "store").mkdir(parents=True)
    work.mkdir()
    args = [arg for arg in TINY if arg != "tracking.log_model=false"]
    args += ["data=pairs", f"data.source={data_dir / 'pairs.csv'}", "trainer.save_strategy=steps"]
    args += ["trainer.save_steps=2", f"+tracking.accessToken={ACCESS_TOKEN}", f"+tracking.mytoken={MY_TOKEN}"]
    backend = f"sqlite:///{server_dir / 'store' / 'mlflow.db'}"
    with mlflow_server(backend, server_dir / "artifacts") as url:
        with_password = url.replace("http://", f"http://alice:{URL_PASSWORD}@")
        first = run_stembed(
            ["train", *args, f"tracking.uri={with_password}"], work, env=stembed_env(**PLANTED)
        )
        assert first.returncode == 0, first.stderr[-3000:]
        env_uri = url.replace("http://", f"http://bob:{ENV_URL_PASSWORD}@")
        second = run_stembed(["train", *TINY], work, env=stembed_env(MLFLOW_TRACKING_URI=env_uri))
        assert second.returncode == 0, second.stderr[-3000:]
        runs = all_runs(url)
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    secrets = [*PLANTED.values(), URL_PASSWORD, ENV_URL_PASSWORD, ACCESS_TOKEN, MY_TOKEN]
    run_dirs = list((work / "outputs" / "runs").glob("*/*"))
    assert len(run_dirs) == 2 and all((d / ".hydra" / "overrides.yaml").is_file() for d in run_dirs)
    assert list((work / "outputs" / "runs").glob("*/*/model/README.md"))
    assert list((work / "outputs" / "runs").glob("*/*/checkpoints/checkpoint-*/training_args.bin"))
    assert _leaks([server_dir / "store", server_dir / "artifacts", work], secrets) == []
    console = first.stdout + first.stderr + second.stdout + second.stderr
    assert [s for s in secrets if s in console] == []
    assert "alice:***@" in first.stdout  # the summary names the store, password masked


EVAL_PASSWORD, ERROR_PASSWORD = "EVALpw43PLANTED", "SECRETpw9PLANTED"
NO_RUN = "0123456789abcdef0123456789abcdef"


def test_no_command_prints_a_tracking_uri_password(tmp_path: Path) -> None:
    """Issue 24.1: `eval` and `mine` (MLflow's "View run ... at: URL" line) and the "no such run in
    STORE" errors of card, compare, diff, ship, encode and serve print the store with its password
    masked; every command's console output goes through the same redaction (stembed.cli.app.main)."""
    from concurrent.futures import ThreadPoolExecutor

    from team_server import mlflow_server

    from stembed.components.model import tiny_static_model
    from stembed.data.demo import vocabulary

    tiny_static_model(vocabulary()).save(str(tmp_path / "tiny_model"))
    (tmp_path / "texts.csv").write_text("text\nwhere is my order?\n")
    server_dir = tmp_path / "server"
    (server_dir / "store").mkdir(parents=True)
    backend = f"sqlite:///{server_dir / 'store' / 'mlflow.db'}"
    with mlflow_server(backend, server_dir / "artifacts") as url:
        logged_uri = url.replace("http://", f"http://alice:{EVAL_PASSWORD}@")
        error_uri = url.replace("http://", f"http://alice:{ERROR_PASSWORD}@")
        logging_commands = {
            "eval": ["eval", str(tmp_path / "tiny_model"), "+experiment=demo", "model=tiny"],
            "mine": ["mine", "-o", "mined.parquet", *TINY, "loss=mnrl", "mining=hard_negatives"],
        }
        failing = {
            "card": ["card", NO_RUN],
            "compare": ["compare", NO_RUN],
            "diff": ["diff", NO_RUN],
            "ship": ["ship", NO_RUN],
            "encode": ["encode", f"runs:/{NO_RUN}/model", "-i", "texts.csv", "-o", "out.npy"],
            "serve": ["serve", NO_RUN],
        }
        commands = {name: [*args, "--tracking-uri", logged_uri] for name, args in logging_commands.items()}
        commands |= {name: [*args, "--tracking-uri", error_uri] for name, args in failing.items()}
        with ThreadPoolExecutor(max_workers=3) as pool:
            futures = {name: pool.submit(run_stembed, args, tmp_path) for name, args in commands.items()}
            results = {name: future.result() for name, future in futures.items()}
        runs = all_runs(url)
    for name in logging_commands:
        assert results[name].returncode == 0, (name, results[name].stderr[-3000:])
        assert "View run" in results[name].stdout and "alice:***@" in results[name].stdout, name
    for name in failing:
        assert results[name].returncode == 2, (name, results[name].stderr[-3000:])
        assert "alice:***@" in results[name].stderr, (name, results[name].stderr[-3000:])
    assert len(runs) == 2  # the eval run and the mining run, on the server
    leaks = [
        (name, line)
        for name, result in results.items()
        for line in (result.stdout + result.stderr).splitlines()
        if EVAL_PASSWORD in line or ERROR_PASSWORD in line
    ]
    assert leaks == [], leaks


def test_a_url_password_in_any_command_line_argument_is_a_secret() -> None:
    from stembed.tracking.redaction import mask_url_passwords, secret_values

    args = ["card", "RUN", "--tracking-uri", "http://alice:PLANTEDpw7@127.0.0.1:5000", "uri=s://b:PW2x@h"]
    assert secret_values(environ={}, overrides=args) == {"PLANTEDpw7", "PW2x"}
    assert mask_url_passwords("no such run in http://alice:PLANTEDpw7@127.0.0.1:5000.") == (
        "no such run in http://alice:***@127.0.0.1:5000."
    )
