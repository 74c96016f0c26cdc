"""Every name a run reports and a study records: metric keys, MLflow tags, parameters, artifacts.

One home for the strings that gan/, study/ and reports/ must agree on. Plain strings only: importing
this module imports neither torch, Ray nor MLflow, so reports/ can use it without the training stack.
"""
from __future__ import annotations

# --- what a training run reports at every evaluation (gan.run) ------------------------------------
STEP = "step"  # generator steps done; the x axis of every metric history
D_STEPS = "d_steps"  # discriminator steps done
EPOCH = "epoch"  # passes of D over the training split
LOSS_D, LOSS_G = "loss_d", "loss_g"  # mean training losses since the last evaluation
TRAIN_D_REAL, TRAIN_D_FAKE = "d_real", "d_fake"  # mean D(x), D(G(z)) on D's training minibatches
LR_G, LR_D, K = "lr_g", "lr_d", "k"  # reported each time: PBT may change them during a run
G_PARAMS, D_PARAMS = "g_params", "d_params"
TOTAL_STEPS = "total_steps"
RESTORED_FROM_STEP = "restored_from_step"  # the generator step this process resumed at (0: a fresh start)
DIVERGED = "diverged"  # 1 once a loss or parameter became non-finite
DONE_TRAINING = "done_training"  # the run reached its budget (not a metric: a flag)
REGIME = "regime"  # gan.evaluation.balance_regime of this evaluation (not a metric: a label)
CONVERGENCE = "convergence"  # gan.convergence label of the run so far (not a metric: a label)
OUTCOME = "outcome"  # gan.outcome: failed / diverged / converged / still_improving (not a metric: a label)
OUTCOME_REASON = "outcome_reason"  # why a failed run failed, one line (not a metric: a label)
TIME_TRAIN_S, TIME_EVAL_S, TIME_FINAL_EVAL_S = "time_train_s", "time_eval_s", "time_final_eval_s"

# --- evaluation metrics (gan.evaluation), on the validation split during training ----------------
FID = "fid"
PIXEL_FD = "pixel_fd"
PARZEN, PARZEN_SEM, PARZEN_SIGMA = "parzen", "parzen_sem", "parzen_sigma"
CLASSES_COVERED, MODE_KL = "classes_covered", "mode_kl"
PRECISION, RECALL, DENSITY, COVERAGE = "precision", "recall", "density", "coverage"
CLASSIFIER_SCORE = "classifier_score"
SLICED_WASSERSTEIN = "sliced_wasserstein"
EVAL_D_REAL, EVAL_D_FAKE = "eval_d_real", "eval_d_fake"  # mean D on held-out reals and fresh fakes, D in eval mode
D_GAP, D_ACCURACY = "d_gap", "d_accuracy"
# D's overfitting (the `discriminator` metric, D in eval mode; accuracy: the share D classifies right at D(x) = 0.5):
# mean D on training reals, and D's accuracy on training reals, held-out reals and fresh fakes; ADA's
# r_t = E[sign(D_logit(x_train))] (Karras et al. 2020); d_overfit_gap = d_train_real − eval_d_real
D_TRAIN_REAL = "d_train_real"
D_TRAIN_ACCURACY, D_HELDOUT_ACCURACY, D_FAKE_ACCURACY = "d_train_accuracy", "d_heldout_accuracy", "d_fake_accuracy"
D_RT, D_OVERFIT_GAP = "d_rt", "d_overfit_gap"
D_OVERFITTING = (D_TRAIN_REAL, D_TRAIN_ACCURACY, D_HELDOUT_ACCURACY, D_FAKE_ACCURACY, D_RT, D_OVERFIT_GAP)
MODES_COVERED, MODES_KL = "modes_covered", "modes_kl"  # Stacked MNIST: of 1,000 modes; KL(p̂(mode) ‖ uniform), nats
KID, KID_STD = "kid", "kid_std"  # kernel (MMD²) distance on classifier features: mean, std over subsets
FID_INCEPTION = "fid_inception"  # FID on pytorch-fid's Inception-v3 pool3 features: final evaluation only

EVALUATION_METRICS = (FID, PIXEL_FD, PARZEN, PARZEN_SEM, PARZEN_SIGMA, CLASSES_COVERED, MODE_KL, PRECISION, RECALL,
                      DENSITY, COVERAGE, CLASSIFIER_SCORE, SLICED_WASSERSTEIN, EVAL_D_REAL, EVAL_D_FAKE, D_GAP,
                      D_ACCURACY, *D_OVERFITTING, MODES_COVERED, MODES_KL, KID, KID_STD, FID_INCEPTION)
TRAINING_METRICS = (LOSS_D, LOSS_G, TRAIN_D_REAL, TRAIN_D_FAKE)

FINAL_PREFIX = "final/"  # the final evaluation: test split, protocol sample sizes
BEST_PREFIX = "best/"  # the best value over a run's evaluations so far (validation split), e.g. best/fid
BEST_STEP_SUFFIX = "_step"  # best/fid_step: the generator step of best/fid


def final(name: str) -> str:
    return FINAL_PREFIX + name


DRAW_SUFFIX = "_draw"  # final/fid_draw0, final/fid_draw1, ...: the final score of each independent sample draw


def draw(name: str, index: int) -> str:
    return f"{name}{DRAW_SUFFIX}{index}"


EMA_SUFFIX = "_ema"  # fid_ema, final/fid_ema: the same metric of the moving average of G (g_ema_decay > 0)


def ema(name: str) -> str:
    return name + EMA_SUFFIX


def best(name: str) -> str:
    return BEST_PREFIX + name


# --- the study's parent run ------------------------------------------------------------------------
REFERENCE_PREFIX = "reference/"  # what real data scores on the same metrics (gan.evaluation.reference_scores)
FID_TRAIN_TEST, FID_TEST_NOISE = "fid_train_test", "fid_test_noise"
PARZEN_TRAIN_TEST = "parzen_train_test"
CLASSIFIER_TEST_ACCURACY = "classifier_test_accuracy"
KID_TRAIN_TEST = "kid_train_test"  # KID(train split, test split) ± its std over subsets (kid_train_test_std)
MODES_COVERED_TEST, MODES_KL_TEST = "modes_covered_test", "modes_kl_test"  # real stacked test data, same sample size
TRIALS_TOTAL = "trials_total"
TRIALS_PREFIX = "trials_"  # trials_<status>: how many trials ended with each status
STUDY_WALL_TIME_S = "study_wall_time_s"
# trials Tune restarted after a failure (a dead worker process or node), and restarts in all; why: RESTARTS_TAG
TRIALS_RESTARTED, TRIAL_RESTARTS = "trials_restarted", "trial_restarts"


def reference(name: str) -> str:
    return REFERENCE_PREFIX + name


# --- parameters of a trial's run beside its GanConfig fields ---------------------------------------
CAPACITY_RATIO_LOG2 = "capacity_ratio_log2"  # log2(d_width / g_width)
PACK = "pack"  # PacGAN's m: samples D judges at once (a GanConfig field; the reports group by it)

# --- tags ------------------------------------------------------------------------------------------
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: nests a trial's run under the study's
ROLE_TAG = "gan_study.role"  # ROLE_STUDY on a parent run, ROLE_TRIAL on a child run
ROLE_STUDY, ROLE_TRIAL = "study", "trial"
TRIAL_ID_TAG = "gan_study.trial_id"  # Tune's trial id
STATUS_TAG = "gan_study.status"
REGIME_TAG = "gan_study.regime"  # the balance regime of the trial's last evaluation
CONVERGENCE_TAG = "gan_study.convergence"  # converged / still_improving / diverged (gan.convergence)
OUTCOME_TAG = "gan_study.outcome"  # failed / diverged / converged / still_improving (gan.outcome)
OUTCOME_REASON_TAG = "gan_study.outcome_reason"  # why a failed trial failed
SPACE_TAG = "gan_study.space"
DATASET_TAG = "gan_study.dataset"
CONFIG_ID_TAG = "gan_study.config_id"  # a hash of a trial's parameters without its seed: equal across its seeds
ERROR_TAG = "gan_study.error"  # the last line of the exception that ended an errored trial
RESTARTS_TAG = "gan_study.restarts"  # on the parent run: why trials were restarted, e.g. "2× ActorDiedError: …"
DESCRIPTION_TAG = "mlflow.note.content"  # MLflow's own: a run's Markdown description, shown on its page
# MLflow's own experiment tag: the UI opens an experiment of this kind on its runs table, not on GenAI traces
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND_TRAINING = "mlflow.experimentKind", "custom_model_development"
PLACEMENT_KEYS = ("hostname", "node_id", "device", "gpu_ids")  # reported by a trial, tagged gan_study.<key>
# The feature extractors that score a study (gan.metrics.classifier.weights_fingerprint of their weights): tagged on
# the parent run by the driver, and on each child run as its trial reports them. One study, one value of each.
CLASSIFIER_FINGERPRINT = "classifier_fingerprint"  # the LeNet behind fid, kid, prdc, modes (not a metric: a label)
INCEPTION_FINGERPRINT = "inception_fingerprint"  # the user's Inception weights behind fid_inception (parent only)
CLASSIFIER_FINGERPRINT_TAG = "gan_study.classifier_fingerprint"
INCEPTION_FINGERPRINT_TAG = "gan_study.inception_fingerprint"
# An ablation study (a space with `arms:`): each trial's arm is the trial parameter ARM (the arm's name); the parent
# run's DESIGN_TAG says "ablation" and REFERENCE_ARM_TAG names the arm every other arm is compared with.
ARM = "arm"
DESIGN_TAG = "gan_study.design"
DESIGN_ABLATION = "ablation"
REFERENCE_ARM_TAG = "gan_study.reference_arm"
# A two-stage study (a search space with `confirm:`): the search stage's children are tagged STAGE_TAG = STAGE_SEARCH;
# after it the driver reruns the `top` best configurations and the reference configuration on fresh seeds at the full
# budget, children tagged STAGE_TAG = STAGE_CONFIRM, CONFIRM_RANK_TAG = "1".."K" (rank by search score) or
# CONFIRM_REFERENCE ("reference"), and SEARCH_SCORE_TAG = the search stage's score of the configuration they
# confirm (none for the reference). The parent's DESIGN_TAG says DESIGN_SEARCH_CONFIRM.
STAGE_TAG = "gan_study.stage"
STAGE_SEARCH, STAGE_CONFIRM = "search", "confirm"
CONFIRM_RANK_TAG = "gan_study.confirm_rank"
CONFIRM_REFERENCE = "reference"
SEARCH_SCORE_TAG = "gan_study.search_score"
DESIGN_SEARCH_CONFIRM = "search_confirm"


def placement_tag(key: str) -> str:
    return f"gan_study.{key}"


# A trial's status (STATUS_TAG); a study's parent run uses RUNNING, COMPLETED, COMPLETED_WITH_ERRORS (some
# trials errored), FAILED (every trial errored) and INTERRUPTED.
RUNNING, COMPLETED, STOPPED_EARLY, DIVERGED_STATUS, ERRORED = "running", "completed", "stopped_early", "diverged", "errored"
INTERRUPTED, FAILED, COMPLETED_WITH_ERRORS = "interrupted", "failed", "completed_with_errors"

# --- a trial that cannot run (study.trial): its last result says why, and it is not retried ------------
ERROR = "error"  # the exception's last line (not a metric: a label)
ERROR_TEXT = "error_text"  # the full traceback (not a metric: logged as the artifact ERROR_ARTIFACT)

# --- artifacts -------------------------------------------------------------------------------------
SAMPLES_ARTIFACT = "samples/samples.png"  # a trial's 8 x 8 fixed-noise sample grid
ERROR_ARTIFACT = "error.txt"  # an errored trial's full error text (traceback, or Ray's error file)
