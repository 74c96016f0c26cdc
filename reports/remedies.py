"""What rescues an imbalanced GAN: each remedy arm against no remedy, and the share of the imbalance gap it closes.

A remedies study (search_spaces/remedies.yaml) trains, at one capacity imbalance, the configuration without
a remedy and one configuration per remedy (spectral norm on D, R1, TTUR, ...), plus the balanced
configuration as the reference, every one with the same seeds. With `g_ema_decay` > 0 every run also scores
the moving average of its G, so the arm "EMA of G" is the no-remedy runs' `fid_ema`: a within-run pair.

Arms are found from the trials, not declared: within an architecture, the *balanced* reference of an
imbalanced G/D pair has D width = G width = the pair's G width (the same generator with a matched D); the
*no-remedy* configuration is an imbalanced one whose other searched settings equal the
balanced one's; every other configuration at that imbalance is an arm, named by the settings in which it
differs from no remedy. All comparisons are on log FID, paired by seed (FID's spread grows with its level):

- arm vs no remedy: the ratio exp(mean(log FID_arm − log FID_none)) with its paired t-interval and the exact
  sign-flip p (reports.stats.paired_log_ratio); Holm across every arm of the study: the declared family;
- gap closed: with a_s = log FID_none − log FID_arm and b_s = log FID_none − log FID_balanced of seed s,
  closed = mean(a) / mean(b) (1: the arm reaches the balanced level, 0: no change, < 0: worse). Its 95%
  interval is Fieller's (`fieller_ratio`), which stays honest when the gap is uncertain: it is unbounded
  when the gap itself is not clearly nonzero;
- residual gap: arm vs balanced, the same paired ratio and exact p, Holm across the arms (a second family).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gan import names
from reports.load import METRIC_PREFIX, StudyData
from reports.stats import ALPHA, CONFIDENCE, RatioEffect, holm, paired_log_ratio, t_quantile

# A study is a remedies study when some trial uses one of these remedies (a nonzero or true value).
REMEDY_PARAMS = ("d_spectral_norm", "g_spectral_norm", "r1_gamma", "gradient_penalty", "g_ema_decay")
NEW_LOSSES = ("hinge", "least_squares", "wasserstein")
ARM_IGNORED = ("seed", "g_width", "d_width", names.CAPACITY_RATIO_LOG2)
NO_REMEDY, BALANCED = "no remedy", "balanced (reference)"
EMA_ARM = "EMA of G (same runs as no remedy)"


@dataclass(frozen=True)
class FiellerInterval:
    """A ratio of two means, mean(a) / mean(b), with Fieller's confidence set."""

    ratio: float
    low: float  # −inf / +inf when the set is unbounded
    high: float
    bounded: bool  # False: the denominator is not clearly nonzero and the set is not a finite interval
    n: int


def fieller_ratio(a, b, confidence: float = CONFIDENCE) -> FiellerInterval:
    """Fieller's interval of θ = E[a] / E[b] from n paired values (a_i, b_i), normal errors assumed.

    θ is in the set when the paired t-test of a_i − θ·b_i does not reject mean 0:
        (ā − θ·b̄)² ≤ t² · (s_aa − 2θ·s_ab + θ²·s_bb) / n,   t = t_{1−α/2, n−1},
    a quadratic A·θ² − 2B·θ + C ≤ 0 with A = b̄² − t²·s_bb/n, B = ā·b̄ − t²·s_ab/n, C = ā² − t²·s_aa/n.
    When A > 0 (b̄ differs from 0 at the same level) the set is the interval between the roots; otherwise it
    is unbounded (reported as (−inf, +inf)): the data cannot say what share of a gap it cannot show exists.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = len(a)
    if n < 2 or b.mean() == 0:
        return FiellerInterval(math.nan if n == 0 or b.mean() == 0 else a.mean() / b.mean(), -math.inf, math.inf,
                               False, n)
    t = t_quantile(n, confidence)
    cov = np.cov(a, b, ddof=1)
    s_aa, s_ab, s_bb = cov[0, 0], cov[0, 1], cov[1, 1]
    a_bar, b_bar = a.mean(), b.mean()
    big_a = b_bar ** 2 - t ** 2 * s_bb / n
    big_b = a_bar * b_bar - t ** 2 * s_ab / n
    big_c = a_bar ** 2 - t ** 2 * s_aa / n
    ratio = a_bar / b_bar
    discriminant = big_b ** 2 - big_a * big_c
    if big_a <= 0 or discriminant < 0:
        return FiellerInterval(ratio, -math.inf, math.inf, False, n)
    root = math.sqrt(discriminant)
    return FiellerInterval(ratio, (big_b - root) / big_a, (big_b + root) / big_a, True, n)


def is_remedies_study(frame: pd.DataFrame) -> bool:
    """Some trial uses a regulariser, spectral norm, G's moving average or one of the losses beyond the 2014 pair."""
    for name in REMEDY_PARAMS:
        if name in frame and (pd.to_numeric(frame[name].replace({"True": 1, "False": 0}), errors="coerce")
                              .fillna(0) != 0).any():
            return True
    return "loss" in frame and frame["loss"].isin(NEW_LOSSES).any()


def _arm_keys(frame: pd.DataFrame, searched: list[str]) -> list[str]:
    return [key for key in searched if key in frame and key not in ARM_IGNORED]


def _words(value) -> str:
    if isinstance(value, bool) or value in ("True", "False"):
        return "on" if value in (True, "True") else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _by_seed(rows: pd.DataFrame, column: str) -> pd.Series:
    return rows.groupby("seed")[column].mean()


@dataclass(frozen=True)
class Arm:
    stratum: str  # 'dcgan g4 d16'
    name: str
    fid: pd.Series  # final FID by seed
    vs_none: RatioEffect | None
    closed: FiellerInterval | None
    vs_balanced: RatioEffect | None
    d_rt: float  # mean final r_t over seeds (ADA's overfitting heuristic)
    overfit_gap: float  # mean final D(x_train) − D(x_heldout)


def remedy_arms(frame: pd.DataFrame, searched: list[str], fid: str) -> list[Arm]:
    """Every stratum's balanced reference, no-remedy configuration and arms, with their comparisons."""
    fid_column, ema_column = METRIC_PREFIX + fid, METRIC_PREFIX + names.ema(fid)
    keys = _arm_keys(frame, searched)
    frame = frame.assign(_setting=frame[keys].astype(str).agg(" ".join, axis=1) if keys else "")
    widths = frame[["g_width", "d_width"]].apply(pd.to_numeric)
    frame = frame.assign(g_width=widths["g_width"], d_width=widths["d_width"])
    arms: list[Arm] = []

    def extra(rows: pd.DataFrame, name: str) -> float:
        column = METRIC_PREFIX + name
        return float(pd.to_numeric(rows[column], errors="coerce").mean()) if column in rows else math.nan

    for arch, in_arch in frame.groupby("arch"):
        balanced_all = in_arch[in_arch["g_width"] == in_arch["d_width"]]
        for (g, d), at_level in in_arch[in_arch["g_width"] != in_arch["d_width"]].groupby(["g_width", "d_width"]):
            # the balanced reference is the same G with a matched D: the gap is what the mismatched D costs
            candidates = balanced_all[balanced_all["g_width"] == g]
            candidates = candidates if len(candidates) else balanced_all
            match = [s for s in candidates["_setting"].unique() if s in set(at_level["_setting"])]
            if not match:
                continue
            balanced = candidates[candidates["_setting"] == match[0]]
            none = at_level[at_level["_setting"] == match[0]]
            stratum = f"{arch} g{g:g} d{d:g}"
            fid_none, fid_balanced = _by_seed(none, fid_column), _by_seed(balanced, fid_column)
            gap = np.log(fid_none) - np.log(fid_balanced)

            def compare(name: str, fid_arm: pd.Series, rows: pd.DataFrame | None) -> Arm:
                seeds = fid_arm.index.intersection(fid_none.index).intersection(fid_balanced.index)
                closed = fieller_ratio((np.log(fid_none) - np.log(fid_arm))[seeds], gap[seeds])
                return Arm(stratum, name, fid_arm, paired_log_ratio(*_aligned(fid_arm, fid_none)), closed,
                           paired_log_ratio(*_aligned(fid_arm, fid_balanced)),
                           extra(rows, names.D_RT) if rows is not None else math.nan,
                           extra(rows, names.D_OVERFIT_GAP) if rows is not None else math.nan)

            arms.append(Arm(stratum, BALANCED, fid_balanced, None, None, None, extra(balanced, names.D_RT),
                            extra(balanced, names.D_OVERFIT_GAP)))
            arms.append(Arm(stratum, NO_REMEDY, fid_none, None, None, paired_log_ratio(*_aligned(fid_none, fid_balanced)),
                            extra(none, names.D_RT), extra(none, names.D_OVERFIT_GAP)))
            if ema_column in none and none[ema_column].notna().any():
                decay = _words(float(none["g_ema_decay"].iloc[0])) if "g_ema_decay" in none else "?"
                arms.append(compare(f"{EMA_ARM}, decay {decay}", _by_seed(none, ema_column), None))
            base = none[keys].iloc[0]
            for setting, rows in at_level[at_level["_setting"] != match[0]].groupby("_setting", sort=True):
                differs = [f"{key}={_words(rows[key].iloc[0])}" for key in keys if str(rows[key].iloc[0]) != str(base[key])]
                arms.append(compare(" ".join(differs) or setting, _by_seed(rows, fid_column), rows))
    return arms


def _aligned(treated: pd.Series, control: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    seeds = treated.index.intersection(control.index)
    return treated[seeds].to_numpy(float), control[seeds].to_numpy(float)


def remedies_frame(arms: list[Arm]) -> pd.DataFrame:
    """One row per arm with both Holm families: arms vs no remedy, and arms vs balanced (residual gap)."""
    tested = [i for i, arm in enumerate(arms) if arm.vs_none is not None]
    holm_none = dict(zip(tested, holm([arms[i].vs_none.p for i in tested])))
    holm_residual = dict(zip(tested, holm([arms[i].vs_balanced.p for i in tested])))
    rows = []
    for i, arm in enumerate(arms):
        fid = arm.fid.to_numpy(float)
        row = {"stratum": arm.stratum, "arm": arm.name, "n": len(fid),
               "fid_geomean": float(np.exp(np.log(fid).mean())) if len(fid) else math.nan,
               names.D_RT: arm.d_rt, names.D_OVERFIT_GAP: arm.overfit_gap}
        for prefix, effect in (("vs_none", arm.vs_none), ("vs_balanced", arm.vs_balanced)):
            row.update({f"{prefix}_ratio": effect.ratio if effect else math.nan,
                        f"{prefix}_low": effect.low if effect else math.nan,
                        f"{prefix}_high": effect.high if effect else math.nan,
                        f"{prefix}_p": effect.p if effect else math.nan,
                        f"{prefix}_in_direction": effect.n_in_direction if effect else math.nan,
                        f"{prefix}_pairs": effect.n if effect else math.nan})
        row["vs_none_holm_p"] = holm_none.get(i, math.nan)
        row["vs_balanced_holm_p"] = holm_residual.get(i, math.nan)
        closed = arm.closed
        row.update({"gap_closed": closed.ratio if closed else math.nan,
                    "gap_closed_low": closed.low if closed else math.nan,
                    "gap_closed_high": closed.high if closed else math.nan,
                    "gap_closed_bounded": closed.bounded if closed else math.nan})
        rows.append(row)
    return pd.DataFrame(rows)


def verdict(row) -> str:
    """In words, from the Holm-adjusted exact tests only."""
    if not np.isfinite(row["vs_none_holm_p"]):
        return ""
    if row["vs_none_holm_p"] < ALPHA:
        moved = "closes the gap significantly" if row["vs_none_ratio"] < 1 else "widens the gap significantly"
    else:
        moved = "no significant change vs no remedy"
    if row["vs_balanced_holm_p"] < ALPHA:
        residual = "a gap to balanced remains" if row["vs_balanced_ratio"] > 1 else "better than balanced"
    else:
        residual = "no residual gap shown"
    return f"{moved}; {residual}"


def _ratio_cell(row, prefix: str) -> str:
    from reports.tables import fmt_interval

    if not np.isfinite(row[f"{prefix}_ratio"]):
        return "–"
    return (f"×{fmt_interval(row[f'{prefix}_ratio'], row[f'{prefix}_low'], row[f'{prefix}_high'])}, "
            f"{row[f'{prefix}_in_direction']:.0f}/{row[f'{prefix}_pairs']:.0f}")


def _closed_cell(row) -> str:
    if not np.isfinite(row["gap_closed"]):
        return "–"
    if not row["gap_closed_bounded"]:
        return f"{row['gap_closed']:.0%} (unbounded)"
    return f"{row['gap_closed']:.0%} [{row['gap_closed_low']:.0%}, {row['gap_closed_high']:.0%}]"


def _p_cell(p: float, adjusted: float) -> str:
    from reports.tables import fmt_p

    return "–" if not np.isfinite(p) else f"{fmt_p(p)} (Holm {fmt_p(adjusted)})"


def remedies_table(frame: pd.DataFrame, fid_label: str):
    from reports.tables import Table, fmt

    columns = ["stratum", "arm", "seeds", f"{fid_label} (geometric mean)", "vs no remedy: ratio [95% t], seeds in direction",
               "exact p (Holm)", "gap closed [95% Fieller]", "vs balanced: ratio [95% t], seeds in direction",
               "exact p (Holm)", "D r_t", "D(x_train) − D(x_heldout)", "verdict"]
    rows, bold = [], set()
    for i, row in frame.iterrows():
        rows.append([row["stratum"], row["arm"], f"{row['n']:.0f}", fmt(row["fid_geomean"]), _ratio_cell(row, "vs_none"),
                     _p_cell(row["vs_none_p"], row["vs_none_holm_p"]), _closed_cell(row),
                     _ratio_cell(row, "vs_balanced"), _p_cell(row["vs_balanced_p"], row["vs_balanced_holm_p"]),
                     fmt(row[names.D_RT]), fmt(row[names.D_OVERFIT_GAP]), verdict(row)])
        if row["vs_none_holm_p"] < ALPHA and row["vs_none_ratio"] < 1:
            bold.add((len(rows) - 1, 6))
    note = ("Ratios are seed-paired geometric-mean ratios of the final FID (exp of the mean log difference) with a "
            "paired t-interval; p is the exact two-sided sign-flip p of the same log differences, Holm-adjusted "
            "across the arms (vs no remedy: one family; vs balanced: another). Gap closed = (mean log FID no remedy − "
            "mean log FID arm) / (mean log FID no remedy − mean log FID balanced), 100% = the balanced level, with "
            "Fieller's 95% interval (unbounded when the gap itself is not clearly nonzero). The EMA arm compares the "
            "moving average of G with G in the same runs. r_t = E[sign(D_logit(x_train))] (ADA; 0: no overfitting, "
            "1: complete); D(x_train) − D(x_heldout) > 0: D rates its training images as more real than new ones. "
            f"With n seed pairs the smallest exact p is 2/2^n. Bold: closes the gap significantly.")
    return Table("What rescues the imbalanced GAN: remedies against no remedy and the balanced reference", columns,
                 rows, bold, note)


def findings(frame: pd.DataFrame, fid_label: str) -> list[str]:
    """One sentence per arm whose Holm-adjusted exact p against no remedy is below 0.05."""
    sentences = []
    for _, row in frame[frame["vs_none_holm_p"] < ALPHA].iterrows():
        direction = "lowers" if row["vs_none_ratio"] < 1 else "raises"
        closed = _closed_cell(row)
        residual = ("a gap to the balanced configuration remains" if row["vs_balanced_holm_p"] < ALPHA and
                    row["vs_balanced_ratio"] > 1 else "no residual gap to the balanced configuration is shown")
        sentences.append(
            f"In {row['stratum']}, {row['arm']} {direction} the final {fid_label} against no remedy by "
            f"×{row['vs_none_ratio']:.2f} [{row['vs_none_low']:.2f}, {row['vs_none_high']:.2f}] "
            f"({row['vs_none_in_direction']:.0f} of {row['vs_none_pairs']:.0f} seeds; Holm-adjusted exact "
            f"p = {row['vs_none_holm_p']:.2g}), closing {closed} of the gap; {residual} "
            f"(Holm-adjusted p = {row['vs_balanced_holm_p']:.2g}).")
    return sentences


def remedies_section(study: StudyData):
    """(numbers for remedies.csv, the table, finding sentences), or None when the study tries no remedy."""
    from reports.tables import with_factors

    frame = with_factors(study)
    if not {"arch", "g_width", "d_width", "seed"} <= set(frame) or not is_remedies_study(frame):
        return None
    arms = remedy_arms(frame, study.searched, study.fid_metric)
    if not any(arm.vs_none is not None for arm in arms):
        return None
    numbers = remedies_frame(arms)
    return numbers, remedies_table(numbers, study.fid_label), findings(numbers, study.fid_label)
