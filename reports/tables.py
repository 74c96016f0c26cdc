"""The report's numbers: the header, the imbalance table, effect sizes and Optuna importances.

Each table is a numeric DataFrame (written as CSV) plus a `Table` of formatted strings, the best
cells marked, that reports.render turns into Markdown and HTML.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gan import names
from reports import effects
from reports.budget_text import budget_text
from reports.load import METRIC_PREFIX, PARAM_PREFIX, StudyData
from reports.stats import ALPHA, INTERACTION_PERMUTATIONS, SECONDARY, fisher_failures

CAPACITY = names.CAPACITY_RATIO_LOG2
LR_RATIO = "lr_ratio_log10"  # log10(lr_g / lr_d), a derived factor
MAX_LEVELS = 6  # a numeric factor with more distinct values is cut into quartiles
# The factors whose effect on the quality score we always look at, when the study varies them.
STUDIED_FACTORS = (CAPACITY, "k", LR_RATIO, "arch", "g_batchnorm", "d_batchnorm")
MIN_TRIALS_FOR_IMPORTANCE = 4


@dataclass(frozen=True)
class Column:
    metric: str
    label: str
    best: str  # "min", "max" or "zero" (closest to 0)


@dataclass
class Table:
    """Formatted cells for the renderers; `bold` holds (row, column) indices of the best cells."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    bold: set[tuple[int, int]] = field(default_factory=set)
    note: str = ""


IMBALANCE_COLUMNS = (
    Column(names.PARZEN, "Parzen log-likelihood (nats)", "max"),
    Column(names.CLASSES_COVERED, "classes covered", "max"),
    Column(names.MODES_COVERED, "modes covered (of 1,000)", "max"),
    Column(names.COVERAGE, "coverage", "max"),
    Column(names.D_GAP, "D(x) − D(G(z))", ""),  # no "best": a gap near 0 can be a dead D as well as a balanced one
)
MAX_FAILED_SHARE_FOR_BEST = 0.5  # a cell where most trials failed is never marked best


def primary_metric(study: StudyData) -> str:
    """The study's primary metric: the space's `metric` when trials report it finally, else its FID."""
    declared = study.parent_params.get("metric")
    return declared if declared and study.has_metric(declared) else study.fid_metric


def metric_label(study: StudyData, metric: str) -> str:
    return study.fid_label if metric == study.fid_metric else effects.METRIC_WORDS.get(metric, metric)


def imbalance_columns(study: StudyData) -> list[Column]:
    primary = primary_metric(study)
    candidates = [Column(primary, f"{metric_label(study, primary)} (primary)", "min" if primary in
                         effects.POSITIVE_METRICS else "max"),
                  *(c for c in IMBALANCE_COLUMNS if c.metric != primary)]
    return [column for column in candidates if study.has_metric(column.metric)]


def fmt(value: float) -> str:
    """An estimate or an interval bound; a parameter's value is `param_text`'s."""
    if value is None or not np.isfinite(value):
        return "–"
    if 0 < abs(value) < 1e-3:  # e.g. a logit-scale bound next to 0: its digits mean nothing
        return "≈0"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.4g}"


def param_text(value) -> str:
    """A parameter's value as it was set: 0.0005 stays '0.0005' (6 significant digits, enough for every value a
    space file writes: 2e-4, 1.00015), never '≈0' — a learning rate is small, not negligible."""
    if isinstance(value, float):
        return f"{value:.6g}" if np.isfinite(value) else "–"
    return str(value)


def fmt_interval(mean: float, low: float, high: float) -> str:
    """'23.1 [19.8, 26.4]': a mean and its 95% interval ('23.1' alone for one trial)."""
    if not np.isfinite(low) or not np.isfinite(high):
        return fmt(mean)
    return f"{fmt(mean)} [{fmt(low)}, {fmt(high)}]"


def fmt_p(p: float) -> str:
    return "–" if not np.isfinite(p) else effects.p_words(p)


# A trial's score is final when it trained to the end of its budget, or when it diverged (gan.run ends a diverged
# run itself: its outcome belongs to its configuration). A trial the scheduler stopped (ASHA), one cut off while
# running, or one that errored holds the score of an earlier step: pooled with final scores it would rank how far
# trials got, not how good their configurations are. Such trials never enter a comparison of final scores.
CUT_SHORT_STATUSES = (names.STOPPED_EARLY, names.RUNNING, names.ERRORED)
SHORT_OF_BUDGET = "short_of_budget"  # a status that does not tell (e.g. none logged), the last step below total_steps
CUT_SHORT_WORDS = {names.STOPPED_EARLY: "stopped early by the {scheduler}scheduler",
                   names.RUNNING: "cut off while running", names.ERRORED: "errored before the end of their budget",
                   SHORT_OF_BUDGET: "ended before the last step of their budget"}


def cut_short(trials: pd.DataFrame) -> pd.Series:
    """Per trial, why it ended before its budget (a CUT_SHORT_WORDS key), missing when its score is final: by its
    status, and for a status that does not tell, by its last step below its total_steps."""
    status = trials["status"]
    reason = status.where(status.isin(CUT_SHORT_STATUSES), None)
    step, total = METRIC_PREFIX + names.STEP, METRIC_PREFIX + names.TOTAL_STEPS
    if step in trials and total in trials:
        short = pd.to_numeric(trials[step], errors="coerce") < pd.to_numeric(trials[total], errors="coerce")
        told = status.isin([names.COMPLETED, names.DIVERGED_STATUS, *CUT_SHORT_STATUSES])
        reason = reason.where(~(short & ~told), SHORT_OF_BUDGET)
    return reason


def compared_trials(study: StudyData) -> pd.DataFrame:
    """The finished trials whose score is final: the only ones a comparison of final scores uses."""
    finished = study.finished
    return finished[cut_short(finished).isna()]


def compared_runs(study: StudyData) -> pd.DataFrame:
    """compared_trials and the trials that ended as failures without a score (a run that diverged before its first
    evaluation): every run a failure rate counts (effects.FAILURE_OUTCOMES)."""
    trials = study.trials
    failed = effects.failed_mask(trials)
    scored = trials.index.isin(study.finished.index)
    return trials[(scored | failed) & cut_short(trials).isna()]


def left_out_line(study: StudyData, what: str = "Final scores are compared") -> str:
    """'' when every finished trial's score is final; else one line: how many trials are compared, how many are
    left out and why."""
    reasons = cut_short(study.finished).dropna()
    if reasons.empty:
        return ""
    scheduler = study.parent_params.get("scheduler")
    scheduler = f"{scheduler.upper()} " if scheduler else ""  # 'asha' -> 'ASHA '
    counts = Counter(reasons)
    parts = [f"{counts[key]} {words.format(scheduler=scheduler)}" for key, words in CUT_SHORT_WORDS.items()
             if counts.get(key)]
    kept = len(study.finished) - len(reasons)
    return (f"{what} over the {kept} trial{'s' if kept != 1 else ''} that trained to the end of their budget; "
            f"{' and '.join(parts)} {'is' if len(reasons) == 1 else 'are'} left out: a score from an earlier step "
            "is not comparable with a final one.")


def _with_left_out(study: StudyData) -> str:
    """The left-out line, to follow a table's note."""
    line = left_out_line(study)
    return f" {line}" if line else ""


def with_factors(study: StudyData, trials: pd.DataFrame | None = None) -> pd.DataFrame:
    """`trials` (by default the compared trials, see compared_trials) with params unprefixed and the derived
    factors added."""
    trials = compared_trials(study) if trials is None else trials
    frame = trials.rename(columns=lambda c: c[len(PARAM_PREFIX):] if c.startswith(PARAM_PREFIX) else c)
    if "lr_g" in frame and "lr_d" in frame:
        lr_g, lr_d = pd.to_numeric(frame["lr_g"], errors="coerce"), pd.to_numeric(frame["lr_d"], errors="coerce")
        frame[LR_RATIO] = np.log10(lr_g / lr_d)
    return frame


def comparison_frame(study: StudyData, trials: pd.DataFrame | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The compared trials (or `trials`) with the base width, and the strata they must be compared within."""
    frame = effects.with_base_width(with_factors(study, trials))
    if CAPACITY not in frame:  # runs logged before capacity_ratio_log2 was a param: one level for all
        frame = frame.assign(**{CAPACITY: 0.0})
    return frame, effects.strata_keys(frame, study.searched)


def _stratum_cells(strata: list[str], row) -> list[str]:
    return [param_text(row[key]) for key in strata]


def _failed_cell(row) -> str:
    if not row["with_outcome"]:
        return "–"
    return f"{row['failed']} of {row['with_outcome']} [{fmt(row['failed_ci_low'])}, {fmt(row['failed_ci_high'])}]"


def imbalance_table(study: StudyData) -> tuple[pd.DataFrame, Table]:
    """Rows: each stratum and (G, D) cell; cells: outcomes and each metric's mean with its 95% interval."""
    frame, strata = comparison_frame(study, compared_runs(study))
    columns = imbalance_columns(study)
    if frame.empty:
        return pd.DataFrame(), Table("Capacity imbalance, cell by cell", [], [], set(),
                                     f"Not computed: no trial has a final score.{_with_left_out(study)}")
    numbers = effects.cell_summary(frame, strata, [c.metric for c in columns])
    rows, bold = [], set()
    for _, row in numbers.iterrows():
        cells = [*_stratum_cells(strata, row), fmt(row[CAPACITY]), f"{row['g_width']:g} / {row['d_width']:g}",
                 str(row["n"]), _failed_cell(row), str(row["still_improving"]) if row["with_outcome"] else "–"]
        cells += [fmt_interval(row[f"{c.metric}_mean"], row[f"{c.metric}_ci_low"], row[f"{c.metric}_ci_high"])
                  for c in columns]
        rows.append(cells)
    first = len(strata) + 5
    eligible = numbers[~(numbers["failed_rate"] > MAX_FAILED_SHARE_FOR_BEST)]
    groups = eligible.groupby(strata[0] if len(strata) == 1 else strata).groups.values() if strata \
        else [eligible.index]
    for stratum_rows in groups:
        part = numbers.loc[stratum_rows]
        for j, column in enumerate(columns):
            best = _best_index(part[f"{column.metric}_mean"], column.best) if column.best else None
            if best is not None and len(part) > 1:
                bold.add((int(numbers.index.get_loc(best)), first + j))
    primary = primary_metric(study)
    note = ("Each row is one (G width, D width) cell within each "
            f"{' × '.join(strata) or 'study'}; final evaluation on the test split. 'failed': trials that diverged "
            "or whose final metrics show collapse or a stuck GAN (gan.outcome: FID beyond 10% of FID(test, noise), "
            "fewer than 90% of the classes or half of the modes, or a dead D), with the exact (Clopper–Pearson) 95% "
            "interval of the failure rate; 'still improving': validation score improved ≥ 10% over the last quarter. "
            "Means with 95% intervals over the trials (seeds) that did not fail (a failed run's score measures "
            "nothing: it counts in 'failed'), in intervals that stay in each metric's domain: "
            f"{'geometric mean and t-interval of logs' if primary in effects.POSITIVE_METRICS else 't-interval'} "
            "for the primary metric, logit-scale t-intervals for counts and shares, t-intervals otherwise. Bold: "
            "the best cell per column within its group, among cells where at most half of the trials failed.")
    if study.fid_metric == names.PIXEL_FD:
        note += " pixel FD is the Fréchet distance between pixel statistics, not the Inception/classifier FID."
    note += _with_left_out(study)
    header = [*strata, "log2(D/G width)", "G / D width", "trials", "failed [95% CI]", "still improving"] + \
        [c.label for c in columns]
    return numbers, Table("Capacity imbalance, cell by cell", header, rows, bold, note)


def _best_index(means: pd.Series, best: str):
    finite = means[np.isfinite(means)]
    if finite.empty:
        return None
    return finite.idxmin() if best == "min" else finite.idxmax()


# compared seed by seed beside the primary metric: classes, and on Stacked MNIST the 1,000 modes
SECONDARY_METRICS = (names.FID, names.CLASSES_COVERED, names.MODES_COVERED)


@dataclass(frozen=True)
class Inference:
    """What the report tests: the primary metric's families (effects.Analysis), the other metrics' comparisons
    (shown, not claimed), the strata, and the runs compared (compared_runs, params unprefixed)."""

    analysis: effects.Analysis
    secondary: list[effects.Comparison]
    strata: list[str]
    frame: pd.DataFrame


def inference(study: StudyData) -> Inference:
    frame, strata = comparison_frame(study, compared_runs(study))
    primary = primary_metric(study)
    secondary = [c for metric in SECONDARY_METRICS if metric != primary and study.has_metric(metric)
                 for c in effects.comparisons(frame, strata, metric)]
    return Inference(effects.analyse(frame, strata, primary), secondary, strata, frame)


def contrasts_table(study: StudyData, found: Inference) -> tuple[pd.DataFrame, Table] | None:
    blocks = found.analysis.contrasts
    if not blocks:
        return None
    strata = found.strata
    rows = []
    for c in blocks:
        tested = c.analysis is not None
        i = c.analysis.interaction if tested else None
        normality = c.analysis.residual_normality_p if tested else math.nan
        rows.append([*(param_text(v) for v in c.stratum), f"{c.widths[0]:g}, {c.widths[1]:g}",
                     " / ".join(str(n) for n in c.runs) + (f" ({c.failed} failed)" if c.failed else ""),
                     effects.effect_words(c), f"{fmt(i.f)} (1, {i.df_error})" if tested else "–",
                     fmt_p(normality) + (" (not normal)" if c.permutation_used else ""),
                     f"{fmt_p(c.p)} ({'permutation' if c.permutation_used else 'F'})" if tested else "–",
                     fmt_p(c.p_holm), "yes" if c.significant else "no", f"{c.still_improving} of {c.trials}"])
    bold = {(i, len(strata) + 7) for i, c in enumerate(blocks) if c.significant}
    label = metric_label(study, found.analysis.metric)
    scale = f"log {label}" if found.analysis.metric in effects.POSITIVE_METRICS else label
    note = (f"Family 1, the declared primary family ({label}): for each complete 2 × 2 block G ∈ {{a, b}} × "
            f"D ∈ {{a, b}}, the G × D interaction of a two-way analysis of {scale} over the runs that did not fail "
            "(failed or diverged runs are left out and counted in the failure comparisons). Runs: per cell, in the "
            "order G a / D a, G a / D b, G b / D a, G b / D b. Effect: the geometric mean of the two imbalanced cells "
            "over that of the two balanced cells (the sizes of G and D cancel), exp(−interaction/2), with its 95% "
            "interval from the two-way analysis' residual variance; F: the interaction's F on 1 and N − 4 degrees "
            "of freedom; residuals: Shapiro–Wilk p of the residuals from the cell means; p: the F test's, or, where "
            f"the residuals fail that check (p < {ALPHA:g}), the Freedman–Lane permutation p "
            f"({INTERACTION_PERMUTATIONS:,} permutations); Holm-adjusted across the blocks. A cell with fewer than "
            f"{effects.MIN_RUNS} runs that did not fail leaves its block untested ({effects.TOO_FEW}).")
    table = Table("Imbalance itself: the 2 × 2 interaction", [*strata, "widths a, b", "runs that did not fail",
                  "ratio [95% CI]", "F (df)", "residuals: Shapiro–Wilk p", "p (test)", "Holm p", "significant",
                  "still improving"], rows, bold, note)
    return effects.contrasts_frame(blocks, strata), table


def _failures_cell(c: effects.Comparison) -> str:
    f = c.failures
    if not (f.n_a and f.n_b):
        return "–"
    return (f"{f.failures_a} of {f.n_a} vs {f.failures_b} of {f.n_b}: p {fmt_p(f.p)}"
            + (f" (Holm {fmt_p(c.failures_holm)})" if c.role == SECONDARY else ""))


def paired_effects_table(study: StudyData, found: Inference) -> tuple[pd.DataFrame, Table]:
    """Every imbalanced cell against each balanced neighbour: the primary metric (family 2) with the two cells'
    failure rates (the failure family), and the secondary metrics (shown, not claimed)."""
    strata = found.strata
    everything = found.analysis.pairwise + found.secondary
    rows, bold = [], set()
    for i, c in enumerate(everything):
        level = math.log2(c.cell[1] / c.cell[0])
        floor = f" ({fmt_p(c.test.floor)})" if c.test is not None else ""
        role = "family 2 (secondary)" if c.role == SECONDARY else "shown"
        rows.append([*(param_text(v) for v in c.stratum),
                     f"{effects.cell_words(c.cell)} ({effects.imbalance_words(level)})",
                     f"{effects.cell_words(c.neighbour)} (same {c.shared})", metric_label(study, c.metric), role,
                     f"{c.runs[0]} vs {c.runs[1]}", effects.effect_words(c), fmt_p(c.p) + floor, fmt_p(c.p_holm),
                     "yes" if c.significant else "no", _failures_cell(c) if c.role == SECONDARY else "",
                     f"{c.still_improving} of {c.trials}"])
        if c.significant:
            bold.add((i, len(strata) + 5))  # the effect
        if c.role == SECONDARY and c.failures_significant:
            bold.add((i, len(strata) + 9))  # the failures
    gate = ("" if found.analysis.gate_open or not found.analysis.contrasts else
            " Family 2 was not tested: not every 2 × 2 interaction of family 1 was significant (serial "
            "gatekeeping), so its Holm p is '–'.")
    note = ("Each imbalanced cell against each balanced cell that shares one of its networks. The two cells are "
            "different networks: their runs are compared as independent samples, not paired by seed. Runs: those "
            "of each cell that did not fail (failed or diverged runs are left out of the scores and counted in "
            "'failed'). Positive scores (FID) as a ratio of geometric means (imbalanced / balanced) with exp of the "
            "Welch 95% interval of the log difference; other metrics as a difference with its Welch interval; "
            f"a cell with fewer than {effects.MIN_RUNS} runs that did not fail gets none ({effects.TOO_FEW}). p: "
            "two-sample permutation test over all C(n₁ + n₂, n₁) splits (Monte Carlo beyond 10⁶), in brackets the "
            "smallest p those runs could give. Holm p: adjusted within family 2 (the primary metric's comparisons, "
            "secondary to family 1, tested only when every 2 × 2 interaction of family 1 is significant or the "
            "design has none). 'failed': failed or diverged runs of the two cells, Fisher's exact p, Holm-adjusted "
            "within the failure family (secondary). Other metrics are shown, not claimed." + gate)
    numbers = effects.comparisons_frame(everything, strata)
    table = Table("Imbalanced cells against their balanced neighbours",
                  [*strata, "imbalanced cell", "balanced neighbour", "metric", "role", "runs that did not fail",
                   "effect [95% CI]", "p (smallest possible)", "Holm p", "claimed", "failed: Fisher p (Holm)",
                   "still improving"], rows, bold, note)
    return numbers, table


def variance_table(study: StudyData, found: Inference) -> tuple[pd.DataFrame, Table] | None:
    metric = found.analysis.metric
    numbers = effects.variance_split(found.frame, found.strata, metric)
    if numbers.empty:
        return None
    strata = found.strata
    rows = [[*(param_text(r[k]) for k in strata),
             f"{r['g_width']:g} / {r['d_width']:g}", str(r["seeds"]), str(r["draws"]), fmt(r["mean"]),
             fmt(r["sd_seed"]), fmt(r["sd_draw"]), fmt(r["seed_share"])] for _, r in numbers.iterrows()]
    label = metric_label(study, metric)
    note = (f"One-way random-effects split of each cell's final {label} (method of moments): every trained "
            "generator (one per seed) is scored on independent sample draws of the final protocol. sd(seed): how "
            "much retraining with another seed moves the score; sd(draw): how much redrawing the samples of one "
            "generator does; seed share = var(seed) / (var(seed) + var(draw)). A share near 1 means the seed, "
            "not the evaluation, decides the number: compare configurations over seeds, not single runs.")
    table = Table(f"Where the variance of {label} comes from", [*strata, "G / D width", "seeds", "draws", "mean",
                  "sd(seed)", "sd(draw)", "seed share"], rows, set(), note)
    return numbers, table


def steps_words(study: StudyData) -> str:
    """' (DCGAN 2,500 generator steps)': the budget a 'still improving' trial ran out of."""
    text = budget_text(study.parent_params.get("budget"))
    return f" ({text})" if text and text != "?" else ""


def findings(study: StudyData, found: Inference) -> list[str]:
    return effects.findings(found.analysis, found.strata, steps_words(study))


def _fisher_floor(n_a: int, n_b: int) -> float:
    """The smallest two-sided p of Fisher's exact test between n_a and n_b runs: every run of one arm failed, none
    of the other."""
    return min(fisher_failures(n_a, n_a, 0, n_b).p, fisher_failures(0, n_a, n_b, n_b).p)


def floors_words(found: Inference) -> str:
    """What the runs can carry: the smallest p of each family's test at the study's numbers of runs, and the
    smallest p Holm needs across each family."""
    pairwise = found.analysis.pairwise
    parts = [f"family 1's F test has no floor (its permutation version cannot go below "
             f"1/{INTERACTION_PERMUTATIONS + 1:,})"] if any(c.analysis for c in found.analysis.contrasts) else []
    tested = [c for c in pairwise if c.test is not None]
    if tested:
        sizes = sorted({c.runs for c in tested})
        parts.append(f"family 2's smallest exact p is {'; '.join(effects.floor_words(*s) for s in sizes)} runs that "
                     f"did not fail, and Holm across its {len(tested)} comparison{'s' if len(tested) != 1 else ''} "
                     f"needs the smallest below {ALPHA / len(tested):.2g}")
    counted = [c for c in pairwise if c.failures.n_a and c.failures.n_b]
    if counted:
        sizes = sorted({(c.failures.n_a, c.failures.n_b) for c in counted})
        parts.append("the failure family's smallest Fisher p is " + "; ".join(
            f"{fmt_p(_fisher_floor(*s))} at {s[0]} vs {s[1]} runs" for s in sizes) + f" (Holm across "
            f"{len(counted)} needs the smallest below {ALPHA / len(counted):.2g})")
    return f" What the runs can carry: {'; '.join(parts)}." if parts else ""


def findings_note(study: StudyData, found: Inference, primary: bool = True) -> str:
    """The declared primary metric and families, the floor of each family's test, and the trials' outcomes.
    primary=False: another section declares the study's primary family (a remedies study), and every family of
    the imbalance analysis is secondary."""
    metric = found.analysis.metric
    label = metric_label(study, metric)
    scale = f"log {label}" if metric in effects.POSITIVE_METRICS else label
    strata = " × ".join(found.strata) or "study"
    draws = ", mean of the independent sample draws" if effects.per_draw_columns(found.frame, metric) else ""
    family_1 = (f"Declared primary family, within each {strata}: family 1" if primary else
                f"The capacity imbalance analysis is secondary in this study, all its sentences labelled (secondary); "
                f"within each {strata}: family 1")
    note = (f"Primary metric: final {label} (test split{draws}), over the runs that did not fail (failed or "
            f"diverged runs are counted as failures instead). {family_1} = the 2 × 2 imbalance contrasts ({len(found.analysis.contrasts)}), each the G × D "
            f"interaction of a two-way analysis of {scale} (F test, or its permutation p where the residuals fail a "
            "normality check). Secondary families, labelled "
            "(secondary): family 2 = each imbalanced cell against each balanced cell sharing one of its networks "
            f"({len(found.analysis.pairwise)}), exact two-sample permutation tests of {scale} (the cells are "
            "different networks: runs unpaired), tested only when family 1 is empty or all significant (the serial "
            "gate is kept); failures = the same pairs of cells' failure rates, Fisher's exact test. Holm-adjusted "
            "within each family; a sentence only where the adjusted p < 0.05. Other metrics are shown in the "
            "tables, not claimed." + floors_words(found))
    frame = found.frame
    if effects.OUTCOME not in frame or frame[effects.OUTCOME].isna().all():
        return note + " The trials carry no outcome: whether they failed or trained long enough is unknown."
    counts = frame[effects.OUTCOME].value_counts()
    note += " Outcomes: " + ", ".join(f"{int(counts.get(o, 0))} {o.replace('_', ' ')}" for o in
                                       ("failed", "diverged", "converged", "still_improving")) + f" of {len(frame)}."
    return note


def factor_levels(frame: pd.DataFrame, factor: str) -> pd.Series:
    """The level of each trial: the value itself, or its quartile bin for a many-valued numeric factor."""
    values = frame[factor]
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        if factor == LR_RATIO:
            numeric = numeric.round(1)  # ratios like 1/3 and 3 become -0.5 and 0.5
        if numeric.nunique() > MAX_LEVELS:
            return pd.qcut(numeric, 4, duplicates="drop").astype(str)
        return numeric
    return values.astype(str)


def effect_sizes(study: StudyData) -> tuple[pd.DataFrame, Table]:
    """Per factor, within groups where every other searched setting is held fixed: the spread of the mean
    primary score across the factor's levels, and a Kruskal–Wallis test of equal medians. Nothing is pooled
    across another setting (a non-factorial grid, pack, the architecture). The capacity ratio is left to the
    cell-by-cell tables: it is a function of the two widths."""
    from scipy.stats import kruskal

    frame = with_factors(study)
    metric = primary_metric(study)
    score = METRIC_PREFIX + metric
    searched = [f for f in study.searched if f in frame and f != "seed"]
    factors = [f for f in dict.fromkeys([*STUDIED_FACTORS, *searched]) if f not in ("arch", CAPACITY) and f in frame
               and frame[f].notna().any()]
    records = []
    for factor in factors:
        derived = {"lr_g", "lr_d"} if factor == LR_RATIO else {LR_RATIO} if factor in ("lr_g", "lr_d") else set()
        held = [k for k in dict.fromkeys(["arch", *searched])
                if k != factor and k not in derived and k in frame and k != CAPACITY]
        groups = frame.groupby(held, dropna=False, sort=True) if held else [((), frame)]
        for key, part in groups:
            key = key if isinstance(key, tuple) else (key,)
            levels = factor_levels(part, factor)
            values = {level: part.loc[levels == level, score].dropna() for level in levels.dropna().unique()}
            values = {level: v for level, v in values.items() if len(v)}
            if len(values) < 2:
                continue
            means = pd.Series({level: v.mean() for level, v in values.items()})
            try:
                h, p = kruskal(*values.values())
            except ValueError:  # every value identical: no ranks to compare
                h, p = math.nan, math.nan
            best = means.idxmin() if metric in effects.POSITIVE_METRICS else means.idxmax()
            records.append({"factor": factor, "held_fixed": ", ".join(f"{k}={param_text(v)}"
                                                                      for k, v in zip(held, key)) or "–",
                            "levels": len(values), "trials": sum(map(len, values.values())),
                            "spread_of_mean": float(means.max() - means.min()), "best_level": best,
                            "best_level_mean": float(means[best]), "kruskal_h": float(h), "kruskal_p": float(p)})
    columns = ["factor", "held_fixed", "levels", "trials", "spread_of_mean", "best_level", "best_level_mean",
               "kruskal_h", "kruskal_p"]
    numbers = pd.DataFrame(records, columns=columns)
    numbers = numbers.sort_values(["factor", "spread_of_mean"], ascending=[True, False], kind="stable")
    numbers = numbers.reset_index(drop=True)
    rows = [[r.factor, r.held_fixed, str(r.levels), str(r.trials), fmt(r.spread_of_mean),
             f"{param_text(r.best_level)} ({fmt(r.best_level_mean)})", fmt(r.kruskal_h), fmt_p(r.kruskal_p)]
            for r in numbers.itertuples()]
    label = metric_label(study, metric)
    table = Table(
        f"Effect sizes on {label}, every other setting held fixed",
        ["factor", "held fixed", "levels", "trials", f"spread of mean {label} (max − min)", "best level (mean)",
         "Kruskal–Wallis H", "p (unadjusted)"],
        rows, set(),
        f"Each row compares a factor's levels among trials that share every other searched setting. Levels of "
        f"numeric factors with more than {MAX_LEVELS} values are quartile bins; log10(lr_g/lr_d) is rounded to 0.1. "
        "p: chance of differences among level medians at least this large if the factor had no effect, not "
        "corrected for the number of rows: descriptive, not a claim." + _with_left_out(study),
    )
    return numbers, table


def optuna_importances(study: StudyData) -> tuple[pd.DataFrame, Table] | None:
    """fANOVA importances of the searched params, from an in-memory Optuna study rebuilt from the trials that
    trained to the end of their budget (compared_trials).

    None when the study did not search with Optuna or fewer than 2 params vary; a table without rows that says
    why when too few trials trained to the end.
    """
    if study.parent_params.get("search") != "optuna":
        return None
    score = METRIC_PREFIX + study.fid_metric
    everything = with_factors(study, study.finished)
    if len([name for name in study.searched if name in everything and everything[name].nunique(dropna=True) > 1]) < 2:
        return None
    frame = with_factors(study)
    varying = [name for name in study.searched if name in frame and frame[name].nunique(dropna=True) > 1]
    complete = frame.dropna(subset=[score, *varying])
    title = f"Optuna parameter importances for {study.fid_label}"
    if len(varying) < 2 or len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        left_out = left_out_line(study, "Importances are computed only")
        why = (f"fANOVA needs at least {MIN_TRIALS_FOR_IMPORTANCE} trials that trained to the end of their budget, "
               "with at least 2 params varying among them; " +
               (f"this study has {len(complete)}." if len(complete) < MIN_TRIALS_FOR_IMPORTANCE else
                f"among its {len(complete)}, {len(varying)} varies."))
        return (pd.DataFrame(columns=["param", "importance"]),
                Table(title, ["param", "importance"], [], set(), f"Not computed: {why} {left_out}".rstrip()))
    import optuna

    distributions = {}
    for name in varying:
        values = complete[name]
        if pd.to_numeric(values, errors="coerce").notna().all() and values.nunique() > MAX_LEVELS:
            low, high = float(values.min()), float(values.max())
            distributions[name] = optuna.distributions.FloatDistribution(low, high, log=low > 0 and high / low > 100)
        else:
            choices = sorted(values.unique().tolist(), key=str)
            distributions[name] = optuna.distributions.CategoricalDistribution(choices)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction = "maximize" if study.parent_params.get("mode") == "max" and study.parent_params.get(
        "metric") == study.fid_metric else "minimize"
    rebuilt = optuna.create_study(direction=direction)
    for _, row in complete.iterrows():
        params = {name: (float(row[name]) if isinstance(distributions[name], optuna.distributions.FloatDistribution)
                         else row[name]) for name in varying}
        rebuilt.add_trial(optuna.trial.create_trial(params=params, distributions=distributions,
                                                    value=float(row[score])))
    try:
        importances = optuna.importance.get_param_importances(rebuilt)
    except (ValueError, RuntimeError):  # e.g. every value identical
        return None
    numbers = pd.DataFrame(list(importances.items()), columns=["param", "importance"])
    note = (left_out_line(study, "fANOVA importances") or f"fANOVA on {len(complete)} trials that trained to the end "
            "of their budget.") + " Importances sum to 1."
    table = Table(title, ["param", "importance"], [[p, fmt(v)] for p, v in importances.items()], {(0, 1)}, note)
    return numbers, table


def design_words(study: StudyData) -> str:
    """The design the parent run declares, which picks the report's sections and tests."""
    design = study.parent_tags.get(names.DESIGN_TAG)
    if design == names.DESIGN_ABLATION:
        return f"ablation: each arm against '{study.parent_tags.get(names.REFERENCE_ARM_TAG, '?')}'"
    if design == names.DESIGN_SEARCH_CONFIRM:
        return "search, then its best configurations and the reference confirmed on fresh seeds"
    return design or "grid or search over the searched settings"


def header(study: StudyData) -> list[tuple[str, str]]:
    """(label, value) pairs describing the study, its trials and its compute."""
    trials = study.trials
    statuses = Counter(trials["status"])
    finished = len(study.finished)
    status_text = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
    partial = [f"{statuses[s]} {s}" for s in ("running", "errored", "unknown") if statuses.get(s)]
    compute = float(np.nansum(trials["duration_s"]))
    wall = study.parent_metrics.get(names.STUDY_WALL_TIME_S)
    params = study.parent_params
    rows = [
        ("study", f"{study.parent_name} (experiment {study.experiment}, parent run {study.parent_run_id})"),
        ("space file", study.parent_tags.get(names.SPACE_TAG) or params.get("space_file", "?")),
        ("data set", study.parent_tags.get(names.DATASET_TAG) or params.get("dataset", "?")),
        ("study status", study.parent_tags.get(names.STATUS_TAG, "?")),
        ("design", design_words(study)),
        ("search / scheduler", f"{params.get('search', '?')} / {params.get('scheduler', '?')}"),
        ("searched", ", ".join(study.searched) or "–"),
        ("fixed", ", ".join(f"{k}={v}" for k, v in json.loads(params.get("fixed", "{}")).items()) or "–"),
        ("budget", budget_text(params.get("budget"))),
        ("trials", f"{len(trials)} ({status_text}); {finished} with a {study.fid_label}"),
        ("compute time", f"{compute:.0f} s summed over the trials' runs that ended (start to end time)"),
        ("wall time", f"{wall:.0f} s" if wall is not None else "– (study not finished)"),
    ]
    compared = len(compared_trials(study))
    if partial or finished < len(trials):
        rows.append(("partial study", f"{', '.join(partial) or 'some trials without a score'}: "
                                      f"the tables use the {compared} trials with a final {study.fid_label}"))
    if compared < finished:
        rows.append(("compared trials", left_out_line(study)))
    extractors = [f"{what} {study.parent_tags[tag]}" for what, tag in (
        ("classifier", names.CLASSIFIER_FINGERPRINT_TAG), ("Inception weights", names.INCEPTION_FINGERPRINT_TAG))
        if tag in study.parent_tags]
    if extractors:  # the fingerprints of the networks every score was computed with (one of each per study)
        rows.append(("feature extractors", ", ".join(extractors)))
    for name, value in study.reference.items():
        rows.append((f"reference: {name}", fmt(value)))
    return rows


def trials_csv_frame(study: StudyData) -> pd.DataFrame:
    """Every trial, params and metric values, with readable column names."""
    return study.trials.rename(columns=lambda c: c.replace(PARAM_PREFIX, "").replace(METRIC_PREFIX, "metric:"))
