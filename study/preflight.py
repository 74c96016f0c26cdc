"""Pre-flight checks of a study: what a user can get wrong about Ray, the storage path, the tracking store and
`--resume`, found before Ray starts (connecting to Ray is the last of them) and reported as one line.

Each check raises `UsageError` with the line `python -m study.run` prints on stderr before exiting with status 2.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

from reports.store import SQLITE_PREFIX, StoreError, find_parent_run


class UsageError(Exception):
    """A user-caused problem found before the study starts: one line, exit status 2."""


def check_gpus_per_trial(gpus_per_trial: float) -> None:
    """A trial trains on one device: more than one GPU per trial would hold GPUs it never uses."""
    if gpus_per_trial > 1:
        raise UsageError(f"gpus_per_trial {gpus_per_trial:g}: a trial runs on one GPU (multi-GPU trials do not exist "
                         f"yet); use 1, or a fraction such as 0.25 to pack trials onto a GPU")


def _tcp_reachable(host: str, port: int, timeout: float = 5.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def connect_ray(address: str | None) -> None:
    """Connect to the Ray at `address`, or start a local one; a Ray this process already runs is reused when no
    address is given (a study started from Python code, a notebook or a test)."""
    import ray

    if address is None and ray.is_initialized():
        return
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


def check_storage(storage: str) -> None:
    """A local --storage-path must be creatable and writable, found now and not after Ray has started.
    Probes with a file it removes again, and removes the folders it created (Tune creates them later)."""
    if "://" in storage:  # s3://, gs://: credentials live on the nodes; Tune reports its own errors
        return
    path = Path(storage)
    created: list[Path] = []  # the missing folders, deepest first
    existing = path
    while not existing.exists():
        created.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"--storage-path {storage}: {existing} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".gan_study_write_probe_{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise UsageError(f"--storage-path {storage} cannot be written ({error.strerror}: {error.filename})") from None
    finally:
        for folder in created:
            if folder.is_dir():
                folder.rmdir()


def check_tracking_access(tracking_uri: str) -> None:
    """An MLflow server must let us in: a server started with --app-name basic-auth answers 401/403 without
    the credentials MLflow's client reads from MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD. Reads only."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(tracking_uri).search_experiments(max_results=1)
    except MlflowException as error:
        status = error.get_http_status_code()
        if status in (401, 403):
            given = "the credentials in" if os.environ.get("MLFLOW_TRACKING_USERNAME") else "no credentials: set"
            raise UsageError(f"MLflow tracking server {tracking_uri} refused access (HTTP {status}); {given} "
                             f"MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD") from None
        raise UsageError(f"MLflow tracking server {tracking_uri} answered with an error: "
                         f"{str(error).splitlines()[0][:200]}") from None
    except Exception as error:  # a transport error after the TCP check passed: not an MLflow server, TLS, ...
        raise UsageError(f"MLflow tracking server {tracking_uri} does not answer: "
                         f"{(str(error).splitlines() or [type(error).__name__])[0][:200]}") from None


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
