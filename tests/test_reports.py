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
FIGURES = ("fid_vs_capacity", "paired_differences", "fid_heatmap", "regimes", "learning_curves", "d_outputs",
           "samples")
T_975_2 = 4.302653  # Student's t, 97.5% quantile, 2 degrees of freedom (tables)

# Two architectures whose width levels differ, three seeds each. Final FIDs by (arch, log2 D/G, seed):
BALANCED = {"dcgan": [20.0, 22.0, 24.0], "mlp": [100.0, 90.0, 110.0]}
LEVELS = {
    ("dcgan", -3.0): [-1.0, 2.0, -1.0],  # differences against balance: the interval spans zero
    ("dcgan", 3.0): [10.0, 12.0, 14.0],  # D 8x wider raises FID by 12, clearly
    ("mlp", -1.0): [-5.0, 0.0, 5.0],
    ("mlp", 1.0): [50.0, 60.0, 70.0],  # clear, but two of its three trials had not converged
}
BASE = {"dcgan": 16, "mlp": 256}


def widths(arch, level):
    base, ratio = BASE[arch], 2 ** abs(level)
    return (base, int(base / ratio)) if level < 0 else (int(base / ratio), base) if level > 0 else (base, base)


def design() -> list[Trial]:
    trials = []
    for arch, balanced in BALANCED.items():
        for level in (-3.0, 0.0, 3.0) if arch == "dcgan" else (-1.0, 0.0, 1.0):
            for seed in range(3):
                fid = balanced[seed] + (LEVELS[(arch, level)][seed] if level else 0.0)
                g_width, d_width = widths(arch, level)
                unconverged = arch == "mlp" and level == 1.0 and seed < 2
                trials.append(Trial(
                    params={"arch": arch, "g_width": g_width, "d_width": d_width, "k": 1, "seed": seed,
                            "capacity_ratio_log2": level},
                    final={names.FID: fid, names.CLASSES_COVERED: 10 - seed, names.D_GAP: 0.1 * level},
                    history={names.FID: [(100, 2 * fid), (200, fid)], names.TOTAL_STEPS: [(200, 200)],
                             names.EVAL_D_REAL: [(100, 0.7), (200, 0.8)], names.EVAL_D_FAKE: [(100, 0.3), (200, 0.2)]},
                    regime="balanced" if level == 0 else "d_dominates",
                    tags={names.CONVERGENCE_TAG: "still_improving" if unconverged else "converged"}))
    return trials


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("report_store")
    uri, client, parent_id = fill_study(tmp_path, "rep", design(), parent_params={"searched": "arch,g_width,d_width"},
                                        parent_metrics={names.reference(names.FID_TRAIN_TEST): 3.0})
    return tmp_path, uri, client, parent_id


@pytest.fixture(scope="module")
def built(study):
    tmp_path, uri, _, _ = study
    return build_report(uri, "rep", out_dir=tmp_path / "out")


@pytest.fixture(scope="module")
def report(built):
    return built.out_dir


def test_reports_package_does_not_import_ray():
    code = ("import sys, reports, reports.cli, reports.build, reports.load, reports.tables, reports.plots, "
            "reports.render; assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')]")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_imbalance_table_gives_mean_and_95_percent_t_interval_within_each_architecture(report):
    import pandas as pd

    table = pd.read_csv(report / "imbalance.csv")
    assert len(table) == 6 and set(zip(table["arch"], table["capacity_ratio_log2"])) == {
        ("dcgan", -3.0), ("dcgan", 0.0), ("dcgan", 3.0), ("mlp", -1.0), ("mlp", 0.0), ("mlp", 1.0)}
    for row in table.itertuples():
        level = row.capacity_ratio_log2
        values = [b + (LEVELS[(row.arch, level)][i] if level else 0.0) for i, b in enumerate(BALANCED[row.arch])]
        half = T_975_2 * statistics.stdev(values) / 3 ** 0.5
        assert row.fid_mean == pytest.approx(statistics.mean(values))
        assert (row.fid_ci_low, row.fid_ci_high) == pytest.approx((row.fid_mean - half, row.fid_mean + half), rel=1e-6)
        assert row.n == 3
    confounded = table.set_index(["arch", "capacity_ratio_log2"])["confounded"]
    assert confounded[("mlp", 1.0)] and not confounded[("mlp", 0.0)] and not confounded[("dcgan", 3.0)]
    markdown = (report / "report.md").read_text()
    assert "| mlp | 1 * | 128 / 256 | 3 | 1 of 3 |" in markdown
    assert "| trials | 18 (18 completed); 18 with a FID |" in markdown


def test_seed_paired_differences_against_balance_with_bootstrap_intervals(report):
    import pandas as pd

    paired = pd.read_csv(report / "paired_effects.csv")
    fid = paired[paired["metric"] == names.FID].set_index(["arch", "capacity_ratio_log2"])
    assert len(fid) == 4  # each level against the balanced level of its own architecture
    for (arch, level), differences in LEVELS.items():
        row = fid.loc[(arch, level)]
        assert row["difference_mean"] == pytest.approx(statistics.mean(differences)) and row["pairs"] == 3
        # a bootstrap mean of three values lies between their smallest and largest
        assert min(differences) <= row["ci_low"] <= row["ci_high"] <= max(differences)
    assert fid.loc[("dcgan", 3.0), "ci_excludes_zero"] and not fid.loc[("dcgan", -3.0), "ci_excludes_zero"]
    assert fid.loc[("mlp", 1.0), "confounded"] and not fid.loc[("dcgan", 3.0), "confounded"]


def test_what_this_study_shows_states_supported_effects_only_and_warns_on_training_length(built, report):
    markdown = (report / "report.md").read_text()
    findings = markdown.split("## What this study shows")[1].split("| |")[0]
    assert "D 8× wider than G raises DCGAN's final FID by 12 [95% CI" in findings
    assert "G 8× wider than D" not in findings  # its interval spans zero: no sentence
    mlp = next(line for line in findings.splitlines() if "MLP" in line)
    assert "D 2× wider than G raises MLP's final FID by 60" in mlp and "may reflect training length" in mlp
    assert "mlp: 2 of 3" not in findings and "mlp: 7 of 9 converged" in findings
    assert built.summary_markdown.startswith("## What this study shows") and "raises DCGAN's" in built.summary_markdown
    assert markdown.index("What this study shows") < markdown.index("## Capacity imbalance")


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
    assert len(trials) == 18 and set(trials["status"]) == {"completed"}
    assert sorted(trials["metric:fid"]) == sorted(t.final[names.FID] for t in design())


def test_effect_sizes_are_computed_within_each_architecture(report):
    import pandas as pd

    effects = pd.read_csv(report / "effect_sizes.csv")
    assert "arch" not in set(effects["factor"])  # never a factor: the architectures' levels differ
    capacity = effects[effects["factor"] == "capacity_ratio_log2"].set_index("arch")
    for arch, balanced in BALANCED.items():
        means = [statistics.mean(balanced)] + [statistics.mean(b + d for b, d in zip(balanced, differences))
                                               for (a, _), differences in LEVELS.items() if a == arch]
        assert capacity.loc[arch, "spread_of_mean"] == pytest.approx(max(means) - min(means))
        assert capacity.loc[arch, "levels"] == 3 and capacity.loc[arch, "trials"] == 9


def test_report_is_logged_to_the_parent_run(study, report):
    _, _, client, parent_id = study
    logged = {a.path for a in client.list_artifacts(parent_id, "report")}
    written = {f"report/{p.name}" for p in report.iterdir() if p.is_file()}
    assert logged == written
    assert {"report/report.html", "report/report.md", "report/imbalance.csv", "report/samples.png"} <= logged


def test_build_report_marks_a_partial_study_and_honours_formats(tmp_path):
    trials = design()[:4] + [Trial(params={"arch": "mlp"}, status="running", regime=None),
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
    assert set(numbers["param"]) == {"arch", "g_width", "d_width"}
    assert numbers["importance"].sum() == pytest.approx(1.0) and (numbers["importance"] >= 0).all()
