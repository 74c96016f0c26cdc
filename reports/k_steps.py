"""Algorithm 1's k (discriminator steps per generator step) at equal generator steps and at equal compute.

A study is a k study when its trials use at least two values of `k` (search_spaces/k_steps.yaml: k × loss);
otherwise this section is absent. Every other searched setting that varies (the loss, say) is a stratum: k is
compared only within one, never pooled across. The reference is k = 1, the 2014 paper's choice (the smallest k
when a study has no k = 1).

Cost. Generator step s of a run with k costs s·(k + 1) gradient evaluations: k discriminator steps and one
generator step per generator step, a D step and a G step counted alike (both are one forward and backward pass
through D on one batch, and G's step adds G's own pass: near enough for networks of equal width, as here; an
assumption, not a measurement). Wall time is the other measure: where the trials logged `time_train_s` (seconds
spent training in their process), the table shows each cell's seconds per generator step and their ratio to
k = 1's beside the assumed (k + 1)/2. The largest budget every k reaches is B = min over k of S_k·(k + 1), S_k
the generator steps of k's runs: with the budget in generator steps, B = 2·S, k = 1's full run. A run with k
spends B at generator step B/(k + 1); its validation score there is read off its learning curve (the metric
history of the study's FID), linear in log FID between the two evaluations around that step, never extrapolated
(before the first evaluation or after the last it has none). At smaller budgets (B/4, B/2) the same reading
gives a descriptive table of which k has the lowest geometric-mean FID.

Comparisons, each k ≠ 1 against k = 1 within a stratum. Different k are different trainings: a seed shares
nothing worth pairing between them (REFERENCE.md), so every comparison is unpaired, declared by the design:

- primary family, equal compute ("which k helps at the same cost"): validation log FID at B of the runs that
  did not fail; ratio of geometric means with exp of the Welch 95% interval and the exact two-sample
  permutation p (reports.stats.unpaired_log_ratio); Holm over every k ≠ 1 of every stratum. Only this family's
  Holm-significant results are claimed as answers to the question;
- secondary family, equal generator steps: the same on the final log FID (test split) after S generator steps;
- secondary family, failures: a run whose outcome (gan.outcome) is failed or diverged is a failure, x of n with
  the Clopper–Pearson 95% interval per cell, against k = 1 by Fisher's exact test. A failure is decided by the
  run's final metrics, so it is the same at either measure of cost. Failed runs leave the FID comparisons:
  their FID (near the noise ceiling, or none) measures nothing.

Each family is Holm-adjusted within itself (reports.stats.holm_by_family); a secondary result is said only as
such. The 2014 paper chose k = 1, "the least expensive option": the findings say whether, at equal compute, the
data support it (every k > 1 significantly worse), contradict it (some k > 1 significantly better) or cannot
decide (otherwise).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gan import names
from reports.ablation import ended_runs, metric_column, stratum_words
from reports.load import PARAM_PREFIX, StudyData, metric_history
from reports.plots import Plot, save_figure
from reports.stats import (ALPHA, clopper_pearson, fisher_failures, holm_by_family, positive_interval,
                           unpaired_log_ratio)
from reports.tables import Table, fmt, fmt_p, param_text

K = "k"
REFERENCE_K = 1  # the 2014 paper's choice
EQUAL_COMPUTE, EQUAL_G_STEPS, FAILURES = "equal compute", "equal generator steps", "failures"
BUDGET_SHARES = (0.25, 0.5, 1.0)  # of B, for the table of which k wins at which budget
MIN_RUNS_FOR_RATIO = 2  # runs that did not fail, on each side: a Welch interval needs a spread on both
IGNORED_KEYS = (K, "seed", names.CAPACITY_RATIO_LOG2)
TITLE = "k at equal generator steps and at equal compute"
BUDGET_TITLE = "Which k is best at which budget (gradient evaluations)"
PAPER = ('Goodfellow et al. (2014) chose k = 1, "the least expensive option" (a maxout MLP trained with SGD + '
         "momentum on full MNIST, scored by a Parzen-window log-likelihood)")


def is_k_study(study: StudyData) -> bool:
    """The trials use at least two values of k."""
    column = PARAM_PREFIX + K
    return column in study.trials and pd.to_numeric(study.trials[column], errors="coerce").nunique() >= 2


def gradient_evaluations(g_steps, k):
    """Cost of `g_steps` generator steps with k D steps each: g_steps·(k + 1) (a D step and a G step alike)."""
    return np.asarray(g_steps, dtype=np.float64) * (np.asarray(k, dtype=np.float64) + 1)


def log_value_at(steps, values, step: float) -> float:
    """log of a positive metric at generator step `step`, linear in log value between the evaluations around it
    (the evaluation's own value at an evaluation step); NaN before the first evaluation or after the last."""
    steps, values = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    keep = np.isfinite(steps) & np.isfinite(values) & (values > 0)
    steps, logs = steps[keep], np.log(values[keep])
    order = np.argsort(steps, kind="stable")
    steps, logs = steps[order], logs[order]
    tolerance = 1e-9 * max(abs(step), 1.0)
    if not len(steps) or step < steps[0] - tolerance or step > steps[-1] + tolerance:
        return math.nan
    return float(np.interp(step, steps, logs))


def k_runs(study: StudyData) -> tuple[pd.DataFrame, list[str]]:
    """(runs, strata): every trial that trained to the end of its budget (or diverged), params unprefixed, with
    columns `failed` (outcome failed or diverged), `fid` (final score), `total_steps`, `seconds_per_g_step`
    (NaN without time_train_s); the strata are the other searched settings that vary."""
    frame = ended_runs(study)
    metric = functools.partial(metric_column, frame)
    trained = metric(names.STEP) - metric(names.RESTORED_FROM_STEP).fillna(0)  # steps this process trained
    frame = frame.assign(total_steps=metric(names.TOTAL_STEPS),
                         seconds_per_g_step=metric(names.TIME_TRAIN_S) / trained.where(trained > 0))
    frame[K] = pd.to_numeric(frame[K], errors="coerce")
    strata = [key for key in study.searched if key in frame and key not in IGNORED_KEYS and frame[key].nunique() > 1]
    return frame.reset_index(drop=True), strata


def with_curves(study: StudyData, runs: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """(runs with `curve`: each run's (steps, values) of the study's FID during training, None for failed runs;
    and B, the largest budget in gradient evaluations every k reaches). A run without total_steps counts its
    last evaluation's step."""
    curves, last = [], []
    for _, run in runs.iterrows():
        history = None if run["failed"] else metric_history(study, run["run_id"], study.fid_metric)
        curves.append(None if history is None else (history["step"].to_numpy(float), history["value"].to_numpy(float)))
        last.append(history["step"].max() if history is not None and len(history) else math.nan)
    runs = runs.assign(curve=curves, total_steps=runs["total_steps"].fillna(pd.Series(last, index=runs.index)))
    return runs, equal_compute_budget(runs)


def equal_compute_budget(runs: pd.DataFrame) -> float:
    """B = min over k of the median total_steps·(k + 1) of k's runs (NaN when no run has a step count)."""
    per_k = runs.assign(cost=gradient_evaluations(runs["total_steps"], runs[K])).groupby(K)["cost"].median()
    return float(per_k.min()) if per_k.notna().any() else math.nan


def reference_k(runs: pd.DataFrame) -> float:
    levels = sorted(runs[K].dropna().unique())
    return float(REFERENCE_K) if REFERENCE_K in levels else float(levels[0])


def fid_at_budget(runs: pd.DataFrame, budget: float) -> np.ndarray:
    """Each run's FID at `budget` gradient evaluations (generator step budget/(k + 1)); NaN for failed runs and
    where the curve has no value there."""
    logs = [math.nan if curve is None else log_value_at(*curve, budget / (k + 1))
            for curve, k in zip(runs["curve"], runs[K])]
    return np.exp(np.array(logs, dtype=np.float64))


def _groups(runs: pd.DataFrame, strata: list[str]):
    if not strata:
        return [((), runs)]
    return [(key if isinstance(key, tuple) else (key,), part) for key, part in runs.groupby(strata, sort=True)]


def _compare(treated, control) -> dict:
    """The unpaired ratio of the positive finite values, when each side keeps MIN_RUNS_FOR_RATIO of them."""
    t, c = (np.asarray(v, dtype=np.float64) for v in (treated, control))
    t, c = t[np.isfinite(t) & (t > 0)], c[np.isfinite(c) & (c > 0)]
    record = {"n": len(t), "n_ref": len(c)}
    if min(len(t), len(c)) < MIN_RUNS_FOR_RATIO:
        return {**record, "ratio": math.nan, "low": math.nan, "high": math.nan, "p": math.nan, "exact": math.nan}
    effect = unpaired_log_ratio(t, c)
    return {**record, "ratio": effect.ratio, "low": effect.low, "high": effect.high, "p": effect.p,
            "exact": effect.test.exact}


def k_frame(runs: pd.DataFrame, strata: list[str], budget: float) -> pd.DataFrame:
    """One row per stratum and k (the reference first): runs, failures, final FID, seconds per G step, FID at
    equal compute; for each k ≠ reference the three comparisons with it, each family Holm-adjusted."""
    k_ref = reference_k(runs)
    runs = runs.assign(fid_compute=fid_at_budget(runs, budget))
    records = []
    for key, part in _groups(runs, strata):
        control = part[part[K] == k_ref]
        ok_control = control[~control["failed"]]
        ref_seconds = float(control["seconds_per_g_step"].mean())
        for k in sorted(part[K].unique(), key=lambda value: (value != k_ref, value)):
            rows = part[part[K] == k]
            ok = rows[~rows["failed"]]
            failures, n = int(rows["failed"].sum()), len(rows)
            low, high = clopper_pearson(failures, n)
            final, at_budget = positive_interval(ok["fid"]), positive_interval(ok["fid_compute"])
            seconds = float(rows["seconds_per_g_step"].mean())
            record = {**dict(zip(strata, key)), K: k, "reference": k == k_ref, "runs": n, "failed": failures,
                      "failed_ci_low": low, "failed_ci_high": high, "not_failed": len(ok),
                      "g_steps": float(rows["total_steps"].median()),
                      "fid_final_geomean": final.mean, "fid_final_low": final.low, "fid_final_high": final.high,
                      "compute_g_step": budget / (k + 1), "fid_compute_geomean": at_budget.mean,
                      "seconds_per_g_step": seconds, "measured_cost_ratio": seconds / ref_seconds,
                      "assumed_cost_ratio": (k + 1) / (k_ref + 1)}
            if k != k_ref and not control.empty:
                for prefix, column in (("steps", "fid"), ("compute", "fid_compute")):
                    record.update({f"{prefix}_{name}": value for name, value in
                                   _compare(ok[column], ok_control[column]).items()})
                record["fisher_p"] = fisher_failures(failures, n, int(control["failed"].sum()), len(control)).p
            records.append(record)
    frame = pd.DataFrame(records)
    for column in ("steps_ratio", "steps_low", "steps_high", "steps_p", "steps_n", "steps_n_ref", "steps_exact",
                   "compute_ratio", "compute_low", "compute_high", "compute_p", "compute_n", "compute_n_ref",
                   "compute_exact", "fisher_p"):
        if column not in frame:
            frame[column] = math.nan
    families = holm_by_family({EQUAL_COMPUTE: frame["compute_p"].tolist(), EQUAL_G_STEPS: frame["steps_p"].tolist(),
                               FAILURES: frame["fisher_p"].tolist()}, primary=EQUAL_COMPUTE)
    return frame.assign(compute_holm_p=list(families[EQUAL_COMPUTE].adjusted),
                        steps_holm_p=list(families[EQUAL_G_STEPS].adjusted),
                        fisher_holm_p=list(families[FAILURES].adjusted), budget=budget, k_ref=k_ref)


def budget_frame(runs: pd.DataFrame, strata: list[str], budget: float) -> pd.DataFrame:
    """One row per stratum, budget (a share of B) and k: the generator step that budget buys, how many runs that
    did not fail have a value there, their geometric-mean FID, and whether it is the lowest among the k
    evaluated there (`best`)."""
    records = []
    for share in BUDGET_SHARES:
        evaluations = share * budget
        at = runs.assign(fid_here=fid_at_budget(runs, evaluations))
        for key, part in _groups(at, strata):
            cells = []
            for k in sorted(part[K].unique()):
                ok = part[(part[K] == k) & ~part["failed"]]
                level = positive_interval(ok["fid_here"])
                cells.append({**dict(zip(strata, key)), "share_of_budget": share, "gradient_evaluations": evaluations,
                              K: k, "g_step": evaluations / (k + 1), "not_failed": len(ok), "evaluated": level.n,
                              "fid_geomean": level.mean})
            evaluated = [c["fid_geomean"] for c in cells if np.isfinite(c["fid_geomean"])]
            for cell in cells:
                cell["best"] = bool(evaluated) and cell["fid_geomean"] == min(evaluated)
            records += cells
    return pd.DataFrame(records)


# --- words ---------------------------------------------------------------------------------------------------

def _why_missing(row) -> str:
    """Why a k has no FID at a budget: every run of it failed, or the step comes before its first evaluation."""
    return "every run failed" if row["not_failed"] == 0 else "not yet evaluated"


def _k(value: float) -> str:
    return f"k = {value:g}"


def _in(strata: list[str], row) -> str:
    return f"with {stratum_words(strata, tuple(row[key] for key in strata))}, " if strata else ""


def _ratio(row, prefix: str) -> str:
    return f"×{row[f'{prefix}_ratio']:.2f} [{row[f'{prefix}_low']:.2f}, {row[f'{prefix}_high']:.2f}]"


def _significant(row, prefix: str) -> bool:
    adjusted = row[f"{prefix}_holm_p"]
    return bool(np.isfinite(adjusted) and adjusted < ALPHA)


def _ratio_cell(row, prefix: str) -> str:
    if row["reference"]:
        return "reference"
    if not np.isfinite(row[f"{prefix}_ratio"]):
        return "too few runs that did not fail"
    exact = "exact" if row[f"{prefix}_exact"] else "Monte Carlo"
    return (f"{_ratio(row, prefix)}; {row[f'{prefix}_n']:.0f} vs {row[f'{prefix}_n_ref']:.0f} runs; p {fmt_p(row[f'{prefix}_p'])} "
            f"({exact}), Holm {fmt_p(row[f'{prefix}_holm_p'])}")


def k_table(frame: pd.DataFrame, strata: list[str], fid_label: str) -> Table:
    timed = frame["seconds_per_g_step"].notna().any()
    budget = frame["budget"].iloc[0]
    columns = [*strata, "k", "runs", "failed [95% Clopper–Pearson]", "failures vs k = 1: Fisher p (Holm)",
               *(["s per G step (measured / assumed cost vs k = 1)"] if timed else []),
               f"final {fid_label} after the same G steps: geometric mean (runs that did not fail)",
               "vs k = 1 at equal G steps [95% Welch] (secondary)",
               f"G step at equal compute ({budget:,.0f} gradient evaluations)",
               f"validation {fid_label} there: geometric mean", "vs k = 1 at equal compute [95% Welch] (primary)"]
    rows, bold = [], set()
    for i, row in frame.iterrows():
        failed = (f"{row['failed']:.0f} of {row['runs']:.0f} [{row['failed_ci_low']:.0%}, "
                  f"{row['failed_ci_high']:.0%}]")
        fisher = ("–" if row["reference"] or not np.isfinite(row["fisher_p"]) else
                  f"{fmt_p(row['fisher_p'])} (Holm {fmt_p(row['fisher_holm_p'])})")
        seconds = [f"{fmt(row['seconds_per_g_step'])} ({fmt(row['measured_cost_ratio'])} / "
                   f"{fmt(row['assumed_cost_ratio'])})"] if timed else []
        rows.append([*(param_text(row[key]) for key in strata), f"{row[K]:g}", f"{row['runs']:.0f}", failed, fisher,
                     *seconds, f"{fmt(row['fid_final_geomean'])} (n = {row['not_failed']:.0f}, "
                     f"{row['g_steps']:,.0f} G steps)", _ratio_cell(row, "steps"), f"{row['compute_g_step']:,.0f}",
                     fmt(row["fid_compute_geomean"]), _ratio_cell(row, "compute")])
        if _significant(row, "compute"):
            bold.add((i, len(rows[-1]) - 1))
        if _significant(row, "steps"):
            bold.add((i, len(rows[-1]) - 4))
    note = (f"Each k against k = 1{' within each ' + ' × '.join(strata) if strata else ''}, unpaired (different "
            "k are different trainings). Cost: generator step s of a run with k = s·(k + 1) gradient evaluations "
            "(k D steps and one G step per G step, counted alike); the equal-compute budget is k = 1's full run, "
            "and each run's validation FID at the G step that budget buys is read off its learning curve, linear in "
            "log FID between evaluations. Failed or diverged runs (gan.outcome) count as failures (exact "
            "Clopper–Pearson 95% interval; Fisher's exact test against k = 1) and leave the FID columns. Ratios: "
            "geometric means, exp of the Welch 95% interval of the log difference; p: two-sample permutation test "
            "of log FID over all splits. Holm within each family: equal compute is the declared primary family, "
            "equal G steps and failures are secondary." +
            (" s per G step: seconds spent training / generator steps trained (time_train_s), its ratio to k = 1's "
             "beside the assumed (k + 1)/2." if timed else "") + f" Bold: Holm-adjusted p < {ALPHA:g}.")
    return Table(TITLE, columns, rows, bold, note)


def budget_table(frame: pd.DataFrame, strata: list[str], fid_label: str) -> Table:
    levels = sorted(frame[K].unique())
    columns = [*strata, "budget (gradient evaluations)", *(f"{_k(k)}: {fid_label} (G step)" for k in levels), "lowest"]
    rows, bold = [], set()
    for key, part in frame.groupby([*strata, "share_of_budget"], sort=True):
        part = part.set_index(K)
        cells = [f"{fmt(part.loc[k, 'fid_geomean'])} ({part.loc[k, 'g_step']:,.0f})"
                 if np.isfinite(part.loc[k, "fid_geomean"]) else f"{_why_missing(part.loc[k])} ({part.loc[k, 'g_step']:,.0f})"
                 for k in levels]
        best = [k for k in levels if part.loc[k, "best"]]
        first = part.iloc[0]
        rows.append([*(param_text(first[s]) for s in strata),
                     f"{first['gradient_evaluations']:,.0f} ({first['share_of_budget']:.0%})", *cells,
                     ", ".join(_k(k) for k in best) or "–"])
        bold |= {(len(rows) - 1, len(strata) + 1 + levels.index(k)) for k in best}
    note = (f"Validation {fid_label} of the runs that did not fail, geometric mean, at a share of the equal-compute "
            "budget, each run read off its learning curve at the generator step the budget buys (budget / (k + 1)), "
            "linear in log FID between evaluations; 'not yet evaluated': that step comes before the run's first "
            "evaluation; 'every run failed': no run of that k is left to score. Descriptive: the lowest is not tested (the primary test is at 100%, in the table above).")
    return Table(BUDGET_TITLE, columns, rows, bold, note)


def _cost_words(row) -> str:
    return (f"at equal compute ({row['budget']:,.0f} gradient evaluations, G step {row['compute_g_step']:,.0f}) "
            f"its validation FID is {_ratio(row, 'compute')} that of k = 1 ({row['compute_n']:.0f} vs "
            f"{row['compute_n_ref']:.0f} runs that did not fail; Holm-adjusted p = {fmt_p(row['compute_holm_p'])}, "
            "primary family)")


def _steps_words(row) -> str:
    return (f"after the same {row['g_steps']:,.0f} generator steps its final FID is {_ratio(row, 'steps')} that of "
            f"k = 1 (Holm-adjusted p = {fmt_p(row['steps_holm_p'])}, secondary family: equal generator steps)")


def _verdict(row, prefix: str) -> str:
    """'wins' (lower FID), 'loses', or '' (no Holm-significant difference)."""
    return ("wins" if row[f"{prefix}_ratio"] < 1 else "loses") if _significant(row, prefix) else ""


def findings(frame: pd.DataFrame, budgets: pd.DataFrame, strata: list[str], fid_label: str) -> list[str]:
    """Per stratum and k ≠ 1: the equal-compute claim (or 'no evidence'), with the equal-G-steps result where it
    is significant; failures where Fisher's test is; which k is lowest at which budget; the 2014 paper's choice."""
    sentences = []
    for _, row in frame[~frame["reference"]].iterrows():
        where, k = _in(strata, row), _k(row[K])
        compute, steps = _verdict(row, "compute"), _verdict(row, "steps")
        if not np.isfinite(row["compute_ratio"]):
            lead = f"{where}{k}: too few runs that did not fail to compare with k = 1 at equal compute"
        elif compute and steps and compute != steps:
            lead = f"{where}{k} {steps} per generator step but {compute} at equal compute: {_cost_words(row)}"
        elif compute and steps:
            lead = f"{where}{k} {compute} against k = 1 both per generator step and at equal compute: {_cost_words(row)}"
        elif compute:
            lead = f"{where}{k} {compute} against k = 1 at equal compute: {_cost_words(row)}"
        else:
            lead = (f"{where}{k}: no evidence of a difference from k = 1 at equal compute "
                    f"({_ratio(row, 'compute') if np.isfinite(row['compute_ratio']) else '–'}, Holm-adjusted p = "
                    f"{fmt_p(row['compute_holm_p'])}, primary family)")
        if steps:
            lead += f"; {_steps_words(row)}"
        sentences.append(lead[0].upper() + lead[1:] + ".")
        if _significant(row, "fisher"):
            ref = frame[frame["reference"] & (frame[strata] == row[strata]).all(axis=1)].iloc[0]
            more = row["failed"] / row["runs"] > ref["failed"] / ref["runs"]
            text = (f"{where}{k} fails {'more' if more else 'less'} often than k = 1: {row['failed']:.0f} of "
                    f"{row['runs']:.0f} against {ref['failed']:.0f} of {ref['runs']:.0f} (Fisher's exact p, "
                    f"Holm-adjusted = {fmt_p(row['fisher_holm_p'])}, secondary family: failures).")
            sentences.append(text[0].upper() + text[1:])
    sentences += _budget_sentences(budgets, strata, fid_label)
    paper = _paper_sentence(frame, strata)
    return sentences + ([paper] if paper else [])


def _budget_sentences(budgets: pd.DataFrame, strata: list[str], fid_label: str) -> list[str]:
    sentences = []
    for key, part in _groups(budgets, strata):
        parts = []
        for share, at in part.groupby("share_of_budget", sort=True):
            best = ", ".join(_k(k) for k in at.loc[at["best"], K]) or "none"
            missing = at.loc[~np.isfinite(at["fid_geomean"])]
            failed = [_k(row[K]) for _, row in missing.iterrows() if row["not_failed"] == 0]
            early = [_k(row[K]) for _, row in missing.iterrows() if row["not_failed"] > 0]
            why = [f"{', '.join(early)} not yet evaluated"] * bool(early) + [f"every run of {', '.join(failed)} "
                                                                             "failed"] * bool(failed)
            parts.append(f"{at['gradient_evaluations'].iloc[0]:,.0f}: {best}" + (f" ({'; '.join(why)})" if why else ""))
        where = _in(strata, dict(zip(strata, key)))
        text = (f"{where}the lowest geometric-mean validation {fid_label} by budget in gradient evaluations "
                f"(descriptive, not tested): {'; '.join(parts)}.")
        sentences.append(text[0].upper() + text[1:])
    return sentences


def _paper_sentence(frame: pd.DataFrame, strata: list[str]) -> str:
    """Whether, at equal compute, the data support k = 1 (every k > 1 significantly worse), contradict it (some
    k > 1 significantly better) or cannot decide, per stratum."""
    if frame["k_ref"].iloc[0] != REFERENCE_K:
        return f"{PAPER}; this study has no k = 1 and cannot test that choice."
    verdicts = []
    for key, everything in _groups(frame, strata):
        where = f" with {stratum_words(strata, key)}" if strata else ""
        if (everything["not_failed"] == 0).all():  # no k left a run to score: failure, not a tie
            verdicts.append(f"cannot decide it{where}: every run failed at every k "
                            f"({everything['failed'].sum():.0f} of {everything['runs'].sum():.0f})")
            continue
        part = everything[~everything["reference"]]
        better = [_k(r[K]) for _, r in part.iterrows() if _verdict(r, "compute") == "wins"]
        worse = [_k(r[K]) for _, r in part.iterrows() if _verdict(r, "compute") == "loses"]
        open_ = [_k(r[K]) for _, r in part.iterrows() if not _verdict(r, "compute")]
        if better:
            verdicts.append(f"contradict it{where} ({', '.join(better)} better at equal compute)")
        elif worse and not open_:
            verdicts.append(f"support it{where} (every k > 1 worse at equal compute)")
        elif worse:
            verdicts.append(f"support it{where} against {', '.join(worse)} but cannot decide against {', '.join(open_)}")
        else:
            verdicts.append(f"cannot decide it{where} (no k differs from k = 1 at equal compute)")
    return (f"{PAPER}. At equal compute (Holm-adjusted p < {ALPHA:g}, primary family) this study's data "
            f"{'; '.join(verdicts)}.")


def findings_note(runs: pd.DataFrame, frame: pd.DataFrame, fid_label: str, dataset: str) -> str:
    """The declared families, the cost assumption, and what differs from the 2014 paper."""
    setup = ", ".join(f"{key} {', '.join(map(param_text, runs[key].dropna().unique()))}"
                      for key in ("arch", "optimizer") if key in runs and runs[key].notna().any())
    return (f"Primary family: each k against k = 1 at equal compute (validation {fid_label} at the budget of k = 1's "
            "full run, a generator step of a run with k costing k + 1 gradient evaluations), unpaired exact "
            "permutation tests, Holm-adjusted; claims are made only on it. Secondary, each Holm-adjusted within "
            "itself: the final score after equal generator steps, and failure rates (Fisher). "
            f"{len(frame[~frame['reference']])} comparisons per family. What differs from the 2014 paper: this "
            f"study trains {setup or 'the configuration in the header'} on {dataset} and scores {fid_label}, where "
            "the paper trained a maxout MLP with SGD + momentum on full MNIST and scored a Parzen-window "
            "log-likelihood.")


@dataclass(frozen=True)
class KSection:
    numbers: pd.DataFrame  # k_frame: k_steps.csv
    budgets: pd.DataFrame  # budget_frame: k_steps_budgets.csv
    tables: list[Table]
    findings: list[str]
    findings_note: str
    runs: pd.DataFrame  # k_runs with their curves
    strata: list[str]


def curves_by_compute(section: KSection, fid_label: str, out: Path) -> Plot | None:
    """Validation FID over gradient evaluations, one panel per stratum, one line per k: the geometric mean over
    the runs that did not fail at each evaluation, at generator step s drawn at s·(k + 1)."""
    runs = section.runs[~section.runs["failed"] & section.runs["curve"].notna()]
    groups = _groups(runs, section.strata)
    if runs.empty:
        return None
    budget = section.numbers["budget"].iloc[0]
    figure = Figure(figsize=(5.5 * len(groups), 4.4))
    for index, (key, part) in enumerate(groups, start=1):
        axes = figure.add_subplot(1, len(groups), index)
        for k, mine in part.groupby(K, sort=True):
            logs = pd.concat([pd.Series(np.log(values), index=steps) for steps, values in mine["curve"]], axis=1)
            mean = np.exp(logs.mean(axis=1, skipna=True))
            axes.plot(gradient_evaluations(mean.index.to_numpy(float), k), mean.to_numpy(), marker="o", markersize=3,
                      label=f"{_k(k)} ({len(mine)} runs)")
        axes.axvline(budget, color="#555555", linestyle="--", linewidth=1, label="equal-compute budget")
        axes.set_yscale("log")
        axes.set_xlabel("gradient evaluations (generator step × (k + 1))")
        axes.set_ylabel(f"validation {fid_label} (log scale)")
        axes.set_title(stratum_words(section.strata, key) or "all trials", fontsize=10)
        axes.legend(fontsize=8)
        axes.grid(alpha=0.3)
    path = save_figure(figure, out / "k_steps_compute.png")
    return Plot("k_steps_compute", "Learning curves at equal compute, k by k",
                "Validation score during training against its cost, a generator step of a run with k costing k + 1 "
                "gradient evaluations; geometric mean over each k's runs that did not fail. The dashed line is the "
                "largest budget every k reaches (k = 1's full run), where the primary comparison is made.", path)


def k_steps_section(study: StudyData) -> KSection | None:
    """The section of a study whose trials vary k; None otherwise, or when no run trained to the end."""
    if not is_k_study(study):
        return None
    runs, strata = k_runs(study)
    if runs[K].nunique() < 2:
        return None
    runs, budget = with_curves(study, runs)
    numbers = k_frame(runs, strata, budget)
    budgets = budget_frame(runs, strata, budget)
    dataset = study.parent_tags.get(names.DATASET_TAG) or study.parent_params.get("dataset", "?")
    return KSection(numbers, budgets, [k_table(numbers, strata, study.fid_label),
                                       budget_table(budgets, strata, study.fid_label)],
                    findings(numbers, budgets, strata, study.fid_label),
                    findings_note(runs, numbers, study.fid_label, dataset), runs, strata)
