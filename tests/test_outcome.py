"""A trial's outcome (gan.outcome) on synthetic histories and final metrics: failure is decided before convergence."""
import math

from gan import names
from gan.convergence import convergence
from gan.outcome import CONVERGED, DIVERGED, FAILED, STILL_IMPROVING, trial_outcome

NOISE_FID = 1549.0  # FID(test, noise) on mnist5k
HEALTHY = {names.FID: 24.0, names.CLASSES_COVERED: 10.0, names.EVAL_D_REAL: 0.62, names.EVAL_D_FAKE: 0.35}


def plateau(level: float, steps: int = 2500, every: int = 400) -> list[tuple[int, float]]:
    """A validation history that falls fast and then stays at `level`."""
    return [(step, level * (1 + 4 * math.exp(-step / 300))) for step in range(every, steps + 1, every)]


def test_a_collapsed_run_that_stopped_improving_is_failed_not_converged():
    history = plateau(620.0)  # a G 16 / D 2 DCGAN stuck far from data
    assert convergence(history, 2500) == CONVERGED  # the convergence rule alone would call it converged
    final = {names.FID: 604.0, names.CLASSES_COVERED: 4.0, names.EVAL_D_REAL: 0.99, names.EVAL_D_FAKE: 0.002}
    outcome, reason = trial_outcome(convergence(history, 2500), final, NOISE_FID, num_classes=10)
    assert outcome == FAILED and reason.startswith("final FID 604 > 0.1 x FID(test, noise) 1549")


def test_a_run_that_drops_a_class_fails_even_with_a_moderate_fid():
    final = {**HEALTHY, names.FID: 90.0, names.CLASSES_COVERED: 8.0}
    assert trial_outcome(CONVERGED, final, NOISE_FID, num_classes=10) == (FAILED, "8 of 10 classes covered")


def test_stacked_mnist_collapse_is_judged_by_modes():
    final = {names.FID: 120.0, names.MODES_COVERED: 16.0, names.EVAL_D_REAL: 0.7, names.EVAL_D_FAKE: 0.2}
    assert trial_outcome(CONVERGED, final, 2000.0, num_classes=10, num_modes=1000) == \
        (FAILED, "16 of 1000 modes covered")
    healthy = {**final, names.MODES_COVERED: 930.0}
    assert trial_outcome(STILL_IMPROVING, healthy, 2000.0, num_classes=10, num_modes=1000) == (STILL_IMPROVING, None)


def test_a_dead_discriminator_is_a_failure():
    final = {**HEALTHY, names.EVAL_D_REAL: 0.998, names.EVAL_D_FAKE: 0.001}
    outcome, reason = trial_outcome(CONVERGED, final, NOISE_FID, num_classes=10)
    assert outcome == FAILED and reason.startswith("D at a dead equilibrium")


def test_healthy_runs_keep_their_convergence_label_and_diverged_stays_diverged():
    history = plateau(24.0)
    assert trial_outcome(convergence(history, 2500), HEALTHY, NOISE_FID, 10) == (CONVERGED, None)
    rising = [(step, 300 - step / 10) for step in range(400, 2501, 400)]  # still falling steeply at the end
    assert trial_outcome(convergence(rising, 2500), HEALTHY, NOISE_FID, 10) == (STILL_IMPROVING, None)
    assert trial_outcome(DIVERGED, None, NOISE_FID, 10)[0] == DIVERGED


def test_without_final_metrics_or_a_noise_reference_no_failure_is_declared():
    assert trial_outcome(STILL_IMPROVING, None, NOISE_FID, 10) == (STILL_IMPROVING, None)
    final = {names.FID: 900.0}  # no classes, no D outputs, and no reference to judge the FID by
    assert trial_outcome(CONVERGED, final, None, 10) == (CONVERGED, None)
