"""The mode-collapse section of a Stacked MNIST study (PacGAN's capacity experiment).

Per pack m and D/G capacity ratio (log2(d_width / g_width): −2 is D at ¼ of G's feature maps per layer):
modes covered (of 1,000) and KL(p̂(mode) ‖ uniform) in nats from the final evaluation (26,000 samples), with
the classifier FID and KID beside them; each a mean with its 95% t-interval over the trials (seeds) at that
level. Below them: what the real stacked test data score on the same count (the study's reference rows) and
PacGAN's published Table 3, whose ± is a standard deviation over their runs, not an interval.

The section is drawn only for studies whose trials report modes. Pure pandas/matplotlib on the report's
trial frame; MLflow is read by reports.load.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gan import names
from reports.load import METRIC_PREFIX, StudyData
from reports.plots import Plot, save_figure
from reports.effects import seed_paired_difference
from reports.stats import t_interval
from reports.tables import Table, fmt, fmt_interval, with_factors

CAPACITY = names.CAPACITY_RATIO_LOG2
PACK = names.PACK
# (metric, column label, the better direction): what the section shows per level
COLUMNS = ((names.MODES_COVERED, "modes covered (of 1,000)", "max"),
           (names.MODES_KL, "KL(modes ‖ uniform), nats", "min"),
           (names.FID, "classifier FID", "min"),
           (names.KID, "classifier KID", "min"))
# the real-data reference row (parent run's reference/*) that goes with each metric
REFERENCE = {names.MODES_COVERED: names.MODES_COVERED_TEST, names.MODES_KL: names.MODES_KL_TEST,
             names.FID: names.FID_TRAIN_TEST, names.KID: names.KID_TRAIN_TEST}
# PacGAN (Lin et al. 2018), Table 3: Stacked MNIST, 26,000 samples; mean ± std over their runs
PUBLISHED = pd.DataFrame(
    [("DCGAN", 1, -2.0, 30.6, 20.7, 5.99, 0.42), ("DCGAN", 1, -1.0, 628.0, 140.9, 2.58, 0.75),
     ("PacDCGAN3", 3, -2.0, 601.3, 32.2, 2.00, 0.17), ("PacDCGAN3", 3, -1.0, 866.6, 12.1, 0.90, 0.04)],
    columns=["model", PACK, CAPACITY, "modes_mean", "modes_std", "kl_mean", "kl_std"])


def ratio_words(level: float) -> str:
    """log2(D/G) -> 'D = ¼ G' style text: −2 -> '1/4', 0 -> '1', 1 -> '2'."""
    return str(Fraction(2.0 ** float(level)).limit_denominator(64))


def modes_frame(study: StudyData) -> pd.DataFrame | None:
    """The finished trials that report modes, with pack (1 where the study predates it) and capacity level."""
    frame = with_factors(study)
    if METRIC_PREFIX + names.MODES_COVERED not in frame or frame[METRIC_PREFIX + names.MODES_COVERED].isna().all():
        return None
    frame = frame[frame[METRIC_PREFIX + names.MODES_COVERED].notna()].copy()
    frame[PACK] = pd.to_numeric(frame[PACK], errors="coerce").fillna(1).astype(int) if PACK in frame else 1
    if CAPACITY not in frame:
        frame[CAPACITY] = 0.0
    frame[CAPACITY] = pd.to_numeric(frame[CAPACITY], errors="coerce")
    return frame


def modes_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (pack, capacity level): n, the widths, and per metric mean / ci_low / ci_high (95% t)."""
    rows = []
    for (pack, level), group in frame.groupby([PACK, CAPACITY], sort=True):
        row = {PACK: int(pack), CAPACITY: float(level), "d_over_g": ratio_words(level), "n": len(group)}
        for width in ("g_width", "d_width"):
            if width in group:
                row[width] = ",".join(f"{w:g}" for w in sorted(pd.to_numeric(group[width]).unique()))
        for metric, _, _ in COLUMNS:
            interval = t_interval(group[METRIC_PREFIX + metric]) if METRIC_PREFIX + metric in group else t_interval([])
            row.update({f"{metric}_mean": interval.mean, f"{metric}_ci_low": interval.low,
                        f"{metric}_ci_high": interval.high, f"{metric}_n": interval.n})
        rows.append(row)
    return pd.DataFrame(rows)


def packing_effects(frame: pd.DataFrame) -> pd.DataFrame:
    """Per capacity level and pack m > the smallest: modes covered of pack m minus the smallest pack, trial by
    trial with the same seed, with the 95% paired t-interval of the mean difference and the exact sign-flip p
    (shown, not claimed: the claims of a report are made on its primary metric)."""
    packs = sorted(frame[PACK].unique())
    column = METRIC_PREFIX + names.MODES_COVERED
    if len(packs) < 2 or "seed" not in frame:
        return pd.DataFrame()
    rows = []
    for level, at_level in frame.groupby(CAPACITY, sort=True):
        base = at_level[at_level[PACK] == packs[0]]
        for pack in packs[1:]:
            effect = seed_paired_difference(at_level[at_level[PACK] == pack], base, column)
            interval = effect.difference
            rows.append({CAPACITY: float(level), PACK: int(pack), "base_pack": int(packs[0]), "pairs": interval.n,
                         "difference_mean": interval.mean, "ci_low": interval.low, "ci_high": interval.high,
                         "p_exact": effect.p, "pairs_in_direction": effect.n_in_direction})
    return pd.DataFrame(rows)


def direction_words(summary: pd.DataFrame, packing: pd.DataFrame) -> str:
    """How modes covered move with D's capacity (per pack, from the means) and with packing (seed-paired,
    with paired t-intervals and exact p)."""
    sentences = []
    for pack, part in summary.groupby(PACK, sort=True):
        part = part.sort_values(CAPACITY)
        means = part[f"{names.MODES_COVERED}_mean"].to_numpy()
        steps = " → ".join(f"{fmt(m)} (D = {r} G)" for m, r in zip(means, part["d_over_g"]))
        trend = ("rise" if np.all(np.diff(means) > 0) else "fall" if np.all(np.diff(means) < 0) else "do not move "
                 "monotonically") if len(means) > 1 else "are measured at one ratio"
        sentences.append(f"pack {pack}: mean modes covered {trend} with D's capacity: {steps}")
    for row in packing.itertuples():
        sentences.append(f"pack {getattr(row, PACK)} vs pack {row.base_pack} at D = {ratio_words(getattr(row, CAPACITY))} "
                         f"G: {row.difference_mean:+.0f} modes [95% CI {row.ci_low:+.0f}, {row.ci_high:+.0f}] "
                         f"over {row.pairs} seed pairs, {row.pairs_in_direction} in its direction, exact p = "
                         f"{row.p_exact:.2g}")
    return "; ".join(sentences) + "."


def modes_table(study: StudyData, summary: pd.DataFrame, packing: pd.DataFrame) -> Table:
    shown = [(metric, label, best) for metric, label, best in COLUMNS if summary[f"{metric}_n"].sum() > 0]
    rows, bold = [], set()
    for _, row in summary.iterrows():
        widths = f"{row.get('g_width', '?')} / {row.get('d_width', '?')}"
        rows.append([str(row[PACK]), f"D = {row['d_over_g']} G", widths, str(row["n"])]
                    + [fmt_interval(row[f"{m}_mean"], row[f"{m}_ci_low"], row[f"{m}_ci_high"]) for m, _, _ in shown])
    for j, (metric, _, best) in enumerate(shown):
        means = summary[f"{metric}_mean"]
        if len(summary) > 1 and means.notna().any():
            index = means.idxmax() if best == "max" else means.idxmin()
            bold.add((int(summary.index.get_loc(index)), 4 + j))
    reference = study.reference
    rows.append(["–", "real test data", "–", "–"] + [fmt(reference.get(REFERENCE[m], np.nan)) for m, _, _ in shown])
    for published in PUBLISHED.itertuples():
        cells = {names.MODES_COVERED: f"{published.modes_mean:g} ± {published.modes_std:g}",
                 names.MODES_KL: f"{published.kl_mean:g} ± {published.kl_std:g}"}
        rows.append([str(published.pack), f"D = {ratio_words(published.capacity_ratio_log2)} G",
                     f"PacGAN Table 3 ({published.model})", "–"] + [cells.get(m, "–") for m, _, _ in shown])
    note = ("Final evaluation (modes and KL on 26,000 samples, each channel labelled by the digit classifier; FID "
            "and KID on 10,000 against the test split). Mean [95% t-interval] over the trials (seeds) of each pack "
            "and D/G feature-map ratio; bold: the best row per column. 'real test data': the study's reference "
            "rows (26,000 stacked test images for the modes; FID and KID of training against test images). "
            "PacGAN Table 3 rows are published numbers, mean ± standard deviation over their runs, at their "
            "network sizes and training length. " + direction_words(summary, packing))
    return Table("Mode collapse: modes covered vs D/G capacity and packing", ["pack", "D/G feature maps",
                 "G / D width", "trials"] + [label for _, label, _ in shown], rows, bold, note)


def modes_plot(study: StudyData, summary: pd.DataFrame, out: Path) -> Plot:
    """Two panels (modes covered, KL) against log2(D/G), one line per pack with 95% t-intervals."""
    figure = Figure(figsize=(10, 4.2))
    packs = sorted(summary[PACK].unique())
    colours = ["#2e86c1", "#c0392b", "#27ae60", "#8e44ad"]
    for index, (metric, label, _) in enumerate(COLUMNS[:2]):
        axes = figure.add_subplot(1, 2, index + 1)
        for p_index, pack in enumerate(packs):
            part = summary[summary[PACK] == pack].sort_values(CAPACITY)
            x = part[CAPACITY] + 0.04 * (p_index - (len(packs) - 1) / 2)  # side by side, not on top
            mean = part[f"{metric}_mean"]
            error = [(mean - part[f"{metric}_ci_low"]).fillna(0), (part[f"{metric}_ci_high"] - mean).fillna(0)]
            axes.errorbar(x, mean, yerr=error, marker="o", capsize=4, color=colours[p_index % len(colours)],
                          label=f"pack {pack}, 95% CI over seeds")
        published_column = "modes" if metric == names.MODES_COVERED else "kl"
        for model, part in PUBLISHED.groupby("model", sort=False):
            axes.scatter(part[CAPACITY], part[f"{published_column}_mean"], marker="D", facecolors="none",
                         edgecolors="#555555", label=f"PacGAN Table 3, {model}")
        reference = study.reference.get(REFERENCE[metric])
        if reference is not None:
            axes.axhline(reference, color="#4c9a2a", linestyle="--", label="real test data")
        levels = sorted(set(summary[CAPACITY]) | set(PUBLISHED[CAPACITY]))
        axes.set_xticks(levels, [f"{ratio_words(level)}" for level in levels])
        axes.set_xlabel("D / G feature maps per layer (log scale)")
        axes.set_ylabel(label)
        axes.set_title(label)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    path = save_figure(figure, out / "modes_vs_capacity.png")
    return Plot("modes_vs_capacity", "Modes covered and KL vs D/G capacity, per pack",
                "Final evaluation, 26,000 samples per trial. Points: mean over seeds with its 95% t-interval; "
                "diamonds: PacGAN's published Table 3 (their larger budget); dashed: real stacked test data.", path)


def modes_section(study: StudyData, out: Path) -> tuple[pd.DataFrame, Table, Plot] | None:
    """(numbers for modes.csv, the table, the figure), or None when no trial reports modes."""
    frame = modes_frame(study)
    if frame is None:
        return None
    summary = modes_summary(frame)
    return summary, modes_table(study, summary, packing_effects(frame)), modes_plot(study, summary, out)
