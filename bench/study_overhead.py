"""`python -m bench.study_overhead`: what Ray Tune + MLflow cost on top of the training itself.

Runs N identical short trials (same configuration, seeds base_seed + i) twice:
- as a study: `python -m study.run --space <generated yaml> --max-concurrent 1` in a subprocess, with
  its own MLflow store (sqlite) and Ray storage in a temporary folder; its wall time counts everything
  a user waits for: interpreter start, Ray start, MLflow logging, checkpoints and sample grids;
- back to back in this process: GanTrainer + gan.evaluation.evaluate at the same evaluation points,
  on the same splits (validation during training, test at the end), with the same thread count.
Overhead per trial = (study wall time − plain wall time) / N. Target: <= 10% of the study's wall time
for ~1 minute trials.

`write_space` and `run_study` are shared with bench.concurrency.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from bench.report import Run, Table
from gan.config import GanConfig
from gan.data import load_dataset
from gan.evaluation import FINAL_PARZEN_SAMPLES
from gan.run import Budget, EvaluationPlan, train_and_evaluate

# One trial: the paper-sized MLP GAN; `steps` sets its length (~0.05-0.1 s per step on one loaded core).
TRIAL_FIXED = {"arch": "mlp", "g_width": 256, "d_width": 256, "batch_size": 64}
EVALUATION = {"num_samples": 1000, "metrics": ["pixel_fd", "discriminator"]}
EVALUATIONS_PER_TRIAL = 2
OVERHEAD_TARGET = 0.10


@dataclass(frozen=True)
class StudyTiming:
    wall_s: float  # the whole subprocess
    fit_s: float | None  # Tune's fit, as the study reports it ("done in N s")
    completed: int


def write_space(folder: Path, trials: int, steps: int, cpus_per_trial: float, gpus_per_trial: float = 0.0) -> Path:
    """A grid 'study' of `trials` seeds of one configuration, no scheduler."""
    space = {
        "name": "bench",
        "description": "benchmark: identical trials",
        "dataset": "mnist5k",
        "fixed": TRIAL_FIXED,
        "search": "grid",
        "scheduler": "fifo",
        "metric": "pixel_fd",
        "mode": "min",
        "seeds_per_config": trials,
        "budget": {"steps": steps, "eval_every": steps // EVALUATIONS_PER_TRIAL},
        "evaluation": EVALUATION,
        "resources": {"cpus_per_trial": cpus_per_trial, "gpus_per_trial": gpus_per_trial},
    }
    path = folder / "bench_space.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def run_study(trials: int, steps: int, max_concurrent: int, cpus_per_trial: float, gpus_per_trial: float = 0.0,
              timeout_s: float = 3600) -> StudyTiming:
    """Run `python -m study.run` on a fresh temporary store and time it."""
    with tempfile.TemporaryDirectory(prefix="bench-study-") as tmp:
        folder = Path(tmp)
        space = write_space(folder, trials, steps, cpus_per_trial, gpus_per_trial)
        command = [sys.executable, "-m", "study.run", "--space", str(space),
                   "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}", "--storage-path", str(folder / "ray"),
                   "--max-concurrent", str(max_concurrent), "--cpus-per-trial", str(cpus_per_trial),
                   "--gpus-per-trial", str(gpus_per_trial), "--max-failures", "0"]
        env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s,
                              cwd=Path(__file__).resolve().parent.parent)
        wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"study.run failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    fit = re.search(r"done in (\d+) s: (.*?);", done.stdout)
    completed = sum(int(n) for n in re.findall(r"'completed': (\d+)", fit.group(2))) if fit else trials
    return StudyTiming(wall, float(fit.group(1)) if fit else None, completed)


def run_plain(trials: int, steps: int, threads: int) -> float:
    """The same trials back to back in this process, through the loop the trainable runs; returns wall seconds."""
    torch.set_num_threads(threads)
    started = time.perf_counter()
    data = load_dataset("mnist5k")
    budget = Budget(steps=steps, epochs=None, eval_every=steps // EVALUATIONS_PER_TRIAL)
    # none of these metrics needs the domain classifier
    plan = EvaluationPlan(num_samples=EVALUATION["num_samples"], metrics=tuple(EVALUATION["metrics"]))
    for seed in range(trials):
        config = GanConfig.from_flat({**TRIAL_FIXED, "seed": seed})
        train_and_evaluate(config, data, budget, plan, on_report=lambda metrics, trainer: None)
    return time.perf_counter() - started


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.study_overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--steps", type=int, default=400, help="G steps per trial (default 400: ~30-60 s on a loaded 2-core machine)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to RESULTS.md")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    run = Run("Study overhead: study.run (Ray Tune + MLflow) vs the same trials in one process", torch.device("cpu"))
    plain_s = run_plain(args.trials, args.steps, threads=1)  # study.trial sets threads = cpus_per_trial = 1
    print(f"plain: {plain_s:.1f} s for {args.trials} trials", flush=True)
    study = run_study(args.trials, args.steps, max_concurrent=1, cpus_per_trial=1)
    print(f"study: {study}", flush=True)
    overhead = (study.wall_s - plain_s) / args.trials
    share = (study.wall_s - plain_s) / study.wall_s
    table = Table(["runner", "trials", "steps/trial", "wall s", "s/trial", "trials/hour", "overhead s/trial",
                   "overhead share", "target", "met"])
    table.add("plain Python (GanTrainer + evaluate)", args.trials, args.steps, plain_s, plain_s / args.trials,
              3600 * args.trials / plain_s, "-", "-", "", "")
    table.add("python -m study.run, max-concurrent 1", study.completed, args.steps, study.wall_s,
              study.wall_s / args.trials, 3600 * args.trials / study.wall_s, overhead, f"{share:.1%}",
              f"<= {OVERHEAD_TARGET:.0%}", "yes" if share <= OVERHEAD_TARGET else "no")
    if study.fit_s is not None:
        fit_share = (study.fit_s - plain_s) / study.fit_s
        table.add("  of which Tune's fit (study's 'done in')", study.completed, args.steps, study.fit_s,
                  study.fit_s / args.trials, 3600 * args.trials / study.fit_s, (study.fit_s - plain_s) / args.trials,
                  f"{fit_share:.1%}", "", "")
    notes = [f"one trial: {TRIAL_FIXED}, {args.steps} G steps, {EVALUATIONS_PER_TRIAL} evaluations "
             f"({EVALUATION['num_samples']} samples, {'+'.join(EVALUATION['metrics'])}) + the final one on the test split "
             f"({FINAL_PARZEN_SAMPLES} samples)",
             "study wall time includes interpreter start, imports, Ray start/shutdown, MLflow runs, checkpoints and "
             "sample grids; the plain run is timed in-process after imports, from loading the data set"]
    run.finish([("", table)], notes, write=not args.no_write)


if __name__ == "__main__":
    main()
