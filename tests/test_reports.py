"""`python -m reports`: the report of a real (tiny) study, checked against what MLflow holds."""
import base64
import os
import re
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict

import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from reports import ReportError, build_report

# 2 discriminator widths x k in {1, 2}: 4 trials, log2(D/G) in {-1, 1} with two trials each
SPACE = """
name: rep
dataset: mnist5k
fixed: {arch: mlp, z_dim: 16, g_width: 32, g_depth: 1, d_depth: 1, batch_size: 32}
search_space:
  d_width: {grid: [16, 64]}
  k: {grid: [1, 2]}
search: grid
scheduler: fifo
metric: pixel_fd
mode: min
seeds_per_config: 1
budget: {steps: 20, eval_every: 10}
evaluation: {num_samples: 200, metrics: [pixel_fd, discriminator]}
resources: {cpus_per_trial: 1, max_concurrent: 2}
"""
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ("fid_vs_capacity", "fid_heatmap", "regimes", "learning_curves", "d_outputs", "samples")
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def run_reports(cwd, *args):
    return subprocess.run([sys.executable, "-m", "reports", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A real study run by the study runner: (folder, tracking URI, client, parent run id)."""
    tmp_path = tmp_path_factory.mktemp("report_study")
    (tmp_path / "space.yaml").write_text(SPACE)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = subprocess.run(
        [sys.executable, "-m", "study.run", "--space", str(tmp_path / "space.yaml"), "--tracking-uri", uri,
         "--storage-path", str(tmp_path / "ray"), "--experiment", "rep"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name("rep").experiment_id
    parent, = client.search_runs([experiment_id], filter_string="tags.`gan_study.role` = 'study'")
    return tmp_path, uri, client, parent.info.run_id


@pytest.fixture(scope="module")
def report(study):
    """The report written by the CLI with its defaults, in the study's folder: the folder of its files."""
    tmp_path, _, _, _ = study
    result = run_reports(tmp_path, "--experiment", "rep")  # default store: ./mlflow.db
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stderr == ""
    return tmp_path / "reports_out" / "rep"


def children(client, parent_id):
    experiment_id = client.get_run(parent_id).info.experiment_id
    return client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'")


def test_reports_package_does_not_import_ray():
    code = ("import sys, reports, reports.cli, reports.build, reports.load, reports.tables, reports.plots, "
            "reports.render; assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')]")
    subprocess.run([sys.executable, "-c", code], check=True, env=ENV, timeout=120)


def test_imbalance_table_equals_mean_and_std_recomputed_from_mlflow(study, report):
    import pandas as pd

    _, _, client, parent_id = study
    values = defaultdict(lambda: defaultdict(list))  # metric -> capacity ratio -> trial values
    for run in children(client, parent_id):
        ratio = float(run.data.params["capacity_ratio_log2"])
        for metric in ("pixel_fd", "d_gap"):
            values[metric][ratio].append(run.data.metrics[f"final/{metric}"])
    table = pd.read_csv(report / "imbalance.csv")
    assert sorted(table["capacity_ratio_log2"]) == sorted(values["pixel_fd"]) == [-1.0, 1.0]
    for row in table.itertuples():
        for metric in ("pixel_fd", "d_gap"):
            trial_values = values[metric][row.capacity_ratio_log2]
            assert getattr(row, f"{metric}_n") == len(trial_values)
            assert getattr(row, f"{metric}_mean") == pytest.approx(statistics.mean(trial_values))
            assert getattr(row, f"{metric}_std") == pytest.approx(statistics.stdev(trial_values))
    # the Markdown marks the level with the lowest mean pixel FD in bold
    best = table.loc[table["pixel_fd_mean"].idxmin()]
    markdown = (report / "report.md").read_text()
    assert re.search(rf"\| {best.capacity_ratio_log2:g} \| \*\*{best.pixel_fd_mean:.4g} ", markdown), markdown
    assert "pixel FD" in markdown and "| trials | 4 (4 completed)" in markdown


def test_effect_size_of_capacity_is_the_spread_of_its_level_means(study, report):
    import pandas as pd

    _, _, client, parent_id = study
    by_level = defaultdict(list)
    for run in children(client, parent_id):
        by_level[float(run.data.params["capacity_ratio_log2"])].append(run.data.metrics["final/pixel_fd"])
    means = [statistics.mean(v) for v in by_level.values()]
    effects = pd.read_csv(report / "effect_sizes.csv").set_index("factor")
    assert effects.loc["capacity_ratio_log2", "spread_of_mean"] == pytest.approx(max(means) - min(means))
    assert effects.loc["capacity_ratio_log2", "levels"] == 2
    assert {"k", "d_width"} <= set(effects.index)
    assert 0 <= effects.loc["k", "kruskal_p"] <= 1


def test_every_figure_is_a_valid_png_embedded_in_the_html(report):
    html = (report / "report.html").read_text()
    embedded = [base64.b64decode(data) for data in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)]
    for name in FIGURES:
        png = (report / f"{name}.png").read_bytes()
        assert png.startswith(PNG_MAGIC), name
        with Image.open(report / f"{name}.png") as image:
            image.verify()
        with Image.open(report / f"{name}.png") as image:
            assert min(image.size) > 200, name
        assert png in embedded, f"{name}.png is not embedded in report.html"
        assert f"]({name}.png)" in (report / "report.md").read_text()
    assert "src='file:" not in html and "src='http" not in html  # self-contained


def test_tables_are_written_as_csv(report):
    import pandas as pd

    trials = pd.read_csv(report / "trials.csv")
    assert len(trials) == 4 and set(trials["status"]) == {"completed"}
    assert "metric:pixel_fd" in trials and "capacity_ratio_log2" in trials
    for name in ("imbalance.csv", "effect_sizes.csv"):
        assert (report / name).stat().st_size > 0


def test_report_is_logged_to_the_parent_run(study, report):
    _, _, client, parent_id = study
    logged = {a.path for a in client.list_artifacts(parent_id, "report")}
    written = {f"report/{p.name}" for p in report.iterdir() if p.is_file()}
    assert logged == written
    assert {"report/report.html", "report/report.md", "report/imbalance.csv", "report/samples.png"} <= logged


def test_html_renders_in_headless_chromium_without_broken_images(report, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed")
    # a copy of the page whose script writes each image's natural width into the title
    probe = "<script>window.addEventListener('load', () => { document.title = 'widths:' + " \
            "Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0).join(','); });</script>"
    page = tmp_path / "probe.html"
    page.write_text((report / "report.html").read_text().replace("</body>", probe + "</body>"))
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    title = re.search(r"<title>widths:([0-9,]*)</title>", result.stdout)
    assert title, result.stdout[-2000:] + result.stderr[-2000:]
    widths = [int(w) for w in title.group(1).split(",")]
    assert len(widths) == len(FIGURES) and all(w > 0 for w in widths)


def test_build_report_marks_a_partial_study_and_honours_formats(study, tmp_path):
    """A copy of the store with a trial still running and one errored before its first report."""
    source, _, _, parent_id = study
    shutil.copyfile(source / "mlflow.db", tmp_path / "mlflow.db")  # artifacts stay where they are
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment_id = client.get_run(parent_id).info.experiment_id
    for trial_id, status in (("late_00004", "running"), ("late_00005", "errored")):
        client.create_run(experiment_id, tags={"mlflow.parentRunId": parent_id, "gan_study.role": "trial",
                                               "gan_study.trial_id": trial_id, "gan_study.status": status})
    paths = build_report(uri, "rep", out_dir=tmp_path / "out", formats=("md",), log_artifacts=False)
    assert paths.html is None and paths.markdown.exists() and paths.parent_run_id == parent_id
    header = paths.markdown.read_text()
    assert "| trials | 6 (4 completed, 1 errored, 1 running); 4 with a pixel FD |" in header
    assert "| partial study | 1 running, 1 errored:" in header
    assert not list((tmp_path / "out").glob("*.html"))


def cli_error(capsys, *args) -> str:
    """Run the CLI in this process; assert exit status 2 and return its one line of stderr."""
    from reports.cli import main

    capsys.readouterr()  # drop what came before, e.g. MLflow creating a store
    assert main(list(args)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_unknown_experiment_exits_2_with_one_line(study, capsys):
    _, uri, _, _ = study
    line = cli_error(capsys, "--experiment", "nope", "--tracking-uri", uri)
    assert line == "error: no MLflow experiment named 'nope'"


def test_missing_store_exits_2_and_creates_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert "no MLflow store" in cli_error(capsys, "--experiment", "rep")
    assert not (tmp_path / "mlflow.db").exists()


def test_unknown_run_id_exits_2(study, capsys):
    _, uri, _, _ = study
    assert "is not a study's parent run" in cli_error(capsys, "--experiment", "rep", "--tracking-uri", uri,
                                                      "--run-id", "0" * 32)


def test_study_without_finished_trials_exits_2(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("empty")
    parent = client.create_run(experiment_id, tags={"gan_study.role": "study"})
    client.create_run(experiment_id, tags={"mlflow.parentRunId": parent.info.run_id, "gan_study.role": "trial",
                                           "gan_study.status": "errored"})
    assert "has no finished trial" in cli_error(capsys, "--experiment", "empty", "--tracking-uri", uri)
    with pytest.raises(ReportError, match="no finished trial"):
        build_report(uri, "empty", out_dir=tmp_path / "out")
    # an experiment without any study in it
    client.create_experiment("bare")
    assert "holds no study" in cli_error(capsys, "--experiment", "bare", "--tracking-uri", uri)


def test_optuna_importances_come_from_an_in_memory_optuna_study(study):
    """The study searched a grid; read as if Optuna had searched it, its two varied params get importances."""
    import dataclasses

    from reports import tables
    from reports.load import load_study

    _, uri, _, _ = study
    loaded = load_study(uri, "rep")
    assert tables.optuna_importances(loaded) is None  # not an Optuna study
    as_optuna = dataclasses.replace(loaded, parent_params={**loaded.parent_params, "search": "optuna"})
    numbers, table = tables.optuna_importances(as_optuna)
    assert set(numbers["param"]) == {"d_width", "k"}
    assert numbers["importance"].sum() == pytest.approx(1.0) and (numbers["importance"] >= 0).all()
