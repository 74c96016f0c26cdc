"""Trials that Tune restarted after a failure (a worker process or a whole node that died), for the parent run.

Each time a trial fails, Tune appends a section "Failure # n (occurred at …)" with the error to the trial's
error.txt (ray/tune/experiment/trial.py, Trial.handle_error) and, while `--max-failures` allows, restarts the
trial from its last checkpoint. So a trial with n sections that finished was restarted n times; one that Tune
gave up on (errored), n − 1 times. The parent run gets the number of trials restarted, the number of restarts
and why (study.errors.error_reason of each restarted failure, most common first).
"""
from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass

from gan import names
from study.errors import error_reason
from study.outcome import TrialOutcome

ERROR_FILE = "error.txt"  # ray.air.constants.EXPR_ERROR_FILE
_FAILURE_HEADER = re.compile(r"^Failure # \d+ \(occurred at [^)\n]*\)$", re.MULTILINE)


@dataclass(frozen=True)
class Restarts:
    trials: int  # trials restarted at least once
    reasons: Counter  # the reason line of each restarted failure -> how many

    @property
    def total(self) -> int:
        return sum(self.reasons.values())

    def describe(self) -> str:
        return "; ".join(f"{count}× {reason}" for reason, count in self.reasons.most_common())


def failure_reasons(error_text: str) -> list[str]:
    """The reason line of each "Failure # n" section of an error.txt, in order."""
    sections = _FAILURE_HEADER.split(error_text)[1:]
    return [error_reason(section) for section in sections]


def _error_text(result) -> str:
    """A Tune Result's error.txt ("" when the trial never failed), on whatever storage it lives."""
    try:
        with result.filesystem.open_input_stream(f"{result.path}/{ERROR_FILE}") as stream:
            return stream.read().decode("utf-8", errors="replace")
    except (FileNotFoundError, OSError):
        return ""


def study_restarts(results, outcomes: list[TrialOutcome]) -> Restarts:
    """Restarts of the trials of a Tune ResultGrid; `outcomes` are its trial_outcomes (same order)."""
    reasons: Counter = Counter()
    restarted = 0
    for result, outcome in zip(results, outcomes):
        failures = failure_reasons(_error_text(result))
        if outcome.status == names.ERRORED and failures:
            failures = failures[:-1]  # the failure Tune gave up on was not restarted
        restarted += bool(failures)
        reasons.update(failures)
    return Restarts(restarted, reasons)


def log_restarts(client, parent_run_id: str, results, outcomes: list[TrialOutcome]) -> Restarts:
    """Record the study's restarts on its parent run (always, 0 included) and say so on stderr when there were any."""
    restarts = study_restarts(results, outcomes)
    if restarts.total:
        print(f"gan-study: {restarts.trials} trial(s) restarted from their last checkpoint ({restarts.total} "
              f"restart(s)): {restarts.describe()}", file=sys.stderr, flush=True)
    try:
        client.log_metric(parent_run_id, names.TRIALS_RESTARTED, float(restarts.trials))
        client.log_metric(parent_run_id, names.TRIAL_RESTARTS, float(restarts.total))
        if restarts.total:
            client.set_tag(parent_run_id, names.RESTARTS_TAG, restarts.describe()[:5000])
    except Exception as error:  # the store is away at the very end: the line above said it
        print(f"gan-study: could not log the restarts to MLflow ({str(error).splitlines()[0][:200]})",
              file=sys.stderr)
    return restarts
