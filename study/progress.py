"""What the console says while a study runs: a few lines every 30 seconds (`--progress-every`) instead of Ray's
trial table.

    [0:02:30] 3/30 trials done, 2 running, 25 waiting; about 21 min left
      running: dcgan g16 d8 k1 s2 at step 800/2500, fid 45.2
      running: mlp g1200 d240 k1 s0 at step 2500/10000, fid 80.1
      best so far: dcgan g8 d16 k1 s1, final/fid 31.14
    [0:02:41] ended: dcgan g16 d8 k1 s2, completed at step 2500, final/fid 27.9 (4/30 done)

Trials go by their run names (study.run_names), the best by the study's ranking (study.outcome.trial_score:
final/<metric> where a trial has it). The time left extrapolates the study's pace: elapsed time over the work
done, a finished trial counting 1 and a running one the share of its generator steps it has trained.
`python -m study.run --verbose` shows Ray's own table as well.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

from ray.tune import Callback

from gan import names
from gan.config import ConfigError, GanConfig
from study.outcome import best_scored, trial_score
from study.tune_config import TrialSettings, trial_params

@dataclass
class TrialProgress:
    name: str
    total_steps: int | None  # the trial's generator steps (None: its configuration is invalid)
    result: dict[str, Any]  # its last result ({} before the first)

    @property
    def step(self) -> int | None:
        return self.result.get(names.STEP)

    def share_done(self) -> float:
        if not self.total_steps or self.step is None:
            return 0.0
        return min(1.0, self.step / self.total_steps)


def duration(seconds: float) -> str:
    """'0:02:30' (hours:minutes:seconds)."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def time_left(seconds: float) -> str:
    """A rounded estimate: '40 s', '12 min', '1 h 05 min'."""
    if seconds < 60:
        return f"{max(seconds, 1):.0f} s"
    minutes = int(round(seconds / 60))
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _number(value: float) -> str:
    return f"{value:.4g}"


def status_lines(elapsed: float, done: int, total: int, running: list[TrialProgress], waiting: int,
                 finished: list[TrialProgress], metric: str, mode: str) -> list[str]:
    """The periodic lines: counts and time left, each running trial, the best trial so far."""
    units = done + sum(trial.share_done() for trial in running)
    left = f"about {time_left(elapsed * (total - units) / units)} left" if 0 < units < total else \
        "time left unknown until the first result" if units == 0 else "finishing"
    lines = [f"[{duration(elapsed)}] {done}/{total} trials done, {len(running)} running, {waiting} waiting; {left}"]
    for trial in running:
        where = f"at step {trial.step}/{trial.total_steps}" if trial.step is not None else "starting"
        latest = trial.result.get(metric)
        score = f", {metric} {_number(latest)}" if isinstance(latest, (int, float)) else ""
        lines.append(f"  running: {trial.name} {where}{score}")
    best = best_scored([*running, *finished], lambda trial: trial.result, metric, mode)
    if best is not None:
        key, value = trial_score(best.result, metric)
        lines.append(f"  best so far: {best.name}, {key} {_number(value)}")
    return lines


def ended_line(elapsed: float, trial: TrialProgress, status: str, done: int, total: int, metric: str) -> str:
    score = trial_score(trial.result, metric)
    at = f" at step {trial.step}" if trial.step is not None else ""
    scored = f", {score[0]} {_number(score[1])}" if score is not None else ""
    return f"[{duration(elapsed)}] ended: {trial.name}, {status}{at}{scored} ({done}/{total} done)"


class ProgressLines(Callback):
    """Prints `status_lines` every `every_s` seconds and `ended_line` when a trial ends (on the driver)."""

    def __init__(self, settings: TrialSettings, total_trials: int, train_size: int, every_s: float,
                 out: TextIO | None = None):
        self.settings = settings
        self.total_trials = total_trials
        self.train_size = train_size
        self.every_s = every_s
        self.out = out
        self._reset()

    def _reset(self) -> None:
        self._started = time.monotonic()
        self._last_print = self._started
        self._trials: dict[str, TrialProgress] = {}
        self._ended: set[str] = set()

    # Tune pickles callbacks with the experiment state; a resumed study counts its time anew.
    def __getstate__(self):
        state = {key: value for key, value in self.__dict__.items() if not key.startswith("_")}
        state["out"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._reset()

    def _print(self, *lines: str) -> None:
        print("\n".join(lines), file=self.out or sys.stdout, flush=True)

    def _progress(self, trial) -> TrialProgress:
        if trial.trial_id not in self._trials:
            from study.tracking import child_run_identity

            name, _ = child_run_identity(trial.config, self.settings)
            try:
                config = GanConfig.from_flat(trial_params(trial.config, self.settings))
                total = self.settings.budget.for_arch(config.arch).generator_steps(
                    self.train_size, config.batch_size, config.k)[0]
            except ConfigError:  # the trial will end as errored and say why
                total = None
            self._trials[trial.trial_id] = TrialProgress(name, total, {})
        return self._trials[trial.trial_id]

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._progress(trial).result = dict(result)

    def _end(self, trial, errored: bool) -> None:
        from study.tracking import trial_status

        if trial.trial_id in self._ended:
            return
        self._ended.add(trial.trial_id)
        progress = self._progress(trial)
        status = trial_status(progress.result, errored=errored or names.ERROR in progress.result)
        self._print(ended_line(time.monotonic() - self._started, progress, status, len(self._ended),
                               self.total_trials, self.settings.metric))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._end(trial, errored=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._end(trial, errored=True)

    def on_step_end(self, iteration, trials, **info):
        now = time.monotonic()
        if now - self._last_print < self.every_s:
            return
        self._last_print = now
        running = [self._progress(trial) for trial in trials if trial.status == "RUNNING"]
        waiting = sum(1 for trial in trials if trial.status in ("PENDING", "PAUSED")) + \
            max(0, self.total_trials - len(trials))  # searchers create their trials as they go
        finished = [self._trials[trial_id] for trial_id in self._ended if trial_id in self._trials]
        self._print(*status_lines(now - self._started, len(self._ended), self.total_trials, running, waiting,
                                  finished, self.settings.metric, self.settings.mode))
