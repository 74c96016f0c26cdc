"""build_report: MLflow study -> tables (CSV), figures (PNG), Markdown and HTML, logged back to the parent run."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reports.load import ReportError, load_study

FORMATS = ("html", "md")
ARTIFACT_PATH = "report"


@dataclass(frozen=True)
class ReportPaths:
    out_dir: Path
    html: Path | None
    markdown: Path | None
    images: list[Path]
    csv_files: list[Path]
    parent_run_id: str
    artifact_path: str = ARTIFACT_PATH  # where the files are in the parent run's artifacts
    # Markdown that says in words what the study shows (the report's opening section); "" when it has none
    summary_markdown: str = ""

    @property
    def files(self) -> list[Path]:
        return [p for p in (self.html, self.markdown) if p is not None] + self.images + self.csv_files


def default_out_dir(experiment: str) -> Path:
    return Path("reports_out") / experiment


def build_report(tracking_uri: str, experiment: str, run_id: str | None = None, out_dir: str | Path | None = None,
                 formats: tuple[str, ...] = FORMATS, log_artifacts: bool = True) -> ReportPaths:
    """Write the report of one study (the latest parent run of `experiment` unless `run_id`) into `out_dir`.

    Raises ReportError (one-line message) for an unreachable store, unknown experiment or run, or a
    study without finished trials. With `log_artifacts`, the written files go to the parent run
    under `report/`.
    """
    from reports import ablation, k_steps, render, search, tables

    unknown = set(formats) - set(FORMATS)
    if unknown or not formats:
        raise ReportError(f"formats must be among {', '.join(FORMATS)}, got {', '.join(formats) or 'none'}")
    study = load_study(tracking_uri, experiment, run_id)
    out = Path(out_dir if out_dir is not None else default_out_dir(experiment))
    out.mkdir(parents=True, exist_ok=True)

    section = ablation.ablation_section(study)  # an ablation against a recipe: its own section, nothing of balance
    searched = search.search_section(study, out) if section is None else None  # a search and its confirmation
    # the sections follow the study's design: an ablation, a search with its confirmation, k at equal compute (one
    # G/D width pair), else the capacity factorial's cells and contrasts; a section with nothing to show is absent
    k_section = k_steps.k_steps_section(study) if section is None and searched is None else None
    shown, figures, csv_files, claims, claims_note = (
        _ablation_parts(study, section, out) if section is not None
        else search.search_parts(study, searched, out) if searched is not None
        else _k_parts(study, k_section, out) if k_section is not None and not _varies_capacity(study)
        else _balance_parts(study, out))

    parts = render.ReportParts(f"GAN study report: {study.parent_name}", tables.header(study), shown, figures,
                               csv_files, claims, claims_note)
    html_path = md_path = None
    if "html" in formats:
        html_path = out / "report.html"
        html_path.write_text(render.html_page(parts), encoding="utf-8")
    if "md" in formats:
        md_path = out / "report.md"
        md_path.write_text(render.markdown(parts, out), encoding="utf-8")
    paths = ReportPaths(out, html_path, md_path, [f.path for f in figures], csv_files, study.parent_run_id,
                        summary_markdown=render.findings_markdown(parts))
    if log_artifacts:
        try:
            for path in paths.files:
                study.client.log_artifact(study.parent_run_id, str(path), artifact_path=ARTIFACT_PATH)
        except Exception as error:  # the store refused the upload: the files on disk are still there
            raise ReportError(f"report written to {out}, but logging it to run {study.parent_run_id} failed: "
                              f"{str(error).splitlines()[0][:200]}") from None
    return paths


def _balance_parts(study, out: Path):
    """(tables, figures, CSV files, finding sentences, their note) of the balance factorial's sections."""
    from reports import k_steps, modes, plots, remedies, tables
    from reports.effects import SECONDARY_LABEL

    found = tables.inference(study)
    imbalance, imbalance_table = tables.imbalance_table(study)
    paired, paired_table = tables.paired_effects_table(study, found)
    effects, effects_table = tables.effect_sizes(study)
    csv_files = [out / "trials.csv", out / "imbalance.csv", out / "paired_effects.csv", out / "effect_sizes.csv"]
    tables.trials_csv_frame(study).to_csv(csv_files[0], index=False)
    imbalance.to_csv(csv_files[1], index=False)
    paired.to_csv(csv_files[2], index=False)
    effects.to_csv(csv_files[3], index=False)
    shown = [imbalance_table, paired_table, effects_table]
    for name, optional in (("contrasts", tables.contrasts_table(study, found)),
                           ("variance_split", tables.variance_table(study, found))):
        if optional is not None:
            csv_files.append(out / f"{name}.csv")
            optional[0].to_csv(csv_files[-1], index=False)
            shown.insert(1 if name == "contrasts" else len(shown) - 1, optional[1])
    importances = tables.optuna_importances(study)
    if importances is not None:
        csv_files.append(out / "optuna_importances.csv")
        importances[0].to_csv(csv_files[-1], index=False)
        shown.append(importances[1])
    figures = plots.draw_all(study, out)
    mode_collapse = modes.modes_section(study, out)  # Stacked MNIST studies: modes vs capacity and packing
    if mode_collapse is not None:
        csv_files.append(out / "modes.csv")
        mode_collapse[0].to_csv(csv_files[-1], index=False)
        shown.insert(0, mode_collapse[1])
        figures.insert(0, mode_collapse[2])
    remedy = remedies.remedies_section(study)  # remedies studies: each arm vs no remedy, the share of the gap closed
    if remedy is not None:
        csv_files.append(out / "remedies.csv")
        remedy[0].to_csv(csv_files[-1], index=False)
        shown.insert(0, remedy[1])
    k_section = k_steps.k_steps_section(study)  # studies that vary k: each k vs k = 1, per G step and per compute
    if k_section is not None:
        csv_files += [out / "k_steps.csv", out / "k_steps_budgets.csv"]
        k_section.numbers.to_csv(csv_files[-2], index=False)
        k_section.budgets.to_csv(csv_files[-1], index=False)
        shown[:0] = k_section.tables
        figures[:0] = [plot for plot in [k_steps.curves_by_compute(k_section, study.fid_label, out)] if plot]
    # the imbalance families' note only where they have comparisons: a k study with one width has none to declare;
    # in a remedies study the remedies' family is the primary one and the imbalance analysis secondary
    imbalance_note = (tables.findings_note(study, found, primary=remedy is None)
                      if k_section is None or found.analysis.contrasts or found.analysis.pairwise else "")
    imbalance_findings = tables.findings(study, found)
    if remedy is not None:
        imbalance_findings = [sentence if sentence.startswith(SECONDARY_LABEL) else SECONDARY_LABEL + sentence
                              for sentence in imbalance_findings]
    return (shown, figures, csv_files, [*(k_section.findings if k_section else []), *(remedy[2] if remedy else []),
                                        *imbalance_findings],
            " ".join(filter(None, [k_section.findings_note if k_section else "",
                                   remedies.families_note(remedy[0]) if remedy else "", imbalance_note])))


def _varies_capacity(study) -> bool:
    """Whether the trials differ in G's or D's width: only then do the imbalance cells and contrasts have anything
    to compare."""
    from reports.load import PARAM_PREFIX

    columns = [PARAM_PREFIX + name for name in ("g_width", "d_width") if PARAM_PREFIX + name in study.trials]
    return bool(columns) and len(study.trials[columns].drop_duplicates()) > 1


def _k_parts(study, k_section, out: Path):
    """A study of k at one G/D width pair (reports.k_steps): its tables, the effect sizes of its searched settings,
    its curves over compute, D's outputs and samples; the imbalance cells, contrasts, paired effects, heatmap and the
    per-cell learning curves (which would pool every k and loss into one curve) have nothing to show."""
    from reports import k_steps, plots, tables

    effects, effects_table = tables.effect_sizes(study)
    csv_files = [out / "trials.csv", out / "k_steps.csv", out / "k_steps_budgets.csv", out / "effect_sizes.csv"]
    tables.trials_csv_frame(study).to_csv(csv_files[0], index=False)
    k_section.numbers.to_csv(csv_files[1], index=False)
    k_section.budgets.to_csv(csv_files[2], index=False)
    effects.to_csv(csv_files[3], index=False)
    figures = [plot for plot in (k_steps.curves_by_compute(k_section, study.fid_label, out),
                                 plots.d_outputs(study, out), plots.sample_grids(study, out)) if plot is not None]
    return [*k_section.tables, effects_table], figures, csv_files, k_section.findings, k_section.findings_note


def _ablation_parts(study, section, out: Path):
    """The same for an ablation (reports.ablation): its table and figures, then the figures of any design; the
    imbalance cells, paired effects and FID-over-capacity sections have nothing to show and are left out."""
    from reports import ablation, tables

    csv_files = [out / "trials.csv", out / "ablation.csv"]
    tables.trials_csv_frame(study).to_csv(csv_files[0], index=False)
    section.numbers.to_csv(csv_files[1], index=False)
    return ([section.table], ablation.ablation_figures(study, section, out), csv_files, section.findings,
            section.findings_note)
