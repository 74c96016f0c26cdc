"""`python -m bench.concurrency`: trials/hour of one study at 1, 2 and 4 concurrent trials.

CPU: the same N short trials (bench.study_overhead's trial) through `python -m study.run` with
--max-concurrent 1 / 2 / 4 and --cpus-per-trial 1 / 1 / 0.5. GPU (only when CUDA is available,
else 'skipped: no GPU'): --gpus-per-trial 1 / 0.5 / 0.25 / 0.125 with 1 / 2 / 4 / 8 concurrent trials.
Trials/hour counts the study's whole wall time (Ray start included), so a study of a few trials
understates the steady-state rate; Tune's fit time is shown beside it.
"""
from __future__ import annotations

import argparse
import time

import torch

from bench.report import Run, Table
from bench.study_overhead import run_study

CPU_LEVELS = ((1, 1.0), (2, 1.0), (4, 0.5))  # (concurrent trials, cpus_per_trial)
GPU_LEVELS = ((1, 1.0), (2, 0.5), (4, 0.25), (8, 0.125))  # (concurrent trials, gpus_per_trial)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.concurrency", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4, help="trials per study (default 4)")
    parser.add_argument("--steps", type=int, default=100, help="G steps per trial (default 100)")
    parser.add_argument("--gpu-trials", type=int, default=8, help="trials per study on the GPU path")
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to RESULTS.md")
    return parser.parse_args(argv)


def _add(table: Table, label: str, concurrent: int, trials: int, steps: int, timing, base: float | None) -> float:
    rate = 3600 * trials / timing.wall_s
    fit_rate = 3600 * trials / timing.fit_s if timing.fit_s else float("nan")
    table.add(label, concurrent, f"{timing.completed}/{trials}", steps, timing.wall_s, rate,
              timing.fit_s if timing.fit_s is not None else "-", fit_rate,
              f"{rate / base:.2f}x" if base else "1x")
    return rate


def main(argv=None) -> None:
    args = parse_args(argv)
    has_gpu = torch.cuda.is_available()
    run = Run("Concurrency scaling: trials/hour of study.run", torch.device("cuda" if has_gpu else "cpu"))
    columns = ["resources per trial", "concurrent", "completed", "steps/trial", "wall s", "trials/hour",
               "fit s", "trials/hour (fit)", "vs 1 concurrent"]
    started = time.time()
    cpu_table, base = Table(columns), None
    for concurrent, cpus in CPU_LEVELS:
        timing = run_study(args.trials, args.steps, max_concurrent=concurrent, cpus_per_trial=cpus)
        rate = _add(cpu_table, f"{cpus:g} CPU", concurrent, args.trials, args.steps, timing, base)
        base = base or rate
        print(f"cpu, {concurrent} concurrent: {timing}", flush=True)
    tables = [("CPU", cpu_table)]
    notes = [f"{args.trials} trials per study, {args.steps} G steps each (bench.study_overhead's trial); "
             f"total {time.time() - started:.0f} s"]
    if has_gpu:
        gpu_table, base = Table(columns), None
        for concurrent, gpus in GPU_LEVELS:
            timing = run_study(args.gpu_trials, args.steps, max_concurrent=concurrent, cpus_per_trial=1,
                               gpus_per_trial=gpus)
            rate = _add(gpu_table, f"{gpus:g} GPU, 1 CPU", concurrent, args.gpu_trials, args.steps, timing, base)
            base = base or rate
        tables.append(("GPU", gpu_table))
    else:
        print("GPU path: skipped: no GPU")
        notes.append("GPU path (gpus_per_trial 1 / 0.5 / 0.25 / 0.125): skipped: no GPU")
    run.finish(tables, notes, write=not args.no_write)


if __name__ == "__main__":
    main()
