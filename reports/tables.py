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
    Column(names.COVERAGE, "coverage", "max"),
    Column(names.D_GAP, "D(x) − D(G(z))", "zero"),
)


def imbalance_columns(study: StudyData) -> list[Column]:
    candidates = [Column(study.fid_metric, f"{study.fid_label} (lower is better)", "min"), *IMBALANCE_COLUMNS]
    return [column for column in candidates if study.has_metric(column.metric)]


def fmt(value: float) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.4g}"


def fmt_interval(mean: float, low: float, high: float) -> str:
    """'23.1 [19.8, 26.4]': a mean and its 95% interval ('23.1' alone for one trial)."""
    if not np.isfinite(low) or not np.isfinite(high):
        return fmt(mean)
    return f"{fmt(mean)} [{fmt(low)}, {fmt(high)}]"


def with_factors(study: StudyData) -> pd.DataFrame:
    """The finished trials with params unprefixed and the derived factors added."""
    frame = study.finished.rename(columns=lambda c: c[len(PARAM_PREFIX):] if c.startswith(PARAM_PREFIX) else c)
    if "lr_g" in frame and "lr_d" in frame:
        lr_g, lr_d = pd.to_numeric(frame["lr_g"], errors="coerce"), pd.to_numeric(frame["lr_d"], errors="coerce")
        frame[LR_RATIO] = np.log10(lr_g / lr_d)
    return frame


def group_keys(frame: pd.DataFrame, keys: list[str]) -> list[str]:
    """`keys` that exist, plus arch when the study has several architectures."""
    present = [key for key in keys if key in frame and frame[key].notna().any()]
    if "arch" in frame and frame["arch"].nunique() > 1 and "arch" not in present:
        present = ["arch", *present]
    return present


def summarize(frame: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """Per group of `keys`: `<metric>_mean`, `<metric>_std` (sample std, ddof=1) and `<metric>_n`."""
    parts = []
    for metric in metrics:
        values = frame.groupby(keys, dropna=False)[METRIC_PREFIX + metric]
        parts.append(values.agg(["mean", "std", "count"]).rename(
            columns={"mean": f"{metric}_mean", "std": f"{metric}_std", "count": f"{metric}_n"}))
    return pd.concat(parts, axis=1).reset_index()


def _best_index(means: pd.Series, best: str):
    finite = means[np.isfinite(means)]
    if finite.empty:
        return None
    if best == "min":
        return finite.idxmin()
    if best == "max":
        return finite.idxmax()
    return finite.abs().idxmin()


def comparison_frame(study: StudyData) -> tuple[pd.DataFrame, list[str]]:
    """The finished trials with the base width, and the strata they must be compared within."""
    frame = effects.with_base_width(with_factors(study))
    if CAPACITY not in frame:  # runs logged before capacity_ratio_log2 was a param: one level for all
        frame = frame.assign(**{CAPACITY: 0.0})
    return frame, effects.strata_keys(frame, study.searched)


def _stratum_cells(strata: list[str], row) -> list[str]:
    return [fmt(row[key]) if isinstance(row[key], float) else str(row[key]) for key in strata]


def imbalance_table(study: StudyData) -> tuple[pd.DataFrame, Table]:
    """Rows: each stratum (architecture, ...) and capacity level; cells: mean [95% t-interval] over its trials."""
    frame, strata = comparison_frame(study)
    columns = imbalance_columns(study)
    numbers = effects.level_summary(frame, strata, [c.metric for c in columns])
    rows, bold = [], set()
    for i, (_, row) in enumerate(numbers.iterrows()):
        level = f"{fmt(row[CAPACITY])}" + (" *" if row["confounded"] else "")
        widths = f"{row.get('g_width', '?')} / {row.get('d_width', '?')}"
        converged = (f"{row['with_convergence'] - row['still_improving']} of {row['with_convergence']}"
                     if row["with_convergence"] else "–")
        cells = [*_stratum_cells(strata, row), level, widths, str(row["n"]), converged]
        cells += [fmt_interval(row[f"{c.metric}_mean"], row[f"{c.metric}_ci_low"], row[f"{c.metric}_ci_high"])
                  for c in columns]
        rows.append(cells)
    first = len(strata) + 4
    by = strata[0] if len(strata) == 1 else strata
    for stratum_rows in (numbers.groupby(by).groups.values() if strata else [numbers.index]):
        part = numbers.loc[stratum_rows]
        for j, column in enumerate(columns):
            best = _best_index(part[f"{column.metric}_mean"], column.best)
            if best is not None and len(part) > 1:
                bold.add((int(numbers.index.get_loc(best)), first + j))
    note = ("Mean [95% t-interval] over the trials (seeds) at each level, within each "
            f"{' × '.join(strata) or 'study'}; final evaluation on the test split. * marks a level where more than "
            "a quarter of the trials had not converged (gan_study.convergence): its comparison is confounded with "
            "training length. Bold: the best level per column within its group (for D(x) − D(G(z)), closest to 0).")
    if study.fid_metric == names.PIXEL_FD:
        note += " pixel FD is the Fréchet distance between pixel statistics, not the Inception/classifier FID."
    header = [*strata, "log2(D/G width)", "G / D width", "trials", "converged"] + [c.label for c in columns]
    return numbers, Table("Capacity imbalance", header, rows, bold, note)


# compared seed by seed beside the quality score: classes, and on Stacked MNIST the 1,000 modes
PAIRED_METRICS = (names.CLASSES_COVERED, names.MODES_COVERED)


def paired_effects(study: StudyData) -> tuple[pd.DataFrame, list[effects.Effect], list[str]]:
    """(table numbers, the effects, the strata) of every imbalance level against balance, seed-paired."""
    frame, strata = comparison_frame(study)
    found = []
    for metric in (study.fid_metric, *PAIRED_METRICS):
        if study.has_metric(metric):
            found += effects.paired_effects(frame, strata, metric)
    return effects.effects_frame(found, strata), found, strata


def paired_effects_table(study: StudyData) -> tuple[pd.DataFrame, Table, list[str]]:
    """The paired-effects table and the sentences of "What this study shows"."""
    numbers, found, strata = paired_effects(study)
    rows, bold = [], set()
    for i, effect in enumerate(found):
        d = effect.difference
        label = effects.METRIC_WORDS.get(effect.metric, (effect.metric,))[0]
        rows.append([*(fmt(v) if isinstance(v, float) else str(v) for v in effect.stratum),
                     f"{fmt(effect.level)} ({effects.imbalance_words(effect.level)})", label, str(d.n),
                     fmt_interval(d.mean, d.low, d.high), "yes" if d.excludes_zero else "no",
                     "yes" if effect.confounded else ""])
        if d.excludes_zero:
            bold.add((i, len(strata) + 3))
    note = ("Each imbalance level against the balanced level (log2 = 0) of the same group, trial by trial with the "
            "same seed: mean difference (level − balanced) over the seed pairs [95% percentile-bootstrap interval, "
            "10,000 resamples]. With 3 seeds the bootstrap interval is narrower than a t-interval and covers less "
            "often than 95%: read n beside it. 'confounded': more than a quarter of the trials at this level or at "
            "balance had not converged.")
    table = Table("Imbalance against balance, seed-paired", [*strata, "log2(D/G width)", "metric", "seed pairs",
                  "difference [95% CI]", "CI excludes 0", "confounded"], rows, bold, note)
    return numbers, table, effects.findings(found, strata)


def findings_note(study: StudyData) -> str:
    """What the sentences of "What this study shows" rest on, and how many trials trained long enough."""
    frame, strata = comparison_frame(study)
    note = (f"Each sentence is a seed-paired difference against the balanced widths of the same "
            f"{' × '.join(strata) or 'study'} with a 95% bootstrap interval over seeds; effects whose interval "
            "includes zero are not stated (see the seed-paired table).")
    if "convergence" not in frame or frame["convergence"].isna().all():
        return note + " The trials carry no convergence tag: whether they trained long enough is unknown."
    counts = []
    groups = frame.groupby("arch", sort=True) if "arch" in frame else [("all", frame)]
    for arch, part in groups:
        labels = part["convergence"].dropna()
        counts.append(f"{arch}: {int((labels == 'converged').sum())} of {len(labels)} converged")
    improving = frame["convergence"].isin(["still_improving"]).sum()
    note += f" Training length: {'; '.join(counts)} (validation FID improved < 10% over the last quarter)."
    if improving:
        note += (f" {improving} trial(s) were still improving at the end of their budget: comparisons that involve "
                 "them are confounded with training length (marked * and 'confounded' in the tables).")
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
    """Per architecture and factor: the spread of mean score across the factor's levels, and a Kruskal–Wallis
    test of equal medians. Architectures are never pooled: their width levels differ."""
    from scipy.stats import kruskal

    frame = with_factors(study)
    score = METRIC_PREFIX + study.fid_metric
    factors = [f for f in dict.fromkeys([*STUDIED_FACTORS, *study.searched]) if f != "arch"]
    by_arch = frame.groupby("arch", sort=True) if "arch" in frame else [("all", frame)]
    records = []
    for arch, part in by_arch:
        for factor in factors:
            if factor not in part or part[factor].isna().all():
                continue
            levels = factor_levels(part, factor)
            groups = {level: part.loc[levels == level, score].dropna() for level in levels.dropna().unique()}
            groups = {level: values for level, values in groups.items() if len(values)}
            if len(groups) < 2:
                continue
            means = pd.Series({level: values.mean() for level, values in groups.items()})
            try:
                h, p = kruskal(*groups.values())
            except ValueError:  # every value identical: no ranks to compare
                h, p = math.nan, math.nan
            records.append({"arch": arch, "factor": factor, "levels": len(groups),
                            "trials": sum(map(len, groups.values())),
                            "spread_of_mean": float(means.max() - means.min()), "best_level": means.idxmin(),
                            "best_level_mean": float(means.min()), "kruskal_h": float(h), "kruskal_p": float(p)})
    numbers = pd.DataFrame(records, columns=["arch", "factor", "levels", "trials", "spread_of_mean", "best_level",
                                             "best_level_mean", "kruskal_h", "kruskal_p"])
    numbers = numbers.sort_values(["arch", "spread_of_mean"], ascending=[True, False], kind="stable")
    numbers = numbers.reset_index(drop=True)
    rows = [[str(r.arch), r.factor, str(r.levels), str(r.trials), fmt(r.spread_of_mean),
             f"{fmt(r.best_level) if isinstance(r.best_level, float) else r.best_level} ({fmt(r.best_level_mean)})",
             fmt(r.kruskal_h), fmt(r.kruskal_p)] for r in numbers.itertuples()]
    table = Table(
        f"Effect sizes on {study.fid_label}, per architecture",
        ["arch", "factor", "levels", "trials", f"spread of mean {study.fid_label} (max − min)", "best level (mean)",
         "Kruskal–Wallis H", "p"],
        rows, set(),
        f"Within each architecture. Levels of numeric factors with more than {MAX_LEVELS} values are quartile bins; "
        "log10(lr_g/lr_d) is rounded to 0.1. The spread pools every other setting of the architecture; p: chance of "
        "differences among level medians at least this large if the factor had no effect (few trials per level make "
        "it coarse). The seed-paired table above is the comparison to read for the capacity ratio.",
    )
    return numbers, table


def optuna_importances(study: StudyData) -> tuple[pd.DataFrame, Table] | None:
    """fANOVA importances of the searched params, from an in-memory Optuna study rebuilt from the trials.

    None when the study did not search with Optuna, fewer than 2 params vary, or too few trials finished.
    """
    if study.parent_params.get("search") != "optuna":
        return None
    frame = with_factors(study)
    score = METRIC_PREFIX + study.fid_metric
    varying = [name for name in study.searched if name in frame and frame[name].nunique(dropna=True) > 1]
    complete = frame.dropna(subset=[score, *varying])
    if len(varying) < 2 or len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return None
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
    table = Table(f"Optuna parameter importances for {study.fid_label}",
                  ["param", "importance"], [[p, fmt(v)] for p, v in importances.items()], {(0, 1)},
                  f"fANOVA on {len(complete)} finished trials; importances sum to 1.")
    return numbers, table


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
        ("search / scheduler", f"{params.get('search', '?')} / {params.get('scheduler', '?')}"),
        ("searched", ", ".join(study.searched) or "–"),
        ("fixed", ", ".join(f"{k}={v}" for k, v in json.loads(params.get("fixed", "{}")).items()) or "–"),
        ("budget", budget_text(params.get("budget"))),
        ("trials", f"{len(trials)} ({status_text}); {finished} with a {study.fid_label}"),
        ("compute time", f"{compute:.0f} s summed over the trials' runs that ended (start to end time)"),
        ("wall time", f"{wall:.0f} s" if wall is not None else "– (study not finished)"),
    ]
    if partial or finished < len(trials):
        rows.append(("partial study", f"{', '.join(partial) or 'some trials without a score'}: "
                                      f"the tables use the {finished} trials with a {study.fid_label}"))
    for name, value in study.reference.items():
        rows.append((f"reference: {name}", fmt(value)))
    return rows


def trials_csv_frame(study: StudyData) -> pd.DataFrame:
    """Every trial, params and metric values, with readable column names."""
    return study.trials.rename(columns=lambda c: c.replace(PARAM_PREFIX, "").replace(METRIC_PREFIX, "metric:"))
