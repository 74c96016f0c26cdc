"""G/D imbalance effects, estimated only between cells that are really comparable, and claimed only when an
exact test corrected for the whole family of comparisons supports them.

A study's trials are split into strata that must not be pooled: the architecture, and every other searched
setting with few levels (k, the loss, pack, ...). Within a stratum a *cell* is one (G width, D width) pair;
a cell is balanced when the widths are equal. An imbalanced cell (g, d) is compared with each balanced cell
that shares one of its networks: (g, g) — same G, D changed — and (d, d) — same D, G changed. Only when it
differs from both in the same direction does the report say that the imbalance itself matters; differing from
one is confounded with the size of the network that changed (a factorial design, G ∈ {a, b} × D ∈ {a, b},
gives every imbalanced cell both neighbours).

- `cell_summary`: per stratum and cell, the trials' outcomes (failed with its Clopper–Pearson interval, still
  improving) and per metric a mean with a 95% interval that stays in the metric's domain.
- `comparisons`: per imbalanced cell and balanced neighbour, the seed-paired effect on a metric: a ratio
  (differences of logs) for positive scores such as FID, else a difference; paired t-interval, exact
  sign-flip p, seeds in the effect's direction. The primary metric's comparisons form the study's family and
  get Holm-adjusted p-values; other metrics are secondary: shown, never claimed.
- `findings`: the sentences of "What this study shows".

Pure pandas/numpy on the report's trial frame (one row per finished trial, params unprefixed).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from gan import names
from gan.outcome import FAILED, STILL_IMPROVING
from reports.load import METRIC_PREFIX
from reports.stats import (ALPHA, Interval, bounded_interval, clopper_pearson, holm, min_exact_p, paired_difference,
                           paired_log_ratio, positive_interval, seeds_needed, t_interval)

CAPACITY = names.CAPACITY_RATIO_LOG2
BASE_WIDTH = "base_width"  # max(g_width, d_width)
OUTCOME = "outcome"  # the column of the trial frame holding the trial's outcome (gan.outcome)
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
    """(failed, still improving, trials with an outcome) of a group of trials."""
    if OUTCOME not in group:
        return 0, 0, 0
    labels = group[OUTCOME].dropna()
    return int((labels == FAILED).sum()), int((labels == STILL_IMPROVING).sum()), int(len(labels))


def cell_summary(frame: pd.DataFrame, strata: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row per stratum and cell: the widths, log2(D/G), n, failed (count, rate, Clopper–Pearson interval),
    still improving, and per metric `<m>_mean`, `<m>_ci_low`, `<m>_ci_high`, `<m>_n` (metric_interval)."""
    rows = []
    for stratum, part in _groups(frame, strata):
        for (g, d), cell in _cells(part):
            row = dict(zip(strata, stratum))
            row.update({"g_width": g, "d_width": d, CAPACITY: math.log2(d / g), "n": len(cell)})
            failed, improving, labelled = outcome_counts(cell)
            low, high = clopper_pearson(failed, labelled)
            row.update(failed=failed, still_improving=improving, with_outcome=labelled,
                       failed_rate=failed / labelled if labelled else math.nan, failed_ci_low=low, failed_ci_high=high)
            for metric in metrics:
                column = METRIC_PREFIX + metric
                interval = metric_interval(cell[column] if column in cell else [], metric)
                row.update({f"{metric}_mean": interval.mean, f"{metric}_ci_low": interval.low,
                            f"{metric}_ci_high": interval.high, f"{metric}_n": interval.n})
            rows.append(row)
    return pd.DataFrame(rows)


class _SeedPairedTest:
    """What a seed-paired test reports, whichever scale it is on: `ratio` (reports.stats.RatioEffect) for
    positive metrics, else `difference` (reports.stats.DifferenceEffect)."""

    ratio: object | None
    difference: object | None

    @property
    def effect(self):
        return self.ratio if self.ratio is not None else self.difference

    @property
    def p(self) -> float:
        return self.effect.p

    @property
    def n(self) -> int:
        return self.effect.n

    @property
    def direction(self) -> int:
        if self.ratio is not None:
            return self.ratio.direction
        mean = self.difference.difference.mean
        return 0 if not mean or not math.isfinite(mean) else (1 if mean > 0 else -1)


@dataclass(frozen=True)
class Comparison(_SeedPairedTest):
    """An imbalanced cell against a balanced cell that shares one of its networks, seed by seed."""

    stratum: tuple
    cell: tuple[float, float]  # (G width, D width) of the imbalanced cell
    neighbour: tuple[float, float]  # the balanced cell
    shared: str  # "G" or "D": the network both cells have
    metric: str
    ratio: object | None  # reports.stats.RatioEffect for positive metrics
    difference: object | None  # reports.stats.DifferenceEffect otherwise
    still_improving: int  # trials of the two cells still improving at the end of their budget
    trials: int  # trials of the two cells with an outcome
    primary: bool = False  # in the study's family of claims
    p_holm: float = math.nan  # Holm-adjusted across the family (primary only)

    @property
    def significant(self) -> bool:
        return self.primary and self.p_holm < ALPHA


def _cells_by_stratum(frame: pd.DataFrame, strata: list[str], column: str):
    """(stratum, {(g, d): trials}) per stratum; nothing when the frame cannot be compared seed by seed."""
    if column not in frame or "seed" not in frame or "g_width" not in frame:
        return []
    return [(stratum, dict(_cells(part))) for stratum, part in _groups(frame, strata)]


def _per_seed(cell: pd.DataFrame, column: str) -> pd.Series:
    return cell.groupby("seed")[column].mean()


def comparisons(frame: pd.DataFrame, strata: list[str], metric: str) -> list[Comparison]:
    """Every imbalanced cell against each balanced cell sharing G or D, in the same stratum, on `metric`."""
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
                a, b = _per_seed(treated, column), _per_seed(control, column)
                seeds = a.index.intersection(b.index)
                ratio = difference = None
                if metric in POSITIVE_METRICS:
                    ratio = paired_log_ratio(a[seeds].to_numpy(), b[seeds].to_numpy())
                else:
                    difference = paired_difference(a[seeds].to_numpy(), b[seeds].to_numpy())
                _, improving_t, labelled_t = outcome_counts(treated)
                _, improving_c, labelled_c = outcome_counts(control)
                found.append(Comparison(stratum, (g, d), neighbour, shared, metric, ratio, difference,
                                        improving_t + improving_c, labelled_t + labelled_c))
    return found


def family(found: list[Comparison]) -> list[Comparison]:
    """The comparisons marked primary, with Holm-adjusted p-values across all of them."""
    adjusted = holm([c.p for c in found])
    return [replace(c, primary=True, p_holm=p) for c, p in zip(found, adjusted)]


# --- in words ----------------------------------------------------------------------------------------
METRIC_WORDS = {names.FID: "FID", names.PIXEL_FD: "pixel FD", names.FID_INCEPTION: "Inception FID",
                names.CLASSES_COVERED: "classes covered", names.MODES_COVERED: "modes covered (of 1,000)",
                names.PARZEN: "Parzen log-likelihood"}


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


def effect_words(c: _SeedPairedTest) -> str:
    """'×1.46 [1.10, 1.94]' for a ratio, '+3.2 [0.4, 6.0]' for a difference."""
    if c.ratio is not None:
        return f"×{number(c.ratio.ratio)} [{number(c.ratio.low)}, {number(c.ratio.high)}]"
    d = c.difference.difference
    return f"{d.mean:+.3g} [{number(d.low)}, {number(d.high)}]"


def _training_length(c: _SeedPairedTest, steps_words: str, what: str = "comparison") -> str:
    if not c.still_improving:
        return ""
    return (f"; {c.still_improving} of {c.trials} trials of this {what} were still improving at the end of "
            f"their budget{steps_words}, so the result may change with longer training")


def comparison_sentence(c: Comparison, strata: list[str], steps_words: str = "") -> str:
    label = METRIC_WORDS.get(c.metric, c.metric)
    level = math.log2(c.cell[1] / c.cell[0])
    higher = "higher" if c.direction > 0 else "lower"
    return (f"{stratum_words(strata, c.stratum)}: {imbalance_words(level)} ({cell_words(c.cell)}) gives "
            f"{effect_words(c)} the final {label} of the balanced {cell_words(c.neighbour)} (same {c.shared}; "
            f"{c.n} seed pairs, {c.effect.n_in_direction} of {c.n} {higher}; exact p = {p_words(c.p)}, "
            f"Holm-adjusted p = {p_words(c.p_holm)}){_training_length(c, steps_words)}.")


@dataclass(frozen=True)
class Verdict:
    """Whether an imbalanced cell differs from its balanced neighbours, by the family's adjusted tests."""

    stratum: tuple
    cell: tuple[float, float]
    neighbours: int  # balanced cells that share a network with it (0, 1 or 2)
    significant: int  # of them, how many differ at Holm-adjusted p < 0.05
    same_direction: bool  # every significant comparison points the same way
    direction: int

    @property
    def imbalance_itself(self) -> bool:
        return self.neighbours == 2 and self.significant == 2 and self.same_direction


def verdicts(primary: list[Comparison]) -> list[Verdict]:
    by_cell: dict[tuple, list[Comparison]] = {}
    for c in primary:
        by_cell.setdefault((c.stratum, c.cell), []).append(c)
    result = []
    for (stratum, cell), group in by_cell.items():
        significant = [c for c in group if c.significant]
        directions = {c.direction for c in significant}
        result.append(Verdict(stratum, cell, len(group), len(significant), len(directions) <= 1,
                              next(iter(directions)) if len(directions) == 1 else 0))
    return result


def verdict_sentence(v: Verdict, strata: list[str], label: str) -> str | None:
    where = f"{stratum_words(strata, v.stratum)}, {cell_words(v.cell)}"
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


def power_sentence(tests: list, what: str, alpha: float = ALPHA) -> str | None:
    """One sentence when no test of a family can reach alpha after Holm, whatever the data; else None."""
    if not tests:
        return None
    m = len(tests)
    n = max(t.n for t in tests)  # the best-placed test: with fewer pairs the others can reach even less
    if min_exact_p(n) * m < alpha:
        return None
    return (f"{what}: with {n} seed pairs the smallest exact p is 2/2^{n} = {min_exact_p(n):.3g}, and Holm across "
            f"{m} comparison{'s' if m > 1 else ''} needs p < {alpha / m:.3g}: this design cannot support a claim "
            f"here; {seeds_needed(m, alpha)} seeds per configuration would.")


@dataclass(frozen=True)
class Contrast(_SeedPairedTest):
    """The imbalance contrast of a 2 × 2 block G ∈ {a, b} × D ∈ {a, b} (a < b), seed by seed: the geometric mean
    of the two imbalanced cells over that of the two balanced cells — on the log scale
    ½[log F(a,b) + log F(b,a) − log F(a,a) − log F(b,b)], the interaction of G's and D's widths, in which
    each network's own size cancels."""

    stratum: tuple
    widths: tuple[float, float]  # (a, b)
    metric: str
    ratio: object | None  # RatioEffect for positive metrics
    difference: object | None  # DifferenceEffect otherwise (mean of imbalanced − mean of balanced)
    still_improving: int
    trials: int
    p_holm: float = math.nan

    @property
    def significant(self) -> bool:
        return self.p_holm < ALPHA


def contrasts(frame: pd.DataFrame, strata: list[str], metric: str) -> list[Contrast]:
    """One contrast per complete 2 × 2 block of widths in each stratum, Holm-adjusted across all of them."""
    column = METRIC_PREFIX + metric
    found = []
    for stratum, cells in _cells_by_stratum(frame, strata, column):
        widths = sorted({w for cell in cells for w in cell})
        for i, a in enumerate(widths):
            for b in widths[i + 1:]:
                block = [(a, b), (b, a), (a, a), (b, b)]
                if not all(cell in cells for cell in block):
                    continue
                per_seed = pd.concat([_per_seed(cells[cell], column) for cell in block], axis=1, join="inner")
                values = per_seed.to_numpy(dtype=np.float64)
                ratio = difference = None
                if metric in POSITIVE_METRICS:
                    ratio = paired_log_ratio(np.sqrt(values[:, 0] * values[:, 1]), np.sqrt(values[:, 2] * values[:, 3]))
                else:
                    difference = paired_difference(values[:, :2].mean(axis=1), values[:, 2:].mean(axis=1))
                counts = [outcome_counts(cells[cell]) for cell in block]
                found.append(Contrast(stratum, (a, b), metric, ratio, difference, sum(c[1] for c in counts),
                                      sum(c[2] for c in counts)))
    adjusted = holm([c.p for c in found])
    return [replace(c, p_holm=p) for c, p in zip(found, adjusted)]


def contrast_sentence(c: Contrast, strata: list[str], steps_words: str = "") -> str:
    label = METRIC_WORDS.get(c.metric, c.metric)
    a, b = c.widths
    higher = "higher" if c.direction > 0 else "lower"
    effect = effect_words(c)
    training = _training_length(c, steps_words, "block")
    return (f"{stratum_words(strata, c.stratum)}: imbalance itself {'raises' if c.direction > 0 else 'lowers'} the "
            f"final {label}: the imbalanced cells G {a:g} / D {b:g} and G {b:g} / D {a:g} score {effect} "
            f"{'times ' if c.ratio is not None else ''}the balanced G {a:g} / D {a:g} and G {b:g} / D {b:g} "
            f"(geometric means within each seed, so the sizes of G and D cancel; {c.n} seeds, "
            f"{c.effect.n_in_direction} of {c.n} {higher}; exact p = {p_words(c.p)}, Holm-adjusted "
            f"p = {p_words(c.p_holm)}){training}.")


def null_contrast_sentence(c: Contrast, strata: list[str], steps_words: str = "") -> str:
    """What a contrast that is not significant shows: its estimate and interval, stated as no evidence."""
    a, b = c.widths
    label = METRIC_WORDS.get(c.metric, c.metric)
    training = _training_length(c, steps_words, "block")
    return (f"{stratum_words(strata, c.stratum)}, widths {a:g} and {b:g}: no evidence that imbalance itself changes "
            f"the final {label}: the imbalanced cells score {effect_words(c)} "
            f"{'times ' if c.ratio is not None else ''}the balanced ones ({c.n} seeds, {c.effect.n_in_direction} of "
            f"{c.n} in the estimate's direction; exact p = {p_words(c.p)}, Holm-adjusted p = {p_words(c.p_holm)})"
            f"{training}. Not significant is not evidence of no effect: the interval shows the effects this design "
            "cannot rule out.")


@dataclass(frozen=True)
class Analysis:
    """The study's claims on its primary metric: family 1, the imbalance contrasts of complete 2 × 2 blocks;
    family 2, each imbalanced cell against each balanced neighbour, tested only when family 1 is empty or
    every one of its contrasts is significant (serial gatekeeping: the family-wise error stays at 5%)."""

    metric: str
    contrasts: list[Contrast]
    pairwise: list[Comparison]  # primary, Holm-adjusted within family 2 (NaN when the gate stayed closed)
    gate_open: bool


def analyse(frame: pd.DataFrame, strata: list[str], metric: str) -> Analysis:
    blocks = contrasts(frame, strata, metric)
    gate_open = all(c.significant for c in blocks)
    pairwise = comparisons(frame, strata, metric)
    if gate_open:
        pairwise = family(pairwise)
    else:
        pairwise = [replace(c, primary=True) for c in pairwise]
    return Analysis(metric, blocks, pairwise, gate_open)


def findings(analysis: Analysis, strata: list[str], steps_words: str = "") -> list[str]:
    """The sentences of "What this study shows": significant contrasts and comparisons, what they say about
    imbalance per cell, and where the design cannot support a claim."""
    sentences = []
    if analysis.contrasts:
        cannot = power_sentence(analysis.contrasts, "Imbalance contrasts")
        if cannot:
            return [cannot]
        sentences += [contrast_sentence(c, strata, steps_words) for c in analysis.contrasts if c.significant]
        sentences += [null_contrast_sentence(c, strata, steps_words) for c in analysis.contrasts if not c.significant]
        if not analysis.gate_open:
            sentences.append("Since not every imbalance contrast is significant, the cell-by-cell comparisons are not "
                             "tested (serial gatekeeping); they are shown, not claimed, in the seed-paired table.")
            return sentences
    cannot = power_sentence(analysis.pairwise, "Cell-by-cell comparisons")
    if cannot:
        return sentences + [cannot]
    sentences += [comparison_sentence(c, strata, steps_words) for c in analysis.pairwise if c.significant]
    label = METRIC_WORDS.get(analysis.metric, analysis.metric)
    sentences += [s for v in verdicts(analysis.pairwise) if (s := verdict_sentence(v, strata, label))]
    return sentences


def _test_columns(c: _SeedPairedTest) -> dict:
    """The CSV columns every seed-paired test shares: its estimate on its scale, interval, p-values, counts."""
    if c.ratio is not None:
        scale, estimate, low, high = "ratio", c.ratio.ratio, c.ratio.low, c.ratio.high
    else:
        d = c.difference.difference
        scale, estimate, low, high = "difference", d.mean, d.low, d.high
    return {"metric": c.metric, "pairs": c.n, "pairs_in_direction": c.effect.n_in_direction, "p_exact": c.p,
            "p_holm": c.p_holm, "significant": c.significant, "still_improving": c.still_improving,
            "trials": c.trials, "scale": scale, "estimate": estimate, "ci_low": low, "ci_high": high}


def contrasts_frame(found: list[Contrast], strata: list[str]) -> pd.DataFrame:
    return pd.DataFrame([{**dict(zip(strata, c.stratum)), "width_a": c.widths[0], "width_b": c.widths[1],
                          **_test_columns(c)} for c in found])


def comparisons_frame(found: list[Comparison], strata: list[str]) -> pd.DataFrame:
    return pd.DataFrame([{**dict(zip(strata, c.stratum)), "g_width": c.cell[0], "d_width": c.cell[1],
                          CAPACITY: math.log2(c.cell[1] / c.cell[0]), "neighbour_g_width": c.neighbour[0],
                          "neighbour_d_width": c.neighbour[1], "shared": c.shared,
                          "role": "primary" if c.primary else "secondary", **_test_columns(c)} for c in found])


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
