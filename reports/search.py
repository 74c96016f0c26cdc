"""A search with its confirmation (study.confirm): the sections of a two-stage study's report.

A study is one when its parent run says so (names.DESIGN_TAG = names.DESIGN_SEARCH_CONFIRM); each child run's
names.STAGE_TAG says which stage it belongs to, a confirmation run's names.CONFIRM_RANK_TAG which configuration it
confirms ("1".."K" by search score, or names.CONFIRM_REFERENCE). Sections, each absent when it has nothing to say:

(a) Confirmation: each confirmed configuration against the reference on the confirmation's fresh seeds, final FID
    of the runs that trained their full budget. Different configurations share no seed's randomness worth pairing,
    so runs are unpaired (declared by the design): ratio of geometric means with exp of the Welch 95% interval of
    log FID, exact two-sample permutation p of log FID (reports.stats.unpaired_log_ratio), Holm over the K
    configurations: the declared primary family. Failed or diverged runs (gan.outcome) leave the FID comparison and
    count as failures, x of N against the reference by Fisher's exact test, Holm over K: a secondary family. The
    numbers are reports.ablation.ablation_frame's, the configurations standing for its arms.
(b) Winner's curse: each confirmed configuration's search score (one seed, the run that chose it) beside its
    confirmed geometric mean (reports.stats.winners_curse); flattery = search / confirmed, below 1 when the search
    flattered it (for FID, lower is better).
(c) Expected best FID after n trials, for a random search with at least MIN_TRIALS full-budget search trials: the
    unbiased without-replacement estimator of Tang et al. 2020 and its spread (reports.stats.expected_best_of_n),
    the curve Dodge et al. 2019 and Lucic et al. 2018 show, so a reader sees how many trials the search needed.
(d) For a search over lr_g x lr_d: the response surface (final FID of the full-budget search trials over log lr_G x
    log lr_D, the lr_D = lr_G diagonal and the TTUR side lr_D > lr_G marked) and fANOVA importances of lr_G, lr_D
    and their ratio (Optuna's FanovaImportanceEvaluator on an in-memory study of log FID), with at least MIN_TRIALS
    such trials.

Search trials the scheduler stopped early (ASHA) or that were cut off hold a score from an earlier step: they never
enter (c) or (d). A search trial that diverged counts in (c) and (d) with the worst final FID among the full-budget
search trials (Lucic et al.'s fixed worst score for a NaN sample): drawing it is a draw of a bad configuration.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from gan import names
from reports.ablation import ablation_frame, verdict
from reports.effects import failed_mask
from reports.load import METRIC_PREFIX, StudyData
from reports.plots import Plot, save_figure
from reports.stats import ALPHA, expected_best_of_n, min_two_sample_p, winners_curse
from reports.store import search_all
from reports.tables import Table, cut_short, fmt, fmt_p, param_text, with_factors

MIN_TRIALS = 8  # full-budget search trials for the expected-best curve and for fANOVA
LR_G, LR_D, LR_RATIO = "lr_g", "lr_d", "lr_d/lr_g"
CONFIRMATION_TITLE = "Confirmation: each confirmed configuration against the reference"
CURSE_TITLE = "Winner's curse: search score against the confirmed score"
EXPECTED_TITLE = "Expected best {label} after n trials of the random search"
IMPORTANCE_TITLE = "fANOVA importances of the learning rates"
EXPECTED_BEST_N = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)  # rows shown beyond 12 trials


def is_search_confirm(study: StudyData) -> bool:
    return study.parent_tags.get(names.DESIGN_TAG) == names.DESIGN_SEARCH_CONFIRM


# --- the runs ------------------------------------------------------------------------------------------------

def stage_runs(study: StudyData) -> pd.DataFrame:
    """Every child run, params unprefixed (reports.tables.with_factors), with columns stage, rank (the confirmation
    rank tag), config_id, search_score_tag (float), complete (trained its full budget, or diverged: no
    reports.tables.cut_short reason), failed (gan.outcome failed or diverged) and fid (its final score, the study's
    FID metric)."""
    tags = {run.info.run_id: run.data.tags for run in search_all(
        study.client, study.experiment_id, f"tags.`{names.PARENT_TAG}` = '{study.parent_run_id}'")}
    frame = with_factors(study, study.trials)

    def tag(key: str) -> pd.Series:
        return frame["run_id"].map(lambda run_id: tags.get(run_id, {}).get(key))

    column = METRIC_PREFIX + study.fid_metric
    return frame.assign(
        stage=tag(names.STAGE_TAG), rank=tag(names.CONFIRM_RANK_TAG), config_id=tag(names.CONFIG_ID_TAG),
        search_score_tag=pd.to_numeric(tag(names.SEARCH_SCORE_TAG), errors="coerce"),
        complete=cut_short(study.trials).isna().to_numpy(), failed=failed_mask(frame).to_numpy(),
        fid=pd.to_numeric(frame[column], errors="coerce") if column in frame else math.nan)


def _rank_order(rank: str) -> tuple:
    return (1, 0) if rank == names.CONFIRM_REFERENCE else (0, int(rank))


def configuration_words(row, searched: list[str]) -> str:
    """'#1: lr_g=0.00123, lr_d=0.0045' or 'reference: lr_g=0.001, lr_d=0.001'."""
    values = ", ".join(f"{name}={param_text(row[name])}" for name in searched if name in row)
    return f"{'reference' if row['rank'] == names.CONFIRM_REFERENCE else '#' + str(row['rank'])}: {values}"


def search_scores(search: pd.DataFrame) -> pd.Series:
    """The full-budget search trials' final FID, a diverged or scoreless one at the worst finite FID among them."""
    complete = search[search["complete"]]
    fid = complete["fid"].where(np.isfinite(complete["fid"]) & (complete["status"] != names.DIVERGED_STATUS))
    return fid.fillna(fid.max()).dropna()


# --- (a) the confirmation ----------------------------------------------------------------------------------

def confirmation_frame(confirm: pd.DataFrame) -> pd.DataFrame:
    """reports.ablation.ablation_frame over the confirmation runs that trained their full budget, one row per
    configuration (the reference first, then by rank), its column `arm` holding the rank tag."""
    runs = confirm[confirm["complete"] & (confirm["failed"] | confirm["fid"].notna())]
    runs = runs.iloc[sorted(range(len(runs)), key=lambda i: _rank_order(runs["rank"].iloc[i]))]
    return ablation_frame(runs.assign(**{names.ARM: runs["rank"]}), [], names.CONFIRM_REFERENCE)


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%" if np.isfinite(value) else "–"


def _failed_words(row) -> str:
    return f"{row['failed']:.0f} of {row['runs']:.0f} [{_percent(row['failed_ci_low'])}, {_percent(row['failed_ci_high'])}]"


def confirmation_table(frame: pd.DataFrame, labels: dict[str, str], fid_label: str) -> Table:
    columns = ["configuration", "runs", "failed [95% Clopper–Pearson]", "failures vs reference: Fisher p (Holm)",
               f"final {fid_label}, runs that did not fail: geometric mean [95% t]", "ratio vs reference [95% Welch]",
               "permutation p (smallest possible)", "Holm p (primary)", "verdict"]
    rows, bold = [], set()
    for i, row in frame.iterrows():
        compared = not row["reference"] and np.isfinite(row["fisher_p"])
        level = (f"{fmt(row['fid_geomean'])} [{fmt(row['fid_ci_low'])}, {fmt(row['fid_ci_high'])}]"
                 if np.isfinite(row["fid_ci_low"]) else fmt(row["fid_geomean"]))
        ratio = (f"×{row['ratio']:.2f} [{row['ratio_low']:.2f}, {row['ratio_high']:.2f}]"
                 if np.isfinite(row["ratio"]) else "–")
        p = (f"{fmt_p(row['p'])} ({'exact' if row['p_exact'] else 'Monte Carlo'}; {fmt_p(row['p_floor'])})"
             if np.isfinite(row["p"]) else "–")
        rows.append([labels[row["arm"]], f"{row['runs']:.0f}", _failed_words(row),
                     f"{fmt_p(row['fisher_p'])} (Holm {fmt_p(row['fisher_holm_p'])})" if compared else "–",
                     f"{level} (n = {row['not_failed']:.0f})", ratio, p, fmt_p(row["holm_p"]), verdict(row)])
        if np.isfinite(row["holm_p"]) and row["holm_p"] < ALPHA:
            bold.add((i, 7))
    note = ("The confirmation stage: each configuration the search chose (ranked by its search score) and the "
            "reference, trained again on the same fresh seeds (seeds the search did not use) to the end of the "
            "budget, no early stopping. Configurations are different optimisers: runs are not paired by seed. Failed "
            "(gan.outcome failed or diverged) runs count as failures (exact Clopper–Pearson interval, Fisher's exact "
            "test against the reference) and leave the FID columns. Ratio of geometric means with exp of the Welch "
            "95% interval of log FID; p: two-sample permutation test of log FID over all splits, beside the smallest p "
            "those runs could give. Holm over the confirmed configurations: FID ratios are the declared primary "
            f"family, failures a secondary one. Bold: Holm-adjusted p < {ALPHA:g}.")
    return Table(CONFIRMATION_TITLE, columns, rows, bold, note)


# --- (b) the winner's curse ----------------------------------------------------------------------------------

def curse_frame(search: pd.DataFrame, confirm: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """One row per confirmed configuration (not the reference): its search score (its search run's final FID, or
    its last one for a run stopped early; the driver's tag when no search run matches its configuration id), and
    the geometric mean of its confirmation runs that trained their full budget and did not fail."""
    scores, kinds, confirmed = {}, {}, {}
    for rank, runs in confirm.groupby("rank"):
        if rank == names.CONFIRM_REFERENCE:
            continue
        searched = search[search["config_id"] == runs["config_id"].iloc[0]]
        score = searched["fid"].iloc[0] if len(searched) else runs["search_score_tag"].iloc[0]
        if not np.isfinite(score) or score <= 0:
            continue
        scores[rank], kinds[rank] = float(score), (
            "final" if len(searched) and bool(searched["complete"].iloc[0]) else "last during training")
        kept = runs[runs["complete"] & ~runs["failed"]]["fid"]
        confirmed[rank] = kept[np.isfinite(kept)].tolist()
    rows = [{"rank": c.name, "configuration": labels[c.name], "search_score": c.search_score,
             "search_score_kind": kinds[c.name], "confirmed_geomean": c.confirmed.mean, "confirmed_low": c.confirmed.low,
             "confirmed_high": c.confirmed.high, "confirmed_runs": c.confirmed.n, "flattery": c.flattery}
            for c in winners_curse(scores, confirmed)]
    return pd.DataFrame(rows, columns=["rank", "configuration", "search_score", "search_score_kind",
                                       "confirmed_geomean", "confirmed_low", "confirmed_high", "confirmed_runs",
                                       "flattery"])


def curse_table(frame: pd.DataFrame, fid_label: str) -> Table:
    columns = ["configuration", f"search {fid_label} (one seed)", f"confirmed {fid_label}: geometric mean [95% t]",
               "flattery (search / confirmed)"]
    rows = [[row["configuration"], f"{fmt(row['search_score'])} ({row['search_score_kind']})",
             f"{fmt(row['confirmed_geomean'])} [{fmt(row['confirmed_low'])}, {fmt(row['confirmed_high'])}] "
             f"(n = {row['confirmed_runs']:.0f})", fmt(row["flattery"])] for _, row in frame.iterrows()]
    note = ("The search chose these configurations by one seed's score, partly for that seed's luck: their search "
            "score is biased optimistic (Lucic et al. 2018 reran their chosen setting on 50 seeds). The fresh seeds "
            "were not selected, so their geometric mean is unbiased for the configuration. Flattery below 1: the "
            "search made the configuration look better than it is. A search score 'last during training' is a "
            "validation score of a run the scheduler stopped early: not the same protocol as the confirmed final one.")
    return Table(CURSE_TITLE, columns, rows, set(), note)


# --- (c) the expected best after n trials --------------------------------------------------------------------

def expected_best_frame(scores) -> pd.DataFrame:
    """n, the expected best (lowest) score of n trials drawn without replacement from the N scores (Tang et al.
    2020) and its standard deviation, for every n up to 12 and EXPECTED_BEST_N beyond, N always included."""
    trials = len(scores)
    shown = sorted({n for n in (*range(1, min(trials, 12) + 1), *EXPECTED_BEST_N) if n <= trials} | {trials})
    rows = [expected_best_of_n(scores, n) for n in shown]
    return pd.DataFrame({"n": [r.n for r in rows], "expected_best": [r.mean for r in rows],
                         "sd": [r.sd for r in rows], "trials": trials})


def expected_best_table(frame: pd.DataFrame | None, trials: int, fid_label: str) -> Table:
    title = EXPECTED_TITLE.format(label=fid_label)
    if frame is None:
        return Table(title, [], [], set(), f"Not computed: the curve needs at least {MIN_TRIALS} search trials that "
                                           f"trained their full budget; this search has {trials}.")
    rows = [[f"{row['n']:.0f}", fmt(row["expected_best"]), fmt(row["sd"])] for _, row in frame.iterrows()]
    note = (f"Over the {trials} search trials that trained their full budget (final {fid_label}, one seed each; a "
            "diverged trial counts as the worst of them): the expected lowest final score among n trials drawn at "
            "random without replacement, E = Σᵢ v(i)·C(i − 1, n − 1)/C(N, n) with the scores sorted worst first "
            "(the unbiased estimator of Tang et al. 2020; Dodge et al. 2019 draw with replacement), and the standard "
            "deviation of that best. Where the curve flattens, more trials of this search buy little. These are "
            "single-seed search scores: the winner's curse applies to them (see the table above).")
    return Table(title, ["trials n", f"expected best {fid_label}", "sd"], rows, set(), note)


def expected_best_plot(scores, curse: pd.DataFrame, reference_geomean: float, fid_label: str,
                       out: Path) -> Plot:
    from reports.stats import expected_best_curve

    curve = expected_best_curve(scores)
    n = np.array([point.n for point in curve])
    mean, sd = np.array([point.mean for point in curve]), np.array([point.sd for point in curve])
    figure = Figure(figsize=(6.4, 4.4))
    axes = figure.add_subplot()
    axes.plot(n, mean, marker="o", markersize=3, color="#1b4f72", label="expected best of n (Tang et al. 2020)")
    axes.fill_between(n, mean - sd, mean + sd, color="#1b4f72", alpha=0.15, label="± 1 sd of the best")
    if len(curse):
        axes.axhline(curse["confirmed_geomean"].iloc[0], color="#c0392b", linestyle="--",
                     label=f"{curse['configuration'].iloc[0].split(':')[0]} confirmed (geometric mean)")
    if np.isfinite(reference_geomean):
        axes.axhline(reference_geomean, color="#555555", linestyle=":", label="reference confirmed (geometric mean)")
    axes.set_xlabel("trials of the random search, n")
    axes.set_ylabel(f"final {fid_label}")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    return Plot("expected_best", f"Expected best {fid_label} after n trials",
                f"The expected lowest final {fid_label} among n of the search's {len(n)} full-budget trials drawn "
                "without replacement, ± 1 standard deviation; dashed: what the search's winner scored on fresh seeds.",
                save_figure(figure, out / "expected_best.png"))


# --- (d) the learning-rate response surface and importances ------------------------------------------------

def lr_importances(frame: pd.DataFrame) -> pd.DataFrame:
    """fANOVA importances (normalised to sum 1) of lr_g, lr_d and lr_d/lr_g for log FID, from an in-memory Optuna
    study of the rows (columns lr_g, lr_d, score), log-scale distributions over the observed ranges, seed 0."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    values = {LR_G: frame[LR_G].astype(float), LR_D: frame[LR_D].astype(float)}
    values[LR_RATIO] = values[LR_D] / values[LR_G]
    distributions = {name: optuna.distributions.FloatDistribution(float(v.min()), float(v.max()), log=True)
                     for name, v in values.items()}
    rebuilt = optuna.create_study(direction="minimize")
    for i in range(len(frame)):
        rebuilt.add_trial(optuna.trial.create_trial(
            params={name: float(v.iloc[i]) for name, v in values.items()}, distributions=distributions,
            value=math.log(float(frame["score"].iloc[i]))))
    importances = optuna.importance.get_param_importances(
        rebuilt, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), normalize=True)
    return pd.DataFrame(list(importances.items()), columns=["param", "importance"])


def importance_table(frame: pd.DataFrame | None, trials: int) -> Table:
    if frame is None:
        return Table(IMPORTANCE_TITLE, [], [], set(), f"Not computed: fANOVA needs at least {MIN_TRIALS} search "
                                                      f"trials that trained their full budget; this search has {trials}.")
    rows = [[name, fmt(value)] for name, value in zip(frame["param"], frame["importance"])]
    note = (f"fANOVA (Hutter et al. 2014; Optuna's FanovaImportanceEvaluator, 64 trees, seed 0) of log final FID over "
            f"the {trials} full-budget search trials, with lr_G, lr_D and their ratio lr_D/lr_G as inputs (log "
            "scales): the share of the variance of log FID each explains on its own; they sum to 1. The ratio is a "
            "function of the two rates, so the three shares split what two dimensions explain: a large ratio share "
            "says the balance of the two rates matters more than either level.")
    return Table(IMPORTANCE_TITLE, ["param", "importance"], rows, {(0, 1)}, note)


def response_surface_plot(search: pd.DataFrame, confirm: pd.DataFrame, fid_label: str, out: Path) -> Plot | None:
    """Final FID of the full-budget search trials over lr_G x lr_D (log axes), the confirmed configurations and the
    reference marked."""
    complete = search[search["complete"]]
    ok = complete[np.isfinite(complete["fid"]) & (complete["fid"] > 0) & (complete["status"] != names.DIVERGED_STATUS)]
    if len(ok) < 2:
        return None
    figure = Figure(figsize=(6.6, 5.4))
    axes = figure.add_subplot()
    lrs = pd.concat([complete[[LR_G, LR_D]], confirm[[LR_G, LR_D]]]).astype(float)
    low, high = float(lrs.min().min()) / 1.5, float(lrs.max().max()) * 1.5
    axes.fill_between([low, high], [low, high], [high, high], color="#f5b041", alpha=0.12, zorder=0)
    axes.plot([low, high], [low, high], color="#555555", linestyle="--", linewidth=1, label="lr_D = lr_G")
    axes.text(low * 1.15, high / 1.4, "TTUR side: lr_D > lr_G", fontsize=8, color="#9c640c")
    dots = axes.scatter(ok[LR_G].astype(float), ok[LR_D].astype(float), c=ok["fid"], cmap="viridis_r",
                        norm=LogNorm(), s=46, edgecolors="black", linewidths=0.4, zorder=3)
    figure.colorbar(dots, ax=axes, label=f"final {fid_label} (log scale)")
    bad = complete[~complete.index.isin(ok.index)]
    if len(bad):
        axes.scatter(bad[LR_G].astype(float), bad[LR_D].astype(float), marker="x", color="#c0392b", s=40, zorder=3,
                     label="diverged or no final score")
    for rank, runs in confirm.groupby("rank"):
        x, y = float(runs[LR_G].iloc[0]), float(runs[LR_D].iloc[0])
        reference = rank == names.CONFIRM_REFERENCE
        axes.scatter([x], [y], marker="*" if reference else "s", s=160 if reference else 90, facecolors="none",
                     edgecolors="#c0392b", linewidths=1.4, zorder=4)
        axes.annotate("reference" if reference else f"#{rank}", (x, y), textcoords="offset points", xytext=(6, 6),
                      fontsize=8, color="#c0392b")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlim(low, high)
    axes.set_ylim(low, high)
    axes.set_xlabel("lr_G (log scale)")
    axes.set_ylabel("lr_D (log scale)")
    axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)  # below: no dot hidden
    axes.grid(alpha=0.3)
    return Plot("lr_surface", f"Final {fid_label} over lr_G × lr_D (search stage)",
                f"Each dot: one search trial that trained its full budget, coloured by its final {fid_label} (one seed); "
                "red crosses: diverged. Shaded: the TTUR side (lr_D > lr_G, Heusel et al. 2017); dashed: lr_D = lr_G. "
                "Squares: the configurations the search chose (#rank); star: the reference. Trials the scheduler "
                "stopped early are not drawn.", save_figure(figure, out / "lr_surface.png"))


# --- the section ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SearchSection:
    tables: list[Table]
    figures: list[Plot]
    numbers: dict[str, pd.DataFrame]  # CSV file stem -> its numbers
    findings: list[str]
    findings_note: str


def _findings(frame: pd.DataFrame, labels: dict[str, str], fid_label: str) -> list[str]:
    """Sentences for Holm-significant comparisons only: FID ratios (primary), then failure rates (secondary)."""
    reference = labels.get(names.CONFIRM_REFERENCE, "the reference")
    sentences = []
    for _, row in frame[frame["holm_p"] < ALPHA].iterrows():
        sentences.append(
            f"Confirmed on fresh seeds, {labels[row['arm']]} {'raised' if row['ratio'] > 1 else 'lowered'} the final "
            f"{fid_label} against {reference} ×{row['ratio']:.2f} [{row['ratio_low']:.2f}, {row['ratio_high']:.2f}] "
            f"({'exact' if row['p_exact'] else 'Monte Carlo'} permutation p = {fmt_p(row['p'])}, Holm "
            f"{fmt_p(row['holm_p'])}; {row['not_failed']:.0f} vs {row['reference_not_failed']:.0f} runs that did not "
            "fail).")
    for _, row in frame[frame["fisher_holm_p"] < ALPHA].iterrows():
        sentences.append(f"(secondary) {labels[row['arm']]} failed in {_failed_words(row)} runs against {reference} "
                         f"(Fisher's exact p = {fmt_p(row['fisher_p'])}, Holm {fmt_p(row['fisher_holm_p'])}).")
    return sentences


def _findings_note(frame: pd.DataFrame, curse: pd.DataFrame, search: pd.DataFrame, fid_label: str) -> str:
    tested = frame[np.isfinite(frame["p"])] if len(frame) else frame
    m = len(tested)
    counts = search["status"].value_counts()
    note = (f"Design: a search ({len(search)} trials, one seed each: "
            + ", ".join(f"{count} {status}" for status, count in counts.items())
            + f") then a confirmation of its best configurations against the reference on fresh seeds. Primary family: "
            f"the final {fid_label} of each confirmed configuration against the reference ({m} comparison"
            f"{'s' if m != 1 else ''}, exact permutation p of log {fid_label}, Holm-adjusted); a sentence only where "
            f"the adjusted p < {ALPHA:g}. Secondary: failure rates (Fisher's exact, Holm), labelled (secondary).")
    sizes = sorted({(int(r["not_failed"]), int(r["reference_not_failed"])) for _, r in tested.iterrows()})
    if sizes:
        note += (" The smallest permutation p these runs allow: "
                 + "; ".join(f"{fmt_p(min_two_sample_p(a, b))} at {a} vs {b}" for a, b in sizes)
                 + f"; Holm across {m} needs the smallest below {ALPHA / max(m, 1):.2g}.")
    if len(curse):
        best = curse.iloc[0]
        note += (f" Winner's curse: the search's best, {best['configuration']}, scored {fmt(best['search_score'])} on "
                 f"its one search seed and {fmt(best['confirmed_geomean'])} (geometric mean) on "
                 f"{best['confirmed_runs']:.0f} fresh seeds: flattery {fmt(best['flattery'])}.")
    return note


def search_section(study: StudyData, out: Path) -> SearchSection | None:
    """The sections of a search with its confirmation; None unless the parent run is tagged as one."""
    if not is_search_confirm(study):
        return None
    out.mkdir(parents=True, exist_ok=True)
    runs = stage_runs(study)
    search, confirm = runs[runs["stage"] == names.STAGE_SEARCH], runs[runs["stage"] == names.STAGE_CONFIRM]
    confirm = confirm[confirm["rank"].notna()]
    labels = {rank: configuration_words(group.iloc[0], study.searched) for rank, group in confirm.groupby("rank")}
    tables, figures, numbers = [], [], {}

    confirmation = confirmation_frame(confirm) if len(confirm) else pd.DataFrame()
    if confirmation.empty:
        tables.append(Table(CONFIRMATION_TITLE, [], [], set(), "Not computed: no confirmation run trained to the end "
                                                               "of its budget (the study stopped before its second stage)."))
    else:
        numbers["confirmation"] = confirmation.assign(configuration=confirmation["arm"].map(labels))
        tables.append(confirmation_table(confirmation, labels, study.fid_label))
    curse = curse_frame(search, confirm, labels) if len(confirm) else pd.DataFrame()
    if len(curse):
        numbers["winners_curse"] = curse
        tables.append(curse_table(curse, study.fid_label))

    scores = search_scores(search)
    if study.parent_params.get("search") == "random":
        enough = len(scores) >= MIN_TRIALS
        expected = expected_best_frame(scores.to_numpy()) if enough else None
        tables.append(expected_best_table(expected, len(scores), study.fid_label))
        if expected is not None:
            numbers["expected_best"] = expected
            reference = confirmation[confirmation["arm"] == names.CONFIRM_REFERENCE]["fid_geomean"] \
                if len(confirmation) else pd.Series(dtype=float)
            figures.append(expected_best_plot(scores.to_numpy(), curse, float(reference.iloc[0]) if len(
                reference) else math.nan, study.fid_label, out))

    if LR_G in study.searched and LR_D in study.searched:
        surface = response_surface_plot(search, confirm, study.fid_label, out)
        if surface is not None:
            figures.append(surface)
        complete = search.loc[scores.index]
        importance = lr_importances(complete.assign(score=scores)) if len(scores) >= MIN_TRIALS else None
        tables.append(importance_table(importance, len(scores)))
        if importance is not None:
            numbers["lr_importances"] = importance

    findings = _findings(confirmation, labels, study.fid_label) if len(confirmation) else []
    return SearchSection(tables, figures, numbers, findings,
                         _findings_note(confirmation, curse, search, study.fid_label))


def search_parts(study: StudyData, section: SearchSection, out: Path):
    """(tables, figures, CSV files, finding sentences, their note) for reports.build: the section's, then the
    figures that hold for any design (D's outputs, samples)."""
    from reports import plots, tables

    csv_files = [out / "trials.csv"]
    tables.trials_csv_frame(study).to_csv(csv_files[0], index=False)
    for stem, frame in section.numbers.items():
        csv_files.append(out / f"{stem}.csv")
        frame.to_csv(csv_files[-1], index=False)
    figures = [*section.figures, *(plot for plot in (plots.d_outputs(study, out), plots.sample_grids(study, out))
                                   if plot is not None)]
    return section.tables, figures, csv_files, section.findings, section.findings_note
