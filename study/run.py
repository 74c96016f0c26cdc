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
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlparse

from gan.config import ConfigError
from gan.data import DatasetUnavailable, load_dataset
from study.space import Resources, SpaceError, StudySpace, load_space

PARENT_RUN_FILE = "mlflow_parent_run.json"
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
    parser.add_argument("--resume", nargs="?", const="latest", metavar="RUN_DIR",
                        help="continue an interrupted study: its Tune directory, or the latest of this experiment")
    return parser.parse_args(argv)


def apply_overrides(space: StudySpace, args: argparse.Namespace) -> StudySpace:
    for name in ("num_samples", "seeds_per_config", "max_concurrent"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    for name in ("cpus_per_trial", "gpus_per_trial"):
        value = getattr(args, name)
        if value is not None and value < 0 or name == "cpus_per_trial" and value is not None and value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be > 0, got {value}")
    resources = Resources(
        cpus_per_trial=args.cpus_per_trial if args.cpus_per_trial is not None else space.resources.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial if args.gpus_per_trial is not None else space.resources.gpus_per_trial,
        max_concurrent=args.max_concurrent if args.max_concurrent is not None else space.resources.max_concurrent,
    )
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


def check_tracking_uri(uri: str) -> None:
    """Fail fast on an http(s) tracking server that does not answer, or a sqlite path in a missing folder."""
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        if not _tcp_reachable(parsed.hostname or "", port):
            raise UsageError(f"MLflow tracking server {uri} is unreachable")
    elif parsed.scheme == "sqlite":
        folder = Path(uri[len("sqlite:///"):]).parent
        if not folder.is_dir():
            raise UsageError(f"MLflow tracking URI {uri}: folder {folder} does not exist")
    elif parsed.scheme in ("", "file"):
        raise UsageError(f"MLflow tracking URI {uri}: plain file stores are refused by MLflow >= 3.13; "
                         "use sqlite:///ABSOLUTE/PATH/mlflow.db or an http:// server")


def connect_ray(address: str | None, space: StudySpace) -> None:
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


def _latest_run_dir(storage_path: Path, experiment: str) -> Path:
    runs = sorted(p for p in storage_path.glob(f"{experiment}-*") if (p / PARENT_RUN_FILE).exists())
    if not runs:
        raise UsageError(f"--resume: no earlier run of experiment '{experiment}' under {storage_path}")
    return runs[-1]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        space = apply_overrides(load_space(args.space), args)
        from study.tracking import default_tracking_uri

        tracking_uri = args.tracking_uri or default_tracking_uri()
        check_tracking_uri(tracking_uri)
        data_root = str(Path(space.data_root).resolve()) if space.data_root else None
        splits = load_dataset(space.dataset, data_root, download=True)
        experiment = args.experiment or space.name
        storage_path = Path(args.storage_path or "ray_results")
        storage = args.storage_path if args.storage_path and "://" in args.storage_path else str(storage_path.resolve())
        resume_dir = None
        if args.resume:
            resume_dir = _latest_run_dir(storage_path.resolve(), experiment) if args.resume == "latest" else Path(args.resume).resolve()
            if not (resume_dir / PARENT_RUN_FILE).exists():
                raise UsageError(f"--resume: {resume_dir} is not a gan-study run directory")
        connect_ray(args.address, space)
    except (SpaceError, ConfigError, DatasetUnavailable, UsageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return run_study(space, args, tracking_uri, experiment, storage, resume_dir, data_root, len(splits.train))


def run_study(space: StudySpace, args, tracking_uri: str, experiment: str, storage: str, resume_dir: Path | None,
              data_root: str | None, train_size: int) -> int:
    from mlflow.tracking import MlflowClient
    from ray import tune

    from study.tracking import (DATASET_TAG, ROLE_TAG, SPACE_TAG, STATUS_TAG, MlflowStudyCallback,
                                get_or_create_experiment)
    from study.trial import TrialSettings, train_gan_trial
    from study.tuning import build_tune_setup

    client = MlflowClient(tracking_uri)
    experiment_id = get_or_create_experiment(client, experiment, tracking_uri)
    settings = TrialSettings(space.dataset, data_root, space.fixed, space.budget, space.evaluation,
                             space.metric, space.mode, space.seed)
    resources = {"cpu": space.resources.cpus_per_trial, "gpu": space.resources.gpus_per_trial}
    trainable = tune.with_resources(tune.with_parameters(train_gan_trial, settings=settings), resources)

    if resume_dir is not None:
        parent_run_id = json.loads((resume_dir / PARENT_RUN_FILE).read_text())["parent_run_id"]
        client.update_run(parent_run_id, status="RUNNING")
        # the pickled run config brings back the MLflow callback, pointing at the same parent run
        tuner = tune.Tuner.restore(str(resume_dir), trainable, resume_unfinished=True, resume_errored=True)
    else:
        run_name = f"{experiment}-{time.strftime('%Y%m%d-%H%M%S')}"
        parent = client.create_run(experiment_id, run_name=run_name, tags={
            ROLE_TAG: "study", SPACE_TAG: space.path.name, DATASET_TAG: space.dataset, STATUS_TAG: "running"})
        parent_run_id = parent.info.run_id
        client.log_artifact(parent_run_id, str(space.path), artifact_path="space")
        _log_study_params(client, parent_run_id, space, storage, run_name)
        setup = build_tune_setup(space, space.num_samples, space.seed)
        callback = MlflowStudyCallback(tracking_uri, experiment_id, parent_run_id, settings)
        tuner = tune.Tuner(
            trainable,
            param_space=setup.param_space,
            tune_config=tune.TuneConfig(
                metric=space.metric, mode=space.mode, search_alg=setup.search_alg, scheduler=setup.scheduler,
                num_samples=setup.num_samples, max_concurrent_trials=space.resources.max_concurrent,
            ),
            run_config=tune.RunConfig(
                name=run_name, storage_path=storage, callbacks=[callback], verbose=1,
                failure_config=tune.FailureConfig(max_failures=args.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            ),
        )
        run_dir = Path(storage) / run_name if "://" not in storage else None
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / PARENT_RUN_FILE).write_text(json.dumps({"parent_run_id": parent_run_id,
                                                               "tracking_uri": tracking_uri}))
    print(f"study '{space.name}': MLflow experiment '{experiment}', parent run {parent_run_id} ({tracking_uri})")
    started = time.time()
    results = tuner.fit()
    elapsed = time.time() - started
    statuses = Counter(_status_of_child(client, experiment_id, parent_run_id))
    summary = {f"trials_{status}": count for status, count in statuses.items()}
    mlflow_metrics = {"study_wall_time_s": elapsed, "trials_total": sum(statuses.values()), **summary}
    best = _best_result(results, space)
    if best is not None:
        mlflow_metrics[f"best_{space.metric}"] = best
    for key, value in mlflow_metrics.items():
        client.log_metric(parent_run_id, key, float(value))
    client.set_tag(parent_run_id, STATUS_TAG, "completed")
    client.set_terminated(parent_run_id, "FINISHED")
    print(f"done in {elapsed:.0f} s: {dict(statuses)}; best {space.metric} = {best}")
    return 0


def _status_of_child(client, experiment_id: str, parent_run_id: str) -> list[str]:
    from study.tracking import PARENT_TAG, STATUS_TAG

    runs = client.search_runs([experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'", max_results=10_000)
    return [run.data.tags.get(STATUS_TAG, "unknown") for run in runs]


def _best_result(results, space: StudySpace) -> float | None:
    import math

    values = [r.metrics.get(space.metric) for r in results if r.metrics]
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not values:
        return None
    return min(values) if space.mode == "min" else max(values)


def _log_study_params(client, run_id: str, space: StudySpace, storage: str, run_name: str) -> None:
    from mlflow.entities import Param

    params = {
        "space_file": str(space.path), "dataset": space.dataset, "search": space.search, "scheduler": space.scheduler,
        "metric": space.metric, "mode": space.mode, "num_samples": space.num_samples,
        "seeds_per_config": space.seeds_per_config, "seed": space.seed,
        "budget": json.dumps({"steps": space.budget.steps, "epochs": space.budget.epochs, "eval_every": space.budget.eval_every}),
        "evaluation_metrics": ",".join(space.evaluation.metrics), "evaluation_samples": space.evaluation.num_samples,
        "cpus_per_trial": space.resources.cpus_per_trial, "gpus_per_trial": space.resources.gpus_per_trial,
        "max_concurrent": space.resources.max_concurrent, "storage_path": storage, "tune_run_name": run_name,
        "fixed": json.dumps(space.fixed, sort_keys=True),
        "searched": ",".join(space.param_names),
    }
    client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])


if __name__ == "__main__":
    sys.exit(main())
