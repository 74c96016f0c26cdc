"""`python -m bench.study_scale`: the study's own cost per trial at 50, 200 and 1,000 trials, on SQLite and on
PostgreSQL behind MLflow's tracking server.

Each run is `python -m study.run` on a generated grid space of N identical tiny trials (an 8-wide MLP GAN, 20
steps, two evaluations of 100 samples, no final evaluation: ~0.1 s of compute), `--max-concurrent` slots.
Overhead per trial = (study wall × slots − Σ trial compute) / N, where the study wall is Tune's fit as the
driver reports it ("done in N s") and a trial's compute is Tune's `time_total_s` of it (its own wall time
inside the trainable, data loading included). What is left is the slot time no trial used: the driver's
callbacks (MLflow writes, progress lines), Tune's scheduling and experiment-state saves, trial start and stop.
Growth faster than linear in N shows as a per-trial overhead that rises with N and as a completion rate that
falls from the first quarter of the trials to the last.

Stores: `sqlite` is the single-machine default (the driver writes a local sqlite:/// file); `postgres` is the
cluster setup of deploy/: deploy/postgres_server.sh + deploy/mlflow_server.sh with basic auth and 4 workers
(credential cache on, as shipped); `postgres-nocache` is the same server with MLflow's credential cache off.
PostgreSQL's server programs and psycopg2 must be installed (apt-get install postgresql; pip install
psycopg2-binary).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from bench.report import Run, Table

ROOT = Path(__file__).resolve().parent.parent
TRIAL_FIXED = {"arch": "mlp", "z_dim": 8, "g_width": 8, "d_width": 8, "g_depth": 1, "d_depth": 1, "batch_size": 16}
STEPS, EVAL_EVERY = 20, 10
EVALUATION = {"num_samples": 100, "metrics": ["pixel_fd", "discriminator"], "final": False}
ADMIN_PASSWORD = "bench-study-scale"


@dataclass(frozen=True)
class Tracking:
    uri: str
    env: dict[str, str]


@dataclass(frozen=True)
class ScaleRun:
    trials: int
    completed: int
    wall_s: float  # the driver process, start to exit
    fit_s: float  # Tune's fit ("done in N s")
    compute_s: float  # Σ time_total_s over the trials
    rate_first: float  # trials/min over the first quarter of completions
    rate_last: float  # ... and over the last quarter

    def overhead_per_trial(self, slots: int) -> float:
        return (self.fit_s * slots - self.compute_s) / self.trials


def write_space(folder: Path, trials: int, slots: int) -> Path:
    space = {
        "name": "scale", "description": "benchmark: identical tiny trials", "dataset": "mnist5k",
        "fixed": TRIAL_FIXED, "search": "grid", "scheduler": "fifo", "metric": "pixel_fd", "mode": "min",
        "seeds_per_config": trials, "budget": {"steps": STEPS, "eval_every": EVAL_EVERY}, "evaluation": EVALUATION,
        "resources": {"cpus_per_trial": round(os.cpu_count() / slots, 3), "max_concurrent": slots},
    }
    path = folder / f"scale_{trials}.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def trial_results(run_dir: Path) -> list[list[dict]]:
    trials = []
    for path in run_dir.glob("*/result.json"):
        trials.append([json.loads(line) for line in path.read_text().splitlines() if line.strip()])
    return trials


def completion_rates(ends: list[float]) -> tuple[float, float]:
    """Trials per minute over the first and the last quarter of the completions."""
    ends = sorted(ends)
    quarter = max(len(ends) // 4, 2)
    first, last = ends[:quarter], ends[-quarter:]
    per_min = lambda span: 60 * (len(span) - 1) / max(span[-1] - span[0], 1e-9)  # noqa: E731
    return per_min(first), per_min(last)


def run_study(folder: Path, tracking: Tracking, trials: int, slots: int, timeout_s: float) -> ScaleRun:
    space = write_space(folder, trials, slots)
    storage = folder / "ray"
    experiment = f"scale-{trials}"
    command = [sys.executable, "-m", "study.run", "--space", str(space), "--experiment", experiment,
               "--tracking-uri", tracking.uri, "--storage-path", str(storage), "--max-failures", "0"]
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled"), **tracking.env}
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s, cwd=folder)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"study.run failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    fit = re.search(r"done in (\d+) s: .*?trials \{'completed': (\d+)\}", done.stdout)
    run_dir = next(storage.glob(f"{experiment}-*"))
    results = trial_results(run_dir)
    compute = sum(lines[-1]["time_total_s"] for lines in results if lines)
    first, last = completion_rates([lines[-1]["timestamp"] for lines in results if lines])
    return ScaleRun(trials, int(fit.group(2)), wall, float(fit.group(1)), compute, first, last)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def postgres_tracking(folder: Path, credential_cache: bool) -> Iterator[Tracking]:
    """deploy/postgres_server.sh and deploy/mlflow_server.sh (basic auth, 4 workers) on loopback."""
    pg_dir = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))  # the user postgres must reach it
    pg_dir.chmod(0o755)
    started = subprocess.run(["bash", str(ROOT / "deploy" / "postgres_server.sh"), "start", str(pg_dir),
                              str(_free_port())], capture_output=True, text=True, check=True)
    port = _free_port()
    env = {**os.environ, "MLFLOW_BACKEND": started.stdout.strip(), "MLFLOW_HOST": "127.0.0.1",
           "MLFLOW_PORT": str(port), "MLFLOW_WORKERS": "4", "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "MLFLOW_AUTH_CACHE_TTL_S": "60" if credential_cache else "0"}
    log = open(folder / "mlflow_server.log", "w")
    server = subprocess.Popen(["bash", str(ROOT / "deploy" / "mlflow_server.sh"), str(folder / "mlflow")], env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                    break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError((folder / "mlflow_server.log").read_text()[-3000:])
                time.sleep(1)
        yield Tracking(f"http://127.0.0.1:{port}",
                       {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD})
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, 15)
        server.wait(30)
        subprocess.run(["bash", str(ROOT / "deploy" / "postgres_server.sh"), "stop", str(pg_dir)],
                       capture_output=True)
        shutil.rmtree(pg_dir, ignore_errors=True)


@contextlib.contextmanager
def tracking_store(store: str, folder: Path) -> Iterator[Tracking]:
    if store == "sqlite":
        yield Tracking(f"sqlite:///{folder / 'mlflow.db'}", {})
    elif store in ("postgres", "postgres-nocache"):
        with postgres_tracking(folder, credential_cache=store == "postgres") as tracking:
            yield tracking
    else:
        raise SystemExit(f"unknown store '{store}' (sqlite, postgres, postgres-nocache)")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.study_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--stores", nargs="+", default=["sqlite", "postgres"],
                        help="sqlite, postgres (deploy/ as shipped), postgres-nocache")
    parser.add_argument("--slots", type=int, default=2, help="trials at once (CPUs are split evenly among them)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per study")
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to RESULTS.md")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    run = Run("Study overhead at scale: per-trial cost of the driver, Tune and MLflow, by store and trial count",
              torch.device("cpu"))
    table = Table(["store", "trials", "completed", "driver wall s", "Tune fit s", "Σ trial compute s",
                   "overhead s/trial", "trials/min first ¼", "trials/min last ¼"])
    for store in args.stores:
        with tempfile.TemporaryDirectory(prefix=f"bench-scale-{store}-") as tmp, \
                tracking_store(store, Path(tmp)) as tracking:
            for trials in args.trials:
                folder = Path(tmp) / f"n{trials}"
                folder.mkdir()
                result = run_study(folder, tracking, trials, args.slots, args.timeout)
                print(f"{store} {trials}: {result}, overhead {result.overhead_per_trial(args.slots):.3f} s/trial",
                      flush=True)
                table.add(store, trials, result.completed, result.wall_s, result.fit_s, result.compute_s,
                          result.overhead_per_trial(args.slots), result.rate_first, result.rate_last)
    notes = [f"one trial: {TRIAL_FIXED}, {STEPS} G steps, evaluated every {EVAL_EVERY} "
             f"({EVALUATION['num_samples']} samples, {'+'.join(EVALUATION['metrics'])}), no final evaluation",
             f"{args.slots} trials at once, {round(os.cpu_count() / args.slots, 3)} CPUs each; "
             "overhead = (Tune fit × slots − Σ trial time_total_s) / trials",
             "postgres: deploy/postgres_server.sh + deploy/mlflow_server.sh, basic auth, 4 workers, credential "
             "cache 60 s; postgres-nocache: the same with auth_cache_ttl_seconds = 0"]
    run.finish([("", table)], notes, write=not args.no_write)


if __name__ == "__main__":
    main()
