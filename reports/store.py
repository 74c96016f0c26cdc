"""The MLflow tracking store of gan-study: its default location, checks that fail fast, and finding studies.

Used by the report (which only reads) and by the study runner (which writes): both check a store the
same way and find a study's parent run the same way.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from gan import names

SQLITE_PREFIX = "sqlite:///"


class StoreError(Exception):
    """A tracking store or study the user named that is not there: one line for the user."""


def default_tracking_uri(directory: Path | None = None) -> str:
    """An absolute sqlite URI in the working directory: MLflow >= 3.13 refuses plain file stores."""
    return f"{SQLITE_PREFIX}{((directory or Path.cwd()) / 'mlflow.db').resolve()}"


def default_artifact_location(tracking_uri: str) -> str | None:
    """For a sqlite store, artifacts live in `mlartifacts/` beside the database file."""
    if tracking_uri.startswith(SQLITE_PREFIX):
        return (Path(tracking_uri[len(SQLITE_PREFIX):]).parent / "mlartifacts").resolve().as_uri()
    return None


def _reachable(host: str, port: int, timeout: float = 5.0) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def check_store(tracking_uri: str, must_exist: bool) -> None:
    """Fail fast, writing nothing: a silent http(s) server, a sqlite file (or, if it may be created, its
    folder) that is not there, or a plain file store, which MLflow >= 3.13 refuses."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme in ("http", "https"):
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        if not _reachable(parsed.hostname or "", port):
            raise StoreError(f"MLflow tracking server {tracking_uri} is unreachable")
        # a server that answers the socket but not HTTP must not stall us for minutes of retries
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    elif parsed.scheme == "sqlite":
        path = Path(tracking_uri[len(SQLITE_PREFIX):])
        if must_exist and not path.is_file():
            raise StoreError(f"no MLflow store at {tracking_uri} (file {path} does not exist)")
        if not path.parent.is_dir():
            raise StoreError(f"MLflow tracking URI {tracking_uri}: folder {path.parent} does not exist")
    elif parsed.scheme in ("", "file"):
        raise StoreError(f"MLflow tracking URI {tracking_uri}: plain file stores are refused by MLflow >= 3.13; "
                         f"use {SQLITE_PREFIX}ABSOLUTE/PATH/mlflow.db or an http:// server")


def connect(tracking_uri: str, must_exist: bool = True):
    """An MlflowClient for the store, after `check_store`."""
    check_store(tracking_uri, must_exist)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri)


def search_all(client, experiment_id: str, filter_string: str, order_by: list[str] | None = None) -> list:
    """Every run that matches, page by page."""
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string, max_results=1000,
                                  order_by=order_by, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def find_parent_run(client, experiment: str, run_id: str | None = None, tune_run_path: str | None = None):
    """(experiment id, the study's parent run): the one with `run_id`, or with Tune directory `tune_run_path`,
    else the latest study of the experiment."""
    try:
        found = client.get_experiment_by_name(experiment)
    except Exception as error:  # the store answered with an error: report it in one line
        raise StoreError(f"cannot read MLflow experiment '{experiment}': {str(error).splitlines()[0][:200]}") from None
    if found is None:
        raise StoreError(f"no MLflow experiment named '{experiment}'")
    parents = search_all(client, found.experiment_id, f"tags.`{names.ROLE_TAG}` = '{names.ROLE_STUDY}'",
                         order_by=["attributes.start_time DESC"])
    if run_id is not None:
        parents = [run for run in parents if run.info.run_id == run_id]
        if not parents:
            raise StoreError(f"run {run_id} is not a study's parent run in experiment '{experiment}'")
    if tune_run_path is not None:
        parents = [run for run in parents if run.data.params.get("tune_run_path") == tune_run_path]
        if not parents:
            raise StoreError(f"no study with Tune directory {tune_run_path} in MLflow experiment '{experiment}'")
    if not parents:
        raise StoreError(f"experiment '{experiment}' holds no study (no run tagged {names.ROLE_TAG}={names.ROLE_STUDY})")
    return found.experiment_id, parents[0]
