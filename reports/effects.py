"""G/D imbalance effects with their uncertainty, estimated only within comparable groups.

A study's trials are split into strata that must not be pooled: the architecture, and every other
searched setting with few levels (k, the loss, ...) or a base width that varies. Within a stratum the
capacity level is log2(D width / G width) (0 = balanced); the base width of a trial is max(G, D width).

- `level_summary`: per stratum and level, the mean of a metric over trials with a 95% t-interval, and
  how many trials had not converged (gan.convergence) — a level where more than a quarter of the trials
  are still improving is *confounded with training length*.
- `paired_effects`: per stratum and level ≠ 0, the seed-paired difference of a metric against the
  balanced level of the same stratum (same seed: one difference per seed), its mean and 95% bootstrap
  interval over seeds.
- `findings`: one sentence per effect whose interval excludes zero, in words.

Pure pandas/numpy on the report's trial frame (one row per finished trial, params unprefixed).
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from gan import names
from reports.load import METRIC_PREFIX
from reports.stats import Interval, bootstrap_interval, t_interval

CAPACITY = names.CAPACITY_RATIO_LOG2
BASE_WIDTH = "base_width"  # max(g_width, d_width): what the capacity ratio is taken around
CONVERGENCE = "convergence"  # the column of the trial frame holding the convergence tag
MAX_STRATUM_LEVELS = 6  # a searched setting with more values (e.g. a sampled learning rate) is not a stratum
CONFOUNDED_SHARE = 0.25  # more than this share of a level's trials still improving: confounded
WIDTH_PARAMS = ("g_width", "d_width", CAPACITY, BASE_WIDTH, "seed")


@dataclass(frozen=True)
class Effect:
    """One seed-paired comparison of an imbalance level with the balanced level of its stratum."""

    stratum: tuple  # values of the stratum keys
    level: float  # log2(D width / G width)
    metric: str
    difference: Interval  # mean over seeds of (metric at this level − metric at balance), bootstrap CI
    confounded: bool  # this level or the balanced one has more than a quarter of trials still improving


def with_base_width(frame: pd.DataFrame) -> pd.DataFrame:
    if "g_width" in frame and "d_width" in frame:
        widths = frame[["g_width", "d_width"]].apply(pd.to_numeric, errors="coerce")
        frame = frame.assign(**{BASE_WIDTH: widths.max(axis=1)})
    return frame


def strata_keys(frame: pd.DataFrame, searched: list[str]) -> list[str]:
    """arch, then every other searched setting (or a varying base width) with 2..MAX_STRATUM_LEVELS values."""
    keys = ["arch"] if "arch" in frame else []
    by_arch = frame.groupby("arch") if keys else [(None, frame)]
    for key in [*searched, BASE_WIDTH]:
        if key in keys or key in WIDTH_PARAMS[:3] or key == "seed" or key not in frame:
            continue
        # the most values the setting takes within one architecture
        levels = max(group[key].nunique(dropna=True) for _, group in by_arch)
        if 2 <= levels <= MAX_STRATUM_LEVELS:
            keys.append(key)
    return keys


def _still_improving(group: pd.DataFrame) -> tuple[int, int]:
    """(trials still improving, trials with a convergence label) of a group."""
    if CONVERGENCE not in group:
        return 0, 0
    labels = group[CONVERGENCE].dropna()
    return int((labels != "converged").sum()), int(len(labels))


def _confounded(group: pd.DataFrame) -> bool:
    improving, labelled = _still_improving(group)
    return labelled > 0 and improving > CONFOUNDED_SHARE * labelled


def level_summary(frame: pd.DataFrame, strata: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row per stratum and capacity level: n, the widths, per metric mean/ci_low/ci_high, the convergence
    counts and the confounded flag."""
    rows = []
    for key, group in frame.groupby([*strata, CAPACITY], dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip([*strata, CAPACITY], key))
        row["n"] = len(group)
        for width in ("g_width", "d_width"):
            if width in group:
                row[width] = ",".join(f"{w:g}" for w in sorted(pd.to_numeric(group[width]).unique()))
        for metric in metrics:
            column = METRIC_PREFIX + metric
            interval = t_interval(group[column]) if column in group else t_interval([])
            row.update({f"{metric}_mean": interval.mean, f"{metric}_ci_low": interval.low,
                        f"{metric}_ci_high": interval.high, f"{metric}_n": interval.n})
        improving, labelled = _still_improving(group)
        row.update(still_improving=improving, with_convergence=labelled, confounded=_confounded(group))
        rows.append(row)
    return pd.DataFrame(rows)


def seed_paired_difference(treated: pd.DataFrame, control: pd.DataFrame, column: str):
    """Mean of `column` in `treated` minus `control`, seed by seed over the seeds both have (each seed's mean),
    with its 95% percentile-bootstrap interval (reports.stats.Interval)."""
    per_seed = treated.groupby("seed")[column].mean()
    base = control.groupby("seed")[column].mean()
    seeds = per_seed.index.intersection(base.index)
    return bootstrap_interval((per_seed[seeds] - base[seeds]).to_numpy())


def paired_effects(frame: pd.DataFrame, strata: list[str], metric: str) -> list[Effect]:
    """Seed-paired differences of `metric` against the balanced level of each stratum."""
    column = METRIC_PREFIX + metric
    if column not in frame or CAPACITY not in frame or "seed" not in frame:
        return []
    effects = []
    groups = frame.groupby(strata, dropna=False, sort=True) if strata else [((), frame)]
    for stratum, group in groups:
        stratum = stratum if isinstance(stratum, tuple) else (stratum,)
        balanced = group[group[CAPACITY] == 0]
        if balanced.empty:
            continue
        for level, treated in group[group[CAPACITY] != 0].groupby(CAPACITY, sort=True):
            effects.append(Effect(stratum, float(level), metric, seed_paired_difference(treated, balanced, column),
                                  _confounded(treated) or _confounded(balanced)))
    return effects


def effects_frame(effects: list[Effect], strata: list[str]) -> pd.DataFrame:
    rows = [{**dict(zip(strata, effect.stratum)), CAPACITY: effect.level, "metric": effect.metric,
             "pairs": effect.difference.n, "difference_mean": effect.difference.mean,
             "ci_low": effect.difference.low, "ci_high": effect.difference.high,
             "ci_excludes_zero": effect.difference.excludes_zero, "confounded": effect.confounded}
            for effect in effects]
    return pd.DataFrame(rows)


# --- in words ----------------------------------------------------------------------------------------
METRIC_WORDS = {names.FID: ("FID", "raises", "lowers"), names.PIXEL_FD: ("pixel FD", "raises", "lowers"),
                names.CLASSES_COVERED: ("classes covered", "raises", "lowers"),
                names.MODES_COVERED: ("modes covered (of 1,000)", "raises", "lowers"),
                names.PARZEN: ("Parzen log-likelihood", "raises", "lowers")}


def imbalance_words(level: float) -> str:
    """'D 8× wider than G' for +3, 'G 4× wider than D' for −2, fractional ratios as 2^x."""
    ratio = 2 ** abs(level)
    times = f"{ratio:.0f}×" if abs(ratio - round(ratio)) < 1e-9 else f"{ratio:.2g}×"
    return f"D {times} wider than G" if level > 0 else f"G {times} wider than D"


def _number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def stratum_words(strata: list[str], stratum: tuple) -> str:
    parts = [str(value) if key == "arch" else f"{key} = {value:g}" if isinstance(value, float)
             else f"{key} = {value}" for key, value in zip(strata, stratum)]
    return parts[0].upper() + (f" ({', '.join(parts[1:])})" if len(parts) > 1 else "") if parts else "the GAN"


def findings(effects: list[Effect], strata: list[str]) -> list[str]:
    """One sentence per effect whose 95% interval excludes zero; confounded ones say why they may mislead."""
    sentences = []
    for effect in effects:
        if not effect.difference.excludes_zero:
            continue
        label, up, down = METRIC_WORDS.get(effect.metric, (effect.metric, "raises", "lowers"))
        d = effect.difference
        verb = up if d.mean > 0 else down
        sentence = (f"{imbalance_words(effect.level)} {verb} {stratum_words(strata, effect.stratum)}'s final {label} "
                    f"by {_number(abs(d.mean))} [95% CI {_number(d.low)}, {_number(d.high)}] against balanced "
                    f"widths (difference over {d.n} seed pairs)")
        if effect.confounded:
            sentence += ("; but more than a quarter of these trials had not converged, so the difference may "
                         "reflect training length")
        sentences.append(sentence + ".")
    return sentences
