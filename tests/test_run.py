"""gan.run.train_and_evaluate: the budget, the evaluation points, the final evaluation, divergence, resuming."""
import copy
import math

import pytest

from gan import names
from gan.config import GanConfig
from gan.run import Budget, EvaluationPlan, train_and_evaluate

TINY = dict(arch="mlp", z_dim=8, g_width=16, d_width=16, g_depth=1, d_depth=1, batch_size=16)
PLAN = EvaluationPlan(num_samples=100, metrics=("discriminator",))


def collect(config, data, budget, plan=PLAN, initial_state=None, classifier=None):
    reports, states = [], []

    def on_report(metrics, trainer):
        reports.append(metrics)
        states.append(copy.deepcopy(trainer.state_dict()))  # a snapshot: the live tensors keep training

    train_and_evaluate(config, data, budget, plan, on_report, initial_state=initial_state, classifier=classifier)
    return reports, states


@pytest.mark.parametrize("k,steps_per_epoch", [(1, 3500 / 50), (2, 3500 / 100), (5, 3500 / 250)])
def test_an_epoch_is_one_pass_of_d_so_k_divides_the_generator_steps(k, steps_per_epoch):
    total, every = Budget(steps=None, epochs=3, eval_every=1).generator_steps(3500, 50, k)
    assert (total, every) == (math.ceil(3 * steps_per_epoch), math.ceil(steps_per_epoch))
    assert Budget(steps=100, epochs=None, eval_every=30).generator_steps(3500, 50, k) == (100, 30)
    assert Budget(steps=100, epochs=None, eval_every=30).evaluations == 4


def test_reports_at_each_evaluation_point_and_evaluates_on_test_at_the_end(mnist5k):
    reports, _ = collect(GanConfig(**TINY), mnist5k, Budget(steps=25, epochs=None, eval_every=10))
    assert [r[names.STEP] for r in reports] == [10, 20, 25]  # the last chunk is shorter
    assert [r[names.DONE_TRAINING] for r in reports] == [False, False, True]
    assert all(names.D_GAP in r for r in reports)
    finals = {key for key in reports[-1] if key.startswith(names.FINAL_PREFIX)}
    assert finals == {names.final(n) for n in (names.EVAL_D_REAL, names.EVAL_D_FAKE, names.D_GAP, names.D_ACCURACY)}
    assert not any(key.startswith(names.FINAL_PREFIX) for r in reports[:-1] for key in r)
    assert reports[-1][names.TIME_FINAL_EVAL_S] > 0 and reports[0][names.TIME_FINAL_EVAL_S] == 0
    assert all(r[names.REGIME] in ("balanced", "d_dominates", "g_dominates") for r in reports)


def test_without_final_evaluation_nothing_is_logged_under_final(mnist5k):
    plan = EvaluationPlan(num_samples=100, metrics=("discriminator",), final=False)
    reports, _ = collect(GanConfig(**TINY), mnist5k, Budget(steps=10, epochs=None, eval_every=10), plan)
    assert len(reports) == 1 and reports[0][names.DONE_TRAINING]
    assert not any(key.startswith(names.FINAL_PREFIX) for key in reports[0])


def test_a_diverging_run_reports_once_without_evaluation_and_stops(mnist5k):
    config = GanConfig(**{**TINY, "optimizer": "sgd", "lr_d": 1e6, "lr_g": 1e6})
    reports, _ = collect(config, mnist5k, Budget(steps=400, epochs=None, eval_every=200))
    assert len(reports) == 1
    assert reports[0][names.DIVERGED] == 1 and reports[0][names.REGIME] == "diverged"
    assert names.D_GAP not in reports[0] and not reports[0][names.DONE_TRAINING]


def test_a_run_continued_from_its_state_reports_what_the_whole_run_reports(mnist5k):
    config, budget = GanConfig(**TINY), Budget(steps=30, epochs=None, eval_every=10)
    whole, states = collect(config, mnist5k, budget)
    resumed, _ = collect(config, mnist5k, budget, initial_state=states[0])
    assert [r[names.STEP] for r in resumed] == [20, 30]
    assert resumed[0][names.RESTORED_FROM_STEP] == 10 and whole[0][names.RESTORED_FROM_STEP] == 0
    for left, right in zip(whole[1:], resumed):
        for key in (names.LOSS_D, names.LOSS_G, names.EVAL_D_FAKE, names.final(names.EVAL_D_FAKE)):
            assert left.get(key) == right.get(key), key


def test_an_architecture_with_a_budget_of_its_own_trains_for_it(mnist5k):
    mlp_budget = Budget(steps=20, epochs=None, eval_every=10)
    budget = Budget(steps=12, epochs=None, eval_every=4, per_arch=(("mlp", mlp_budget),))
    assert budget.for_arch("mlp") is mlp_budget and budget.for_arch("dcgan") is budget
    assert budget.evaluations == 3  # the longest time axis: the study's 12 / 4, against the MLP's 20 / 10
    reports, _ = collect(GanConfig(**TINY), mnist5k, budget)
    assert [r[names.STEP] for r in reports] == [10, 20]


def test_the_final_fid_is_the_mean_of_independent_draws_and_the_run_gets_an_outcome(mnist5k, quick_classifier):
    from gan.evaluation import noise_fid
    from gan.outcome import FAILED
    from gan.run import FINAL_DRAWS

    plan = EvaluationPlan(num_samples=200, metrics=("fid", "coverage", "discriminator"))
    reports, _ = collect(GanConfig(**TINY), mnist5k, Budget(steps=10, epochs=None, eval_every=10), plan,
                         classifier=quick_classifier)
    last = reports[-1]
    draws = [last[names.final(names.draw(names.FID, i))] for i in range(FINAL_DRAWS)]
    assert FINAL_DRAWS >= 3 and len(set(draws)) == FINAL_DRAWS  # independent sample draws score differently
    assert last[names.final(names.FID)] == pytest.approx(sum(draws) / FINAL_DRAWS)
    # 10 steps of training: far from data, so the run has failed by the FID rule against noise's FID
    fid_noise = noise_fid(mnist5k.test.images, quick_classifier)
    assert last[names.final(names.FID)] > 0.1 * fid_noise
    assert last[names.OUTCOME] == FAILED and last[names.OUTCOME_REASON].startswith("final FID")
    assert all(r[names.OUTCOME] == r[names.CONVERGENCE] for r in reports[:-1])
