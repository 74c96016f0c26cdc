"""The report of a search with its confirmation (reports.search), on a study written straight into MLflow: every
number is checked against an independent computation (brute force over subsets and splits, scipy)."""
import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from oracles import brute_force_two_sample_p
from gan import names
from reports import build_report, search
from reports.load import load_study
from study_store import Trial, fill_study

# the search: 10 trials that trained their full budget (one of them diverged), one stopped early by ASHA
SEARCH = [  # (lr_g, lr_d, final FID, status)
    (1.2e-4, 3.0e-3, 41.0, names.COMPLETED), (2.5e-4, 8.0e-4, 27.0, names.COMPLETED),
    (5.0e-4, 2.0e-3, 18.0, names.COMPLETED), (8.0e-4, 1.5e-3, 22.0, names.COMPLETED),
    (1.5e-3, 4.0e-4, 35.0, names.COMPLETED), (2.2e-3, 6.0e-3, 30.0, names.COMPLETED),
    (3.3e-3, 1.1e-4, 55.0, names.COMPLETED), (4.7e-3, 9.0e-3, 48.0, names.COMPLETED),
    (6.8e-3, 2.7e-4, 62.0, names.COMPLETED), (9.1e-3, 7.7e-3, math.nan, names.DIVERGED_STATUS),
    (1.8e-4, 1.8e-4, 9.0, names.STOPPED_EARLY),  # its score is from an earlier step: never in the curve
]
# the confirmation: rank 1 and 2 (the two best complete search trials) and the reference, 6 fresh seeds each
CONFIRMED = {
    "1": ((5.0e-4, 2.0e-3), [21.0, 23.5, 19.8, 24.1, 22.7, 20.9]),
    "2": ((8.0e-4, 1.5e-3), [27.0, 33.0, 25.5, 31.0, 29.0, None]),  # None: a failed run
    names.CONFIRM_REFERENCE: ((1.0e-3, 1.0e-3), [30.5, 28.0, 33.1, 29.4, 35.2, 31.7]),
}


def _config_id(lr_g, lr_d):
    return f"cfg-{lr_g:g}-{lr_d:g}"


def _search_trials():
    trials = []
    for lr_g, lr_d, fid, status in SEARCH:
        final = {names.FID: fid} if status == names.COMPLETED else {}
        history = {names.FID: [(200, fid if np.isfinite(fid) else 400.0)]}
        trials.append(Trial({"lr_g": lr_g, "lr_d": lr_d, "seed": 0}, final, history, status, tags={
            names.STAGE_TAG: names.STAGE_SEARCH, names.CONFIG_ID_TAG: _config_id(lr_g, lr_d)}))
    return trials


def _confirm_trials():
    trials = []
    for rank, ((lr_g, lr_d), fids) in CONFIRMED.items():
        score = next(fid for g, d, fid, _ in SEARCH if (g, d) == (lr_g, lr_d)) if rank != "reference" else None
        for seed, fid in enumerate(fids):
            tags = {names.STAGE_TAG: names.STAGE_CONFIRM, names.CONFIRM_RANK_TAG: rank,
                    names.CONFIG_ID_TAG: _config_id(lr_g, lr_d)}
            if score is not None:
                tags[names.SEARCH_SCORE_TAG] = repr(score)
            if fid is None:
                tags[names.OUTCOME_TAG] = "failed"
            trials.append(Trial({"lr_g": lr_g, "lr_d": lr_d, "seed": 1000 + seed},
                                {names.FID: fid if fid is not None else 380.0}, tags=tags))
    return trials


@pytest.fixture(scope="module")
def two_stage(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("search_confirm")
    uri, client, parent = fill_study(tmp_path, "lr", _search_trials() + _confirm_trials(), with_grids=False,
                                     parent_params={"search": "random", "searched": "lr_g,lr_d"})
    client.set_tag(parent, names.DESIGN_TAG, names.DESIGN_SEARCH_CONFIRM)
    paths = build_report(uri, "lr", out_dir=tmp_path / "out", log_artifacts=False)
    return tmp_path, uri, paths


def _csv(paths, stem):
    return pd.read_csv(paths.out_dir / f"{stem}.csv", dtype={"arm": str, "rank": str})


def test_each_confirmed_configuration_is_tested_against_the_reference_holm_over_k(two_stage):
    _, _, paths = two_stage
    frame = _csv(paths, "confirmation").set_index("arm")
    reference = np.log(CONFIRMED["reference"][1])
    p = {}
    for rank in ("1", "2"):
        fids = np.log([f for f in CONFIRMED[rank][1] if f is not None])
        row = frame.loc[rank]
        welch = scipy_stats.ttest_ind(fids, reference, equal_var=False).confidence_interval(0.95)
        assert row["ratio"] == pytest.approx(math.exp(fids.mean() - reference.mean()))
        assert (row["ratio_low"], row["ratio_high"]) == pytest.approx((math.exp(welch.low), math.exp(welch.high)))
        p[rank] = brute_force_two_sample_p(fids, reference)[0]
        assert row["p"] == pytest.approx(p[rank])
    # Holm over the K = 2 configurations: the smaller p times 2, the larger times 1 (not below the first)
    low, high = sorted(p, key=p.get)
    assert frame.loc[low, "holm_p"] == pytest.approx(min(1, 2 * p[low]))
    assert frame.loc[high, "holm_p"] == pytest.approx(max(min(1, 2 * p[low]), p[high]))
    # the failed run of rank 2: a failure (1 of 6 against 0 of 6), not an FID
    assert (frame.loc["2", "failed"], frame.loc["2", "runs"], frame.loc["2", "not_failed"]) == (1, 6, 5)
    assert frame.loc["2", "fisher_p"] == pytest.approx(scipy_stats.fisher_exact([[1, 5], [0, 6]]).pvalue)


def test_the_winners_curse_sets_each_search_score_beside_its_confirmed_geometric_mean(two_stage):
    _, _, paths = two_stage
    curse = _csv(paths, "winners_curse")
    assert curse["rank"].tolist() == ["1", "2"]  # best search score first
    for _, row in curse.iterrows():
        (lr_g, lr_d), fids = CONFIRMED[row["rank"]]
        score = next(fid for g, d, fid, _ in SEARCH if (g, d) == (lr_g, lr_d))
        geomean = math.exp(np.mean(np.log([f for f in fids if f is not None])))
        assert row["search_score"] == pytest.approx(score)
        assert row["confirmed_geomean"] == pytest.approx(geomean)
        assert row["flattery"] == pytest.approx(score / geomean)
        assert row["search_score_kind"] == "final"
    assert curse.loc[0, "flattery"] < 1  # the search's winner looked better than it is


def test_the_expected_best_after_n_trials_is_the_mean_best_over_all_n_subsets_of_full_budget_trials(two_stage):
    _, _, paths = two_stage
    expected = _csv(paths, "expected_best")
    complete = [fid for _, _, fid, status in SEARCH if status != names.STOPPED_EARLY]
    worst = max(f for f in complete if np.isfinite(f))
    scores = [f if np.isfinite(f) else worst for f in complete]  # the diverged trial counts as the worst
    assert expected["trials"].iloc[0] == len(scores) == 10
    assert expected["n"].tolist() == list(range(1, 11))
    for _, row in expected.iterrows():
        bests = [min(subset) for subset in itertools.combinations(scores, int(row["n"]))]
        assert row["expected_best"] == pytest.approx(np.mean(bests))
        assert row["sd"] == pytest.approx(np.std(bests), abs=1e-9)
    assert expected["expected_best"].iloc[-1] == pytest.approx(18.0)  # all 10 drawn: the best complete one


def test_learning_rate_importances_and_surface_use_full_budget_search_trials_only(two_stage):
    _, _, paths = two_stage
    importances = _csv(paths, "lr_importances")
    assert sorted(importances["param"]) == sorted([search.LR_G, search.LR_D, search.LR_RATIO])
    assert importances["importance"].sum() == pytest.approx(1.0)
    assert (paths.out_dir / "lr_surface.png").exists() and (paths.out_dir / "expected_best.png").exists()
    # the same importances from the 10 full-budget search trials, the stopped one left out
    rows = [(g, d, f) for g, d, f, s in SEARCH if s != names.STOPPED_EARLY]
    worst = max(f for _, _, f in rows if np.isfinite(f))
    frame = pd.DataFrame([(g, d, f if np.isfinite(f) else worst) for g, d, f in rows],
                         columns=[search.LR_G, search.LR_D, "score"])
    again = search.lr_importances(frame).set_index("param")["importance"]
    assert importances.set_index("param")["importance"].to_dict() == pytest.approx(again.to_dict())


def test_the_report_shows_the_section_and_claims_only_the_holm_significant_configuration(two_stage):
    _, _, paths = two_stage
    text = paths.markdown.read_text()
    for title in (search.CONFIRMATION_TITLE, search.CURSE_TITLE, search.IMPORTANCE_TITLE, "Expected best FID"):
        assert f"## {title}" in text
    assert "Imbalance" not in text  # the balance factorial's tables have nothing to say here
    findings = text.split("## What this study shows")[1].split("\n\n")[1]
    # rank 1: 6 vs 6 runs, every one below the reference: exact p = 2/924, Holm over 2 below 0.05
    assert "#1: lr_g=0.0005, lr_d=0.002 lowered the final FID against reference: lr_g=0.001, lr_d=0.001" in findings
    assert "#2" not in findings


def test_the_fanova_and_expected_best_need_eight_full_budget_trials(tmp_path):
    few = [t for t in _search_trials() if t.status == names.COMPLETED][:5] + _confirm_trials()
    uri, client, parent = fill_study(tmp_path, "lr", few, with_grids=False,
                                     parent_params={"search": "random", "searched": "lr_g,lr_d"})
    client.set_tag(parent, names.DESIGN_TAG, names.DESIGN_SEARCH_CONFIRM)
    section = search.search_section(load_study(uri, "lr"), tmp_path / "out")
    notes = {table.title: table for table in section.tables}
    for title in (search.IMPORTANCE_TITLE, search.EXPECTED_TITLE.format(label="FID")):
        assert notes[title].rows == [] and "at least 8" in notes[title].note and "has 5" in notes[title].note
    assert "expected_best" not in section.numbers and "lr_importances" not in section.numbers


def test_a_study_without_the_design_tag_has_no_search_section(tmp_path):
    uri, _, _ = fill_study(tmp_path, "plain", _search_trials(), with_grids=False,
                           parent_params={"search": "random", "searched": "lr_g,lr_d"})
    assert search.search_section(load_study(uri, "plain"), tmp_path / "out") is None
