"""The description of a study's parent run: Markdown that MLflow shows on the run's page (tag mlflow.note.content).

Written when the study starts and again when it ends: what was searched on which data, how the trials
ended, what real data scores (the reference rows), the best trial, and where the report is. When a
report is built, its "What this study shows" section is appended.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gan import names
from reports.budget_text import budget_param, budget_text
from study.space import ParamSpec, StudySpace

# MLflow keeps at most 8,000 characters in a tag value (mlflow.utils.validation.MAX_TAG_VAL_LENGTH)
MAX_DESCRIPTION_CHARS = 8000
TRUNCATED = "\n\n… (shortened to fit MLflow's tag limit; the report has it all)\n"


@dataclass(frozen=True)
class BestTrial:
    """The best trial by study.outcome.trial_score: ranked by final/<metric> where it has one, else <metric>."""

    run_name: str
    ranked_by: str  # final/fid (the final protocol) or fid (the last evaluation on the validation split)
    value: float
    protocol: str  # how `ranked_by` was measured: "test split, 10,000 samples, mean of 3 draws"
    last_validation: float | None = None  # <metric> at its last evaluation, when ranked by final/<metric>
    run_id: str | None = None

    @property
    def metric(self) -> str:
        return self.ranked_by.removeprefix(names.FINAL_PREFIX)

    def headline(self) -> str:
        """'best final/fid (test split, 10,000 samples, mean of 3 draws) = 24.39 (dcgan g16 d16 k1 s0)'"""
        return f"best {self.ranked_by} ({self.protocol}) = {_number(self.value)} ({self.run_name})"


@dataclass(frozen=True)
class ReportLink:
    artifact: str  # e.g. report/report.html, in the parent run's artifacts
    summary_markdown: str = ""  # the report's "What this study shows" section


def _spec(spec: ParamSpec) -> str:
    values = ", ".join(str(v) for v in spec.args)
    when = " when " + ", ".join(f"{name}={'/'.join(str(v) for v in allowed)}" for name, allowed in spec.when) \
        if spec.when else ""
    return f"{spec.distribution} [{values}]{when}"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _number(value: float) -> str:
    return f"{value:.4g}"


def _run_link(title: str, experiment_id: str | None, run_id: str | None, suffix: str = "") -> str:
    """A link the MLflow UI follows (its routes live after '#'), or the plain title without ids."""
    if experiment_id is None or run_id is None:
        return title
    return f"[{title}](#/experiments/{experiment_id}/runs/{run_id}{suffix})"


def experiment_ui_url(tracking_uri: str, experiment_id: str) -> str:
    """Where the MLflow UI shows the experiment's runs table. MLflow 3.17's UI opens an experiment on its GenAI
    overview unless the browser's workflow switch says "Model training" (the experiment's kind tag does not decide
    it there): the link sets the switch with ?workflowType=machine_learning."""
    page = f"#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    if tracking_uri.startswith(("http://", "https://")):
        return f"{tracking_uri.rstrip('/')}/{page}"
    return f"`mlflow ui --backend-store-uri {tracking_uri}`, then http://127.0.0.1:5000/{page}"


def study_description(space: StudySpace, *, experiment: str, status: str, trial_counts: Mapping[str, int],
                      reference: Mapping[str, float], best: BestTrial | None, report: ReportLink | None,
                      report_command: str, experiment_id: str | None = None, run_id: str | None = None,
                      errors_line: str | None = None) -> str:
    """The parent run's Markdown description; `trial_counts` by status ({} before any trial ended). What a reader
    looks for first (the report, the best trial, how the trials ended) comes first: the UI shows a few lines
    until "Show more" is clicked."""
    lines = [f"### GAN study `{space.name}`: {status.replace('_', ' ')}", ""]
    if report is not None:
        lines += [f"**Report:** {_run_link(report.artifact, experiment_id, run_id, '/artifacts/' + report.artifact)}"
                  f" in this run's artifacts", ""]
    else:
        lines += [f"**Report:** not built yet; `{report_command}` builds it and logs it to this run", ""]
    if best is not None:
        validation = f"; `{best.metric}` {_number(best.last_validation)} at its last evaluation (validation split)" \
            if best.last_validation is not None else ""
        lines += [f"**Best trial:** {_run_link(best.run_name, experiment_id, best.run_id)}: `{best.ranked_by}` "
                  f"{_number(best.value)} ({best.protocol}){validation}", ""]
    total = sum(trial_counts.values())
    if total:
        counts = ", ".join(f"{status_name} {count}" for status_name, count in sorted(trial_counts.items()))
        lines += [f"**Trials:** {total} ({counts})", ""]
        if errors_line:
            lines += [f"**Errors:** {errors_line} (tag `{names.ERROR_TAG}` and artifact `{names.ERROR_ARTIFACT}` of "
                      f"each errored trial's run)", ""]
    else:
        lines += [f"**Trials:** {space.trial_count()} planned", ""]

    if space.description:
        lines += [space.description.strip(), ""]
    budget = budget_text(budget_param(space.budget))
    lines += [
        f"**Data set** `{space.dataset}` · **space** `{space.path.name}` (artifact `space/{space.path.name}`) · "
        f"**search** {space.search}, **scheduler** {space.scheduler} · ranked by `{space.metric}` ({space.mode}) · "
        f"{space.seeds_per_config} seed(s) per configuration from seed {space.seed} · {budget}",
        "",
    ]
    if space.params:
        lines += ["| searched | values |", "|---|---|"]
        lines += [f"| `{spec.name}` | {_cell(_spec(spec))} |" for spec in space.params]
        lines.append("")
    if space.fixed:
        lines += ["**Fixed:** " + ", ".join(f"`{name}={value}`" for name, value in sorted(space.fixed.items())), ""]
    if reference:
        lines += ["| reference (real data) | value |", "|---|---|"]
        lines += [f"| `{name}` | {_number(value)} |" for name, value in sorted(reference.items())]
        lines.append("")
    lines += [f"**Seeds:** in the runs table, *Group by* the tag `{names.CONFIG_ID_TAG}` to see each "
              f"configuration's mean, min and max over its seeds.", ""]

    text = "\n".join(lines)
    if report is not None and report.summary_markdown:
        text += "\n" + report.summary_markdown.strip() + "\n"
    if len(text) > MAX_DESCRIPTION_CHARS:
        text = text[:MAX_DESCRIPTION_CHARS - len(TRUNCATED)] + TRUNCATED
    return text
