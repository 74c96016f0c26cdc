"""Has a run stopped improving? A rule on its validation-score history, tested on synthetic histories.

    early = the best (lowest) score over the evaluations in the first three quarters of training
    late  = the best score over the evaluations in the last quarter (steps > 3/4 of the total)
    improvement = (early − late) / early

- DIVERGED when a loss or parameter became non-finite;
- CONVERGED when improvement < MAX_LAST_QUARTER_IMPROVEMENT (10%): the last quarter of training bought
  less than a tenth of the score (a run whose score got worse at the end counts as converged: it stopped
  improving);
- STILL_IMPROVING otherwise, and also when there is not at least one evaluation in each part (the rule
  cannot tell, and a comparison must not take such a run as trained).

Bests, not single evaluations, so that one noisy evaluation (FID on 1,000 samples wobbles by several
percent) cannot decide either way. For scores where higher is better pass `lower_is_better=False`.
"""
from __future__ import annotations

import math

CONVERGED, STILL_IMPROVING, DIVERGED = "converged", "still_improving", "diverged"
CONVERGENCE_LABELS = (CONVERGED, STILL_IMPROVING, DIVERGED)
MAX_LAST_QUARTER_IMPROVEMENT = 0.10
LAST_PART = 0.25  # the last quarter of the steps


def last_quarter_improvement(history: list[tuple[int, float]], total_steps: int,
                             lower_is_better: bool = True) -> float | None:
    """(early − late) / |early| as defined above (sign flipped for higher-is-better scores), or None."""
    cut = (1 - LAST_PART) * total_steps
    finite = [(step, value) for step, value in history if math.isfinite(value)]
    early = [value for step, value in finite if step <= cut]
    late = [value for step, value in finite if step > cut]
    if not early or not late:
        return None
    best = min if lower_is_better else max
    early_best, late_best = best(early), best(late)
    if early_best == 0:
        return 0.0 if late_best == 0 else math.inf
    gain = (early_best - late_best) if lower_is_better else (late_best - early_best)
    return gain / abs(early_best)


def convergence(history: list[tuple[int, float]], total_steps: int, diverged: bool = False,
                lower_is_better: bool = True) -> str:
    """CONVERGED, STILL_IMPROVING or DIVERGED for a run with these (step, validation score) evaluations."""
    if diverged:
        return DIVERGED
    improvement = last_quarter_improvement(history, total_steps, lower_is_better)
    if improvement is None or improvement >= MAX_LAST_QUARTER_IMPROVEMENT:
        return STILL_IMPROVING
    return CONVERGED
