"""`python -m study.run --space balance.yaml`: a GAN hyperparameter study on Ray Tune, logged to MLflow.

Every problem a user can cause (the space file, the data set, the Ray address, the tracking
store) is checked before Ray starts and reported as one line on stderr with exit status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gan import names
from gan.config import ConfigError
from gan.data import DataSplits, DatasetUnavailable, load_dataset
from reports.store import SQLITE_PREFIX, StoreError, check_store, default_tracking_uri, find_parent_run
from study.space import SpaceError, StudySpace, checked_resources, load_space

EXIT_USAGE = 2


class UsageError(Exception):
    """A user-caused problem found before the study starts: one line, exit status 2."""


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
    parser.add_argument("--report", action="store_true",
                        help="build the MLflow report (python -m reports) at the end and log it to the study's run")
    parser.add_argument("--resume", nargs="?", const="latest", metavar="RUN_DIR",
                        help="continue an interrupted study: its Tune directory, or the latest of this experiment")
    return parser.parse_args(argv)


def apply_overrides(space: StudySpace, args: argparse.Namespace) -> StudySpace:
    for name in ("num_samples", "seeds_per_config", "max_concurrent"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
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


def _tcp_reachable(host: str, port: int, timeout: float = 5.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def connect_ray(address: str | None) -> None:
    import ray

    if address and address not in ("auto", "local"):
        target = address.split("://", 1)[-1]
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"Ray address {address!r} is not host:port")
        if not _tcp_reachable(host, int(port)):
            raise UsageError(f"Ray cluster at {address} is unreachable")
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, log_to_driver=False)
    except ConnectionError as error:
        raise UsageError(f"cannot connect to Ray at {address}: {str(error).splitlines()[0]}") from None


def parent_to_resume(tracking_uri: str, experiment: str, resume: str):
    """The study to resume: the parent run whose Tune directory is `resume`, or the latest one."""
    from mlflow.tracking import MlflowClient

    if tracking_uri.startswith(SQLITE_PREFIX) and not Path(tracking_uri[len(SQLITE_PREFIX):]).exists():
        raise UsageError(f"--resume: no MLflow store at {tracking_uri}")
    target = None if resume == "latest" else resume if "://" in resume else str(Path(resume).resolve())
    try:
        return find_parent_run(MlflowClient(tracking_uri), experiment, tune_run_path=target)[1]
    except StoreError:
        where = f" with Tune directory {resume}" if target else ""
        raise UsageError(f"--resume: no earlier study{where} in MLflow experiment '{experiment}'") from None


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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A dead tracking server must not stall the driver for minutes of HTTP retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    try:
        space = apply_overrides(load_space(args.space), args)
        tracking_uri = args.tracking_uri or default_tracking_uri()
        check_store(tracking_uri, must_exist=False)
        data_root = str(Path(space.data_root).resolve()) if space.data_root else None
        splits = load_dataset(space.dataset, data_root, download=True)
        experiment = args.experiment or space.name
        storage = args.storage_path if args.storage_path and "://" in args.storage_path \
            else str(Path(args.storage_path or "ray_results").resolve())
        parent = parent_to_resume(tracking_uri, experiment, args.resume) if args.resume else None
        connect_ray(args.address)
    except (SpaceError, ConfigError, DatasetUnavailable, StoreError, UsageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return run_study(StudySettings(space, args.space, tracking_uri, experiment, storage, data_root, splits,
                                   args.max_failures, args.report, parent))


def _spool_dir(storage: str, run_name: str) -> str:
    """Local folder for MLflow writes that wait for the tracking store: the Tune run directory when local."""
    base = Path(storage) if "://" not in storage else Path.cwd() / ".gan_study_spool"
    return str((base / run_name).resolve())


def run_study(settings: StudySettings) -> int:
    """Run (or resume) the study; returns the exit status: 0 done, 130 interrupted."""
    import signal

    from mlflow.tracking import MlflowClient

    from study.tracking import PENDING_FILE, get_or_create_experiment

    # Batch schedulers stop jobs with SIGTERM: let Tune treat it like Ctrl-C (save state, stop trials).
    signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    space, parent = settings.space, settings.resume_parent
    client = MlflowClient(settings.tracking_uri)
    experiment_id = get_or_create_experiment(client, settings.experiment, settings.tracking_uri)
    if parent is not None:
        parent_run_id = parent.info.run_id
        run_path, spool_dir = parent.data.params["tune_run_path"], parent.data.params["spool_dir"]
        client.set_tag(parent_run_id, names.STATUS_TAG, names.RUNNING)
        client.update_run(parent_run_id, status="RUNNING")
        tuner = _restored_tuner(settings, run_path)
    else:
        run_name = f"{settings.experiment}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_path = f"{settings.storage.rstrip('/')}/{run_name}"
        spool_dir = _spool_dir(settings.storage, run_name)
        parent_run_id = _start_parent_run(client, experiment_id, run_name, settings, run_path, spool_dir)
        tuner = _new_tuner(settings, run_name, experiment_id, parent_run_id, spool_dir)
    print(f"study '{space.name}': MLflow experiment '{settings.experiment}', parent run {parent_run_id} "
          f"({settings.tracking_uri}); Tune directory {run_path}", flush=True)
    started = time.time()
    results = tuner.fit()
    elapsed = time.time() - started
    interrupted = _finished_trials(results) < space.trial_count()
    best = _best_result(results, space)
    statuses = _log_study_summary(client, experiment_id, parent_run_id, settings, elapsed, interrupted, best)
    if (Path(spool_dir) / PENDING_FILE).exists():
        print(f"gan-study: some MLflow writes are still pending in {Path(spool_dir) / PENDING_FILE}; "
              f"run again with --resume to log them", file=sys.stderr)
    if interrupted:
        print(f"interrupted after {elapsed:.0f} s; continue with: python -m study.run --space "
              f"{settings.space_argument} --experiment {settings.experiment} --resume {run_path}", file=sys.stderr)
        return 130
    print(f"done in {elapsed:.0f} s: {dict(statuses)}; best {space.metric} = {best}")
    if settings.build_report:
        from reports import ReportError, build_report

        try:
            paths = build_report(settings.tracking_uri, settings.experiment, run_id=parent_run_id)
            print(f"report: {paths}")
        except ReportError as error:  # the study itself succeeded; say why there is no report
            print(f"gan-study: no report: {error}", file=sys.stderr)
    return 0


def _trial_settings(settings: StudySettings):
    from study.tune_config import TrialSettings

    space = settings.space
    return TrialSettings(space.dataset, settings.data_root, space.fixed, space.budget, space.evaluation,
                         space.metric, space.mode, space.seed)


def _trainable(settings: StudySettings):
    from ray import tune

    from study.trial import train_gan_trial

    resources = {"cpu": settings.space.resources.cpus_per_trial, "gpu": settings.space.resources.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(train_gan_trial, settings=_trial_settings(settings)), resources)


def _restored_tuner(settings: StudySettings, run_path: str):
    from ray import tune

    # The pickled run config brings back the MLflow callback, pointing at the same parent run;
    # its setup() replays the writes the interrupted driver could not make.
    return tune.Tuner.restore(run_path, _trainable(settings), resume_unfinished=True, resume_errored=True)


def _new_tuner(settings: StudySettings, run_name: str, experiment_id: str, parent_run_id: str, spool_dir: str):
    from ray import tune

    from study.tracking import MlflowStudyCallback
    from study.tuning import build_tune_setup

    space = settings.space
    setup = build_tune_setup(space, space.num_samples, space.seed)
    callback = MlflowStudyCallback(settings.tracking_uri, experiment_id, parent_run_id, _trial_settings(settings),
                                   spool_dir)
    return tune.Tuner(
        _trainable(settings),
        param_space=setup.param_space,
        tune_config=tune.TuneConfig(
            metric=space.metric, mode=space.mode, search_alg=setup.search_alg, scheduler=setup.scheduler,
            num_samples=setup.num_samples, max_concurrent_trials=space.resources.max_concurrent,
            # a finished trial's worker process takes the next trial: no new process, imports or data load
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=run_name, storage_path=settings.storage, verbose=1, callbacks=[callback],
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            # PBT clones other trials' earlier checkpoints: deleting old ones would pull them from under it
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None if space.scheduler == "pbt" else 2),
        ),
    )


def _start_parent_run(client, experiment_id: str, run_name: str, settings: StudySettings, run_path: str,
                      spool_dir: str) -> str:
    """The study's parent run with its space file, parameters and reference rows; returns its id."""
    space = settings.space
    parent_run = client.create_run(experiment_id, run_name=run_name, tags={
        names.ROLE_TAG: names.ROLE_STUDY, names.SPACE_TAG: space.path.name, names.DATASET_TAG: space.dataset,
        names.STATUS_TAG: names.RUNNING})
    parent_run_id = parent_run.info.run_id
    client.log_artifact(parent_run_id, str(space.path), artifact_path="space")
    _log_study_params(client, parent_run_id, space, run_path, spool_dir)
    _log_reference_rows(client, parent_run_id, space, settings.splits)
    return parent_run_id


def _log_study_summary(client, experiment_id: str, parent_run_id: str, settings: StudySettings, elapsed: float,
                       interrupted: bool, best: float | None) -> Counter:
    """Trial counts by status, the best score and the wall time on the parent run, and its final status."""
    parent = settings.resume_parent
    try:
        statuses = Counter(_status_of_child(client, experiment_id, parent_run_id))
        summary = {names.TRIALS_TOTAL: sum(statuses.values()),
                   **{f"{names.TRIALS_PREFIX}{k}": v for k, v in statuses.items()}}
        if best is not None:
            summary[f"best_{settings.space.metric}"] = best
        earlier = float(parent.data.metrics.get(names.STUDY_WALL_TIME_S, 0)) if parent is not None else 0.0
        summary[names.STUDY_WALL_TIME_S] = elapsed + earlier
        for key, value in summary.items():
            client.log_metric(parent_run_id, key, float(value))
        client.set_tag(parent_run_id, names.STATUS_TAG, names.INTERRUPTED if interrupted else names.COMPLETED)
        client.set_terminated(parent_run_id, "KILLED" if interrupted else "FINISHED")
        return statuses
    except Exception as error:  # the tracking store is down at the very end: trials' data is spooled
        print(f"gan-study: could not log the study summary to MLflow ({str(error).splitlines()[0][:200]})",
              file=sys.stderr)
        return Counter()


def _status_of_child(client, experiment_id: str, parent_run_id: str) -> list[str]:
    from reports.store import search_all

    runs = search_all(client, experiment_id, f"tags.`{names.PARENT_TAG}` = '{parent_run_id}'")
    return [run.data.tags.get(names.STATUS_TAG, "unknown") for run in runs]


def _finished_trials(results) -> int:
    """Trials that errored or ended with Tune's `done` (trained to the end, or stopped by the scheduler).

    An interrupted Tune run marks its running trials TERMINATED without `done`, and has not created
    the trials it had not started yet: neither status counts nor `len(results)` can tell.
    """
    return sum(1 for result in results if result.error is not None or result.metrics.get("done"))


def _best_result(results, space: StudySpace) -> float | None:
    import math

    values = [r.metrics.get(space.metric) for r in results if r.metrics]
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not values:
        return None
    return min(values) if space.mode == "min" else max(values)


def _log_reference_rows(client, run_id: str, space: StudySpace, splits) -> None:
    """Train (or load) the domain classifier once on the driver, and log what real data scores."""
    from gan.evaluation import needs_classifier, reference_scores
    from gan.metrics import load_or_train_classifier

    classifier = load_or_train_classifier(splits) if needs_classifier(space.evaluation.metrics) else None
    for name, value in reference_scores(splits, classifier).items():
        client.log_metric(run_id, names.reference(name), value)


def _log_study_params(client, run_id: str, space: StudySpace, run_path: str, spool_dir: str) -> None:
    from mlflow.entities import Param

    params = {
        "space_file": str(space.path), "dataset": space.dataset, "search": space.search, "scheduler": space.scheduler,
        "metric": space.metric, "mode": space.mode, "num_samples": space.num_samples,
        "seeds_per_config": space.seeds_per_config, "seed": space.seed,
        "budget": json.dumps({"steps": space.budget.steps, "epochs": space.budget.epochs, "eval_every": space.budget.eval_every}),
        "evaluation_metrics": ",".join(space.evaluation.metrics), "evaluation_samples": space.evaluation.num_samples,
        "cpus_per_trial": space.resources.cpus_per_trial, "gpus_per_trial": space.resources.gpus_per_trial,
        "max_concurrent": space.resources.max_concurrent, "tune_run_path": run_path, "spool_dir": spool_dir,
        "fixed": json.dumps(space.fixed, sort_keys=True),
        "searched": ",".join(space.param_names),
    }
    client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])


if __name__ == "__main__":
    sys.exit(main())
