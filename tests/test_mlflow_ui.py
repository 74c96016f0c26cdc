"""The study in the MLflow UI, as a user meets it: a real `mlflow server` on loopback over the store a real
study (with --report) wrote, pages loaded in headless Chromium.

Screenshots go to $GAN_STUDY_SCREENSHOTS when set (else the test's temporary folder): mlflow_experiment.png
(the link the driver prints), mlflow_parent.png (the parent run's page and description), mlflow_report.png
(the report in the parent's artifacts) and, for comparison, mlflow_experiment_plain_link.png (the experiment's
plain link, which MLflow 3.17 opens on its GenAI overview whatever the experiment's kind tag says).
"""
import os
import re
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import browser
from components import missing_component
from processes import MlflowServer, run_study, study_runs


@pytest.fixture(autouse=True, scope="module")
def chromium_installed():
    """Skips the module's tests where Chromium is not installed; fails them in CI. Module-scoped and autouse, so
    it runs before the module's `study` fixture starts a study that a missing browser could not show anyway."""
    if browser.chromium() is None:
        missing_component("Chromium", "chromium is not installed")


SPACE = """
name: ui
description: Four tiny MLP GANs, two widths of G, two seeds each.
dataset: mnist5k
fixed: {arch: mlp, z_dim: 8, d_width: 8, g_depth: 1, d_depth: 1, batch_size: 16}
search_space:
  g_width: {grid: [8, 16]}
search: grid
scheduler: fifo
metric: pixel_fd
mode: min
seeds_per_config: 2
budget: {steps: 20, eval_every: 10}
evaluation: {num_samples: 100, metrics: [pixel_fd], final: false}
resources: {cpus_per_trial: 1, max_concurrent: 2}
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A finished study with its report, and an MLflow server showing its store."""
    tmp_path = tmp_path_factory.mktemp("ui")
    (tmp_path / "ui.yaml").write_text(SPACE)
    run_study(tmp_path, str(tmp_path / "ui.yaml"), "--report")
    server = MlflowServer(tmp_path, backend_uri=f"sqlite:///{tmp_path}/mlflow.db")
    server.start()
    try:
        yield tmp_path, server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("GAN_STUDY_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def printed_ui_link(tmp_path: Path, server: MlflowServer) -> str:
    """The 'MLflow UI:' link the driver printed, pointed at the test's server instead of `mlflow ui`'s default."""
    links = re.findall(r"^MLflow UI: .*?(http://127\.0\.0\.1:5000/\S+)$", (tmp_path / "driver.log").read_text(), re.M)
    assert links, "the driver printed no MLflow UI link"
    return links[-1].replace("http://127.0.0.1:5000", server.uri)


def test_the_printed_link_opens_the_runs_table_with_the_study(study, shots):
    tmp_path, server = study
    client = MlflowClient(server.uri)
    (parent,), children = study_runs(client)
    experiment = client.get_experiment_by_name("study")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"

    page = browser.load(printed_ui_link(tmp_path, server), screenshot=shots / "mlflow_experiment.png")
    assert page.title == f"Runs - Experiment {experiment.experiment_id} - MLflow", page.title
    assert parent.info.run_name in page.text and "matching runs" in page.text, page.text[:2000]
    for genai_overview in ("No data available for the selected time range", "Token Usage", "Latency"):
        assert genai_overview not in page.text
    # the Dataset column names the training data and its fingerprint (study.dataset_input)
    assert "Dataset" in page.text and re.search(r"mnist5k \([0-9a-f]{16}\) training", page.text), page.text[:2000]
    # MLflow's artifact download bars (the report reads the sample grids) stay out of the console
    assert "Downloading artifacts" not in (tmp_path / "driver.log").read_text()
    # the trials are nested under the study's run, named for what they trained, grouped by configuration
    assert sorted(c.info.run_name for c in children) == ["mlp g16 d8 k1 s0", "mlp g16 d8 k1 s1",
                                                         "mlp g8 d8 k1 s0", "mlp g8 d8 k1 s1"]
    ids = {c.info.run_name: c.data.tags["gan_study.config_id"] for c in children}
    assert ids["mlp g8 d8 k1 s0"] == ids["mlp g8 d8 k1 s1"] != ids["mlp g16 d8 k1 s0"] == ids["mlp g16 d8 k1 s1"]
    # for comparison: the experiment's plain link, which MLflow 3.17 opens as the browser's workflow switch says
    browser.load(f"{server.uri}/#/experiments/{experiment.experiment_id}",
                 screenshot=shots / "mlflow_experiment_plain_link.png")


def test_the_parent_runs_page_describes_the_study_and_links_its_report(study, shots):
    tmp_path, server = study
    client = MlflowClient(server.uri)
    (parent,), _ = study_runs(client)
    experiment_id = parent.info.experiment_id
    run_page = f"{server.uri}/#/experiments/{experiment_id}/runs/{parent.info.run_id}?workflowType=machine_learning"
    page = browser.load(run_page, screenshot=shots / "mlflow_parent.png", size="1600,1400")
    assert "Description" in page.text
    assert "GAN study ui : completed" in page.text or "GAN study ui: completed" in page.text, page.text[:3000]
    assert "Four tiny MLP GANs" in page.text and "Best trial:" in page.text
    # the description names the report and links it in the run's artifacts
    link = f'href="#/experiments/{experiment_id}/runs/{parent.info.run_id}/artifacts/report/report.html"'
    assert link in page.dom and "report/report.html" in page.text
    assert "What this study shows" in page.text  # the report's own summary, appended when it was built
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "report") if a.path.endswith(".html")] == \
        ["report/report.html"]

    report = browser.load(f"{server.uri}/#/experiments/{experiment_id}/runs/{parent.info.run_id}/artifacts/"
                          f"report/report.html?workflowType=machine_learning", screenshot=shots / "mlflow_report.png")
    assert "report.html" in report.text and "Select a file to preview" not in report.text
