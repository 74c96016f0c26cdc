"""One training run from configuration to final evaluation: the loop every caller shares.

`train_and_evaluate` owns the budget (how many generator steps, how often to evaluate), trains in
chunks up to each evaluation point, evaluates on the validation split, runs the final protocol
evaluation on the test split at the end, and hands every evaluation to an `on_report` callback
together with the trainer (for checkpoints and sample grids). The Tune trainable and the benchmarks
are callers; nothing here knows about Ray or MLflow.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from gan import names
from gan.config import GanConfig
from gan.convergence import convergence
from gan.data import DataSplits
from gan.evaluation import FINAL_PARZEN_SAMPLES, balance_regime, evaluate, noise_fid
from gan.outcome import trial_outcome
from gan.metrics import TrainedClassifier
from gan.trainer import GanTrainer

# Evaluation noise differs from training noise and is the same at every evaluation of a run.
EVAL_SEED_OFFSET = 1_000_003
# The final evaluation scores each trained generator on FINAL_DRAWS independent sample draws, so a report can
# split a score's variance into training seed and evaluation draw; draw i > 0 uses noise seed + i * DRAW_SEED_STEP
# (far from the seeds the first draw's extra samples use).
FINAL_DRAWS = 3
DRAW_SEED_STEP = 7_919


@dataclass(frozen=True)
class Budget:
    """How long a run trains and how often it evaluates: in generator steps, or in epochs of D."""

    steps: int | None
    epochs: float | None
    eval_every: float  # in the budget's unit
    # budgets of their own for some architectures ((arch, Budget) pairs): one study can give a DCGAN and an
    # MLP the generator steps each needs to converge
    per_arch: tuple[tuple[str, "Budget"], ...] = ()

    def for_arch(self, arch: str) -> "Budget":
        """The budget of a run of `arch`: its own where one is given, else this one."""
        return next((budget for name, budget in self.per_arch if name == arch), self)

    def generator_steps(self, train_size: int, batch_size: int, k: int) -> tuple[int, int]:
        """(total generator steps, generator steps between evaluations).

        An epoch is one pass of D over the training split: train_size / batch_size D steps,
        so k discriminator steps per generator step gives train_size / (batch_size * k) G steps.
        """
        if self.steps is not None:
            total, interval = self.steps, self.eval_every
        else:
            per_epoch = train_size / (batch_size * k)
            total, interval = self.epochs * per_epoch, self.eval_every * per_epoch
        return max(1, math.ceil(total)), max(1, math.ceil(interval))

    @property
    def evaluations(self) -> int:
        """Number of evaluations (reports) in a full run: the time axis of Tune's schedulers."""
        own = math.ceil((self.steps if self.steps is not None else self.epochs) / self.eval_every)
        return max([own, *(budget.evaluations for _, budget in self.per_arch)])


@dataclass(frozen=True)
class EvaluationPlan:
    num_samples: int = 1000  # generated samples per evaluation during training
    metrics: tuple[str, ...] = ()  # names in gan.evaluation.METRICS
    final: bool = True  # run the final protocol evaluation on the test split at the end
    # the metrics of the evaluations during training, when cheaper than `metrics` (empty: the same);
    # the final evaluation always computes `metrics`
    training_metrics: tuple[str, ...] = ()
    # pytorch-fid's pt_inception-2015-12-05 weights: the final evaluation adds fid_inception (None: off)
    inception_weights: str | None = None

    @property
    def during_training(self) -> tuple[str, ...]:
        return self.training_metrics or self.metrics


# The validation score whose history decides convergence and `best/`: the classifier FID, else the pixel FD.
TRACKED_SCORES = (names.FID, names.PIXEL_FD)


# on_report(metrics of this evaluation, the trainer after it): called once per evaluation, in order.
OnReport = Callable[[dict[str, Any], GanTrainer], None]


def train_and_evaluate(
    config: GanConfig,
    data: DataSplits,
    budget: Budget,
    evaluation: EvaluationPlan,
    on_report: OnReport,
    classifier: TrainedClassifier | None = None,
    device: str | torch.device = "cpu",
    initial_state: dict | None = None,
) -> GanTrainer:
    """Train `config` on `data` to the end of `budget`, reporting every evaluation; returns the trainer.

    `initial_state` (a `GanTrainer.state_dict()`) continues an earlier run: a retry, a resumed study, or
    another run's state with new optimisation hyperparameters (PBT's exploit step). A run that diverges
    (a non-finite loss or parameter) reports once more, with regime "diverged" and no evaluation, and stops.
    """
    trainer = GanTrainer(config, data.train.images, device)
    if initial_state is not None:
        trainer.load_state_dict(initial_state, allow_hyperparameter_change=True)
    total_steps, eval_every = budget.for_arch(config.arch).generator_steps(len(data.train), config.batch_size, config.k)
    eval_seed = config.seed + EVAL_SEED_OFFSET
    static = {names.G_PARAMS: trainer.g_params, names.D_PARAMS: trainer.d_params, names.TOTAL_STEPS: total_steps,
              names.RESTORED_FROM_STEP: trainer.step}
    # wall time spent training and evaluating in this process, reported so a study shows what evaluation costs
    seconds = {names.TIME_TRAIN_S: 0.0, names.TIME_EVAL_S: 0.0, names.TIME_FINAL_EVAL_S: 0.0}

    def timed(key: str, work: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        value = work()
        seconds[key] += time.perf_counter() - started
        return value

    def scores(reference, num_samples: int, metrics: tuple[str, ...], final: bool = False) -> dict[str, float]:
        inception = None
        if final and evaluation.inception_weights is not None:
            from gan.metrics.inception import load_inception_features

            inception = load_inception_features(evaluation.inception_weights, str(trainer.device))
        values = evaluate(trainer, reference, data.validation, metrics, num_samples, eval_seed, classifier,
                          data.num_classes, final=final, inception=inception)
        if trainer.generator_ema is not None:  # the moving average of G on the same noise: fid_ema, final/fid_ema...
            values.update({names.ema(name): value for name, value in evaluate(
                trainer, reference, data.validation, metrics, num_samples, eval_seed, classifier, data.num_classes,
                final=final, inception=inception, ema=True).items()})
        return values

    def final_scores(tracked: str | None) -> dict[str, float]:
        """The protocol evaluation on the test split (10,000 samples); the tracked score of FINAL_DRAWS
        independent draws, `<score>_draw<i>`, and their mean as the score itself."""
        size = max(evaluation.num_samples, FINAL_PARZEN_SAMPLES)
        values = scores(data.test, size, evaluation.metrics, final=True)
        if tracked is not None and tracked in values:
            draws = [values[tracked]] + [
                evaluate(trainer, data.test, data.validation, (tracked,), size, eval_seed + i * DRAW_SEED_STEP,
                         classifier, data.num_classes)[tracked] for i in range(1, FINAL_DRAWS)]
            values.update({names.draw(tracked, i): value for i, value in enumerate(draws)})
            values[tracked] = sum(draws) / len(draws)
        return values

    def fid_noise() -> float | None:
        """FID(test, noise), gan.outcome's yardstick of failure; None without the classifier FID."""
        if classifier is None or names.FID not in evaluation.metrics:
            return None
        if "value" not in noise_reference:
            noise_reference["value"] = noise_fid(data.test.images, classifier)
        return noise_reference["value"]

    noise_reference: dict[str, float] = {}
    # Stacked MNIST: num_classes digits in each channel
    num_modes = data.num_classes ** data.image_shape[0] if data.channel_source is not None else None
    tracked = next((name for name in TRACKED_SCORES if name in evaluation.during_training), None)
    history = trainer.score_history  # (step, tracked validation score), kept in the trainer's checkpoints

    while trainer.step < total_steps and not trainer.diverged:
        # (1) train up to the next evaluation point
        next_eval = min(total_steps, (trainer.step // eval_every + 1) * eval_every)
        stats = timed(names.TIME_TRAIN_S, lambda: trainer.train(next_eval - trainer.step))
        report: dict[str, Any] = {
            names.STEP: stats.step, names.D_STEPS: stats.d_steps,
            names.EPOCH: stats.d_steps * config.batch_size / len(data.train),
            names.LOSS_D: stats.loss_d, names.LOSS_G: stats.loss_g,
            names.TRAIN_D_REAL: stats.d_real, names.TRAIN_D_FAKE: stats.d_fake,
            names.LR_G: config.lr_g, names.LR_D: config.lr_d, names.K: config.k,
            names.DIVERGED: int(stats.diverged), names.DONE_TRAINING: False, **static,
        }
        if stats.diverged:
            # (2') a diverged run is not evaluated: its samples mean nothing
            report[names.REGIME] = balance_regime({}, diverged=True, num_classes=data.num_classes)
        else:
            # (2) evaluate on the validation split
            current = timed(names.TIME_EVAL_S,
                            lambda: scores(data.validation, evaluation.num_samples, evaluation.during_training))
            report.update(current)
            if tracked is not None:
                history.append((trainer.step, current[tracked]))
                best_step, best_value = min(history, key=lambda point: point[1])
                report.update({names.best(tracked): best_value,
                               names.best(tracked) + names.BEST_STEP_SUFFIX: best_step})
            # (3) the final evaluation on the test split at the protocol sizes (10,000 samples)
            if trainer.step >= total_steps:
                report[names.DONE_TRAINING] = True
                if evaluation.final:
                    current = timed(names.TIME_FINAL_EVAL_S, lambda: final_scores(tracked))
                    report.update({names.final(name): value for name, value in current.items()})
            report[names.REGIME] = balance_regime(current, diverged=False, num_classes=data.num_classes,
                                                  num_modes=num_modes)
        if tracked is not None:
            report[names.CONVERGENCE] = convergence(history, total_steps, diverged=stats.diverged)
            final = current if report[names.DONE_TRAINING] and evaluation.final and not stats.diverged else None
            report[names.OUTCOME], reason = trial_outcome(report[names.CONVERGENCE], final, fid_noise(),
                                                          data.num_classes, num_modes)
            if reason is not None:
                report[names.OUTCOME_REASON] = reason
        report.update(seconds)
        # (4) hand the evaluation to the caller, with the trainer for checkpoints and sample grids
        on_report(report, trainer)
    return trainer
