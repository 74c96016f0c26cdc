"""What rescues an imbalanced GAN: each remedy arm against no remedy, and the share of the imbalance gap it closes.

A remedies study (search_spaces/remedies.yaml) trains, at one capacity imbalance, the configuration without
a remedy and one configuration per remedy (spectral norm on D, R1, TTUR, ...), plus the balanced
configuration as the reference, every one with the same seeds. With `g_ema_decay` > 0 every run also scores
the moving average of its G, so the arm "EMA of G" is the no-remedy runs' `fid_ema`: a within-run pair.

Arms are found from the trials, not declared: within an architecture, the *balanced* reference of an
imbalanced G/D pair has D width = G width = the pair's G width (the same generator with a matched D); the
*no-remedy* configuration is an imbalanced one whose other searched settings equal the
balanced one's; every other configuration at that imbalance is an arm, named by the settings in which it
differs from no remedy. All comparisons are on log FID (FID's spread grows with its level), and the pairing is
declared by the design, before the data are seen (REFERENCE.md): only the EMA arm is the same runs as no remedy,
scored two ways, so only it is paired; every other arm trains another network or optimiser from the same seed,
which shares nothing a pairing could cancel (seed-to-seed correlation of log FID 0.06–0.51 between such arms in
the remedies study, 0.89 for EMA), so it is compared unpaired, as independent runs.

- failures: a run that failed or diverged (gan.outcome) is a failure. Its FID (near the noise ceiling, or none)
  measures nothing, so it leaves every FID magnitude (ratio, gap closed, residual gap) and enters its arm's
  failure rate, x of n with the exact Clopper–Pearson 95% interval, against no remedy by Fisher's exact test.
  The EMA arm is the no-remedy runs: their failures, no test of its own. An arm with fewer than
  MIN_RUNS_FOR_RATIO runs that did not fail has no ratio and no gap closed, only its failure count;
- arm vs no remedy, among the runs that did not fail: EMA: exp(mean(log FID_ema − log FID)) over the same runs
  with its paired t-interval and the exact sign-flip p (reports.stats.paired_log_ratio); every other arm: the
  ratio of geometric means with exp of the Welch 95% interval and the exact two-sample permutation p of log FID
  (reports.stats.unpaired_log_ratio). Holm across every arm of the study: the declared primary family;
- gap closed = Â / B̂ with Â = mean log FID_none − mean log FID_arm and B̂ = mean log FID_none − mean log
  FID_balanced (1: the arm reaches the balanced level, 0: no change, < 0: worse); its 95% interval is Fieller's
  for independent groups (`fieller_groups`: each group's variances, the covariance of Â and B̂ that their shared
  no-remedy mean brings, a t quantile at Welch–Satterthwaite degrees of freedom), unbounded when the gap itself
  is not clearly nonzero;
- residual gap: arm vs balanced, unpaired like the arms (different runs), Holm across the arms; and the failure
  rates against no remedy, Holm across the arms: two secondary families, their findings labelled "(secondary)".
  Family-wise error is controlled within each family, not across them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gan import names
from reports.ablation import MIN_RUNS_FOR_RATIO
from reports.effects import failed_mask
from reports.load import METRIC_PREFIX, StudyData
from reports.stats import (ALPHA, CONFIDENCE, EXACT_MAX_PAIRS, FailureComparison, RatioEffect, UnpairedRatioEffect,
                           clopper_pearson, fisher_failures, holm_by_family, min_exact_p, paired_log_ratio,
                           unpaired_log_ratio)

# A study is a remedies study when some trial uses one of these remedies (a nonzero or true value).
REMEDY_PARAMS = ("d_spectral_norm", "g_spectral_norm", "r1_gamma", "gradient_penalty", "g_ema_decay")
NEW_LOSSES = ("hinge", "least_squares", "wasserstein")
ARM_IGNORED = ("seed", "g_width", "d_width", names.CAPACITY_RATIO_LOG2)
NO_REMEDY, BALANCED = "no remedy", "balanced (reference)"
EMA_ARM = "EMA of G (same runs as no remedy)"
PAIRED, UNPAIRED = "paired", "unpaired"  # how an arm is compared with no remedy: declared by the design
FID_FAMILY = "final FID against no remedy"  # the declared primary family
RESIDUAL_FAMILY, FAILURE_FAMILY = "residual gap to balanced", "failure rate against no remedy"  # secondary


@dataclass(frozen=True)
class FiellerInterval:
    """A ratio of two means, mean(a) / mean(b), with Fieller's confidence set."""

    ratio: float
    low: float  # −inf / +inf when the set is unbounded
    high: float
    bounded: bool  # False: the denominator is not clearly nonzero and the set is not a finite interval
    n: int


def fieller_ratio(a, b, confidence: float = CONFIDENCE) -> FiellerInterval:
    """Fieller's interval of θ = E[a] / E[b] from n paired values (a_i, b_i), normal errors assumed: the one-group
    case of `fieller_groups`, with t = t_{1−α/2, n−1}. Pairs with a non-finite value are dropped."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    return fieller_groups([(a[keep], b[keep])], confidence)


def fieller_groups(groups, confidence: float = CONFIDENCE) -> FiellerInterval:
    """Fieller's interval of θ = P / Q, P = Σ_g mean(p_g), Q = Σ_g mean(q_g), over independent groups g of runs,
    run i of group g giving the pair (p_gi, q_gi); normal errors assumed.

    θ is in the set when the t-test of P − θ·Q does not reject 0:
        (P − θ·Q)² ≤ t² · Σ_g (s_pp,g − 2θ·s_pq,g + θ²·s_qq,g) / n_g,
    a quadratic A·θ² − 2B·θ + C ≤ 0 with A = Q² − t²·v_qq, B = P·Q − t²·v_pq, C = P² − t²·v_pp,
    v_xy = Σ_g s_xy,g / n_g (s: sample covariances within the group, ddof 1). One group is the paired case,
    t = t_{1−α/2, n−1} (`fieller_ratio`). With several groups, t is taken at the Welch–Satterthwaite degrees
    of freedom of P − θ̂·Q at the estimate θ̂ = P/Q: ν = (Σ_g V_g)² / Σ_g V_g²/(n_g − 1),
    V_g = (s_pp,g − 2θ̂·s_pq,g + θ̂²·s_qq,g) / n_g — an approximation (the exact degrees of freedom move with θ);
    simulated coverage 0.945–0.965 at 4 and 8 runs per group with unequal spreads. When A > 0 (Q differs from 0
    at the same level) the set is the interval between the roots; otherwise it is unbounded (reported as
    (−inf, +inf)): the data cannot say what share of a gap it cannot show exists. Unbounded too when a group has
    fewer than 2 runs (no variance).

    Gap closed of an unpaired arm: groups no remedy (p = q = log FID: Â and B̂ share its mean, hence their
    covariance s²_none/n_none), arm (p = −log FID, q = 0) and balanced (p = 0, q = −log FID). Of the EMA arm,
    whose Â is a within-run difference: no remedy (p = log FID − log FID_ema, q = log FID) and balanced.
    """
    from scipy.stats import t as student_t

    groups = [(np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)) for p, q in groups]
    n = sum(len(p) for p, _ in groups)
    if any(len(p) == 0 for p, _ in groups):
        return FiellerInterval(math.nan, -math.inf, math.inf, False, n)
    big_p, big_q = sum(p.mean() for p, _ in groups), sum(q.mean() for _, q in groups)
    if any(len(p) < 2 for p, _ in groups) or big_q == 0:
        return FiellerInterval(math.nan if big_q == 0 else big_p / big_q, -math.inf, math.inf, False, n)
    ratio = big_p / big_q
    covariances = [(np.cov(p, q, ddof=1), len(p)) for p, q in groups]  # 2 × 2 each: s_pp, s_pq / s_pq, s_qq
    v_pp, v_pq, v_qq = (sum(c[i, j] / size for c, size in covariances) for i, j in ((0, 0), (0, 1), (1, 1)))
    at_ratio = [(c[0, 0] - 2 * ratio * c[0, 1] + ratio ** 2 * c[1, 1]) / size for c, size in covariances]
    total = sum(at_ratio)
    nu = (total ** 2 / sum(v ** 2 / (size - 1) for v, (_, size) in zip(at_ratio, covariances)) if total > 0
          else sum(size - 1 for _, size in covariances))
    t = float(student_t.ppf(0.5 + confidence / 2, nu))
    big_a = big_q ** 2 - t ** 2 * v_qq
    big_b = big_p * big_q - t ** 2 * v_pq
    big_c = big_p ** 2 - t ** 2 * v_pp
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


@dataclass(frozen=True)
class Arm:
    stratum: str  # 'dcgan g4 d16'
    name: str
    runs: int
    failed: int  # runs that failed or diverged (gan.outcome): out of every FID magnitude
    fid: np.ndarray  # final FID of the runs that did not fail
    vs_none: RatioEffect | UnpairedRatioEffect | None  # paired (RatioEffect) only for the EMA arm: the same runs
    closed: FiellerInterval | None
    vs_balanced: UnpairedRatioEffect | None
    failures_vs_none: FailureComparison | None  # None for the references and the EMA arm (no-remedy runs)
    d_rt: float  # mean final r_t over the runs (ADA's overfitting heuristic)
    overfit_gap: float  # mean final D(x_train) − D(x_heldout)

    @property
    def is_arm(self) -> bool:
        return self.name not in (BALANCED, NO_REMEDY)


def _positive(values) -> np.ndarray:
    values = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(float)
    return values[np.isfinite(values) & (values > 0)]


def _enough(*samples: np.ndarray) -> bool:
    return all(len(sample) >= MIN_RUNS_FOR_RATIO for sample in samples)


def remedy_arms(frame: pd.DataFrame, searched: list[str], fid: str) -> list[Arm]:
    """Every stratum's balanced reference, no-remedy configuration and arms, with their comparisons. A run whose
    `outcome` (column effects.OUTCOME, if any) is failed or diverged counts as a failure, never as a FID."""
    fid_column, ema_column = METRIC_PREFIX + fid, METRIC_PREFIX + names.ema(fid)
    keys = _arm_keys(frame, searched)
    failed = failed_mask(frame)
    frame = frame.assign(_setting=frame[keys].astype(str).agg(" ".join, axis=1) if keys else "",
                         _failed=failed.to_numpy(bool))
    widths = frame[["g_width", "d_width"]].apply(pd.to_numeric)
    frame = frame.assign(g_width=widths["g_width"], d_width=widths["d_width"])
    arms: list[Arm] = []

    def extra(rows: pd.DataFrame, name: str) -> float:
        column = METRIC_PREFIX + name
        return float(pd.to_numeric(rows[column], errors="coerce").mean()) if column in rows else math.nan

    def fid_of(rows: pd.DataFrame) -> np.ndarray:
        return _positive(rows.loc[~rows["_failed"], fid_column])

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
            fid_none, fid_balanced = fid_of(none), fid_of(balanced)
            log_none, log_balanced = np.log(fid_none), np.log(fid_balanced)

            def residual(fid_arm: np.ndarray) -> UnpairedRatioEffect | None:
                return unpaired_log_ratio(fid_arm, fid_balanced) if _enough(fid_arm, fid_balanced) else None

            def diagnostics(rows: pd.DataFrame) -> tuple[float, float]:
                return extra(rows, names.D_RT), extra(rows, names.D_OVERFIT_GAP)

            arms.append(Arm(stratum, BALANCED, len(balanced), int(balanced["_failed"].sum()), fid_balanced, None,
                            None, None, None, *diagnostics(balanced)))
            arms.append(Arm(stratum, NO_REMEDY, len(none), int(none["_failed"].sum()), fid_none, None, None,
                            residual(fid_none), None, *diagnostics(none)))
            if ema_column in none and none[ema_column].notna().any():
                # the same runs scored two ways: paired within each run that did not fail
                kept = none[~none["_failed"]]
                raw = pd.to_numeric(kept[fid_column], errors="coerce").to_numpy(float)
                ema = pd.to_numeric(kept[ema_column], errors="coerce").to_numpy(float)
                both = np.isfinite(raw) & np.isfinite(ema) & (raw > 0) & (ema > 0)
                raw, ema = raw[both], ema[both]
                decay = _words(float(none["g_ema_decay"].iloc[0])) if "g_ema_decay" in none else "?"
                paired = _enough(ema)
                closed = (fieller_groups([(np.log(raw) - np.log(ema), np.log(raw)),
                                          (np.zeros(len(log_balanced)), -log_balanced)])
                          if paired and _enough(fid_balanced) else None)
                arms.append(Arm(stratum, f"{EMA_ARM}, decay {decay}", len(none), int(none["_failed"].sum()), ema,
                                paired_log_ratio(ema, raw) if paired else None, closed, residual(ema), None,
                                math.nan, math.nan))
            base = none[keys].iloc[0]
            for setting, rows in at_level[at_level["_setting"] != match[0]].groupby("_setting", sort=True):
                differs = [f"{key}={_words(rows[key].iloc[0])}" for key in keys
                           if str(rows[key].iloc[0]) != str(base[key])]
                fid_arm = fid_of(rows)
                compared = _enough(fid_arm, fid_none)
                log_arm = np.log(fid_arm)
                closed = (fieller_groups([(log_none, log_none), (-log_arm, np.zeros(len(log_arm))),
                                          (np.zeros(len(log_balanced)), -log_balanced)])
                          if compared and _enough(fid_balanced) else None)
                arms.append(Arm(stratum, " ".join(differs) or setting, len(rows), int(rows["_failed"].sum()), fid_arm,
                                unpaired_log_ratio(fid_arm, fid_none) if compared else None, closed,
                                residual(fid_arm),
                                fisher_failures(int(rows["_failed"].sum()), len(rows), int(none["_failed"].sum()),
                                                len(none)),
                                *diagnostics(rows)))
    return arms


_EFFECT_FIELDS = ("ratio", "low", "high", "p", "p_exact", "p_floor", "n", "n_reference", "in_direction")


def _effect_columns(prefix: str, effect: RatioEffect | UnpairedRatioEffect | None) -> dict:
    """One comparison's columns: the test (paired / unpaired), ratio and interval, p, whether it is exact, the
    smallest p the runs allow, the runs (pairs) on each side, and for a paired test the pairs in its direction."""
    if effect is None:
        return {f"{prefix}_test": "", **{f"{prefix}_{field}": math.nan for field in _EFFECT_FIELDS}}
    if isinstance(effect, RatioEffect):
        test = dict(test=PAIRED, p_exact=effect.n <= EXACT_MAX_PAIRS, p_floor=min_exact_p(effect.n), n=effect.n,
                    n_reference=effect.n, in_direction=effect.n_in_direction)
    else:
        test = dict(test=UNPAIRED, p_exact=effect.test.exact, p_floor=effect.test.floor, n=effect.n_treated,
                    n_reference=effect.n_control, in_direction=math.nan)
    values = dict(ratio=effect.ratio, low=effect.low, high=effect.high, p=effect.p, **test)
    return {f"{prefix}_{key}": value for key, value in values.items()}


def remedies_frame(arms: list[Arm]) -> pd.DataFrame:
    """One row per arm: runs and failures, the FID level of the runs that did not fail, the comparison with no
    remedy (primary family), the gap closed, the residual gap to balanced and the failures against no remedy (two
    secondary families); each family Holm-adjusted across the arms of the study."""
    rows = []
    for arm in arms:
        low, high = clopper_pearson(arm.failed, arm.runs)
        failures = arm.failures_vs_none
        closed = arm.closed
        rows.append({
            "stratum": arm.stratum, "arm": arm.name, "runs": arm.runs, "failed": arm.failed,
            "failed_ci_low": low, "failed_ci_high": high, "not_failed": len(arm.fid),
            "fid_geomean": float(np.exp(np.log(arm.fid).mean())) if len(arm.fid) else math.nan,
            names.D_RT: arm.d_rt, names.D_OVERFIT_GAP: arm.overfit_gap,
            **_effect_columns("vs_none", arm.vs_none),
            "gap_closed": closed.ratio if closed else math.nan,
            "gap_closed_low": closed.low if closed else math.nan,
            "gap_closed_high": closed.high if closed else math.nan,
            "gap_closed_bounded": closed.bounded if closed else math.nan,
            **_effect_columns("vs_balanced", arm.vs_balanced),
            "fisher_p": failures.p if failures else math.nan,
            "none_failed": failures.failures_b if failures else math.nan,
            "none_runs": failures.n_b if failures else math.nan})
    frame = pd.DataFrame(rows)
    is_arm = np.array([arm.is_arm for arm in arms])

    def of_arms(column: str) -> list[float]:  # the references' rows are in no family (no remedy vs balanced: the gap)
        return [p if keep else math.nan for p, keep in zip(frame[column], is_arm)]

    families = holm_by_family({FID_FAMILY: of_arms("vs_none_p"), RESIDUAL_FAMILY: of_arms("vs_balanced_p"),
                               FAILURE_FAMILY: of_arms("fisher_p")}, primary=FID_FAMILY)
    return frame.assign(vs_none_holm_p=list(families[FID_FAMILY].adjusted),
                        vs_balanced_holm_p=list(families[RESIDUAL_FAMILY].adjusted),
                        fisher_holm_p=list(families[FAILURE_FAMILY].adjusted))


# --- words ---------------------------------------------------------------------------------------------------

def _failures_words(row, holm_p: float = math.nan) -> str:
    """'8 of 8 failed against 0 of 8 (Fisher p = 0.00016)': an arm's failures against no remedy's."""
    from reports.tables import fmt_p

    adjusted = f", Holm {fmt_p(holm_p)}" if np.isfinite(holm_p) else ""
    return (f"{row['failed']:.0f} of {row['runs']:.0f} failed against {row['none_failed']:.0f} of "
            f"{row['none_runs']:.0f} (Fisher p = {fmt_p(row['fisher_p'])}{adjusted})")


def _not_compared(row) -> str:
    return (_failures_words(row) if np.isfinite(row["fisher_p"])
            else f"fewer than {MIN_RUNS_FOR_RATIO} runs that did not fail")


def verdict(row) -> str:
    """In words, from the Holm-adjusted tests only."""
    if row["arm"] in (BALANCED, NO_REMEDY):
        return ""
    if not np.isfinite(row["vs_none_ratio"]):
        return f"FID not compared: {_not_compared(row)}"
    if row["vs_none_holm_p"] < ALPHA:
        moved = "closes the gap significantly" if row["vs_none_ratio"] < 1 else "widens the gap significantly"
    else:
        moved = "no significant change vs no remedy"
    if row["vs_balanced_holm_p"] < ALPHA:
        residual = "a gap to balanced remains" if row["vs_balanced_ratio"] > 1 else "better than balanced"
    else:
        residual = "no residual gap shown"
    return f"{moved}; {residual}"


def _ratio_words(row, prefix: str) -> str:
    return f"×{row[f'{prefix}_ratio']:.2f} [{row[f'{prefix}_low']:.2f}, {row[f'{prefix}_high']:.2f}]"


def _ratio_cell(row, prefix: str) -> str:
    from reports.tables import fmt_interval

    if not np.isfinite(row[f"{prefix}_ratio"]):
        return _not_compared(row) if prefix == "vs_none" and row["arm"] not in (BALANCED, NO_REMEDY) else "–"
    return f"×{fmt_interval(row[f'{prefix}_ratio'], row[f'{prefix}_low'], row[f'{prefix}_high'])}"


def _test_words(row, prefix: str) -> str:
    """Which test gave the p: 'paired (same runs): exact sign-flip, 6 of 8 pairs lower' or 'unpaired: exact
    permutation, 8 vs 8 runs', with the smallest p these runs allow."""
    from reports.tables import fmt_p

    if row[f"{prefix}_test"] == PAIRED:
        way = "lower" if row[f"{prefix}_ratio"] < 1 else "higher"
        kind = "exact sign-flip" if row[f"{prefix}_p_exact"] else "Monte Carlo sign-flip"
        return (f"paired (same runs): {kind}, {row[f'{prefix}_in_direction']:.0f} of {row[f'{prefix}_n']:.0f} pairs "
                f"{way}; smallest p {fmt_p(row[f'{prefix}_p_floor'])}")
    kind = "exact permutation" if row[f"{prefix}_p_exact"] else "Monte Carlo permutation"
    return (f"unpaired: {kind}, {row[f'{prefix}_n']:.0f} vs {row[f'{prefix}_n_reference']:.0f} runs; smallest p "
            f"{fmt_p(row[f'{prefix}_p_floor'])}")


def _closed_cell(row) -> str:
    if not np.isfinite(row["gap_closed"]):
        return "–"
    if not row["gap_closed_bounded"]:
        return f"{row['gap_closed']:.0%} (unbounded)"
    return f"{row['gap_closed']:.0%} [{row['gap_closed_low']:.0%}, {row['gap_closed_high']:.0%}]"


def _p_cell(p: float, adjusted: float) -> str:
    from reports.tables import fmt_p

    return "–" if not np.isfinite(p) else f"{fmt_p(p)} (Holm {fmt_p(adjusted)})"


def _failed_cell(row) -> str:
    if row["arm"].startswith(EMA_ARM):
        return f"{row['failed']:.0f} of {row['runs']:.0f} (the no-remedy runs)"
    return f"{row['failed']:.0f} of {row['runs']:.0f} [{row['failed_ci_low']:.0%}, {row['failed_ci_high']:.0%}]"


def _family_sizes(frame: pd.DataFrame) -> dict[str, int]:
    columns = {FID_FAMILY: "vs_none_holm_p", RESIDUAL_FAMILY: "vs_balanced_holm_p", FAILURE_FAMILY: "fisher_holm_p"}
    return {family: int(np.isfinite(frame[column]).sum()) for family, column in columns.items()}


def families_note(frame: pd.DataFrame) -> str:
    """The study's declared primary family and its secondary ones, with their sizes (for the table and for
    "What this study shows")."""
    sizes = _family_sizes(frame)
    return (f"Declared primary family: each arm against no remedy ({sizes[FID_FAMILY]} comparisons, Holm); "
            f"secondary families, each Holm-adjusted within itself: the residual gap to balanced "
            f"({sizes[RESIDUAL_FAMILY]}) and the failure rates against no remedy ({sizes[FAILURE_FAMILY]}).")


def remedies_table(frame: pd.DataFrame, fid_label: str):
    from reports.tables import Table, fmt

    columns = ["stratum", "arm", "runs", "failed [95% Clopper–Pearson]",
               "failures vs no remedy: Fisher p (Holm, secondary)",
               f"{fid_label}, runs that did not fail (geometric mean)", "vs no remedy: ratio [95%]", "test",
               "p (Holm, primary)", "gap closed [95% Fieller]", "vs balanced (unpaired): ratio [95% Welch], test",
               "p (Holm, secondary)", "D r_t", "D(x_train) − D(x_heldout)", "verdict"]
    rows, bold = [], set()
    for _, row in frame.iterrows():
        compared = np.isfinite(row["vs_none_ratio"])
        residual = np.isfinite(row["vs_balanced_ratio"])
        rows.append([row["stratum"], row["arm"], f"{row['runs']:.0f}", _failed_cell(row),
                     _p_cell(row["fisher_p"], row["fisher_holm_p"]),
                     f"{fmt(row['fid_geomean'])} (n = {row['not_failed']:.0f})", _ratio_cell(row, "vs_none"),
                     _test_words(row, "vs_none") if compared else "–",
                     _p_cell(row["vs_none_p"], row["vs_none_holm_p"]),
                     _closed_cell(row),
                     f"{_ratio_cell(row, 'vs_balanced')}; {_test_words(row, 'vs_balanced')}" if residual else "–",
                     _p_cell(row["vs_balanced_p"], row["vs_balanced_holm_p"]),
                     fmt(row[names.D_RT]), fmt(row[names.D_OVERFIT_GAP]), verdict(row)])
        if row["vs_none_holm_p"] < ALPHA and row["vs_none_ratio"] < 1:
            bold.add((len(rows) - 1, 9))
        if row["fisher_holm_p"] < ALPHA:
            bold.add((len(rows) - 1, 4))
    note = ("Runs that failed or diverged (gan.outcome) count as failures, with the exact Clopper–Pearson 95% "
            "interval and Fisher's exact test against no remedy, and leave every FID magnitude: the ratio, the gap "
            "closed and the residual gap use the runs that did not fail, and an arm with fewer than "
            f"{MIN_RUNS_FOR_RATIO} of them gets its failure count instead. Pairing follows the design: the EMA arm is "
            "the no-remedy runs scored through the moving average of G, so it is paired run by run (exp of the mean "
            "log ratio, paired t-interval, exact sign-flip p, smallest 2/2^n with n pairs); every other arm trains "
            "another network or optimiser and shares nothing with a seed's no-remedy run, so it is unpaired (ratio "
            "of geometric means, exp of the Welch 95% interval of the log difference, two-sample permutation p of "
            "log FID over all C(n_a + n_b, n_a) splits, smallest 2/C(2n, n) at n vs n); the residual gap to balanced "
            "is unpaired too. Gap closed = (mean log FID no remedy − mean log FID arm) / (mean log FID no remedy − "
            "mean log FID balanced), 100% = the balanced level, with Fieller's 95% interval for independent groups "
            "(unbounded when the gap itself is not clearly nonzero). " + families_note(frame) + " "
            "r_t = E[sign(D_logit(x_train))] (ADA; 0: no overfitting, 1: complete); "
            "D(x_train) − D(x_heldout) > 0: D rates its training images as more real than new ones. Bold: closes the "
            "gap significantly; failure rate significantly different from no remedy's.")
    return Table("What rescues the imbalanced GAN: remedies against no remedy and the balanced reference", columns,
                 rows, bold, note)


def _test_sentence(row, prefix: str, holm_p: float) -> str:
    from reports.tables import fmt_p

    if row[f"{prefix}_test"] == PAIRED:
        return (f"paired within the same runs, {row[f'{prefix}_in_direction']:.0f} of {row[f'{prefix}_n']:.0f}; "
                f"exact sign-flip p = {fmt_p(row[f'{prefix}_p'])}, Holm {fmt_p(holm_p)}")
    kind = "exact" if row[f"{prefix}_p_exact"] else "Monte Carlo"
    return (f"unpaired, {row[f'{prefix}_n']:.0f} vs {row[f'{prefix}_n_reference']:.0f} runs that did not fail; "
            f"{kind} permutation p = {fmt_p(row[f'{prefix}_p'])}, Holm {fmt_p(holm_p)}")


def findings(frame: pd.DataFrame, fid_label: str) -> list[str]:
    """Sentences for Holm-significant comparisons only: each arm against no remedy (the primary family), then the
    residual gap to balanced and the failure rates (secondary families), labelled (secondary)."""
    sentences = []
    for _, row in frame[frame["vs_none_holm_p"] < ALPHA].iterrows():
        direction = "lowers" if row["vs_none_ratio"] < 1 else "raises"
        sentences.append(
            f"In {row['stratum']}, {row['arm']} {direction} the final {fid_label} against no remedy by "
            f"{_ratio_words(row, 'vs_none')} ({_test_sentence(row, 'vs_none', row['vs_none_holm_p'])}), closing "
            f"{_closed_cell(row)} of the gap to the balanced configuration.")
    residual = frame[frame["vs_balanced_holm_p"] < ALPHA]
    above_balanced = residual["vs_balanced_ratio"] > 1
    for (stratum, above), rows in residual.groupby([residual["stratum"], above_balanced], sort=False):
        items = "; ".join(f"{row['arm']} {_ratio_words(row, 'vs_balanced')} "
                          f"({_test_sentence(row, 'vs_balanced', row['vs_balanced_holm_p'])})"
                          for _, row in rows.iterrows())
        where = (f"a gap to the balanced configuration's final {fid_label} remains" if above else
                 f"the final {fid_label} falls below the balanced configuration's")
        sentences.append(f"(secondary) In {stratum}, {where}: {items}.")
    for _, row in frame[frame["fisher_holm_p"] < ALPHA].iterrows():
        left = ("" if np.isfinite(row["vs_none_ratio"]) else
                f"; its {fid_label} is not compared ({row['not_failed']:.0f} of its runs did not fail, "
                f"{MIN_RUNS_FOR_RATIO} needed)")
        sentences.append(f"(secondary) In {row['stratum']}, {row['arm']} against no remedy: "
                         f"{_failures_words(row, row['fisher_holm_p'])}{left}.")
    return sentences


def remedy_runs(study: StudyData) -> pd.DataFrame:
    """The runs a remedies study compares, params unprefixed: every trial that trained to the end of its budget
    (or diverged) with a final FID or a failure outcome."""
    from reports.tables import cut_short, with_factors

    trials = study.trials
    ended = trials[cut_short(trials).isna()]
    failed = failed_mask(ended)
    column = METRIC_PREFIX + study.fid_metric
    return with_factors(study, ended[failed | ended[column].notna()])


def remedies_section(study: StudyData):
    """(numbers for remedies.csv, the table, finding sentences), or None when the study tries no remedy."""
    frame = remedy_runs(study)
    if not {"arch", "g_width", "d_width", "seed"} <= set(frame) or not is_remedies_study(frame):
        return None
    arms = remedy_arms(frame, study.searched, study.fid_metric)
    if not any(arm.is_arm for arm in arms):
        return None
    numbers = remedies_frame(arms)
    return numbers, remedies_table(numbers, study.fid_label), findings(numbers, study.fid_label)
