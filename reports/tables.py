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


def fmt_mean_std(mean: float, std: float, n: int) -> str:
    spread = f" ± {fmt(std)}" if np.isfinite(std) else ""
    return f"{fmt(mean)}{spread} (n={n})"


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


def imbalance_table(study: StudyData) -> tuple[pd.DataFrame, Table]:
    """Rows: log2(D/G capacity) levels (per arch if several); cells: mean ± std over trials, with n."""
    frame = with_factors(study)
    keys = group_keys(frame, [CAPACITY])
    if not keys:  # runs logged before capacity_ratio_log2 was a param: one row for the whole study
        frame, keys = frame.assign(trials="all"), ["trials"]
    columns = imbalance_columns(study)
    numbers = summarize(frame, keys, [c.metric for c in columns])
    if study.has_metric(names.PARZEN_SEM):
        # the within-trial standard error of the Parzen estimate, averaged over the group's trials
        numbers["parzen_sem_mean"] = frame.groupby(keys, dropna=False)[METRIC_PREFIX + names.PARZEN_SEM].mean().values
    labels = {CAPACITY: "log2(D/G width)", "arch": "arch"}
    rows = []
    for _, row in numbers.iterrows():
        cells = [fmt(row[key]) if isinstance(row[key], float) else str(row[key]) for key in keys]
        for column in columns:
            metric = column.metric
            cell = fmt_mean_std(row[f"{metric}_mean"], row[f"{metric}_std"], int(row[f"{metric}_n"]))
            if column.metric == names.PARZEN and "parzen_sem_mean" in numbers:
                cell += f"; s.e.m. {fmt(row['parzen_sem_mean'])}"
            cells.append(cell)
        rows.append(cells)
    bold = set()
    for j, column in enumerate(columns):
        best = _best_index(numbers[f"{column.metric}_mean"], column.best)
        if best is not None and len(numbers) > 1:
            bold.add((int(best), len(keys) + j))
    note = ("Mean ± sample standard deviation over trials (seeds and other settings) at each level; "
            "bold: the best level per column (for D(x) − D(G(z)), the one closest to 0).")
    if study.fid_metric == names.PIXEL_FD:
        note += " pixel FD is the Fréchet distance between pixel statistics, not the Inception/classifier FID."
    table = Table("Capacity imbalance", [labels.get(k, k) for k in keys] + [c.label for c in columns], rows, bold, note)
    return numbers, table


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
    """Per factor: the spread of mean score across its levels, and a Kruskal–Wallis test of equal medians."""
    from scipy.stats import kruskal

    frame = with_factors(study)
    score = METRIC_PREFIX + study.fid_metric
    factors = list(dict.fromkeys([*STUDIED_FACTORS, *study.searched]))
    records = []
    for factor in factors:
        if factor not in frame or frame[factor].isna().all():
            continue
        levels = factor_levels(frame, factor)
        groups = {level: frame.loc[levels == level, score].dropna() for level in levels.dropna().unique()}
        groups = {level: values for level, values in groups.items() if len(values)}
        if len(groups) < 2:
            continue
        means = pd.Series({level: values.mean() for level, values in groups.items()})
        try:
            h, p = kruskal(*groups.values())
        except ValueError:  # every value identical: no ranks to compare
            h, p = math.nan, math.nan
        best = means.idxmin()
        records.append({"factor": factor, "levels": len(groups), "trials": sum(map(len, groups.values())),
                        "spread_of_mean": float(means.max() - means.min()), "best_level": best,
                        "best_level_mean": float(means.min()), "kruskal_h": float(h), "kruskal_p": float(p)})
    numbers = pd.DataFrame(records, columns=["factor", "levels", "trials", "spread_of_mean", "best_level",
                                             "best_level_mean", "kruskal_h", "kruskal_p"])
    numbers = numbers.sort_values("spread_of_mean", ascending=False, kind="stable").reset_index(drop=True)
    rows = [[r.factor, str(r.levels), str(r.trials), fmt(r.spread_of_mean),
             f"{fmt(r.best_level) if isinstance(r.best_level, float) else r.best_level} ({fmt(r.best_level_mean)})",
             fmt(r.kruskal_h), fmt(r.kruskal_p)] for r in numbers.itertuples()]
    table = Table(
        f"Effect sizes on {study.fid_label}",
        ["factor", "levels", "trials", f"spread of mean {study.fid_label} (max − min)", "best level (mean)",
         "Kruskal–Wallis H", "p"],
        rows, {(0, 3)} if rows else set(),
        f"Levels of numeric factors with more than {MAX_LEVELS} values are quartile bins; log10(lr_g/lr_d) is "
        "rounded to 0.1. p: chance of differences among level medians at least this large if the factor had no "
        "effect (few trials per level make it coarse).",
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
        ("budget", params.get("budget", "?")),
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
