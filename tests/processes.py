"""Real processes for the cluster and fault-tolerance tests: Ray nodes, an MLflow server, study drivers.

Every process is started in its own session and stopped by its own pid, never with `ray stop`,
which would stop every Ray process of the machine. The Ray nodes keep their session files in a
short folder under /tmp of their own (unix socket paths are limited to 107 characters), so a
plain `ray.init()` elsewhere on the machine never finds and joins them.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition, timeout: float, what: str, interval: float = 0.3):
    """Poll `condition()` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM (a `ray start --block` node then stops its raylet, GCS and workers), SIGKILL its group if stuck."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def process_tree(pid: int) -> list[int]:
    """`pid` and every process below it (from /proc: Ray's workers leave their parent's process group,
    so a group kill would miss them)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):  # gone meanwhile
                continue
            children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo.extend(children.get(tree[-1], []))
    return tree


def processes_naming(text: str) -> list[int]:
    """The processes whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def kill_tree(pids: list[int]) -> None:
    """SIGKILL to each of `pids` that is still a Ray process (a pid freed meanwhile may be someone else's)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            if b"ray" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


@dataclass
class RayNodes:
    """The `ray start --block` processes of a cluster on this machine, by name ("head", "worker0", ...)."""

    address: str
    temp_dir: str
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    node_ids: dict[str, str] = field(default_factory=dict)  # Ray's node id of each

    def kill(self, name: str) -> float:
        """The node dies as a machine would: SIGKILL to its `ray start`, raylet and every worker process at
        once, no goodbye to the head. Returns the time of death (time.time())."""
        tree = process_tree(self.processes[name].pid)
        died = time.time()
        kill_tree(tree)
        self.processes[name].wait()
        return died


@contextlib.contextmanager
def ray_nodes(head: list[str], workers: list[list[str]] = (), env: dict[str, str] | None = None,
              port: int | None = None, worker_envs: list[dict[str, str]] = ()) -> Iterator[RayNodes]:
    """A Ray cluster of `ray start --block` nodes on this machine, the workers joining one at a time;
    `env` is added to the head's environment, `worker_envs[i]` (where given) to worker i's, `port` is the
    head's (default: a free one). Every process a node started is gone afterwards."""
    import ray

    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    port = port or free_port()
    cluster = RayNodes(f"127.0.0.1:{port}", temp_dir)
    trees: list[int] = []

    def start(name: str, args: list[str], node_env: dict[str, str] | None = None) -> None:
        log = open(Path(temp_dir) / f"{name}.log", "w")
        cluster.processes[name] = subprocess.Popen(
            ["ray", "start", "--block", "--disable-usage-stats", *args], stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env={**os.environ, **(node_env or {})})

    def alive() -> set[str]:
        return {node["NodeID"] for node in ray.nodes() if node["Alive"]}

    try:
        start("head", ["--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
                       f"--temp-dir={temp_dir}", *head], env)
        head_process = cluster.processes["head"]
        wait_for(lambda: _port_open(port) or head_process.poll() is not None, 120, "the Ray head")
        assert head_process.poll() is None, (Path(temp_dir) / "head.log").read_text()[-3000:]
        ray.init(address=cluster.address, log_to_driver=False)
        try:
            cluster.node_ids["head"] = wait_for(lambda: next(iter(alive()), None), 60, "the Ray head node")
            # one at a time: two nodes starting together on one machine can race for the same ports
            for index, args in enumerate(workers):
                known = set(cluster.node_ids.values())
                start(f"worker{index}", [f"--address={cluster.address}", *args],
                      worker_envs[index] if index < len(worker_envs) else None)
                cluster.node_ids[f"worker{index}"] = wait_for(lambda: next(iter(alive() - known), None), 120,
                                                              f"Ray worker {index}")
        finally:
            ray.shutdown()
        yield cluster
    finally:
        for process in reversed(cluster.processes.values()):
            if process.poll() is None:
                trees += process_tree(process.pid)
                _stop(process)
        # what a node left behind: an autoscaler's nodes, workers of a stuck raylet, the GCS of a head whose
        # `ray start` failed halfway (its processes name the temp folder on their command lines)
        for pid in processes_naming(temp_dir):
            trees += process_tree(pid)
        kill_tree(trees)
        shutil.rmtree(temp_dir, ignore_errors=True)


@contextlib.contextmanager
def ray_cluster(head: list[str], workers: list[list[str]] = (), env: dict[str, str] | None = None) -> Iterator[str]:
    """A Ray cluster of `ray start --block` nodes on this machine; yields its address host:port."""
    with ray_nodes(head, workers, env=env) as cluster:
        yield cluster.address


class MlflowServer:
    """`mlflow server` on a sqlite database (its own, or `backend_uri`) with proxied artifacts, on loopback;
    can be stopped and restarted on its port."""

    def __init__(self, folder: Path, backend_uri: str | None = None):
        self.folder = folder
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.backend_uri = backend_uri or f"sqlite:///{self.folder / 'server.db'}"
        self.process: subprocess.Popen | None = None

    def command(self) -> tuple[list[str], dict[str, str]]:
        return (["mlflow", "server", "--backend-store-uri", self.backend_uri,
                 "--artifacts-destination", str(self.folder / "server_artifacts"),
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"], dict(os.environ))

    def start(self) -> None:
        log = open(self.folder / "mlflow_server.log", "a")
        command, env = self.command()
        self.process = subprocess.Popen(command, cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        wait_for(self._answers, 180, f"the MLflow server at {self.uri}", interval=0.5)

    def _answers(self) -> bool:
        assert self.process.poll() is None, (self.folder / "mlflow_server.log").read_text()[-3000:]
        try:  # /health answers without credentials, also on a basic-auth server
            with urllib.request.urlopen(f"{self.uri}/health", timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
            # the server's own workers: same session, gone with the group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process = None


class DeployedMlflowServer(MlflowServer):
    """deploy/mlflow_server.sh (MLflow's basic-auth app by default) on loopback, its data in `folder`/data."""

    def __init__(self, folder: Path, **env: str):
        super().__init__(folder)
        self.data_dir = folder / "data"
        self.env = env

    def command(self) -> tuple[list[str], dict[str, str]]:
        env = {**os.environ, "MLFLOW_HOST": "127.0.0.1", "MLFLOW_PORT": str(self.port), **self.env}
        for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            env.pop(name, None)
        return ["bash", str(ROOT / "deploy" / "mlflow_server.sh"), str(self.data_dir)], env


TINY_SPACE = """
name: tiny
dataset: mnist5k
fixed: {{arch: mlp, z_dim: 8, g_width: 8, d_width: 8, g_depth: 1, d_depth: 1, batch_size: 16{fixed}}}
search_space:
  {searched}
search: grid
scheduler: fifo
metric: d_gap
mode: max
seeds_per_config: {seeds}
budget: {{steps: {steps}, eval_every: {eval_every}}}
evaluation: {{num_samples: 100, metrics: [discriminator], final: false}}
resources: {{cpus_per_trial: 1, max_concurrent: 2}}
"""


def tiny_space(tmp_path: Path, steps: int, eval_every: int, seeds: int = 1, searched: str = "k: {grid: [1]}",
               fixed: str = "") -> str:
    """A space of tiny MLP GANs (a few ms per step) evaluated by D's outputs only: `seeds` trials per grid point."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE.format(seeds=seeds, steps=steps, eval_every=eval_every, searched=searched,
                                      fixed=f", {fixed}" if fixed else ""))
    return str(path)


def study_command(tmp_path: Path, space: str, *args: str, tracking_uri: str | None = None) -> list[str]:
    return [sys.executable, "-m", "study.run", "--space", space, "--experiment", "study",
            "--tracking-uri", tracking_uri or f"sqlite:///{tmp_path}/mlflow.db",
            "--storage-path", str(tmp_path / "ray"), *args]


def start_study(tmp_path: Path, space: str, *args: str, tracking_uri: str | None = None,
                env: dict[str, str] | None = None) -> subprocess.Popen:
    """The study driver as a subprocess (RAY_AUTH_MODE comes from conftest through os.environ), its stdout and
    stderr in driver.log, with `env` added to this process's environment."""
    log = open(tmp_path / "driver.log", "a")
    return subprocess.Popen(study_command(tmp_path, space, *args, tracking_uri=tracking_uri), cwd=tmp_path,
                            stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def finish_study(process: subprocess.Popen, tmp_path: Path, expected_status: int = 0, timeout: float = 300) -> None:
    try:
        status = process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert status == expected_status, (tmp_path / "driver.log").read_text()[-4000:]


def run_study(tmp_path: Path, space: str, *args: str, tracking_uri: str | None = None, expected_status: int = 0,
              env: dict[str, str] | None = None, timeout: float = 300) -> None:
    finish_study(start_study(tmp_path, space, *args, tracking_uri=tracking_uri, env=env), tmp_path, expected_status,
                 timeout)


def study_runs(client: MlflowClient, experiment: str = "study"):
    """(parent runs, child runs) of an experiment."""
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=1000)
    return ([r for r in runs if r.data.tags.get("gan_study.role") == "study"],
            [r for r in runs if r.data.tags.get("gan_study.role") == "trial"])


def steps_of(client: MlflowClient, run_id: str, metric: str) -> list[int]:
    """The steps of a metric's history in the order they were logged."""
    history = client.get_metric_history(run_id, metric)
    return [m.step for m in sorted(history, key=lambda m: (m.timestamp, m.step))]


def tune_results(tmp_path: Path, storage: str = "ray") -> dict[str, list[dict]]:
    """Tune's result.json lines of every trial under --storage-path (tmp_path/`storage`), by trial id."""
    results = {}
    for path in (tmp_path / storage).glob("*/*/result.json"):
        lines = []
        for line in path.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:  # a line Tune is still writing
                break
        if lines:
            results[lines[0]["trial_id"]] = lines
    return results


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """deploy/postgres_server.sh on a free port in a folder the user postgres can reach; yields its backend URI.
    Skips the calling test where PostgreSQL's server programs or psycopg2 are not installed (fails it in CI)."""
    from components import missing_component, require_module

    if not (any(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")) or shutil.which("pg_ctl")):
        missing_component("PostgreSQL",
                          "PostgreSQL's server programs are not installed (apt-get install postgresql; .ci/run does)")
    require_module("psycopg2", "psycopg2", "a PostgreSQL backend needs psycopg2-binary (pip install -e '.[dev]')")
    folder = tempfile.mkdtemp(prefix="pg", dir="/tmp")  # not under pytest's tmp: closed to the user postgres
    os.chmod(folder, 0o755)
    script = str(ROOT / "deploy" / "postgres_server.sh")
    started = subprocess.run(["bash", script, "start", folder, str(free_port())], capture_output=True, text=True,
                             timeout=120)
    assert started.returncode == 0, started.stderr[-3000:]
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run(["bash", script, "stop", folder], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
