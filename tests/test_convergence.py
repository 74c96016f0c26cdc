"""The convergence rule on synthetic histories whose answer is known, and its use in a training run."""
import math

import pytest

from gan import names
from gan.config import GanConfig
from gan.convergence import CONVERGED, DIVERGED, STILL_IMPROVING, convergence, last_quarter_improvement
from gan.run import Budget, EvaluationPlan, train_and_evaluate


def decaying(total, every, floor, scale, rate):
    """FID(t) = floor + scale * exp(-rate * t), evaluated every `every` steps."""
    return [(t, floor + scale * math.exp(-rate * t)) for t in range(every, total + 1, every)]


def test_a_curve_that_has_flattened_by_three_quarters_is_converged():
    history = decaying(4000, 500, floor=20, scale=300, rate=3e-3)  # best early: t = 3000; best late: t = 4000
    early, late = 20 + 300 * math.exp(-9), 20 + 300 * math.exp(-12)
    assert last_quarter_improvement(history, 4000) == pytest.approx((early - late) / early)  # 0.18%
    assert convergence(history, 4000) == CONVERGED


def test_a_curve_still_falling_fast_is_still_improving():
    history = decaying(4000, 500, floor=20, scale=300, rate=3e-4)  # 20 + 300 e^-0.9 = 141.9 -> 20 + 300 e^-1.2 = 110.4
    improvement = (20 + 300 * math.exp(-0.9) - (20 + 300 * math.exp(-1.2))) / (20 + 300 * math.exp(-0.9))
    assert last_quarter_improvement(history, 4000) == pytest.approx(improvement)
    assert convergence(history, 4000) == STILL_IMPROVING


def test_the_10_percent_boundary():
    assert convergence([(750, 100.0), (1000, 90.5)], 1000) == CONVERGED  # 9.5%
    assert convergence([(750, 100.0), (1000, 90.0)], 1000) == STILL_IMPROVING  # 10%: not less than 10%


def test_bests_not_single_evaluations_decide():
    # a noisy spike at 3/4 must not make the last quarter look like progress
    spiky = [(500, 40.0), (1000, 31.0), (1500, 30.0), (2000, 28.0), (2500, 29.0), (3000, 80.0), (3500, 27.5),
             (4000, 27.9)]
    assert last_quarter_improvement(spiky, 4000) == pytest.approx((28.0 - 27.5) / 28.0)
    assert convergence(spiky, 4000) == CONVERGED


def test_a_run_that_got_worse_at_the_end_has_stopped_improving():
    assert convergence([(1000, 30.0), (2000, 25.0), (3000, 24.0), (4000, 35.0)], 4000) == CONVERGED


def test_too_few_evaluations_or_a_stopped_run_cannot_be_called_converged():
    assert convergence([(4000, 25.0)], 4000) == STILL_IMPROVING  # nothing before the last quarter
    assert convergence([(1000, 40.0), (2000, 39.9)], 4000) == STILL_IMPROVING  # stopped at half: no last quarter
    assert convergence([(1000, 40.0), (2000, math.nan), (4000, math.inf)], 4000) == STILL_IMPROVING
    assert convergence([(1000, 40.0)], 4000, diverged=True) == DIVERGED


def test_higher_is_better_scores_flip_the_sign():
    assert convergence([(500, 100.0), (1000, 130.0)], 1000, lower_is_better=False) == STILL_IMPROVING
    assert convergence([(500, 100.0), (1000, 105.0)], 1000, lower_is_better=False) == CONVERGED


def test_a_run_reports_its_best_validation_score_and_convergence_at_every_evaluation(mnist5k):
    config = GanConfig(arch="mlp", z_dim=8, g_width=16, d_width=16, g_depth=1, d_depth=1, batch_size=16)
    plan = EvaluationPlan(num_samples=100, metrics=("pixel_fd", "discriminator"), final=False)
    reports = []
    train_and_evaluate(config, mnist5k, Budget(steps=40, epochs=None, eval_every=10), plan,
                       lambda metrics, trainer: reports.append(metrics))
    scores = [r[names.PIXEL_FD] for r in reports]
    for i, report in enumerate(reports):
        assert report[names.best(names.PIXEL_FD)] == min(scores[:i + 1])
        best_index = scores[:i + 1].index(min(scores[:i + 1]))
        assert report[names.best(names.PIXEL_FD) + names.BEST_STEP_SUFFIX] == 10 * (best_index + 1)
    history = list(zip(range(10, 41, 10), scores))
    assert reports[-1][names.CONVERGENCE] == convergence(history, 40)
    assert reports[0][names.CONVERGENCE] == STILL_IMPROVING  # no evaluation yet in the last quarter
