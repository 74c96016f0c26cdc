"""deploy/mlflow_server.sh runs MLflow's basic-auth app: nothing is read or written without a password, the
driver takes its credentials from MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, and a refusal is one
line and exit status 2 before anything starts."""
import stat
import urllib.error
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from processes import DeployedMlflowServer, run_study, study_runs, tiny_space


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # no MLFLOW_AUTH_ADMIN_PASSWORD: the script generates the admin's password into DATA_DIR/admin_password
    deployed = DeployedMlflowServer(tmp_path_factory.mktemp("mlflow"))
    deployed.start()
    yield deployed
    deployed.stop()


def admin(server) -> dict[str, str]:
    return {"MLFLOW_TRACKING_USERNAME": "admin",
            "MLFLOW_TRACKING_PASSWORD": (server.data_dir / "admin_password").read_text().strip()}


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_server_answers_401_to_anyone_without_a_password_and_keeps_its_secrets_private(server):
    assert status_of(f"{server.uri}/api/2.0/mlflow/experiments/search?max_results=1") == 401
    assert status_of(f"{server.uri}/") == 401  # the UI too
    assert status_of(f"{server.uri}/health") == 200  # only health and server info are public
    for secret in ("admin_password", "flask_secret_key", "basic_auth.ini"):
        mode = stat.S_IMODE((server.data_dir / secret).stat().st_mode)
        assert mode == 0o600, (secret, oct(mode))


@pytest.mark.parametrize("credentials,message", [
    ({}, "refused access (HTTP 401); no credentials: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"),
    ({"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "not-the-password"},
     "refused access (HTTP 401); the credentials in MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"),
])
def test_a_driver_without_valid_credentials_stops_with_one_line_before_anything_starts(
        server, tmp_path, monkeypatch, capsys, credentials, message):
    import ray

    from study.run import main

    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    space = tiny_space(tmp_path, steps=20, eval_every=10)
    capsys.readouterr()
    status = main(["--space", space, "--tracking-uri", server.uri, "--storage-path", str(tmp_path / "ray")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0] == f"error: MLflow tracking server {server.uri} {message}"
    assert not ray.is_initialized() and not (tmp_path / "ray").exists()
    for name, value in admin(server).items():
        monkeypatch.setenv(name, value)
    assert [e.name for e in MlflowClient(server.uri).search_experiments()] == ["Default"]  # nothing was written


def test_a_study_with_credentials_from_the_environment_logs_to_the_protected_server(server, tmp_path, monkeypatch):
    space = tiny_space(tmp_path, steps=20, eval_every=10)
    run_study(tmp_path, space, tracking_uri=server.uri, env=admin(server))
    for name, value in admin(server).items():
        monkeypatch.setenv(name, value)
    (parent,), (child,) = study_runs(MlflowClient(server.uri))
    assert parent.data.tags["gan_study.status"] == "completed" and child.data.tags["gan_study.status"] == "completed"
