"""The report's figures, one function each: PNG files drawn with matplotlib's Agg canvas.

Figures are built with `matplotlib.figure.Figure`, not pyplot, so drawing them touches no global
backend state of the process that calls the report (e.g. the study runner). A function returns
None when the study lacks what its figure needs (no k levels, no sample grids...).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gan import names
from reports.load import METRIC_PREFIX, StudyData, download_samples, metric_history
from reports import effects
from reports.tables import (CAPACITY, comparison_frame, compared_trials, inference, metric_label, primary_metric,
                            with_factors)

DPI = 110
REGIME_COLOURS = {"balanced": "#4c9a2a", "d_dominates": "#c0392b", "g_dominates": "#2e86c1",
                  "mode_collapse": "#8e44ad", "diverged": "#333333", "completed": "#4c9a2a",
                  "stopped_early": "#f39c12", "errored": "#333333", "running": "#95a5a6"}


@dataclass(frozen=True)
class Plot:
    name: str  # the PNG's file stem
    title: str
    caption: str
    path: Path


def save_figure(figure: Figure, path: Path) -> Path:
    """Lay the figure out and write it as a PNG at the reports' resolution; the path, for the caller's Plot."""
    figure.tight_layout()
    figure.savefig(path, dpi=DPI, format="png")
    return path


def _finish_axes(axes, xlabel: str, ylabel: str, title: str, fontsize: float | None = None) -> None:
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=fontsize)
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)


def _level_label(keys: list[str], values) -> str:
    values = values if isinstance(values, tuple) else (values,)
    return ", ".join(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
                     for key, value in zip(keys, values))


def _panels(frame: pd.DataFrame, strata: list[str]):
    """(title, part) per stratum: one panel each, so groups with different levels are never drawn as one line."""
    if not strata:
        return [("all trials", frame)]
    return [(effects.stratum_words(strata, key if isinstance(key, tuple) else (key,)), part)
            for key, part in frame.groupby(strata, sort=True)]


def fid_vs_capacity(study: StudyData, out: Path) -> Plot | None:
    """Per stratum (architecture, ...): each (G, D) cell's mean primary score with its 95% interval against
    log2(D/G width), one colour per G width, so cells that share G line up."""
    frame, strata = comparison_frame(study)
    if frame[CAPACITY].nunique() < 2:
        return None
    metric = primary_metric(study)
    label = metric_label(study, metric)
    panels = _panels(frame, strata)
    figure = Figure(figsize=(4.6 * len(panels) + 0.6, 4.4))
    for index, (title, part) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), index + 1)
        numbers = effects.cell_summary(part, [], [metric]).sort_values(CAPACITY)
        for g_width, cells in numbers.groupby("g_width", sort=True):
            mean = cells[f"{metric}_mean"]
            low = (mean - cells[f"{metric}_ci_low"]).fillna(0)
            high = (cells[f"{metric}_ci_high"] - mean).fillna(0)
            axes.errorbar(cells[CAPACITY], mean, yerr=[low, high], marker="o", capsize=4, label=f"G {g_width:g}")
            failed = cells[cells["failed_rate"] > 0.5]
            if not failed.empty:
                axes.scatter(failed[CAPACITY], failed[f"{metric}_mean"], s=160, facecolors="none",
                             edgecolors="#c0392b", linewidths=1.5, zorder=3)
        points = part[[CAPACITY, METRIC_PREFIX + metric]].dropna()
        axes.scatter(points[CAPACITY], points[METRIC_PREFIX + metric], s=10, color="#555555", alpha=0.6,
                     label="trials")
        if metric in effects.POSITIVE_METRICS:
            axes.set_yscale("log")
        _finish_axes(axes, "log2(D width / G width)   (> 0: D wider)", f"final {label}", title)
    path = save_figure(figure, out / "fid_vs_capacity.png")
    return Plot("fid_vs_capacity", f"{label} of each (G, D) cell",
                "Each point: a cell's mean over its trials (seeds) with its 95% interval (geometric mean and log-scale "
                "interval for FID); one line per G width; grey dots: single trials; red rings: cells where more than "
                "half of the trials failed. One panel per architecture (and other group): their widths are not "
                "comparable.", path)


def paired_differences(study: StudyData, out: Path) -> Plot | None:
    """The primary metric's ratios of geometric means (imbalanced / balanced neighbour) with their 95% Welch intervals."""
    found = inference(study)
    shown = [c for c in found.analysis.pairwise if c.ratio is not None and c.n > 1]
    if not shown:
        return None
    label = metric_label(study, found.analysis.metric)
    figure = Figure(figsize=(7.5, 0.5 * len(shown) + 1.6))
    axes = figure.add_subplot(1, 1, 1)
    for y, c in enumerate(shown):
        colour = "#c0392b" if c.significant else "#7f8c8d"
        axes.errorbar([c.ratio.ratio], [y], xerr=[[c.ratio.ratio - c.ratio.low], [c.ratio.high - c.ratio.ratio]],
                      marker="o", capsize=4, color=colour)
    axes.set_yticks(range(len(shown)))
    axes.set_yticklabels([f"{effects.stratum_words(found.strata, c.stratum)}: {effects.cell_words(c.cell)} vs "
                          f"{effects.cell_words(c.neighbour)}" for c in shown], fontsize=8)
    axes.axvline(1, color="#333333", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_xlabel(f"final {label}: imbalanced / balanced neighbour (runs that did not fail)")
    axes.grid(alpha=0.3)
    path = save_figure(figure, out / "paired_differences.png")
    return Plot("paired_differences", f"Imbalanced cells against their balanced neighbours ({label})",
                "Ratio of the geometric means of the runs that did not fail, with its 95% Welch interval of log FID "
                "(cells are different networks: not paired by seed); red: claimed (Holm-adjusted exact permutation "
                "p < 0.05), grey: not claimed.", path)


def fid_heatmap(study: StudyData, out: Path) -> Plot | None:
    """Mean final score over the (g_width, d_width) grid, one panel per arch."""
    frame = with_factors(study)
    if "g_width" not in frame or "d_width" not in frame or frame.empty:
        return None
    arches = sorted(frame["arch"].astype(str).unique()) if "arch" in frame else ["all"]
    score = METRIC_PREFIX + study.fid_metric
    figure = Figure(figsize=(4.8 * len(arches) + 0.8, 4.2))
    tables = [frame[frame["arch"].astype(str) == arch] if arch != "all" else frame for arch in arches]
    pivots = [t.pivot_table(index="d_width", columns="g_width", values=score, aggfunc="mean") for t in tables]
    finite = np.concatenate([p.to_numpy().ravel() for p in pivots])
    low, high = np.nanmin(finite), np.nanmax(finite)
    for i, (arch, pivot) in enumerate(zip(arches, pivots)):
        axes = figure.add_subplot(1, len(arches), i + 1)
        image = axes.imshow(pivot.to_numpy(), origin="lower", cmap="viridis_r", vmin=low, vmax=high, aspect="auto")
        axes.set_xticks(range(len(pivot.columns)), [f"{v:g}" for v in pivot.columns])
        axes.set_yticks(range(len(pivot.index)), [f"{v:g}" for v in pivot.index])
        axes.set_xlabel("generator width (g_width)")
        axes.set_ylabel("discriminator width (d_width)")
        axes.set_title(f"mean final {study.fid_label}" + (f", arch {arch}" if arch != "all" else ""))
        for (row, col), value in np.ndenumerate(pivot.to_numpy()):
            if np.isfinite(value):
                dark = (value - low) / ((high - low) or 1) > 0.5
                axes.text(col, row, f"{value:.4g}", ha="center", va="center", fontsize=8,
                          color="white" if dark else "black")
        figure.colorbar(image, ax=axes, label=f"{study.fid_label} (lower is better)")
    path = save_figure(figure, out / "fid_heatmap.png")
    return Plot("fid_heatmap", f"{study.fid_label} over generator and discriminator width",
                "Mean final score of the trials in each cell (lighter is better); empty cells were not run.", path)


def regime_shares(study: StudyData, out: Path) -> Plot | None:
    """Stacked bars: the share of trials in each balance regime (or status) in each (G, D) cell."""
    trials = study.trials
    if "param.g_width" not in trials or "param.d_width" not in trials:
        return None
    column = "cell"  # (G, D) widths: two cells at the same ratio (G 8 / D 8, G 16 / D 16) are not pooled
    widths = trials[["param.g_width", "param.d_width"]].apply(pd.to_numeric, errors="coerce")
    order = np.lexsort((widths["param.d_width"], widths["param.g_width"]))
    trials = trials.iloc[order].assign(cell=[f"G {g:g} / D {d:g}" for g, d in widths.iloc[order].to_numpy()])
    use_regime = trials["regime"].notna().any()
    label = trials["regime"].fillna("no regime") if use_regime else trials["status"]
    counts = pd.crosstab(pd.Categorical(trials[column], categories=list(dict.fromkeys(trials[column]))), label)
    shares = counts.div(counts.sum(axis=1), axis=0)
    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    bottom = np.zeros(len(shares))
    positions = np.arange(len(shares))
    for name in shares.columns:
        values = shares[name].to_numpy()
        axes.bar(positions, values, bottom=bottom, label=name, color=REGIME_COLOURS.get(name))
        for x, (share, base, n) in enumerate(zip(values, bottom, counts[name])):
            if share > 0.08:
                axes.text(x, base + share / 2, f"{name}\n{n}", ha="center", va="center", fontsize=7, color="white")
        bottom += values
    axes.set_xticks(positions, [f"{v}\n(n={n})" for v, n in zip(shares.index, counts.sum(axis=1))], fontsize=7)
    axes.set_xlabel("(G, D) cell")
    axes.set_ylabel("share of trials")
    what = "balance regime" if use_regime else "trial status (no regime tags logged)"
    axes.set_title(f"Share of trials by {what}")
    axes.set_ylim(0, 1)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    path = save_figure(figure, out / "regimes.png")
    return Plot("regimes", f"Trials by {what}, cell by cell",
                "Each bar: all trials of one (G, D) cell; segment labels give the regime and the number of trials.",
                path)


def _best_median_worst(study: StudyData) -> dict[str, pd.Series]:
    """Ranked among the trials that trained to the end: a trial stopped early has no final score to rank."""
    finished = compared_trials(study).sort_values(METRIC_PREFIX + study.fid_metric, kind="stable")
    finished = finished.reset_index(drop=True)
    picks = {"best": 0, "median": (len(finished) - 1) // 2, "worst": len(finished) - 1}
    return {name: finished.iloc[index] for name, index in picks.items()}


def learning_curves(study: StudyData, out: Path) -> Plot | None:
    """Per stratum, the validation score over generator steps of each (G, D) cell (mean over its seeds),
    with a vertical line at 3/4 of the budget: what the convergence rule compares. Every finished trial is drawn,
    those stopped early too: a curve shows where a trial was, not a final score."""
    frame, strata = comparison_frame(study, study.finished)
    panels = _panels(frame, strata)
    figure = Figure(figsize=(4.8 * len(panels) + 0.6, 4.4))
    drawn = False
    for index, (title, part) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), index + 1)
        colours = iter(["#1b4f72", "#2e86c1", "#27ae60", "#f39c12", "#c0392b", "#8e44ad", "#7f8c8d", "#34495e"])
        for (g_width, d_width), trials in part.groupby(["g_width", "d_width"], sort=True):
            curves = [metric_history(study, run_id, study.fid_metric).set_index("step")["value"]
                      for run_id in trials["run_id"]]
            curves = [curve for curve in curves if not curve.empty]
            if not curves:
                continue
            mean = pd.concat(curves, axis=1).mean(axis=1)
            label = f"G {g_width:g} / D {d_width:g} ({len(curves)} seeds)"
            axes.plot(mean.index, mean.values, marker="o", markersize=3, color=next(colours, "#333333"), label=label)
            drawn = True
        total = pd.to_numeric(part.get("metric." + names.TOTAL_STEPS), errors="coerce").max()
        if np.isfinite(total):
            axes.axvline(0.75 * total, color="#999999", linestyle="--", linewidth=0.8)
        axes.set_yscale("log")
        _finish_axes(axes, "generator step", f"validation {study.fid_label} (log scale)", title)
    if not drawn:
        return None
    path = save_figure(figure, out / "learning_curves.png")
    return Plot("learning_curves", "Learning curves",
                "Validation score during training (1,000 samples against the validation split: FID is biased upward "
                "at this sample size, so it sits above the final 10,000-sample test FID of the tables), mean over "
                "the seeds of each (G, D) cell; dashed: 3/4 of the "
                "budget (a trial has converged when its best score after this line is less than 10% below its best "
                "score before it). The final values in the tables are on the test split.", path)


# (mean D(x), mean D(G(z)), on what), by preference: held-out evaluation, else D's training minibatches
D_OUTPUT_HISTORIES = ((names.EVAL_D_REAL, names.EVAL_D_FAKE, "held-out"),
                      (names.TRAIN_D_REAL, names.TRAIN_D_FAKE, "training batches"))


def d_outputs(study: StudyData, out: Path) -> Plot | None:
    """Mean D(x) and D(G(z)) over training for the most D-dominated and the most G-dominated trial."""
    gap = METRIC_PREFIX + names.D_GAP
    finished = compared_trials(study)  # the final gaps are ranked: only trials that trained to the end have one
    if gap not in finished or finished[gap].isna().all():
        return None
    with_gap = finished.dropna(subset=[gap])
    if len(with_gap) < 2:
        return None  # one trial is neither the most D- nor the most G-dominated of anything
    picks = {"most D-dominated (largest final D(x) − D(G(z)))": with_gap.loc[with_gap[gap].idxmax()],
             "most G-dominated (smallest final D(x) − D(G(z)))": with_gap.loc[with_gap[gap].idxmin()]}
    figure = Figure(figsize=(10, 4))
    for i, (title, trial) in enumerate(picks.items()):
        axes = figure.add_subplot(1, 2, i + 1)
        for real, fake, where in D_OUTPUT_HISTORIES:
            real_history = metric_history(study, trial["run_id"], real)
            if real_history.empty:
                continue
            fake_history = metric_history(study, trial["run_id"], fake)
            axes.plot(real_history["step"], real_history["value"], marker="o", markersize=3, color="#2e86c1",
                      label=f"D(x), {where} reals")
            axes.plot(fake_history["step"], fake_history["value"], marker="s", markersize=3, color="#c0392b",
                      label="D(G(z)), fakes")
            break
        axes.set_ylim(-0.02, 1.02)
        _finish_axes(axes, "generator step", "mean discriminator output",
                     f"{title}\n{trial['run_name']}, final gap {trial[gap]:.3f}", fontsize=9)
    path = save_figure(figure, out / "d_outputs.png")
    return Plot("d_outputs", "Discriminator outputs over training",
                "D near 1 on reals and near 0 on fakes: D wins; the two curves meeting: G fools D.", path)


def sample_grids(study: StudyData, out: Path) -> Plot | None:
    """The fixed-noise sample grids of the best and the worst trial, side by side."""
    import tempfile

    from matplotlib.image import imread

    compared = len(compared_trials(study))
    if not compared:
        return None
    picks = _best_median_worst(study)
    shown = []
    with tempfile.TemporaryDirectory(prefix="gan-report-") as downloads:  # not in `out`: it is logged
        for name in ("best", "worst") if compared > 1 else ("best",):
            trial = picks[name]
            grid = download_samples(study, trial["run_id"], Path(downloads) / name)
            if grid is not None:
                shown.append((name, trial, imread(grid)))
    if not shown:
        return None
    figure = Figure(figsize=(4.2 * len(shown), 4.6))
    for i, (name, trial, image) in enumerate(shown):
        axes = figure.add_subplot(1, len(shown), i + 1)
        axes.imshow(image, cmap="gray")
        axes.set_axis_off()
        axes.set_title(f"{name}: {trial['run_name']}\nfinal {study.fid_label} "
                       f"{trial[METRIC_PREFIX + study.fid_metric]:.4g}", fontsize=9)
    path = save_figure(figure, out / "samples.png")
    return Plot("samples", "Samples of the best and the worst trial",
                "8 × 8 samples from the same fixed noise at the end of training.", path)


ALL_PLOTS = (fid_vs_capacity, paired_differences, fid_heatmap, regime_shares, learning_curves, d_outputs, sample_grids)


def draw_all(study: StudyData, out: Path) -> list[Plot]:
    out.mkdir(parents=True, exist_ok=True)
    return [plot for plot in (draw(study, out) for draw in ALL_PLOTS) if plot is not None]
