"""How a study ended, read from Tune's results: each trial's status, the study's status and exit status,
one line about its errored trials, and its best trial.

A trial errored when Tune gave up on it (`--max-failures` retries spent) or when it reported an error that
would recur (study.errors); it finished when it trained to the end (completed, or diverged) or the scheduler
stopped it early; anything else was cut off by an interruption. The study:

    every trial finished                  completed               exit 0
    some errored, some finished           completed_with_errors   exit 3 (+ one line: how many, the most common reason)
    none finished: every one errored      failed                  exit 1 (+ the same line)
    interrupted before every trial ended  interrupted             exit 130
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar

from gan import names
from gan.evaluation import FINAL_PARZEN_SAMPLES
from study.errors import error_reason

EXIT_COMPLETED, EXIT_FAILED, EXIT_USAGE, EXIT_SOME_ERRORED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_STATUSES = {
    EXIT_COMPLETED: "every trial finished: completed, diverged or stopped early by the scheduler",
    EXIT_FAILED: "no trial finished: every one errored",
    EXIT_USAGE: "a problem with the input or the cluster, found before the study started; nothing was written",
    EXIT_SOME_ERRORED: "the study finished, but some trials errored",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C, SIGTERM); continue with --resume",
}


@dataclass(frozen=True)
class TrialOutcome:
    trial_id: str
    status: str  # names.COMPLETED, STOPPED_EARLY, DIVERGED_STATUS, ERRORED, or RUNNING (cut off)
    reason: str | None  # errored: the line that names the error
    config: dict[str, Any]  # Tune's config of the trial
    metrics: dict[str, Any]  # its last result


@dataclass(frozen=True)
class StudyOutcome:
    status: str  # the parent run's gan_study.status
    run_status: str  # the parent run's MLflow status
    exit_status: int
    errors_line: str | None  # how many trials errored and the most common reason; None without errors


def trial_outcomes(results) -> list[TrialOutcome]:
    """One outcome per trial of a Tune ResultGrid (anything iterable of Results)."""
    from study.tracking import trial_status

    outcomes = []
    for result in results:
        metrics = dict(result.metrics or {})
        reason = None
        if result.error is not None:
            status, reason = names.ERRORED, error_reason(str(result.error))
        elif names.ERROR in metrics:
            status, reason = names.ERRORED, str(metrics[names.ERROR])
        elif not (metrics.get("done") or metrics.get(names.DONE_TRAINING)):
            # Tune's `done` alone is not enough: a trial that finished after the last snapshot of a driver that
            # died (scancel takes the Ray nodes down with it) comes back from that snapshot without it
            status = names.RUNNING
        else:
            status = trial_status(metrics, errored=False)
        outcomes.append(TrialOutcome(str(metrics.get("trial_id", getattr(result, "path", ""))), status, reason,
                                     dict(result.config or {}), metrics))
    return outcomes


def finished_count(outcomes: list[TrialOutcome]) -> int:
    """Trials that ended: errored, or Tune's `done` (trained to the end, or stopped by the scheduler).

    An interrupted Tune run marks its running trials TERMINATED without `done`, and has not created
    the trials it had not started yet: neither Tune's statuses nor the number of results can tell.
    """
    return sum(1 for outcome in outcomes if outcome.status != names.RUNNING)


def errors_line(outcomes: list[TrialOutcome]) -> str | None:
    reasons = Counter(outcome.reason for outcome in outcomes if outcome.status == names.ERRORED)
    errored = sum(reasons.values())
    if not errored:
        return None
    reason, count = reasons.most_common(1)[0]
    which = f"every trial errored ({errored} of {len(outcomes)})" if errored == len(outcomes) \
        else f"{errored} of {len(outcomes)} trials errored"
    return f"{which}; most common reason ({count} trial{'s' if count > 1 else ''}): {reason}"


def study_outcome(outcomes: list[TrialOutcome], interrupted: bool) -> StudyOutcome:
    line = errors_line(outcomes)
    if interrupted:
        return StudyOutcome(names.INTERRUPTED, "KILLED", EXIT_INTERRUPTED, line)
    errored = sum(1 for outcome in outcomes if outcome.status == names.ERRORED)
    if outcomes and errored == len(outcomes):
        return StudyOutcome(names.FAILED, "FAILED", EXIT_FAILED, line)
    if errored:
        return StudyOutcome(names.COMPLETED_WITH_ERRORS, "FINISHED", EXIT_SOME_ERRORED, line)
    return StudyOutcome(names.COMPLETED, "FINISHED", EXIT_COMPLETED, None)


T = TypeVar("T")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def trial_score(metrics: dict[str, Any], metric: str) -> tuple[str, float] | None:
    """(the key ranked by, its value) of one trial: final/<metric>, the final protocol on the test split, when the
    trial has it, else <metric> at its last evaluation on the validation split; None without a finite one.
    The report takes each trial's value by the same rule (reports.load), so both name the same best trial."""
    for key in (names.final(metric), metric):
        if _finite(metrics.get(key)):
            return key, float(metrics[key])
    return None


def best_scored(items: Iterable[T], metrics_of: Callable[[T], dict[str, Any]], metric: str, mode: str) -> T | None:
    """The item whose metrics score best (`trial_score`); None when none has a score. The driver's summary and
    the progress lines (study.progress) both pick their best with it."""
    scored = [item for item in items if trial_score(metrics_of(item), metric) is not None]
    if not scored:
        return None
    pick = min if mode == "min" else max
    return pick(scored, key=lambda item: trial_score(metrics_of(item), metric)[1])


def best_trial(outcomes: list[TrialOutcome], metric: str, mode: str) -> TrialOutcome | None:
    """The trial with the best score (`trial_score`); None when no trial has one."""
    return best_scored(outcomes, lambda outcome: outcome.metrics, metric, mode)


def final_draws(metrics: dict[str, Any], metric: str) -> int:
    """How many independent sample draws final/<metric> averages: the trial's final/<metric>_draw0, _draw1, ...
    (gan.run's final protocol; a trial without them scored one draw)."""
    count = 0
    while names.final(names.draw(metric, count)) in metrics:
        count += 1
    return count


def score_protocol(key: str, evaluation, final_draws: int = 0) -> str:
    """How the score `key` of `trial_score` was measured, for a reader: split, samples (and draws averaged)."""
    if key.startswith(names.FINAL_PREFIX):
        # gan.run's final protocol: at least the 2014 paper's 10,000 samples
        samples = max(evaluation.num_samples, FINAL_PARZEN_SAMPLES)
        draws = f", mean of {final_draws} draws" if final_draws > 1 else ""
        return f"test split, {samples:,} samples{draws}"
    return f"validation split, {evaluation.num_samples:,} samples, last evaluation"
