"""`python -m reports` on a real (tiny) study run by the study runner, checked against what MLflow holds."""
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict

import pytest
from mlflow.tracking import MlflowClient

from components import missing_component


# (G, D) widths (32, 16) and (16, 32) around one base width, x k in {1, 2}: 4 trials, log2(D/G) in {-1, 1}
# within each k
SPACE = """
name: rep
dataset: mnist5k
fixed: {arch: mlp, z_dim: 16, g_depth: 1, d_depth: 1, batch_size: 32}
search_space:
  g_width: {grid: [32, 16]}
  d_width:
    - {grid: [16], when: {g_width: 32}}
    - {grid: [32], when: {g_width: 16}}
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
# k varies too: the k section draws its learning curves over compute first
FIGURES = ("k_steps_compute", "fid_vs_capacity", "fid_heatmap", "regimes", "learning_curves", "d_outputs", "samples")
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


def test_imbalance_table_equals_mean_and_t_interval_recomputed_from_mlflow(study, report):
    import pandas as pd

    _, _, client, parent_id = study
    values = defaultdict(lambda: defaultdict(list))  # metric -> (k, capacity ratio) -> trial values
    for run in children(client, parent_id):
        level = (int(run.data.params["k"]), float(run.data.params["capacity_ratio_log2"]))
        for metric in ("pixel_fd", "d_gap"):
            values[metric][level].append(run.data.metrics[f"final/{metric}"])
    table = pd.read_csv(report / "imbalance.csv")
    # k varies in this study, so the report compares the widths within each k: four groups of one trial each
    assert sorted(zip(table["k"], table["capacity_ratio_log2"])) == sorted(values["pixel_fd"]) == \
        [(1, -1.0), (1, 1.0), (2, -1.0), (2, 1.0)]
    for row in table.itertuples():
        for metric in ("pixel_fd", "d_gap"):
            trial_values = values[metric][(row.k, row.capacity_ratio_log2)]
            assert getattr(row, f"{metric}_n") == len(trial_values) == 1
            assert getattr(row, f"{metric}_mean") == pytest.approx(statistics.mean(trial_values))
            # one trial per level: a t-interval needs two, so there is none (and no made-up width)
            assert math.isnan(getattr(row, f"{metric}_ci_low")) and math.isnan(getattr(row, f"{metric}_ci_high"))
    # the Markdown marks the level with the lowest mean pixel FD of each k in bold
    markdown = (report / "report.md").read_text()
    for k, group in table.groupby("k"):
        best = group.loc[group["pixel_fd_mean"].idxmin()]
        assert re.search(rf"\| {int(k)} \| {best.capacity_ratio_log2:g}[ *]* \|.*\*\*{best.pixel_fd_mean:.4g}", markdown), \
            markdown
    assert "pixel FD" in markdown and "| trials | 4 (4 completed)" in markdown


def test_html_renders_in_headless_chromium_without_broken_images(report, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        missing_component("Chromium", "chromium is not installed")
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
