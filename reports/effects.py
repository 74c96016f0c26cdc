"""G/D imbalance effects, estimated only between cells that are really comparable, and claimed only when the
declared primary family's test, Holm-corrected across that family, supports them.

A study's trials are split into strata that must not be pooled: the architecture, and every other searched
setting with few levels (k, the loss, pack, ...). Within a stratum a *cell* is one (G width, D width) pair;
a cell is balanced when the widths are equal. An imbalanced cell (g, d) is compared with each balanced cell
that shares one of its networks: (g, g) — same G, D changed — and (d, d) — same D, G changed. Only when it
differs from both in the same direction does the report say that the imbalance itself matters; differing from
one is confounded with the size of the network that changed (a factorial design, G ∈ {a, b} × D ∈ {a, b},
gives every imbalanced cell both neighbours).

Cells are different networks: a seed shares nothing between two of them that pairing could cancel (REFERENCE.md:
the seed-to-seed correlation of log FID across such arms was 0.06–0.51), so every test here treats the runs of
two cells as independent samples — declared by the design, before the data are seen. A run that failed or
diverged (FAILURE_OUTCOMES) leaves every score comparison (its FID, near the noise ceiling or none, measures
nothing) and counts in the failure rates instead.

- `cell_summary`: per stratum and cell, the trials' outcomes (failed or diverged, with its Clopper–Pearson
  interval, still improving) and per metric a mean with a 95% interval that stays in the metric's domain.
- `contrasts`, family 1, the declared primary family: per complete 2 × 2 block the G × D interaction of a
  two-way analysis of the runs that did not fail (log scale for positive scores such as FID; F test on 1 and
  N − 4 degrees of freedom, or its permutation version when the residuals fail the normality check),
  Holm across the blocks.
- `comparisons`: per imbalanced cell and balanced neighbour, a ratio of geometric means with its Welch interval
  (a difference for other metrics) and the exact two-sample permutation p; the primary metric's comparisons are
  family 2 (secondary, Holm within it, tested only when every contrast of family 1 is significant), and the
  same pairs of cells compare failure rates by Fisher's exact test (secondary, Holm within it); other metrics
  are shown, never claimed.
- `findings`: the sentences of "What this study shows"; those of a secondary family start "(secondary)".

Pure pandas/numpy on the report's trial frame (one row per trial that trained to the end of its budget, or failed
without a score; params unprefixed).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from gan import names
from gan.convergence import DIVERGED
from gan.outcome import FAILED, STILL_IMPROVING
from reports.load import METRIC_PREFIX
from reports.stats import (ALPHA, SECONDARY, Factorial2x2, FailureComparison, Interval, PermutationTest,
                           UnpairedRatioEffect, bounded_interval, clopper_pearson, fisher_failures, holm_by_family,
                           interaction_test_2x2, min_two_sample_p, paired_difference, positive_interval, t_interval,
                           two_sample_permutation_test, unpaired_log_ratio, welch_interval)

CAPACITY = names.CAPACITY_RATIO_LOG2
BASE_WIDTH = "base_width"  # max(g_width, d_width)
OUTCOME = "outcome"  # the column of the trial frame holding the trial's outcome (gan.outcome)
FAILURE_OUTCOMES = (FAILED, DIVERGED)  # outcomes of a run whose final score measures nothing: it counts as a failure
MIN_RUNS = 2  # runs that did not fail, per cell, for an estimate: an interval needs a spread on both sides
TOO_FEW = "too few runs that did not fail"
MAX_STRATUM_LEVELS = 6  # a searched setting with more values (e.g. a sampled learning rate) is not a stratum
WIDTH_PARAMS = ("g_width", "d_width", CAPACITY, BASE_WIDTH, "seed")

# Scores that are positive and whose spread grows with their level: compared as ratios, intervals on logs.
POSITIVE_METRICS = {names.FID, names.PIXEL_FD, names.FID_INCEPTION}
# Bounded scores: intervals on the logit scale inside these domains. Classes and modes assume 10 digit classes.
BOUNDED_METRICS = {names.CLASSES_COVERED: (0.0, 10.0), names.MODES_COVERED: (0.0, 1000.0),
                   names.COVERAGE: (0.0, 1.0), names.PRECISION: (0.0, 1.0), names.RECALL: (0.0, 1.0),
                   names.D_ACCURACY: (0.0, 1.0), names.D_GAP: (-1.0, 1.0)}


def metric_interval(values, metric: str) -> Interval:
    """The 95% interval of a metric's mean over trials, in the metric's domain (geometric mean for FID)."""
    if metric in POSITIVE_METRICS:
        return positive_interval(values)
    if metric in BOUNDED_METRICS:
        return bounded_interval(values, *BOUNDED_METRICS[metric])
    return t_interval(values)


def with_base_width(frame: pd.DataFrame) -> pd.DataFrame:
    if "g_width" in frame and "d_width" in frame:
        widths = frame[["g_width", "d_width"]].apply(pd.to_numeric, errors="coerce")
        frame = frame.assign(**{BASE_WIDTH: widths.max(axis=1)})
    return frame


def strata_keys(frame: pd.DataFrame, searched: list[str]) -> list[str]:
    """arch, then every other searched setting with 2..MAX_STRATUM_LEVELS values (widths are the cells)."""
    keys = ["arch"] if "arch" in frame else []
    by_arch = frame.groupby("arch") if keys else [(None, frame)]
    for key in searched:
        if key in keys or key in WIDTH_PARAMS or key not in frame:
            continue
        levels = max((group[key].nunique(dropna=True) for _, group in by_arch), default=0)  # no trial: no stratum
        if 2 <= levels <= MAX_STRATUM_LEVELS:
            keys.append(key)
    return keys


def _groups(frame: pd.DataFrame, strata: list[str]):
    """(stratum tuple, part) per stratum; one group () for a study without strata."""
    if not strata:
        return [((), frame)]
    return [(key if isinstance(key, tuple) else (key,), part)
            for key, part in frame.groupby(strata, dropna=False, sort=True)]


def _cells(part: pd.DataFrame):
    """((g, d), trials) per cell of a stratum."""
    widths = part[["g_width", "d_width"]].apply(pd.to_numeric, errors="coerce")
    return [((float(g), float(d)), part.loc[index])
            for (g, d), index in widths.groupby(["g_width", "d_width"], sort=True).groups.items()]


def outcome_counts(group: pd.DataFrame) -> tuple[int, int, int]:
    """(failed or diverged, still improving, trials with an outcome) of a group of trials."""
    if OUTCOME not in group:
        return 0, 0, 0
    labels = group[OUTCOME].dropna()
    return int(labels.isin(FAILURE_OUTCOMES).sum()), int((labels == STILL_IMPROVING).sum()), int(len(labels))


def failed_mask(frame: pd.DataFrame) -> pd.Series:
    """Which of `frame`'s runs failed or diverged (FAILURE_OUTCOMES); none where no outcome was logged."""
    return frame[OUTCOME].isin(FAILURE_OUTCOMES) if OUTCOME in frame else pd.Series(False, index=frame.index)


def compared_values(cell: pd.DataFrame, column: str, metric: str) -> np.ndarray:
    """The finite `column` values of a cell's runs that did not fail (the positive ones for a positive metric):
    what every score comparison of this module compares."""
    failed = failed_mask(cell)
    values = pd.to_numeric(cell.loc[~failed, column], errors="coerce").to_numpy(dtype=np.float64)
    values = values[np.isfinite(values)]
    return values[values > 0] if metric in POSITIVE_METRICS else values


def cell_summary(frame: pd.DataFrame, strata: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row per stratum and cell: the widths, log2(D/G), n, failed or diverged (count, rate, Clopper–Pearson
    interval), still improving, and per metric `<m>_mean`, `<m>_ci_low`, `<m>_ci_high`, `<m>_n` (metric_interval) over
    the runs that did not fail."""
    rows = []
    for stratum, part in _groups(frame, strata):
        for (g, d), cell in _cells(part):
            row = dict(zip(strata, stratum))
            row.update({"g_width": g, "d_width": d, CAPACITY: math.log2(d / g), "n": len(cell)})
            failed, improving, labelled = outcome_counts(cell)
            low, high = clopper_pearson(failed, labelled)
            row.update(failed=failed, still_improving=improving, with_outcome=labelled,
                       failed_rate=failed / labelled if labelled else math.nan, failed_ci_low=low, failed_ci_high=high)
            # a failed run's score measures nothing (FID near the noise ceiling): it counts in `failed`, not here
            kept = cell[~failed_mask(cell)]
            for metric in metrics:
                column = METRIC_PREFIX + metric
                interval = metric_interval(kept[column] if column in kept else [], metric)
                row.update({f"{metric}_mean": interval.mean, f"{metric}_ci_low": interval.low,
                            f"{metric}_ci_high": interval.high, f"{metric}_n": interval.n})
            rows.append(row)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Estimate:
    """An effect on its metric's scale with its 95% interval: a ratio for positive metrics (FID), else a
    difference."""

    scale: str  # "ratio" or "difference"
    value: float
    low: float
    high: float

    @property
    def direction(self) -> int:
        """+1: the imbalanced side scores higher, −1 lower, 0 no difference."""
        centre = 1.0 if self.scale == "ratio" else 0.0
        if not math.isfinite(self.value) or self.value == centre:
            return 0
        return 1 if self.value > centre else -1


@dataclass(frozen=True)
class UnpairedDifference:
    """treated − control between independent runs: Welch's 95% interval, the two-sample permutation test."""

    difference: Interval
    test: PermutationTest

    @property
    def p(self) -> float:
        return self.test.p


@dataclass(frozen=True)
class Comparison:
    """An imbalanced cell against a balanced cell that shares one of its networks, over the runs of each that did
    not fail (unpaired: the cells are different networks), and their failure rates."""

    stratum: tuple
    cell: tuple[float, float]  # (G width, D width) of the imbalanced cell
    neighbour: tuple[float, float]  # the balanced cell
    shared: str  # "G" or "D": the network both cells have
    metric: str
    runs: tuple[int, int]  # runs that did not fail: (imbalanced cell, neighbour)
    ratio: UnpairedRatioEffect | None  # positive metrics, when each cell keeps MIN_RUNS runs
    difference: UnpairedDifference | None  # other metrics, likewise
    failures: FailureComparison  # failed or diverged runs of the two cells, Fisher's exact test
    still_improving: int  # trials of the two cells still improving at the end of their budget
    trials: int  # trials of the two cells with an outcome
    role: str = "shown"  # SECONDARY: family 2 (the primary metric's comparisons); "shown": other metrics
    p_holm: float = math.nan  # Holm-adjusted within family 2 (NaN for other metrics, or when the gate stayed closed)
    failures_holm: float = math.nan  # Holm-adjusted within the failure family (family 2's rows only)

    @property
    def estimate(self) -> Estimate | None:
        if self.ratio is not None:
            return Estimate("ratio", self.ratio.ratio, self.ratio.low, self.ratio.high)
        if self.difference is not None:
            d = self.difference.difference
            return Estimate("difference", d.mean, d.low, d.high)
        return None

    @property
    def test(self) -> PermutationTest | None:
        effect = self.ratio if self.ratio is not None else self.difference
        return effect.test if effect is not None else None

    @property
    def p(self) -> float:
        return self.test.p if self.test is not None else math.nan

    @property
    def n(self) -> int:
        """Runs compared, both cells together."""
        return sum(self.runs)

    @property
    def direction(self) -> int:
        return self.estimate.direction if self.estimate is not None else 0

    @property
    def significant(self) -> bool:
        return self.role == SECONDARY and self.p_holm < ALPHA

    @property
    def failures_significant(self) -> bool:
        return self.failures_holm < ALPHA


def _cells_by_stratum(frame: pd.DataFrame, strata: list[str], column: str):
    """(stratum, {(g, d): trials}) per stratum; nothing when the frame has no widths or no `column`."""
    if column not in frame or "g_width" not in frame:
        return []
    return [(stratum, dict(_cells(part))) for stratum, part in _groups(frame, strata)]


def _per_seed(cell: pd.DataFrame, column: str) -> pd.Series:
    return cell.groupby("seed")[column].mean()


def comparisons(frame: pd.DataFrame, strata: list[str], metric: str) -> list[Comparison]:
    """Every imbalanced cell against each balanced cell sharing G or D, in the same stratum, on `metric`: a ratio of
    geometric means (positive metrics) or a difference of means, each with its Welch interval and exact two-sample
    permutation p, when both cells keep MIN_RUNS runs that did not fail; and Fisher's exact test of their failures."""
    column = METRIC_PREFIX + metric
    found = []
    for stratum, cells in _cells_by_stratum(frame, strata, column):
        for (g, d), treated in cells.items():
            if g == d:
                continue
            for neighbour, shared in (((g, g), "G"), ((d, d), "D")):
                if neighbour not in cells:
                    continue
                control = cells[neighbour]
                a, b = compared_values(treated, column, metric), compared_values(control, column, metric)
                ratio = difference = None
                if min(len(a), len(b)) >= MIN_RUNS and metric in POSITIVE_METRICS:
                    ratio = unpaired_log_ratio(a, b)
                elif min(len(a), len(b)) >= MIN_RUNS:
                    difference = UnpairedDifference(welch_interval(a, b), two_sample_permutation_test(a, b))
                failed_t, improving_t, labelled_t = outcome_counts(treated)
                failed_c, improving_c, labelled_c = outcome_counts(control)
                found.append(Comparison(stratum, (g, d), neighbour, shared, metric, (len(a), len(b)), ratio,
                                        difference, fisher_failures(failed_t, labelled_t, failed_c, labelled_c),
                                        improving_t + improving_c, labelled_t + labelled_c))
    return found


# --- in words ----------------------------------------------------------------------------------------
METRIC_WORDS = {names.FID: "FID", names.PIXEL_FD: "pixel FD", names.FID_INCEPTION: "Inception FID",
                names.CLASSES_COVERED: "classes covered", names.MODES_COVERED: "modes covered (of 1,000)",
                names.PARZEN: "Parzen log-likelihood"}
SECONDARY_LABEL = "(secondary) "  # opens every sentence of a family other than the declared primary one


def imbalance_words(level: float) -> str:
    """'D 8× wider than G' for +3, 'G 4× wider than D' for −2, fractional ratios as 2^x."""
    ratio = 2 ** abs(level)
    times = f"{ratio:.0f}×" if abs(ratio - round(ratio)) < 1e-9 else f"{ratio:.2g}×"
    return f"D {times} wider than G" if level > 0 else f"G {times} wider than D"


def cell_words(cell: tuple[float, float]) -> str:
    return f"G {cell[0]:g} / D {cell[1]:g}"


def number(value: float) -> str:
    if not math.isfinite(value):
        return "–"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def p_words(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def stratum_words(strata: list[str], stratum: tuple) -> str:
    parts = [str(value) if key == "arch" else f"{key} = {value:g}" if isinstance(value, float)
             else f"{key} = {value}" for key, value in zip(strata, stratum)]
    return parts[0].upper() + (f" ({', '.join(parts[1:])})" if len(parts) > 1 else "") if parts else "the GAN"


def effect_words(c) -> str:
    """'×1.46 [1.10, 1.94]' for a ratio, '+3.2 [0.4, 6.0]' for a difference, TOO_FEW without an estimate."""
    e = c.estimate
    if e is None:
        return TOO_FEW
    if e.scale == "ratio":
        return f"×{number(e.value)} [{number(e.low)}, {number(e.high)}]"
    return f"{e.value:+.3g} [{number(e.low)}, {number(e.high)}]"


def floor_words(n_a: int, n_b: int) -> str:
    """'2/C(12, 6) = 0.0022 at 6 vs 6': the smallest p of the exact two-sample test of these arms."""
    splits = f"C({n_a + n_b}, {n_a})"
    return f"{2 if n_a == n_b else 1}/{splits} = {p_words(min_two_sample_p(n_a, n_b))} at {n_a} vs {n_b}"


def runs_needed(comparisons: int, alpha: float = ALPHA) -> int:
    """The fewest runs per cell (n vs n) with which Holm across `comparisons` exact two-sample tests can reach
    alpha: 2/C(2n, n) < alpha/m."""
    n = 1
    while min_two_sample_p(n, n) * max(comparisons, 1) >= alpha:
        n += 1
    return n


def _training_length(c, steps_words: str, what: str = "comparison") -> str:
    if not c.still_improving:
        return ""
    return (f"; {c.still_improving} of {c.trials} trials of this {what} were still improving at the end of "
            f"their budget{steps_words}, so the result may change with longer training")


def _p_kind(test: PermutationTest) -> str:
    return "exact permutation" if test.exact else "Monte Carlo permutation"


def comparison_sentence(c: Comparison, strata: list[str], steps_words: str = "") -> str:
    label = METRIC_WORDS.get(c.metric, c.metric)
    level = math.log2(c.cell[1] / c.cell[0])
    return (f"{SECONDARY_LABEL}{stratum_words(strata, c.stratum)}: {imbalance_words(level)} ({cell_words(c.cell)}) "
            f"gives {effect_words(c)} the final {label} of the balanced {cell_words(c.neighbour)} (same {c.shared}; "
            f"{c.runs[0]} vs {c.runs[1]} runs that did not fail; {_p_kind(c.test)} p = {p_words(c.p)}, "
            f"Holm-adjusted p = {p_words(c.p_holm)}){_training_length(c, steps_words)}.")


def failure_sentence(c: Comparison, strata: list[str]) -> str:
    f = c.failures
    return (f"{SECONDARY_LABEL}{stratum_words(strata, c.stratum)}: {cell_words(c.cell)} failed or diverged in "
            f"{f.failures_a} of {f.n_a} runs against {f.failures_b} of {f.n_b} for the balanced "
            f"{cell_words(c.neighbour)} (same {c.shared}; Fisher's exact p = {p_words(f.p)}, Holm-adjusted "
            f"p = {p_words(c.failures_holm)}).")


@dataclass(frozen=True)
class Verdict:
    """Whether an imbalanced cell differs from its balanced neighbours, by family 2's adjusted tests."""

    stratum: tuple
    cell: tuple[float, float]
    neighbours: int  # balanced cells that share a network with it (0, 1 or 2)
    significant: int  # of them, how many differ at Holm-adjusted p < 0.05
    same_direction: bool  # every significant comparison points the same way
    direction: int

    @property
    def imbalance_itself(self) -> bool:
        return self.neighbours == 2 and self.significant == 2 and self.same_direction


def verdicts(pairwise: list[Comparison]) -> list[Verdict]:
    by_cell: dict[tuple, list[Comparison]] = {}
    for c in pairwise:
        by_cell.setdefault((c.stratum, c.cell), []).append(c)
    result = []
    for (stratum, cell), group in by_cell.items():
        significant = [c for c in group if c.significant]
        directions = {c.direction for c in significant}
        result.append(Verdict(stratum, cell, len(group), len(significant), len(directions) <= 1,
                              next(iter(directions)) if len(directions) == 1 else 0))
    return result


def verdict_sentence(v: Verdict, strata: list[str], label: str) -> str | None:
    where = f"{SECONDARY_LABEL}{stratum_words(strata, v.stratum)}, {cell_words(v.cell)}"
    if v.imbalance_itself:
        return (f"{where}: the imbalance itself matters — this cell's final {label} is "
                f"{'higher' if v.direction > 0 else 'lower'} than both balanced cells that share one of its networks.")
    if v.significant == 2 and v.neighbours == 2:
        return (f"{where}: differs from both balanced neighbours but in opposite directions (above one, below the "
                f"other): the networks' sizes, not the imbalance, order these cells.")
    if v.significant and v.neighbours == 2:
        return (f"{where}: differs from only one of its 2 balanced neighbours: not shown to be an effect of "
                "imbalance rather than of the size of the network that changed.")
    if v.significant and v.neighbours == 1:
        return (f"{where}: differs from its one balanced neighbour, but the study has no balanced cell with the "
                "other network's width, so imbalance is confounded with that network's size.")
    return None


def power_sentence(pairwise: list[Comparison], what: str, alpha: float = ALPHA) -> str | None:
    """One sentence when no comparison of family 2 can reach alpha after Holm, whatever the data; else None. Each
    comparison's floor is its exact two-sample test's smallest p, 2/C(2n, n) at n vs n runs that did not fail."""
    tested = [c for c in pairwise if math.isfinite(c.p)]
    if not tested:
        return None
    m = len(tested)
    best = min(tested, key=lambda c: min_two_sample_p(*c.runs))  # the others can reach even less
    if min_two_sample_p(*best.runs) * m < alpha:
        return None
    return (f"{SECONDARY_LABEL}{what}: with {best.runs[0]} vs {best.runs[1]} runs that did not fail the smallest "
            f"exact p is {floor_words(*best.runs).rsplit(' at ', 1)[0]}, and Holm across {m} comparison"
            f"{'s' if m > 1 else ''} needs p < {alpha / m:.3g}: this design cannot support a claim here; "
            f"{runs_needed(m, alpha)} runs per cell that did not fail would.")


def _block(widths: tuple[float, float]) -> list[tuple[float, float]]:
    """The cells of a 2 × 2 block in interaction_test_2x2's order (G's level first, D's second): 00, 01, 10, 11."""
    a, b = widths
    return [(a, a), (a, b), (b, a), (b, b)]


@dataclass(frozen=True)
class Contrast:
    """The imbalance contrast of a 2 × 2 block G ∈ {a, b} × D ∈ {a, b} (a < b) over the runs that did not fail: the
    G × D interaction of a two-way analysis (reports.stats.interaction_test_2x2). On the log scale the interaction
    is I = log GM(a,a) − log GM(a,b) − log GM(b,a) + log GM(b,b); the geometric mean of the two imbalanced cells
    over that of the two balanced cells is exp(−I/2), in which each network's own size cancels."""

    stratum: tuple
    widths: tuple[float, float]  # (a, b)
    metric: str
    runs: tuple[int, int, int, int]  # runs that did not fail, in _block's order
    failed: int  # runs of the block that failed or diverged (left out)
    analysis: Factorial2x2 | None  # None when a cell keeps fewer than MIN_RUNS runs that did not fail
    estimate: Estimate | None  # imbalanced over balanced: a ratio for positive metrics, else a difference
    still_improving: int
    trials: int
    p_holm: float = math.nan  # Holm-adjusted across the blocks (family 1)

    @property
    def permutation_used(self) -> bool:
        """The residuals fail the normality check (Shapiro–Wilk p < 0.05): the permutation p stands in for F's."""
        return self.analysis is not None and self.analysis.residual_normality_p < ALPHA

    @property
    def p(self) -> float:
        if self.analysis is None:
            return math.nan
        return self.analysis.permutation_p if self.permutation_used else self.analysis.interaction.p

    @property
    def direction(self) -> int:
        return self.estimate.direction if self.estimate is not None else 0

    @property
    def significant(self) -> bool:
        return self.p_holm < ALPHA


def two_way_interaction(cells: list[list[np.ndarray]], metric: str) -> tuple[Factorial2x2, Estimate]:
    """interaction_test_2x2 of a block (`cells[i][j]`: the runs at G level i and D level j) and the imbalance
    estimate it gives. A positive metric is analysed on the log scale: imbalanced / balanced = interaction^(−1/2),
    its interval [high^(−1/2), low^(−1/2)]. Any other metric on its own scale: interaction_test_2x2 takes logs, so
    it is handed exp((y − c)/s) (c the mean, s the largest |y − c|, keeping exp within [1/e, e]); its contrasts
    are then those of y divided by s, and F, p and the residual checks do not change under that affine map:
    imbalanced − balanced = −s·log(interaction)/2."""
    if metric in POSITIVE_METRICS:
        result = interaction_test_2x2(cells)
        i = result.interaction
        return result, Estimate("ratio", i.ratio ** -0.5, i.high ** -0.5, i.low ** -0.5)
    pooled = np.concatenate([cells[i][j] for i in (0, 1) for j in (0, 1)])
    centre = float(pooled.mean())
    spread = float(np.abs(pooled - centre).max()) or 1.0
    result = interaction_test_2x2([[np.exp((cells[i][j] - centre) / spread) for j in (0, 1)] for i in (0, 1)])
    i = result.interaction

    def back(ratio: float) -> float:
        return -0.5 * spread * math.log(ratio) if ratio > 0 else math.nan

    return result, Estimate("difference", back(i.ratio), back(i.high), back(i.low))


def contrasts(frame: pd.DataFrame, strata: list[str], metric: str) -> list[Contrast]:
    """One contrast per complete 2 × 2 block of widths in each stratum (p not yet adjusted: see analyse)."""
    column = METRIC_PREFIX + metric
    found = []
    for stratum, cells in _cells_by_stratum(frame, strata, column):
        widths = sorted({w for cell in cells for w in cell})
        for i, a in enumerate(widths):
            for b in widths[i + 1:]:
                block = _block((a, b))
                if not all(cell in cells for cell in block):
                    continue
                values = [compared_values(cells[cell], column, metric) for cell in block]
                analysis = estimate = None
                if min(len(v) for v in values) >= MIN_RUNS:
                    analysis, estimate = two_way_interaction([values[:2], values[2:]], metric)
                counts = [outcome_counts(cells[cell]) for cell in block]
                found.append(Contrast(stratum, (a, b), metric, tuple(len(v) for v in values),
                                      sum(c[0] for c in counts), analysis, estimate, sum(c[1] for c in counts),
                                      sum(c[2] for c in counts)))
    return found


def _block_runs_words(c: Contrast) -> str:
    """'6 runs per cell that did not fail' or, when the cells differ, each cell's count; and the runs left out."""
    if len(set(c.runs)) == 1:
        words = f"{c.runs[0]} runs per cell that did not fail"
    else:
        words = "runs that did not fail: " + ", ".join(f"{n} of {cell_words(cell)}"
                                                        for n, cell in zip(c.runs, _block(c.widths)))
    return words + (f", {c.failed} failed or diverged left out" if c.failed else "")


def _interaction_words(c: Contrast) -> str:
    """'F(1, 20) = 9.1, p = 0.0068, Holm-adjusted p = 0.014', naming the permutation p where it is used."""
    i = c.analysis.interaction
    f = f"F(1, {i.df_error}) = {number(i.f)}"
    if c.permutation_used:
        return (f"{f}; residuals not normal (Shapiro–Wilk p = {p_words(c.analysis.residual_normality_p)}), so the "
                f"permutation p = {p_words(c.p)} is used, Holm-adjusted p = {p_words(c.p_holm)}")
    return f"{f}, p = {p_words(c.p)}, Holm-adjusted p = {p_words(c.p_holm)}"


def _analysed_words(metric: str) -> str:
    label = METRIC_WORDS.get(metric, metric)
    return f"log {label}" if metric in POSITIVE_METRICS else label


def contrast_sentence(c: Contrast, strata: list[str], steps_words: str = "") -> str:
    label = METRIC_WORDS.get(c.metric, c.metric)
    a, b = c.widths
    training = _training_length(c, steps_words, "block")
    return (f"{stratum_words(strata, c.stratum)}: imbalance itself {'raises' if c.direction > 0 else 'lowers'} the "
            f"final {label}: the imbalanced cells G {a:g} / D {b:g} and G {b:g} / D {a:g} score {effect_words(c)} "
            f"{'times ' if c.estimate.scale == 'ratio' else ''}the balanced G {a:g} / D {a:g} and G {b:g} / D {b:g} "
            f"(the G × D interaction of a two-way analysis of {_analysed_words(c.metric)}, in which the sizes of G "
            f"and D cancel; {_block_runs_words(c)}; {_interaction_words(c)}){training}.")


def null_contrast_sentence(c: Contrast, strata: list[str], steps_words: str = "") -> str:
    """What a contrast that is not significant shows: its estimate and interval, stated as no evidence."""
    a, b = c.widths
    label = METRIC_WORDS.get(c.metric, c.metric)
    training = _training_length(c, steps_words, "block")
    return (f"{stratum_words(strata, c.stratum)}, widths {a:g} and {b:g}: no evidence that imbalance itself changes "
            f"the final {label}: the imbalanced cells score {effect_words(c)} "
            f"{'times ' if c.estimate.scale == 'ratio' else ''}the balanced ones (G × D interaction of "
            f"{_analysed_words(c.metric)}; {_block_runs_words(c)}; {_interaction_words(c)}){training}. Not "
            "significant is not evidence of no effect: the interval shows the effects this design cannot rule out.")


def untested_contrast_sentence(c: Contrast, strata: list[str]) -> str:
    a, b = c.widths
    return (f"{stratum_words(strata, c.stratum)}, widths {a:g} and {b:g}: imbalance itself is not tested, {TOO_FEW} "
            f"({_block_runs_words(c)}; each cell needs {MIN_RUNS}).")


CONTRAST_FAMILY = "family 1: imbalance itself, the G × D interaction of each 2 × 2 block"
CELL_FAMILY = "family 2: each imbalanced cell against each balanced neighbour"
FAILURE_FAMILY = "failures: each imbalanced cell against each balanced neighbour"


@dataclass(frozen=True)
class Analysis:
    """The study's tests on its primary metric. Family 1, declared primary: the imbalance contrasts of complete
    2 × 2 blocks, Holm across them. Secondary, each Holm-adjusted within itself: family 2, each imbalanced cell
    against each balanced neighbour, tested only when family 1 is empty or every one of its contrasts is
    significant (serial gatekeeping; a block too few runs leave untested is not in family 1); and the failure
    rates of the same pairs of cells."""

    metric: str
    contrasts: list[Contrast]
    pairwise: list[Comparison]  # family 2 (p_holm NaN when the gate stayed closed), with the failure family
    gate_open: bool


def analyse(frame: pd.DataFrame, strata: list[str], metric: str) -> Analysis:
    blocks = contrasts(frame, strata, metric)
    pairwise = comparisons(frame, strata, metric)
    adjusted = holm_by_family({CONTRAST_FAMILY: [c.p for c in blocks], CELL_FAMILY: [c.p for c in pairwise],
                               FAILURE_FAMILY: [c.failures.p for c in pairwise]}, primary=CONTRAST_FAMILY)
    blocks = [replace(c, p_holm=p) for c, p in zip(blocks, adjusted[CONTRAST_FAMILY].adjusted)]
    # a block left untested (too few runs that did not fail) is not in family 1, as it is not in Holm's m
    gate_open = all(c.significant for c in blocks if c.analysis is not None)
    pairwise = [replace(c, role=SECONDARY, p_holm=p if gate_open else math.nan, failures_holm=q)
                for c, p, q in zip(pairwise, adjusted[CELL_FAMILY].adjusted, adjusted[FAILURE_FAMILY].adjusted)]
    return Analysis(metric, blocks, pairwise, gate_open)


def findings(analysis: Analysis, strata: list[str], steps_words: str = "") -> list[str]:
    """The sentences of "What this study shows": family 1's contrasts (significant, then not, then untested), then
    the secondary families, each sentence opening with SECONDARY_LABEL: family 2's significant comparisons and what
    they say about imbalance per cell (or why the design cannot support a claim), and significant failure rates."""
    tested = [c for c in analysis.contrasts if c.analysis is not None]
    sentences = [contrast_sentence(c, strata, steps_words) for c in tested if c.significant]
    sentences += [null_contrast_sentence(c, strata, steps_words) for c in tested if not c.significant]
    sentences += [untested_contrast_sentence(c, strata) for c in analysis.contrasts if c.analysis is None]
    if not analysis.gate_open:
        sentences.append(f"{SECONDARY_LABEL}Since not every imbalance contrast is significant, the cell-by-cell "
                         "comparisons are not tested (serial gatekeeping); they are shown, not claimed, in the "
                         "cell-by-cell table.")
    else:
        cannot = power_sentence(analysis.pairwise, "Cell-by-cell comparisons")
        sentences += [cannot] if cannot else []
        sentences += [comparison_sentence(c, strata, steps_words) for c in analysis.pairwise if c.significant]
        label = METRIC_WORDS.get(analysis.metric, analysis.metric)
        sentences += [s for v in verdicts(analysis.pairwise) if (s := verdict_sentence(v, strata, label))]
    sentences += [failure_sentence(c, strata) for c in analysis.pairwise if c.failures_significant]
    return sentences


def _estimate_columns(c) -> dict:
    """The CSV columns of an estimate: its scale, value and 95% interval (NaN without one)."""
    e = c.estimate
    return {"metric": c.metric, "scale": e.scale if e is not None else
            "ratio" if c.metric in POSITIVE_METRICS else "difference",
            "estimate": e.value if e is not None else math.nan, "ci_low": e.low if e is not None else math.nan,
            "ci_high": e.high if e is not None else math.nan}


def contrasts_frame(found: list[Contrast], strata: list[str]) -> pd.DataFrame:
    """One row per block: runs that did not fail per cell (aa, ab, ba, bb: G's width first), the imbalance
    estimate, the interaction's F test, the residual check, the permutation p, the p used and its Holm p."""
    rows = []
    for c in found:
        i = c.analysis.interaction if c.analysis is not None else None
        rows.append({**dict(zip(strata, c.stratum)), "width_a": c.widths[0], "width_b": c.widths[1],
                     **dict(zip(("runs_aa", "runs_ab", "runs_ba", "runs_bb"), c.runs)), "failed": c.failed,
                     **_estimate_columns(c), "f": i.f if i else math.nan, "df_error": i.df_error if i else math.nan,
                     "p_f": i.p if i else math.nan,
                     "normality_p": c.analysis.residual_normality_p if c.analysis else math.nan,
                     "permutation_p": c.analysis.permutation_p if c.analysis else math.nan,
                     "p_test": ("permutation" if c.permutation_used else "F") if c.analysis else "",
                     "p": c.p, "p_holm": c.p_holm, "significant": c.significant,
                     "still_improving": c.still_improving, "trials": c.trials})
    return pd.DataFrame(rows)


def comparisons_frame(found: list[Comparison], strata: list[str]) -> pd.DataFrame:
    """One row per comparison: the cells, runs that did not fail, the estimate, the permutation test (p, whether
    exact, its floor), family 2's Holm p, and the two cells' failures with Fisher's p and its Holm p."""
    return pd.DataFrame([{**dict(zip(strata, c.stratum)), "g_width": c.cell[0], "d_width": c.cell[1],
                          CAPACITY: math.log2(c.cell[1] / c.cell[0]), "neighbour_g_width": c.neighbour[0],
                          "neighbour_d_width": c.neighbour[1], "shared": c.shared, "role": c.role,
                          "runs": c.runs[0], "neighbour_runs": c.runs[1], **_estimate_columns(c), "p": c.p,
                          "exact": c.test.exact if c.test else math.nan,
                          "p_floor": c.test.floor if c.test else math.nan, "p_holm": c.p_holm,
                          "significant": c.significant, "failed": c.failures.failures_a, "with_outcome": c.failures.n_a,
                          "neighbour_failed": c.failures.failures_b, "neighbour_with_outcome": c.failures.n_b,
                          "fisher_p": c.failures.p, "fisher_holm_p": c.failures_holm,
                          "still_improving": c.still_improving, "trials": c.trials} for c in found])


def seed_paired_difference(treated: pd.DataFrame, control: pd.DataFrame, column: str):
    """`column` in `treated` minus `control`, seed by seed over the seeds both have (each seed's mean):
    reports.stats.DifferenceEffect (paired t-interval, exact sign-flip p)."""
    a, b = _per_seed(treated, column), _per_seed(control, column)
    seeds = a.index.intersection(b.index)
    return paired_difference(a[seeds].to_numpy(), b[seeds].to_numpy())


def per_draw_columns(frame: pd.DataFrame, metric: str) -> list[str]:
    """The trial frame's columns of the final evaluation's independent draws of `metric`, in draw order."""
    prefix = METRIC_PREFIX + names.draw(metric, 0)[:-1]
    return sorted((c for c in frame.columns if c.startswith(prefix) and c[len(prefix):].isdigit()),
                  key=lambda c: int(c[len(prefix):]))


def variance_split(frame: pd.DataFrame, strata: list[str], metric: str) -> pd.DataFrame:
    """Per stratum and cell: the final `metric`'s variance split into training seed and evaluation draw."""
    from reports.stats import one_way_variance

    columns = per_draw_columns(frame, metric)
    if len(columns) < 2:
        return pd.DataFrame()
    rows = []
    for stratum, part in _groups(frame, strata):
        for (g, d), cell in _cells(part):
            split = one_way_variance(cell[columns].to_numpy(dtype=np.float64))
            rows.append({**dict(zip(strata, stratum)), "g_width": g, "d_width": d, "seeds": split.seeds,
                         "draws": split.draws, "mean": split.grand_mean, "sd_seed": math.sqrt(split.seed_variance),
                         "sd_draw": math.sqrt(split.draw_variance), "seed_share": split.seed_share})
    return pd.DataFrame(rows)
