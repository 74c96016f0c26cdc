"""An ablation against a recipe: each arm (one of Radford et al.'s rules off, say) against the reference arm.

A study is an ablation when its parent run says so (gan.names.DESIGN_TAG = DESIGN_ABLATION); each trial's arm is
its parameter `arm` (names.ARM) and REFERENCE_ARM_TAG names the reference ("recipe"). Arms are crossed with the
space's grid (if any): arms are compared only within one grid point (a stratum), never pooled across one.

Arms are different networks or optimisers, so two runs with the same seed share no randomness worth pairing
(REFERENCE.md: the seed-to-seed correlation of log FID across such arms was 0.06–0.51): every comparison is
unpaired, declared here by the design, before the data are seen.

- failures: a run that failed or diverged (gan.outcome) is a failure. Its FID (near the noise ceiling, or none)
  measures nothing, so it leaves the FID comparison and enters the failure rate: x of n with the exact
  Clopper–Pearson 95% interval (reports.stats.clopper_pearson), against the reference by Fisher's exact test
  (reports.stats.fisher_failures), Holm over the arms: the secondary family.
- FID: among the runs that did not fail, the ratio of geometric means arm / reference with exp of the Welch 95%
  interval of log FID, and the exact two-sample permutation p of log FID (all C(n_a + n_b, n_a) splits, Monte
  Carlo beyond 10⁶; reports.stats.unpaired_log_ratio), only when both arms keep ≥ 2 such runs. Holm over the arms:
  the declared primary family, the only one whose findings are claimed. Its floor: 2/C(2n, n) at n vs n runs
  (0.0022 at 6 vs 6), so 6 runs per arm that did not fail let Holm reach 0.05 across up to 23 arms.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gan import names
from reports import effects
from reports.load import METRIC_PREFIX, PARAM_PREFIX, ReportError, StudyData, metric_history
from reports.plots import Plot, save_figure
from reports.stats import (ALPHA, clopper_pearson, fisher_failures, holm_by_family, min_two_sample_p,
                           positive_interval, unpaired_log_ratio)
from reports.tables import Table, cut_short, fmt, fmt_p, left_out_line, param_text, with_factors

MIN_RUNS_FOR_RATIO = 2  # runs that did not fail, in each arm: a Welch interval needs a spread on both sides
FID_FAMILY, FAILURE_FAMILY = "final FID against the reference", "failure rate against the reference"
TOO_FEW = "too few runs that did not fail"
TITLE = "Ablation: each arm against the reference"
IGNORED_KEYS = (names.ARM, "seed", names.CAPACITY_RATIO_LOG2)  # not strata: the arm, the repeat, a derived width


def is_ablation(study: StudyData) -> bool:
    return study.parent_tags.get(names.DESIGN_TAG) == names.DESIGN_ABLATION


def metric_column(frame: pd.DataFrame, name: str) -> pd.Series:
    """The metric `name` of each run as numbers (NaN where a run did not log it)."""
    column = METRIC_PREFIX + name
    return pd.to_numeric(frame[column], errors="coerce") if column in frame else pd.Series(math.nan, frame.index)


def ended_runs(study: StudyData) -> pd.DataFrame:
    """The runs a design compares, params unprefixed: every trial that trained to the end of its budget (or
    diverged) with a final FID or a failure outcome; column `failed` (failed or diverged) and `fid` (its final
    score, the study's FID metric)."""
    trials = study.trials
    ended = trials[cut_short(trials).isna()]
    failed = effects.failed_mask(ended)
    fid = metric_column(ended, study.fid_metric)
    keep = failed | fid.notna()
    return with_factors(study, ended[keep]).assign(failed=failed[keep], fid=fid[keep])


def ablation_runs(study: StudyData) -> pd.DataFrame:
    """`ended_runs` with each run's arm name as the report prints it."""
    frame = ended_runs(study)
    return frame.assign(**{names.ARM: frame[names.ARM].map(param_text)})


def _strata(frame: pd.DataFrame, searched: list[str]) -> list[str]:
    """The searched settings the arms are crossed with (grid points): comparisons stay within each."""
    return [key for key in searched if key in frame and key not in IGNORED_KEYS and frame[key].nunique() > 1]


def stratum_words(strata: list[str], values: tuple) -> str:
    return ", ".join(f"{key} = {param_text(value)}" for key, value in zip(strata, values))


def _arm_row(stratum: dict, arm: str, rows: pd.DataFrame, reference: str) -> dict:
    fid = rows.loc[~rows["failed"], "fid"].to_numpy(float)
    failures, n = int(rows["failed"].sum()), len(rows)
    low, high = clopper_pearson(failures, n)
    level = positive_interval(fid)
    return {**stratum, "arm": arm, "reference": arm == reference, "runs": n, "failed": failures,
            "failed_rate": failures / n if n else math.nan, "failed_ci_low": low, "failed_ci_high": high,
            "not_failed": int(np.sum(np.isfinite(fid) & (fid > 0))), "fid_geomean": level.mean,
            "fid_ci_low": level.low, "fid_ci_high": level.high}


def ablation_frame(runs: pd.DataFrame, strata: list[str], reference: str) -> pd.DataFrame:
    """One row per stratum and arm, the reference first, then the arms in the order of their first trial: runs,
    failures, the FID level, and each non-reference arm against the reference (both families Holm-adjusted)."""
    order = [reference, *(arm for arm in pd.unique(runs[names.ARM]) if arm != reference)]
    groups = runs.groupby(strata, sort=True) if strata else [((), runs)]
    records = []
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        stratum = dict(zip(strata, key))
        control = part[part[names.ARM] == reference]
        control_fid = control.loc[~control["failed"], "fid"].to_numpy(float)
        for arm in order:
            rows = part[part[names.ARM] == arm]
            if rows.empty:
                continue
            record = _arm_row(stratum, arm, rows, reference)
            if arm != reference and not control.empty:
                fisher = fisher_failures(record["failed"], record["runs"], int(control["failed"].sum()), len(control))
                record["fisher_p"] = fisher.p
                treated_fid = rows.loc[~rows["failed"], "fid"].to_numpy(float)
                record["reference_not_failed"] = int(np.sum(np.isfinite(control_fid) & (control_fid > 0)))
                record["min_p"] = min_two_sample_p(record["not_failed"], record["reference_not_failed"])
                if min(record["not_failed"], record["reference_not_failed"]) >= MIN_RUNS_FOR_RATIO:
                    effect = unpaired_log_ratio(treated_fid, control_fid)
                    record.update(ratio=effect.ratio, ratio_low=effect.low, ratio_high=effect.high, p=effect.p,
                                  p_exact=effect.test.exact, p_floor=effect.test.floor, splits=effect.test.splits)
            records.append(record)
    frame = pd.DataFrame(records)
    for column in ("fisher_p", "reference_not_failed", "min_p", "ratio", "ratio_low", "ratio_high", "p", "p_exact",
                   "p_floor", "splits"):
        if column not in frame:
            frame[column] = math.nan
    adjusted = holm_by_family({FID_FAMILY: frame["p"].tolist(), FAILURE_FAMILY: frame["fisher_p"].tolist()},
                              primary=FID_FAMILY)
    return frame.assign(holm_p=list(adjusted[FID_FAMILY].adjusted),
                        fisher_holm_p=list(adjusted[FAILURE_FAMILY].adjusted))


# --- words ---------------------------------------------------------------------------------------------------

def _percent(value: float) -> str:
    return f"{100 * value:.0f}%" if np.isfinite(value) else "–"


def _failed_cell(row) -> str:
    return f"{row['failed']:.0f} of {row['runs']:.0f} {_rate_interval(row)}"


def _rate_interval(row) -> str:
    return f"[{_percent(row['failed_ci_low'])}, {_percent(row['failed_ci_high'])}]"


def _ratio_words(row) -> str:
    return f"×{row['ratio']:.2f} [{row['ratio_low']:.2f}, {row['ratio_high']:.2f}]"


def _runs_words(row) -> str:
    return f"{row['not_failed']:.0f} vs {row['reference_not_failed']:.0f} runs that did not fail"


def _p_kind(row) -> str:
    return "exact permutation" if row["p_exact"] else "Monte Carlo permutation"


def _compared(row) -> bool:
    return not row["reference"] and np.isfinite(row["fisher_p"])


def verdict(row) -> str:
    """The FID comparison in words: claimed only at a Holm-adjusted p < ALPHA; otherwise 'no evidence', never
    'no effect' (the interval says which effects the runs cannot rule out)."""
    if row["reference"]:
        return "reference"
    if not _compared(row):
        return "no runs of the reference to compare with"
    if not np.isfinite(row["ratio"]):
        return f"{TOO_FEW} ({_runs_words(row)})"
    if row["holm_p"] < ALPHA:
        return f"{'raised' if row['ratio'] > 1 else 'lowered'} {_ratio_words(row)}"
    return f"no evidence of a change ({_ratio_words(row)})"


def ablation_table(frame: pd.DataFrame, strata: list[str], fid_label: str, reference: str) -> Table:
    columns = [*strata, "arm", "runs", "failed [95% Clopper–Pearson]", "failures vs reference: Fisher p (Holm)",
               f"{fid_label}, runs that did not fail: geometric mean [95% t]",
               "ratio vs reference [95% Welch]", "permutation p (smallest possible)", "Holm p (primary)", "verdict"]
    rows, bold = [], set()
    for i, row in frame.iterrows():
        compared = _compared(row)
        ratio = (_ratio_words(row) if np.isfinite(row["ratio"]) else TOO_FEW) if compared else "–"
        p = (f"{fmt_p(row['p'])} ({'exact' if row['p_exact'] else 'Monte Carlo'}; {fmt_p(row['p_floor'])})"
             if np.isfinite(row["p"]) else "–")
        level = (f"{fmt(row['fid_geomean'])} [{fmt(row['fid_ci_low'])}, {fmt(row['fid_ci_high'])}]"
                 if np.isfinite(row["fid_ci_low"]) else fmt(row["fid_geomean"]))
        rows.append([*(param_text(row[key]) for key in strata), row["arm"], f"{row['runs']:.0f}", _failed_cell(row),
                     f"{fmt_p(row['fisher_p'])} (Holm {fmt_p(row['fisher_holm_p'])})" if compared else "–",
                     f"{level} (n = {row['not_failed']:.0f})", ratio, p, fmt_p(row["holm_p"]), verdict(row)])
        if np.isfinite(row["holm_p"]) and row["holm_p"] < ALPHA:
            bold.add((i, len(strata) + 5))
        if np.isfinite(row["fisher_holm_p"]) and row["fisher_holm_p"] < ALPHA:
            bold.add((i, len(strata) + 3))
    note = (f"Each arm against the reference arm '{reference}'"
            f"{' within each ' + ' × '.join(strata) if strata else ''}, over the runs that trained to the end of "
            "their budget. Arms are different networks or optimisers: runs are not paired by seed. Failed (gan.outcome "
            "failed or diverged) runs leave the FID columns and count as failures, with the exact Clopper–Pearson "
            "95% interval and Fisher's exact test against the reference. FID: geometric mean of the runs that did not "
            "fail with the t-interval of log FID; ratio of geometric means with exp of the Welch 95% interval of the "
            "log difference; p: two-sample permutation test of log FID over all C(n_a + n_b, n_a) splits (Monte "
            "Carlo beyond 10⁶), beside the smallest p those runs could give. Holm over the arms: FID ratios are the "
            f"declared primary family, failures a secondary one. Bold: Holm-adjusted p < {ALPHA:g}. 'No evidence' "
            "is not 'no effect': the interval shows the effects the runs cannot rule out.")
    return Table(TITLE, columns, rows, bold, note)


def _where(strata: list[str], row) -> str:
    return f"In {stratum_words(strata, tuple(row[key] for key in strata))}, " if strata else ""


def findings(frame: pd.DataFrame, strata: list[str], fid_label: str, reference: str) -> list[str]:
    """Sentences for Holm-significant comparisons only: the primary family's FID ratios, then failure rates,
    labelled secondary."""
    sentences = []
    for _, row in frame[frame["holm_p"] < ALPHA].iterrows():
        moved = "raised" if row["ratio"] > 1 else "lowered"
        sentences.append(
            f"{_where(strata, row)}arm '{row['arm']}' {moved} the final {fid_label} against '{reference}' "
            f"{_ratio_words(row)} ({_p_kind(row)} p = {fmt_p(row['p'])}, Holm {fmt_p(row['holm_p'])}; "
            f"{_runs_words(row)}).")
    for _, row in frame[frame["fisher_holm_p"] < ALPHA].iterrows():
        control = frame[_of_row(frame, strata, {**row, "arm": reference})].iloc[0]
        sentences.append(
            f"(secondary) {_where(strata, row)}arm '{row['arm']}' failed in {row['failed']:.0f} of {row['runs']:.0f} "
            f"runs {_rate_interval(row)} against "
            f"{control['failed']:.0f} of {control['runs']:.0f} for '{reference}' (Fisher's exact p = "
            f"{fmt_p(row['fisher_p'])}, Holm {fmt_p(row['fisher_holm_p'])}).")
    return sentences


def findings_note(frame: pd.DataFrame, strata: list[str], fid_label: str, reference: str, left_out: str) -> str:
    """What the sentences rest on: the declared families, the p floor the runs allow, what shows no evidence."""
    compared = frame[frame.apply(_compared, axis=1)] if len(frame) else frame
    tested = compared[np.isfinite(compared["p"])]
    m = len(tested)
    note = (f"Design: an ablation against '{reference}', arms unpaired (different networks or optimisers share no "
            f"seed's randomness). Primary family: the final {fid_label} of each arm against '{reference}' among the "
            f"runs that did not fail ({m} comparison{'s' if m != 1 else ''}, exact permutation p of log "
            f"{fid_label}, Holm-adjusted); a sentence only where the adjusted p < {ALPHA:g}. Secondary family: "
            "failure rates (Fisher's exact, Holm-adjusted), labelled (secondary).")
    sizes = sorted({(int(r["not_failed"]), int(r["reference_not_failed"])) for _, r in tested.iterrows()})
    if sizes:
        note += (f" What the runs can carry: the smallest permutation p is {'; '.join(effects.floor_words(*s) for s in sizes)}"
                 f"; Holm across {m} comparison{'s' if m != 1 else ''} needs the smallest below "
                 f"{ALPHA / max(m, 1):.2g}.")
    quiet = tested[~(tested["holm_p"] < ALPHA)]
    if len(quiet):
        note += (" No evidence of a change in the final " + fid_label + " (not evidence of no effect: the interval "
                 "spans what the runs cannot rule out): " + "; ".join(
                     f"{_where(strata, r).lower()}'{r['arm']}' {_ratio_words(r)}" for _, r in quiet.iterrows()) + ".")
    few = compared[~np.isfinite(compared["p"])]
    if len(few):
        note += (f" Not compared on {fid_label}, {TOO_FEW}: " + "; ".join(
            f"{_where(strata, r).lower()}'{r['arm']}' ({_runs_words(r)})" for _, r in few.iterrows()) + ".")
    if left_out:
        note += f" {left_out}"
    return note


@dataclass(frozen=True)
class AblationSection:
    numbers: pd.DataFrame  # ablation.csv: one row per stratum and arm
    table: Table
    findings: list[str]
    findings_note: str
    strata: list[str]
    reference: str
    runs: pd.DataFrame  # the compared runs (see ablation_runs)


def ablation_section(study: StudyData) -> AblationSection | None:
    """The ablation's table, sentences and note; None unless the study's parent run is tagged as an ablation."""
    if not is_ablation(study):
        return None
    reference = study.parent_tags.get(names.REFERENCE_ARM_TAG)
    if not reference:
        raise ReportError(f"study {study.parent_name} is tagged as an ablation but names no reference arm "
                          f"(tag {names.REFERENCE_ARM_TAG})")
    if PARAM_PREFIX + names.ARM not in study.trials:
        raise ReportError(f"study {study.parent_name} is tagged as an ablation but its trials carry no "
                          f"'{names.ARM}' parameter")
    runs = ablation_runs(study)
    strata = _strata(runs, study.searched)
    numbers = ablation_frame(runs, strata, reference) if len(runs) else pd.DataFrame()
    if numbers.empty:
        return AblationSection(numbers, Table(TITLE, [], [], set(), "Not computed: no run trained to the end of its "
                                              f"budget. {left_out_line(study)}".rstrip()), [], "", strata, reference,
                               runs)
    return AblationSection(numbers, ablation_table(numbers, strata, study.fid_label, reference),
                           findings(numbers, strata, study.fid_label, reference),
                           findings_note(numbers, strata, study.fid_label, reference, left_out_line(study)),
                           strata, reference, runs)


# --- figures -------------------------------------------------------------------------------------------------

def _labels(section: AblationSection, frame: pd.DataFrame) -> list[str]:
    return [(f"{stratum_words(section.strata, tuple(r[k] for k in section.strata))}: " if section.strata else "")
            + r["arm"] for _, r in frame.iterrows()]


def _of_row(runs: pd.DataFrame, strata: list[str], row) -> pd.Series:
    """Which of `runs` belong to the arm and stratum of a row of the ablation frame."""
    mask = runs[names.ARM] == row["arm"]
    for key in strata:
        mask &= runs[key] == row[key]
    return mask


def final_fid_by_arm(study: StudyData, section: AblationSection, out: Path) -> Plot | None:
    """Every run's final FID by arm (log scale): runs that did not fail as dots with the arm's geometric mean and
    95% interval, failed runs as red crosses (counted as failures, not in the ratio)."""
    numbers = section.numbers
    if numbers.empty:
        return None
    figure = Figure(figsize=(max(5.0, 1.3 * len(numbers) + 2), 4.6))
    axes = figure.add_subplot()
    runs, crossed = section.runs, False
    for x, (_, row) in enumerate(numbers.iterrows()):
        mine = runs[_of_row(runs, section.strata, row)]
        spread = np.linspace(-0.12, 0.12, len(mine)) if len(mine) > 1 else np.zeros(len(mine))
        ok, bad = ~mine["failed"].to_numpy(), mine["failed"].to_numpy()
        axes.scatter(x + spread[ok], mine["fid"][ok], s=14, color="#555555", zorder=2,
                     label="run that did not fail" if x == 0 else None)
        axes.scatter(x + spread[bad], mine["fid"][bad], s=30, marker="x", color="#c0392b", zorder=2,
                     label="failed run" if bad.any() and not crossed else None)
        crossed = crossed or bool(bad.any())
        if np.isfinite(row["fid_geomean"]):
            low = row["fid_geomean"] - row["fid_ci_low"] if np.isfinite(row["fid_ci_low"]) else 0
            high = row["fid_ci_high"] - row["fid_geomean"] if np.isfinite(row["fid_ci_high"]) else 0
            axes.errorbar([x + 0.25], [row["fid_geomean"]], yerr=[[low], [high]], marker="o", capsize=4,
                          color="#c0392b" if row["holm_p"] < ALPHA else "#1b4f72")
    axes.set_xticks(range(len(numbers)), _labels(section, numbers), rotation=20, ha="right", fontsize=8)
    axes.set_yscale("log")
    axes.set_ylabel(f"final {study.fid_label} (log scale)")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    path = save_figure(figure, out / "ablation_fid.png")
    return Plot("ablation_fid", f"Final {study.fid_label} of every run, arm by arm",
                "Grey dots: runs that did not fail; red crosses: failed runs (counted as failures, left out of the "
                "ratio); beside each arm its geometric mean over the runs that did not fail with the 95% t-interval "
                "of log FID (red: Holm-significant against the reference).", path)


def learning_curves_by_arm(study: StudyData, section: AblationSection, out: Path) -> Plot | None:
    """Validation FID over generator steps: per arm (and stratum), the geometric mean over its runs that did not
    fail."""
    runs = section.runs[~section.runs["failed"]]
    figure = Figure(figsize=(7.5, 4.6))
    axes = figure.add_subplot()
    drawn = False
    for _, row in section.numbers.iterrows():
        mine = runs[_of_row(runs, section.strata, row)]
        curves = [metric_history(study, run_id, study.fid_metric).set_index("step")["value"]
                  for run_id in mine["run_id"]]
        curves = [c[c > 0] for c in curves if not c.empty]
        if not curves:
            continue
        mean = np.exp(np.log(pd.concat(curves, axis=1)).mean(axis=1))
        label = _labels(section, pd.DataFrame([row]))[0]
        axes.plot(mean.index, mean.values, marker="o", markersize=3, label=f"{label} ({len(curves)} runs)")
        drawn = True
    if not drawn:
        return None
    axes.set_yscale("log")
    axes.set_xlabel("generator step")
    axes.set_ylabel(f"validation {study.fid_label} (log scale)")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    path = save_figure(figure, out / "ablation_learning_curves.png")
    return Plot("ablation_learning_curves", "Learning curves, arm by arm",
                "Validation score during training (1,000 samples against the validation split, biased upward against "
                "the final test FID of the tables), geometric mean over each arm's runs that did not fail.", path)


def ablation_figures(study: StudyData, section: AblationSection, out: Path) -> list[Plot]:
    """The ablation's own figures, then the report's figures that hold for any design (D's outputs, samples);
    the capacity figures (FID over capacity, the (G, D) heatmap, regimes by cell) have nothing to show here."""
    from reports import plots

    out.mkdir(parents=True, exist_ok=True)
    drawn = [final_fid_by_arm(study, section, out), learning_curves_by_arm(study, section, out),
             plots.d_outputs(study, out), plots.sample_grids(study, out)]
    return [plot for plot in drawn if plot is not None]
