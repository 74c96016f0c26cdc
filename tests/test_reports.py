"""`python -m reports` on studies written straight into an MLflow store, so every expected value is known."""
import base64
import re
import statistics
import subprocess
import sys

import pytest
from PIL import Image

from gan import names
from reports import ReportError, build_report
from study_store import Trial, fill_study

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ("fid_vs_capacity", "fid_heatmap", "regimes", "learning_curves", "d_outputs", "samples")
# G width 32 against D widths 16 and 64 (log2 ratios -1 and 1), k in {1, 2}: two trials per ratio
FIDS = {(16, 1): 40.0, (16, 2): 44.0, (64, 1): 20.0, (64, 2): 26.0}


def four_trials() -> list[Trial]:
    trials = []
    for (d_width, k), fid in FIDS.items():
        ratio = 1.0 if d_width == 64 else -1.0
        trials.append(Trial(
            params={"arch": "mlp", "g_width": 32, "d_width": d_width, "k": k, "seed": 0, "capacity_ratio_log2": ratio},
            final={names.FID: fid, names.D_GAP: 0.1 * k + ratio, names.PARZEN: -fid},
            history={names.FID: [(10, 2 * fid), (20, fid)], names.EVAL_D_REAL: [(10, 0.7), (20, 0.8)],
                     names.EVAL_D_FAKE: [(10, 0.3), (20, 0.2)]},
            regime="balanced" if d_width == 16 else "d_dominates"))
    return trials


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("report_store")
    uri, client, parent_id = fill_study(tmp_path, "rep", four_trials(), parent_params={"searched": "d_width,k"},
                                        parent_metrics={names.reference(names.FID_TRAIN_TEST): 3.0})
    return tmp_path, uri, client, parent_id


@pytest.fixture(scope="module")
def report(study):
    tmp_path, uri, _, _ = study
    paths = build_report(uri, "rep", out_dir=tmp_path / "out")
    return paths.out_dir


def test_reports_package_does_not_import_ray():
    code = ("import sys, reports, reports.cli, reports.build, reports.load, reports.tables, reports.plots, "
            "reports.render; assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')]")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_imbalance_table_gives_mean_and_std_per_capacity_ratio(report):
    import pandas as pd

    table = pd.read_csv(report / "imbalance.csv").set_index("capacity_ratio_log2")
    for ratio, fids in ((-1.0, [40.0, 44.0]), (1.0, [20.0, 26.0])):
        assert table.loc[ratio, "fid_mean"] == pytest.approx(statistics.mean(fids))
        assert table.loc[ratio, "fid_std"] == pytest.approx(statistics.stdev(fids))
        assert table.loc[ratio, "fid_n"] == 2
    markdown = (report / "report.md").read_text()
    assert re.search(r"\| 1 \| \*\*23 ", markdown), markdown  # the better level, in bold
    assert "| trials | 4 (4 completed); 4 with a FID |" in markdown
    assert "| reference: fid_train_test | 3 |" in markdown


def test_effect_size_of_capacity_is_the_spread_of_its_level_means_with_kruskal_wallis_h(report):
    import pandas as pd

    effects = pd.read_csv(report / "effect_sizes.csv").set_index("factor")
    assert effects.loc["capacity_ratio_log2", "spread_of_mean"] == pytest.approx(42.0 - 23.0)
    # two groups of two, perfectly separated: ranks {3, 4} and {1, 2};
    # H = 12 / (N (N + 1)) * sum(R_i² / n_i) − 3 (N + 1) with N = 4
    expected_h = 12 / (4 * 5) * ((3 + 4) ** 2 / 2 + (1 + 2) ** 2 / 2) - 3 * 5
    assert effects.loc["capacity_ratio_log2", "kruskal_h"] == pytest.approx(expected_h)
    assert effects.loc["k", "levels"] == 2 and effects.loc["k", "spread_of_mean"] == pytest.approx(35.0 - 30.0)


def test_every_figure_is_a_valid_png_embedded_in_the_html(report):
    html = (report / "report.html").read_text()
    embedded = [base64.b64decode(data) for data in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)]
    for name in FIGURES:
        png = (report / f"{name}.png").read_bytes()
        assert png.startswith(PNG_MAGIC), name
        with Image.open(report / f"{name}.png") as image:
            assert min(image.size) > 200, name
        assert png in embedded, f"{name}.png is not embedded in report.html"
        assert f"]({name}.png)" in (report / "report.md").read_text()
    assert "src='file:" not in html and "src='http" not in html  # self-contained


def test_tables_are_written_as_csv(report):
    import pandas as pd

    trials = pd.read_csv(report / "trials.csv")
    assert len(trials) == 4 and set(trials["status"]) == {"completed"}
    assert sorted(trials["metric:fid"]) == sorted(FIDS.values())


def test_report_is_logged_to_the_parent_run(study, report):
    _, _, client, parent_id = study
    logged = {a.path for a in client.list_artifacts(parent_id, "report")}
    written = {f"report/{p.name}" for p in report.iterdir() if p.is_file()}
    assert logged == written
    assert {"report/report.html", "report/report.md", "report/imbalance.csv", "report/samples.png"} <= logged


def test_build_report_marks_a_partial_study_and_honours_formats(tmp_path):
    trials = four_trials() + [Trial(params={"arch": "mlp"}, status="running", regime=None),
                              Trial(params={"arch": "mlp"}, status="errored", regime=None)]
    uri, _, parent_id = fill_study(tmp_path, "partial", trials, with_grids=False)
    paths = build_report(uri, "partial", out_dir=tmp_path / "out", formats=("md",), log_artifacts=False)
    assert paths.html is None and paths.markdown.exists() and paths.parent_run_id == parent_id
    header = paths.markdown.read_text()
    assert "| trials | 6 (4 completed, 1 errored, 1 running); 4 with a FID |" in header
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
    assert cli_error(capsys, "--experiment", "nope", "--tracking-uri", uri) == "error: no MLflow experiment named 'nope'"


def test_missing_store_exits_2_and_creates_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert "no MLflow store" in cli_error(capsys, "--experiment", "rep")
    assert not (tmp_path / "mlflow.db").exists()


def test_unknown_run_id_exits_2(study, capsys):
    _, uri, _, _ = study
    assert "is not a study's parent run" in cli_error(capsys, "--experiment", "rep", "--tracking-uri", uri,
                                                      "--run-id", "0" * 32)


def test_study_without_finished_trials_exits_2(tmp_path, capsys):
    uri, client, _ = fill_study(tmp_path, "empty", [Trial(params={"arch": "mlp"}, status="errored", regime=None)],
                                with_grids=False)
    assert "has no finished trial" in cli_error(capsys, "--experiment", "empty", "--tracking-uri", uri)
    with pytest.raises(ReportError, match="no finished trial"):
        build_report(uri, "empty", out_dir=tmp_path / "out")
    client.create_experiment("bare")  # an experiment without any study in it
    assert "holds no study" in cli_error(capsys, "--experiment", "bare", "--tracking-uri", uri)


def test_optuna_importances_come_from_an_in_memory_optuna_study(study):
    """Read as if Optuna had searched it, the study's two varied params get importances summing to 1."""
    import dataclasses

    from reports import tables
    from reports.load import load_study

    _, uri, _, _ = study
    loaded = load_study(uri, "rep")
    assert tables.optuna_importances(loaded) is None  # not an Optuna study
    as_optuna = dataclasses.replace(loaded, parent_params={**loaded.parent_params, "search": "optuna"})
    numbers, _ = tables.optuna_importances(as_optuna)
    assert set(numbers["param"]) == {"d_width", "k"}
    assert numbers["importance"].sum() == pytest.approx(1.0) and (numbers["importance"] >= 0).all()
