"""`python -m study.run --space balance.yaml`: a GAN hyperparameter study on Ray Tune, logged to MLflow.

Every problem a user can cause (the space file, the data set, the storage path, the Ray address, the
tracking store and its credentials) is checked before Ray starts, and the trials' resources against the
cluster's nodes right after it joined, each reported as one line on stderr with exit status 2 before
anything is written. The exit status says how the study ended (EXIT_STATUSES).

A search with `confirm:` is a two-stage study (study.confirm): when the search's Tune run has ended, the driver
starts a second one, the confirmation, under the same parent run; the study is complete when both are. `--resume`
continues the stage the study was in (see study.confirm).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gan import names
from gan.config import ConfigError
from gan.data import DataSplits, DatasetUnavailable, load_dataset
from gan.metrics.classifier import ClassifierMismatch
from gan.metrics.inception import InceptionWeightsUnavailable
from reports.budget_text import budget_param
from reports.store import StoreError, check_store, default_tracking_uri
from study.cluster import ResourcesUnavailable, TrialResources, check_trial_fits
from study.confirm import check_resume
from study.description import BestTrial, ReportLink, experiment_ui_url, study_description
from study.extractors import extractor_tags, inception_fingerprint, log_extractors, study_classifier
from study.outcome import (EXIT_INTERRUPTED, EXIT_STATUSES, EXIT_USAGE, StudyOutcome, TrialOutcome, best_trial,
                           final_draws, finished_count, score_protocol, study_outcome, trial_outcomes,
                           trial_score)
from study.preflight import (UsageError, check_gpus_per_trial, check_storage, check_tracking_access, connect_ray,
                             parent_to_resume)
from study.restarts import log_restarts
from study.space import SpaceError, StudySpace, checked_resources, load_space

PROGRESS_EVERY_S = 30.0  # seconds between the progress lines (study.progress)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m study.run", description=__doc__.splitlines()[0])
    parser.add_argument("--space", required=True, help="a shipped space name (balance.yaml) or a path to a YAML file")
    parser.add_argument("--num-samples", type=int, help="configurations to sample (overrides the space)")
    parser.add_argument("--seeds-per-config", type=int, help="seeds per configuration (overrides the space)")
    parser.add_argument("--max-concurrent", type=int, help="trials running at once")
    parser.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (fractions allowed)")
    parser.add_argument("--gpus-per-trial", type=float, help="GPUs per trial (0.25: four trials share a GPU)")
    parser.add_argument("--address", default=os.environ.get("RAY_ADDRESS"),
                        help="a Ray cluster to join (default: $RAY_ADDRESS, else start a local Ray)")
    parser.add_argument("--storage-path", help="where Tune keeps checkpoints and results (default ./ray_results); "
                        "multi-node runs need a shared file system or s3:// / gs://")
    parser.add_argument("--experiment", help="MLflow experiment and Tune run name (default: the space's name)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///<cwd>/mlflow.db)")
    parser.add_argument("--seed", type=int, help="base seed of the study (overrides the space)")
    parser.add_argument("--max-failures", type=int, default=2, help="retries of a failed trial (default 2)")
    parser.add_argument("--classifier", metavar="FILE",
                        help="the domain classifier's weights file (python -m gan.metrics.train_classifier) that "
                             "scores every trial (default: the shipped one for mnist5k and Stacked MNIST, else this "
                             "machine's cache, trained now when missing)")
    parser.add_argument("--report", action="store_true",
                        help="build the MLflow report (python -m reports) at the end and log it to the study's run")
    parser.add_argument("--resume", nargs="?", const="latest", metavar="RUN_DIR",
                        help="continue an interrupted study: its Tune directory, or the latest of this experiment")
    parser.add_argument("--wait-for-resources", action="store_true",
                        help="start even when no node of the cluster has the CPUs/GPUs one trial asks for, and "
                             "wait for one to join (by default that is an error, unless an autoscaler can add one)")
    parser.add_argument("--verbose", action="store_true",
                        help="also print Ray Tune's trial table (by default: a few lines of progress every 30 s)")
    parser.add_argument("--progress-every", type=float, default=PROGRESS_EVERY_S, metavar="SECONDS",
                        help=f"seconds between progress lines (default {PROGRESS_EVERY_S:.0f})")
    exit_statuses = "; ".join(f"{status}: {meaning}" for status, meaning in EXIT_STATUSES.items())
    parser.epilog = f"exit status: {exit_statuses}"
    return parser.parse_args(argv)


def apply_overrides(space: StudySpace, args: argparse.Namespace) -> StudySpace:
    for name in ("num_samples", "seeds_per_config", "max_concurrent"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if space.confirm is not None and (args.seeds_per_config or 1) != 1:
        raise UsageError("--seeds-per-config does not apply to a search with confirm: (one seed per configuration; "
                         "confirm.seeds sets the confirmation's)")
    if space.confirm is not None and args.num_samples is not None and args.num_samples < space.confirm.top:
        raise UsageError(f"--num-samples {args.num_samples} is below confirm.top {space.confirm.top}: there would not "
                         "be that many configurations to confirm")
    if args.num_samples is not None and space.search == "grid":
        # Tune would repeat the whole grid; with our explicit seeds that reruns identical trials
        raise UsageError("--num-samples does not apply to search: grid (every grid point runs once per seed); "
                         "use --seeds-per-config for repeats")
    try:
        resources = checked_resources(
            cpus_per_trial=args.cpus_per_trial if args.cpus_per_trial is not None else space.resources.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial if args.gpus_per_trial is not None else space.resources.gpus_per_trial,
            max_concurrent=args.max_concurrent if args.max_concurrent is not None else space.resources.max_concurrent,
        )
    except SpaceError as error:
        raise UsageError(str(error)) from None
    return replace(
        space,
        num_samples=args.num_samples or space.num_samples,
        seeds_per_config=args.seeds_per_config or space.seeds_per_config,
        seed=args.seed if args.seed is not None else space.seed,
        resources=resources,
    )


@dataclass(frozen=True)
class StudySettings:
    """A study's settings after every check: what `run_study` needs and nothing it must look up."""

    space: StudySpace  # with the command line's overrides applied
    space_argument: str  # as the user gave it, for the --resume hint
    tracking_uri: str
    experiment: str
    storage: str  # absolute path or URI of Tune's storage
    data_root: str | None  # absolute
    splits: DataSplits
    max_failures: int
    build_report: bool
    resume_parent: Any = None  # the parent run to continue (`--resume`), else None
    waiting_for_resources: str | None = None  # the line to print once when no node can hold a trial yet
    verbose: bool = False  # Ray Tune's trial table besides our progress lines
    progress_every_s: float = PROGRESS_EVERY_S
    # the study's feature extractors (study.extractors), fixed before any trial: the classifier's
    # gan.metrics.ClassifierWeights, handed to every trial, and the fingerprint of the user's Inception weights
    classifier: Any = None
    inception_fingerprint: str | None = None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A dead tracking server must not stall the driver for minutes of HTTP retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    # MLflow draws a progress bar for every artifact it downloads (the report's sample grids): not in our console
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        if args.progress_every <= 0:
            raise UsageError(f"--progress-every must be > 0 seconds, got {args.progress_every:g}")
        space = apply_overrides(load_space(args.space), args)
        check_gpus_per_trial(space.resources.gpus_per_trial)
        tracking_uri = args.tracking_uri or default_tracking_uri()
        check_store(tracking_uri, must_exist=False)
        check_tracking_access(tracking_uri)
        storage = args.storage_path if args.storage_path and "://" in args.storage_path \
            else str(Path(args.storage_path or "ray_results").resolve())
        check_storage(storage)
        data_root = str(Path(space.data_root).resolve()) if space.data_root else None
        splits = load_dataset(space.dataset, data_root, download=True, stacked=space.dataset_options)
        experiment = args.experiment or space.name
        parent = parent_to_resume(tracking_uri, experiment, args.resume) if args.resume else None
        if parent is not None:
            check_resume(parent, space)  # a two-stage study resumes only as one, with the same `confirm:`
        classifier = study_classifier(space.evaluation.metrics, splits, args.classifier, parent, tracking_uri)
        inception = inception_fingerprint(space.evaluation.inception_weights, parent)
        connect_ray(args.address)
    except (SpaceError, ConfigError, DatasetUnavailable, StoreError, UsageError, ClassifierMismatch,
            InceptionWeightsUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:  # Ray is up: can any node hold a trial? (before anything is written)
        resources = TrialResources(space.resources.cpus_per_trial, space.resources.gpus_per_trial)
        waiting = check_trial_fits(resources, args.wait_for_resources)
    except ResourcesUnavailable as error:
        import ray

        ray.shutdown()
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return run_study(StudySettings(space, args.space, tracking_uri, experiment, storage, data_root, splits,
                                   args.max_failures, args.report, parent, waiting, args.verbose,
                                   args.progress_every, classifier, inception))


def _spool_dir(storage: str, run_name: str) -> str:
    """Local folder for MLflow writes that wait for the tracking store: the Tune run directory when local."""
    base = Path(storage) if "://" not in storage else Path.cwd() / ".gan_study_spool"
    return str((base / run_name).resolve())


def run_study(settings: StudySettings) -> int:
    """Run (or resume) the study; returns the exit status (study.outcome.EXIT_STATUSES)."""
    import signal
    import threading

    from mlflow.tracking import MlflowClient

    from study.dataset_input import training_data
    from study.tracking import PENDING_FILE, get_or_create_experiment

    space, parent = settings.space, settings.resume_parent
    client = MlflowClient(settings.tracking_uri)
    experiment_id = get_or_create_experiment(client, settings.experiment, settings.tracking_uri)
    parent_run_id, fitting = None, threading.Event()

    def stop_on_sigterm(*_) -> None:
        """Batch schedulers stop jobs with SIGTERM: Tune treats it like Ctrl-C (stop the trials, save its state).
        The parent is marked interrupted first: a scheduler that signals every process of the job at once
        (`scancel`) takes the Ray nodes down too, and the driver dies with them before Tune returns."""
        def mark() -> None:
            try:
                MlflowClient(settings.tracking_uri).set_tag(parent_run_id, names.STATUS_TAG, names.INTERRUPTED)
            except Exception:  # noqa: BLE001 - the store is away: the normal path below tries again
                pass

        if fitting.is_set():  # not once the study has ended and logged its own status
            # in a thread of its own: the signal may have cut into a write of this thread that holds the store
            marking = threading.Thread(target=mark, daemon=True)
            marking.start()
            marking.join(5)
        os.kill(os.getpid(), signal.SIGINT)

    signal.signal(signal.SIGTERM, stop_on_sigterm)
    if parent is not None:
        parent_run_id = parent.info.run_id
        run_path, spool_dir = parent.data.params["tune_run_path"], parent.data.params["spool_dir"]
        if not all(tag in parent.data.tags for tag in extractor_tags(settings.classifier,
                                                                     settings.inception_fingerprint)):
            # a study from before extractors were recorded: from now on, they are
            log_extractors(client, parent_run_id, settings.classifier, settings.inception_fingerprint)
        client.set_tag(parent_run_id, names.STATUS_TAG, names.RUNNING)
        client.update_run(parent_run_id, status="RUNNING")
        tuner = _restored_tuner(settings, run_path)
    else:
        run_name = f"{settings.experiment}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_path = f"{settings.storage.rstrip('/')}/{run_name}"
        spool_dir = _spool_dir(settings.storage, run_name)
        data = training_data(settings.splits, settings.data_root, space.dataset_options)  # hashes the data: once
        parent_run_id = _start_parent_run(client, experiment_id, run_name, settings, run_path, spool_dir, data)
        tuner = _new_tuner(settings, run_name, experiment_id, parent_run_id, spool_dir, data)
    ui = experiment_ui_url(settings.tracking_uri, experiment_id)
    print(f"study '{space.name}': MLflow experiment '{settings.experiment}', parent run {parent_run_id} "
          f"({settings.tracking_uri}); Tune directory {run_path}\nMLflow UI: {ui}\n"
          f"{space.trial_count()} trials on {space.dataset}, ranked by {names.final(space.metric)} where a trial has "
          f"it, else its last {space.metric}; progress every {settings.progress_every_s:g} s"
          f"{'' if settings.verbose else ' (--verbose adds Ray Tune’s trial table)'}", flush=True)
    if settings.waiting_for_resources:
        print(f"gan-study: {settings.waiting_for_resources}", file=sys.stderr, flush=True)
    if not settings.verbose:
        quiet_tune()
    started = time.time()
    fitting.set()
    # a two-stage study interrupted in its confirmation resumes there: the search's results are only read back
    in_confirmation = parent is not None and space.confirm is not None and _confirmation_started(run_path)
    results = tuner.get_results() if in_confirmation else tuner.fit()
    outcomes = trial_outcomes(results)
    interrupted = finished_count(outcomes) < space.search_trial_count()
    stages = [(list(results), outcomes, _trial_settings(settings))]  # (Tune results, outcomes, trial settings)
    if space.confirm is not None and not interrupted and study_outcome(outcomes, False).status != names.FAILED:
        *confirmation, interrupted = _run_confirmation(settings, experiment_id, parent_run_id, run_path, spool_dir,
                                                       outcomes, in_confirmation, client)
        stages.append(tuple(confirmation))
    fitting.clear()
    elapsed = time.time() - started
    outcomes = [trial for _, stage_outcomes, _ in stages for trial in stage_outcomes]
    outcome = study_outcome(outcomes, interrupted=interrupted)
    counts = Counter(trial.status for trial in outcomes)
    best = _best_trial(client, experiment_id, parent_run_id, settings, stages)
    _log_study_summary(client, parent_run_id, settings, elapsed, outcome, counts, best)
    # trials restarted after a lost worker or node
    log_restarts(client, parent_run_id, [result for results, _, _ in stages for result in results], outcomes)
    if (Path(spool_dir) / PENDING_FILE).exists():
        print(f"gan-study: some MLflow writes are still pending in {Path(spool_dir) / PENDING_FILE}; "
              f"run again with --resume to log them", file=sys.stderr)
    if outcome.errors_line:
        print(f"gan-study: {outcome.errors_line}", file=sys.stderr)
    if outcome.exit_status == EXIT_INTERRUPTED:
        _describe(client, experiment_id, parent_run_id, settings, outcome, counts, best, None)
        print(f"interrupted after {elapsed:.0f} s; continue with: python -m study.run --space "
              f"{settings.space_argument} --experiment {settings.experiment} --resume {run_path}", file=sys.stderr)
        return outcome.exit_status
    best_text = best.headline() if best is not None else f"no trial has a finite {space.metric}"
    print(f"done in {elapsed:.0f} s: {outcome.status}, trials {dict(counts)}; {best_text}")
    report = None
    if settings.build_report and outcome.status != names.FAILED:
        from reports import ReportError, build_report

        try:
            paths = build_report(settings.tracking_uri, settings.experiment, run_id=parent_run_id)
            print(f"report: {paths.html or paths.markdown} (logged to the parent run under {paths.artifact_path}/)")
            shown = paths.html or paths.markdown
            report = ReportLink(f"{paths.artifact_path}/{shown.name}", paths.summary_markdown)
        except ReportError as error:  # the study itself ended; say why there is no report
            print(f"gan-study: no report: {error}", file=sys.stderr)
    _describe(client, experiment_id, parent_run_id, settings, outcome, counts, best, report)
    print(f"MLflow UI: {ui}")
    return outcome.exit_status


def quiet_tune() -> None:
    """Tune prints nothing of its own: its new output engine (Ray 2.x) prints a configuration box and paths at any
    verbosity, the legacy engine nothing at verbosity 0 (RunConfig(verbose=0)); its INFO log lines go too."""
    import logging

    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    # its advice to checkpoint less often: our trials keep every checkpoint on purpose (PBT exploits old ones)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    logging.getLogger("ray.tune").setLevel(logging.WARNING)


def _trial_settings(settings: StudySettings):
    from study.tune_config import TrialSettings

    space = settings.space
    from study.run_names import naming_parameters

    named = naming_parameters(space.grid_variants()) if space.search == "grid" else None
    return TrialSettings(space.dataset, settings.data_root, space.fixed, space.budget, space.evaluation,
                         space.metric, space.mode, space.seed, dataset_options=space.dataset_options,
                         named_parameters=named, arms=arm_overrides(space))


def arm_overrides(space: StudySpace) -> dict[str, dict[str, Any]] | None:
    """An ablation's arms as {name: overrides of `fixed`}, in the space's order; None when it has none."""
    return {arm.name: dict(arm.overrides) for arm in space.arms} or None


def design_tags(space: StudySpace) -> dict[str, str]:
    """The parent run's tags that say how the study is designed: an ablation and its reference arm, a search with a
    confirmation stage, else none."""
    if space.confirm is not None:
        return {names.DESIGN_TAG: names.DESIGN_SEARCH_CONFIRM}
    if not space.arms:
        return {}
    return {names.DESIGN_TAG: names.DESIGN_ABLATION, names.REFERENCE_ARM_TAG: space.reference_arm}


def _trainable(settings: StudySettings, trial_settings=None):
    """The trainable of the search (or of one stage: `trial_settings`, study.tune_config.TrialSettings)."""
    from ray import tune

    from study.trial import train_gan_trial

    resources = {"cpu": settings.space.resources.cpus_per_trial, "gpu": settings.space.resources.gpus_per_trial}
    # the classifier's weights (about 1 MB) go to the trials only, not into the callbacks' pickled state
    trial_settings = replace(trial_settings or _trial_settings(settings), classifier=settings.classifier)
    return tune.with_resources(tune.with_parameters(train_gan_trial, settings=trial_settings), resources)


def _restored_tuner(settings: StudySettings, run_path: str, trial_settings=None):
    from ray import tune

    # The pickled run config brings back the MLflow callback, pointing at the same parent run;
    # its setup() replays the writes the interrupted driver could not make.
    return tune.Tuner.restore(run_path, _trainable(settings, trial_settings), resume_unfinished=True,
                              resume_errored=True)


def _confirmation_started(run_path: str) -> bool:
    """Whether a two-stage study's confirmation (study.confirm) has a Tune run to resume."""
    from ray import tune

    from study.confirm import confirm_run_path

    return tune.Tuner.can_restore(confirm_run_path(run_path))


def _run_confirmation(settings: StudySettings, experiment_id: str, parent_run_id: str, run_path: str,
                      spool_dir: str, search_outcomes: list[TrialOutcome], resume: bool, client):
    """The second stage of a two-stage study (study.confirm), chosen from the search's outcomes: a new Tune run, or
    the interrupted one resumed. Returns (its results, their outcomes, its trial settings, whether it was cut off)."""
    from mlflow.entities import Param

    from study.confirm import (CONFIRM_CONFIGURATIONS_PARAM, CONFIRM_RUN_PATH_PARAM, CONFIRM_SEEDS_PARAM,
                               confirm_run_path, confirm_stage)
    from study.dataset_input import training_data

    stage = confirm_stage(search_outcomes, settings.space, _trial_settings(settings))
    path = confirm_run_path(run_path)
    print(f"search ended; confirming the {stage.chosen} best configuration(s) by search score and the reference on "
          f"fresh seeds {stage.seeds[0]}..{stage.seeds[-1]}, each at the full budget ({stage.trial_count} trials; "
          f"Tune directory {path}):\n" + "\n".join(f"  {c.words()}" for c in stage.configurations), flush=True)
    if resume:
        tuner = _restored_tuner(settings, path, stage.settings)
    else:
        record = {CONFIRM_RUN_PATH_PARAM: path, CONFIRM_SEEDS_PARAM: ",".join(str(seed) for seed in stage.seeds),
                  CONFIRM_CONFIGURATIONS_PARAM: json.dumps({c.rank_tag: c.params for c in stage.configurations})}
        try:  # the same values again after a resumed search: MLflow accepts a parameter logged twice alike
            client.log_batch(parent_run_id, params=[Param(k, v[:6000]) for k, v in record.items()])
        except Exception as error:  # the children's tags hold the same; the study goes on
            print(f"gan-study: could not log the confirmation's settings to MLflow ({str(error).splitlines()[0][:200]})",
                  file=sys.stderr)
        data = training_data(settings.splits, settings.data_root, settings.space.dataset_options)
        tuner = _new_tuner(settings, path.rsplit("/", 1)[1], experiment_id, parent_run_id, spool_dir, data, stage,
                           storage=path.rsplit("/", 1)[0])
    results = tuner.fit()
    outcomes = trial_outcomes(results)
    return list(results), outcomes, stage.settings, finished_count(outcomes) < stage.trial_count


def _new_tuner(settings: StudySettings, run_name: str, experiment_id: str, parent_run_id: str, spool_dir: str,
               data, stage=None, storage: str | None = None):
    """`data`: the trials' study.dataset_input.TrainingData. The search's Tune run, or with `stage` (a
    study.confirm.ConfirmStage) the confirmation's: its grid of configurations x fresh seeds, FIFO, in `storage`."""
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler

    from study.confirm import search_stage_tags
    from study.progress import ProgressLines
    from study.tracking import MlflowStudyCallback
    from study.tuning import TuneSetup, build_tune_setup

    space = settings.space
    if stage is None:
        setup = build_tune_setup(space, space.num_samples, space.seed)
        trial_settings, total, tags, tags_by_config = (_trial_settings(settings), space.search_trial_count(),
                                                       search_stage_tags(space), {})
    else:  # every configuration to the end of its budget: no early stopping
        setup = TuneSetup(stage.param_space(), None, FIFOScheduler(), 1)
        trial_settings, total = stage.settings, stage.trial_count
        tags, tags_by_config = {names.STAGE_TAG: names.STAGE_CONFIRM}, stage.tags_by_config()
    callback = MlflowStudyCallback(settings.tracking_uri, experiment_id, parent_run_id, trial_settings, spool_dir,
                                   data, tags, tags_by_config)
    progress = ProgressLines(trial_settings, total, len(settings.splits.train), settings.progress_every_s)
    return tune.Tuner(
        _trainable(settings, trial_settings),
        param_space=setup.param_space,
        tune_config=tune.TuneConfig(
            metric=space.metric, mode=space.mode, search_alg=setup.search_alg, scheduler=setup.scheduler,
            num_samples=setup.num_samples, max_concurrent_trials=space.resources.max_concurrent,
            # a finished trial's worker process takes the next trial: no new process, imports or data load
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=run_name, storage_path=storage or settings.storage, verbose=1 if settings.verbose else 0,
            callbacks=[callback, progress],
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            # PBT clones other trials' earlier checkpoints: deleting old ones would pull them from under it
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None if space.scheduler == "pbt" else 2),
        ),
    )


def _start_parent_run(client, experiment_id: str, run_name: str, settings: StudySettings, run_path: str,
                      spool_dir: str, data) -> str:
    """The study's parent run with its space file, parameters, training data (`data`, a
    study.dataset_input.TrainingData), reference rows and description; returns its id."""
    from study.dataset_input import log_training_input

    space = settings.space
    parent_run = client.create_run(experiment_id, run_name=run_name, tags={
        names.ROLE_TAG: names.ROLE_STUDY, names.SPACE_TAG: space.path.name, names.DATASET_TAG: space.dataset,
        names.STATUS_TAG: names.RUNNING, **design_tags(space)})
    parent_run_id = parent_run.info.run_id
    client.log_artifact(parent_run_id, str(space.path), artifact_path="space")
    log_extractors(client, parent_run_id, settings.classifier, settings.inception_fingerprint)
    _log_study_params(client, parent_run_id, space, run_path, spool_dir)
    log_training_input(client, parent_run_id, data)  # the runs table shows it on the study's row too
    reference = _log_reference_rows(client, parent_run_id, space, settings.splits, settings.classifier)
    client.set_tag(parent_run_id, names.DESCRIPTION_TAG, study_description(
        space, experiment=settings.experiment, status=names.RUNNING, trial_counts={}, reference=reference, best=None,
        report=None, report_command=_report_command(settings, parent_run_id), experiment_id=experiment_id,
        run_id=parent_run_id))
    return parent_run_id


def _report_command(settings: StudySettings, parent_run_id: str) -> str:
    return (f"python -m reports --experiment {settings.experiment} --run-id {parent_run_id} "
            f"--tracking-uri {settings.tracking_uri}")


def _best_trial(client, experiment_id: str, parent_run_id: str, settings: StudySettings,
                stages: list[tuple]) -> BestTrial | None:
    """The best trial (study.outcome.trial_score: the final protocol where a trial has it), its run and protocol,
    among the trials of every stage: `stages` holds (Tune results, trial outcomes, trial settings) of each."""
    from study.tracking import child_run_identity

    metric, evaluation = settings.space.metric, settings.space.evaluation
    best = best_trial([trial for _, outcomes, _ in stages for trial in outcomes], metric, settings.space.mode)
    if best is None:
        return None
    trial_settings = next(stage_settings for _, outcomes, stage_settings in stages if best in outcomes)
    run_name, _ = child_run_identity(best.config, trial_settings)
    ranked_by, value = trial_score(best.metrics, metric)
    run_id = None
    try:
        runs = client.search_runs([experiment_id], max_results=1, filter_string=(
            f"tags.`{names.PARENT_TAG}` = '{parent_run_id}' and tags.`{names.TRIAL_ID_TAG}` = '{best.trial_id}'"))
        run_id = runs[0].info.run_id if runs else None
    except Exception:  # the store is away: the description names the run without linking it
        pass
    last = best.metrics.get(metric) if ranked_by != metric else None
    return BestTrial(run_name, ranked_by, value,
                     score_protocol(ranked_by, evaluation, final_draws(best.metrics, metric)),
                     float(last) if isinstance(last, (int, float)) else None, run_id)


def _log_study_summary(client, parent_run_id: str, settings: StudySettings, elapsed: float, outcome: StudyOutcome,
                       counts: Counter, best: BestTrial | None) -> None:
    """Trial counts by status, the best score and the wall time on the parent run, and its final status."""
    parent = settings.resume_parent
    try:
        summary = {names.TRIALS_TOTAL: sum(counts.values()),
                   **{f"{names.TRIALS_PREFIX}{k}": v for k, v in counts.items()}}
        if best is not None:
            summary[f"best_trial/{best.ranked_by}"] = best.value
        earlier = float(parent.data.metrics.get(names.STUDY_WALL_TIME_S, 0)) if parent is not None else 0.0
        summary[names.STUDY_WALL_TIME_S] = elapsed + earlier
        for key, value in summary.items():
            client.log_metric(parent_run_id, key, float(value))
        client.set_tag(parent_run_id, names.STATUS_TAG, outcome.status)
        if outcome.errors_line:
            client.set_tag(parent_run_id, names.ERROR_TAG, outcome.errors_line[:500])
        client.set_terminated(parent_run_id, outcome.run_status)
    except Exception as error:  # the tracking store is down at the very end: trials' data is spooled
        print(f"gan-study: could not log the study summary to MLflow ({str(error).splitlines()[0][:200]})",
              file=sys.stderr)


def _describe(client, experiment_id: str, parent_run_id: str, settings: StudySettings, outcome: StudyOutcome,
              counts: Counter, best: BestTrial | None, report: ReportLink | None) -> None:
    """The parent run's description at the end of the study (see study.description)."""
    try:
        metrics = client.get_run(parent_run_id).data.metrics
        reference = {k: v for k, v in metrics.items() if k.startswith(names.REFERENCE_PREFIX)}
        text = study_description(
            settings.space, experiment=settings.experiment, status=outcome.status, trial_counts=counts,
            reference=reference, best=best, report=report, report_command=_report_command(settings, parent_run_id),
            experiment_id=experiment_id, run_id=parent_run_id, errors_line=outcome.errors_line)
        client.set_tag(parent_run_id, names.DESCRIPTION_TAG, text)
    except Exception as error:
        print(f"gan-study: could not update the study's description in MLflow ({str(error).splitlines()[0][:200]})",
              file=sys.stderr)


def _log_reference_rows(client, run_id: str, space: StudySpace, splits, weights) -> dict[str, float]:
    """What real data scores, by the study's classifier (`weights`, None without one): the trials' yardstick."""
    from gan.evaluation import reference_scores

    classifier = weights.build() if weights is not None else None
    logged = {}
    for name, value in reference_scores(splits, classifier, metrics=space.evaluation.metrics).items():
        client.log_metric(run_id, names.reference(name), value)
        logged[names.reference(name)] = float(value)
    return logged


def _log_study_params(client, run_id: str, space: StudySpace, run_path: str, spool_dir: str) -> None:
    from mlflow.entities import Param

    params = {
        "space_file": str(space.path), "dataset": space.dataset, "search": space.search, "scheduler": space.scheduler,
        "metric": space.metric, "mode": space.mode, "num_samples": space.num_samples,
        "seeds_per_config": space.seeds_per_config, "seed": space.seed,
        "budget": json.dumps(budget_param(space.budget)),
        "evaluation_metrics": ",".join(space.evaluation.metrics), "evaluation_samples": space.evaluation.num_samples,
        "cpus_per_trial": space.resources.cpus_per_trial, "gpus_per_trial": space.resources.gpus_per_trial,
        "max_concurrent": space.resources.max_concurrent, "tune_run_path": run_path, "spool_dir": spool_dir,
        "fixed": json.dumps(space.fixed, sort_keys=True),
        "searched": ",".join(space.param_names),
    }
    if space.arms:  # {arm name: overrides of `fixed`}, in the space's order
        params["arms"] = json.dumps(arm_overrides(space))
    if space.confirm is not None:  # {top, seeds, against}: the confirmation stage (study.confirm)
        from study.confirm import CONFIRM_PARAM, confirm_settings_param

        params[CONFIRM_PARAM] = json.dumps(confirm_settings_param(space))
    client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])


if __name__ == "__main__":
    sys.exit(main())

