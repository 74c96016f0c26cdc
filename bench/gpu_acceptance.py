"""`python -m bench.gpu_acceptance`: the one-shot acceptance run for the first GPU lent to the project.

Written before any GPU was available; it prints one table, and (unless --no-write) appends it to
bench/RESULTS.md. Five checks, each a row or two, in under 8 minutes on one GPU:

1. throughput: GanTrainer steps/s on the GPU against the same loop on the CPU, for the balance DCGAN
   (balance.yaml's recipe, G 16 / D 16) and the MLP GAN (128/128); the ratio is GPU / CPU.
2. packing: 4 and 8 trials at once on one GPU (Ray tasks with num_gpus 0.25 / 0.125), each capped to its share
   by gan.memory.enforce_gpu_share (set_per_process_memory_fraction), training the balance DCGAN and evaluating
   once; each task's torch.cuda.max_memory_allocated against the estimate's peak_allocated and its
   max_memory_reserved against the estimate's total (neither may be above its estimate).
3. restore: a training process killed with SIGKILL after its first checkpoint; the checkpoint is restored on
   the device (study.checkpoints.read_trainer_state + GanTrainer.load_state_dict, the path every Tune retry,
   --resume and PBT exploit takes) and trained to the end; the result is compared with an uninterrupted run
   (bitwise on the CPU; on CUDA, non-deterministic kernels may make it differ slightly: the difference is shown).
4. pbt: a short PBT study through `python -m study.run` (4 trials at 0.25 GPU each) that must exploit at least
   once (Tune's "[Exploit]" lines counted) and complete.
5. fid: one trained generator's samples scored on the CPU and on the GPU with the same feature network
   (relative difference; must be below 1e-4).

--dry-run runs every part on the CPU at toy sizes, through the same code paths (the test suite runs it):
rows that need a GPU say "skipped: no GPU" and are never filled with CPU numbers. Exit status 1 when a check
that ran failed.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.report import Run, Table, synchronize
from gan.config import GanConfig
from gan.data import load_dataset
from gan.memory import enforce_gpu_share, estimate_training_memory, human_bytes

# balance.yaml's recipe (the balanced cell) and the MLP GAN of the first learning-rate spaces
BALANCE_DCGAN = GanConfig(arch="dcgan", g_width=16, d_width=16, z_dim=32, k=1, loss="nonsaturating",
                          optimizer="adam", beta1=0.5, lr_g=1e-3, lr_d=1e-3, batch_size=32)
MLP = GanConfig(arch="mlp", g_width=128, d_width=128, g_depth=1, d_depth=1, maxout_pieces=2, z_dim=32,
                optimizer="adam", beta1=0.5, lr_g=2e-4, lr_d=2e-4, batch_size=64)
SKIPPED = "skipped: no GPU"
FID_AGREEMENT = 1e-4  # relative


@dataclass(frozen=True)
class Sizes:
    """How much work each part does: the full run for a GPU, toy sizes for the CPU dry run."""

    throughput_steps: int
    cpu_throughput_steps: int
    packing_steps: int
    packing_counts: tuple[int, ...]
    restore_steps: int  # total; the child checkpoints every restore_steps // 2
    fid_samples: int
    pbt_steps: int


GPU_SIZES = Sizes(throughput_steps=300, cpu_throughput_steps=60, packing_steps=200, packing_counts=(4, 8),
                  restore_steps=400, fid_samples=5000, pbt_steps=400)
DRY_SIZES = Sizes(throughput_steps=10, cpu_throughput_steps=10, packing_steps=10, packing_counts=(2,),
                  restore_steps=20, fid_samples=500, pbt_steps=40)


def steps_per_second(config: GanConfig, images: torch.Tensor, device: torch.device, steps: int) -> float:
    from gan.trainer import GanTrainer

    trainer = GanTrainer(config, images, device)
    trainer.train(max(2, steps // 10))  # warm-up: cuDNN autotuning, allocator, lazy initialisation
    synchronize(device)
    started = time.perf_counter()
    trainer.train(steps)
    synchronize(device)
    return steps / (time.perf_counter() - started)


def check_throughput(table: Table, data, device: torch.device, sizes: Sizes) -> bool:
    for name, config in (("balance DCGAN 16/16", BALANCE_DCGAN), ("MLP 128/128", MLP)):
        cpu = steps_per_second(config, data.train.images, torch.device("cpu"), sizes.cpu_throughput_steps)
        if device.type != "cuda":
            table.add("throughput", name, f"cpu {cpu:.1f} steps/s", SKIPPED, "-")
            continue
        gpu = steps_per_second(config, data.train.images, device, sizes.throughput_steps)
        table.add("throughput", name, f"cpu {cpu:.1f} steps/s, gpu {gpu:.1f} steps/s", f"ratio {gpu / cpu:.1f}x",
                  "ok")
    return True


def _packed_trial(config: GanConfig, share: float, steps: int, fid_samples: int) -> dict:
    """One trial's work on its share of the GPU: train, evaluate once; its peak memory and the estimate."""
    from gan.evaluation import evaluate
    from gan.metrics import load_or_train_classifier
    from gan.trainer import GanTrainer

    device = torch.device("cuda" if torch.cuda.is_available() and share > 0 else "cpu")
    data = load_dataset("mnist5k")
    estimate = estimate_training_memory(config, data.image_shape, len(data.train), evaluation_samples=fid_samples)
    cap = None
    classifier = load_or_train_classifier(data, device=str(device))
    if device.type == "cuda":
        cap = enforce_gpu_share(device, share)  # the cap study/trial.py sets for a trial with this share
        torch.cuda.reset_peak_memory_stats(device)
        held_by_classifier = torch.cuda.memory_allocated(device)
    trainer = GanTrainer(config, data.train.images, device)
    trainer.train(steps)
    scores = evaluate(trainer, data.validation, data.validation, ("fid",), fid_samples, 0, classifier,
                      data.num_classes)
    peak = reserved = None
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - held_by_classifier
        reserved = torch.cuda.max_memory_reserved(device)
    return {"estimate": estimate.peak_allocated, "estimate_total": estimate.total, "peak": peak,
            "reserved": reserved, "cap": cap, "fid": scores["fid"], "device": str(device)}


def check_packing(table: Table, device: torch.device, sizes: Sizes) -> bool:
    import ray

    passed = True
    gpus = 1 if device.type == "cuda" else 0
    ray.init(num_cpus=max(2, max(sizes.packing_counts)), num_gpus=gpus, include_dashboard=False,
             log_to_driver=False)
    try:
        for count in sizes.packing_counts:
            share = 1 / count if gpus else 0
            task = ray.remote(num_gpus=share, num_cpus=1)(_packed_trial)
            results = ray.get([task.remote(BALANCE_DCGAN, share, sizes.packing_steps, sizes.fid_samples)
                               for _ in range(count)])
            if not gpus:
                ran = all(r["device"] == "cpu" and r["fid"] == r["fid"] for r in results)
                table.add("packing", f"{count} trials on the CPU (dry run)", "trained and evaluated" if ran
                          else "failed", SKIPPED, "ok" if ran else "FAILED")
                passed &= ran
                continue
            # the estimate's peak_allocated against max_memory_allocated, its total against max_memory_reserved
            peaks, reserved = [r["peak"] for r in results], [r["reserved"] for r in results]
            estimate, estimate_total = results[0]["estimate"], results[0]["estimate_total"]
            fits = max(peaks) <= estimate and max(reserved) <= estimate_total
            table.add("packing", f"{count} trials at {share:g} GPU each (cap {human_bytes(results[0]['cap'])})",
                      f"peak allocated {human_bytes(min(peaks))}..{human_bytes(max(peaks))}, "
                      f"reserved up to {human_bytes(max(reserved))}",
                      f"estimate {human_bytes(estimate)} allocated ({max(peaks) / estimate:.2f} of it), "
                      f"{human_bytes(estimate_total)} reserved ({max(reserved) / estimate_total:.2f})",
                      "ok" if fits else "ESTIMATE TOO LOW")
            passed &= fits
    finally:
        ray.shutdown()
    return passed


def _train_with_checkpoints(directory: str, device: str, steps: int, every: int) -> None:
    """The child process of the restore check: trains and checkpoints every `every` steps until killed."""
    from gan.trainer import GanTrainer
    from study.checkpoints import write_checkpoint

    data = load_dataset("mnist5k")
    trainer = GanTrainer(BALANCE_DCGAN, data.train.images, torch.device(device))
    while trainer.step < steps:
        trainer.train(every)
        # written under a temporary name and renamed: a kill mid-write leaves no half checkpoint
        staging = tempfile.mkdtemp(dir=directory, prefix=".staging")
        write_checkpoint(staging, trainer)
        os.replace(staging, os.path.join(directory, f"step{trainer.step:06d}"))
        time.sleep(3600 if trainer.step >= every else 0)  # wait to be killed after the first checkpoint


def check_restore(table: Table, data, device: torch.device, sizes: Sizes) -> tuple[bool, object]:
    from gan.trainer import GanTrainer
    from study.checkpoints import read_trainer_state

    every = sizes.restore_steps // 2
    with tempfile.TemporaryDirectory() as directory:
        child = subprocess.Popen([sys.executable, "-m", "bench.gpu_acceptance", "--_train-child", directory,
                                  str(device), str(sizes.restore_steps), str(every)])
        deadline = time.monotonic() + 600
        while not any(name.startswith("step") for name in os.listdir(directory)):
            if child.poll() is not None or time.monotonic() > deadline:
                table.add("restore", "checkpoint, SIGKILL, restore", f"child exited {child.returncode} before "
                          "its first checkpoint", "-", "FAILED")
                return False, None
            time.sleep(0.2)
        child.send_signal(signal.SIGKILL)
        child.wait()
        checkpoint = os.path.join(directory, sorted(n for n in os.listdir(directory) if n.startswith("step"))[-1])
        restored = GanTrainer(BALANCE_DCGAN, data.train.images, device)
        restored.load_state_dict(read_trainer_state(checkpoint))
        restored_at = restored.step
    restored.train(sizes.restore_steps - restored.step)
    straight = GanTrainer(BALANCE_DCGAN, data.train.images, device)
    straight.train(sizes.restore_steps)
    difference = max(float((a - b).abs().max()) for a, b in zip(restored.generator.state_dict().values(),
                                                                  straight.generator.state_dict().values()))
    # the CPU is deterministic, so the restored run must be the uninterrupted one; CUDA kernels may not be
    exact = device.type == "cpu"
    passed = difference == 0 if exact else difference == difference
    table.add("restore", f"killed at step {restored_at}, restored on {device.type}, trained to {restored.step}",
              f"max |G restored - G uninterrupted| {difference:.3g}", "bitwise expected" if exact else "shown",
              "ok" if passed else "FAILED")
    return passed, restored


def check_fid(table: Table, data, trainer, device: torch.device, sizes: Sizes) -> bool:
    from gan.metrics import channel_features, extract_features, fid, load_or_train_classifier

    if device.type != "cuda":
        table.add("fid", "one generator scored on CPU and GPU", SKIPPED, "-", "-")
        return True
    fake = trainer.sample(sizes.fid_samples, seed=0).float().cpu()
    fake = (fake + 1) / 2 if trainer.tanh_output else fake  # features read [0, 1] pixels
    scores = {}
    for where in ("cpu", device.type):
        model = load_or_train_classifier(data, device=where).model
        features = channel_features(model)
        scores[where] = float(fid(extract_features(features, data.test.images, device=torch.device(where)),
                                  extract_features(features, fake, device=torch.device(where))))
    relative = abs(scores["cpu"] - scores["cuda"]) / scores["cpu"]
    table.add("fid", f"{sizes.fid_samples} samples vs test split", f"cpu {scores['cpu']:.4f}, gpu "
              f"{scores['cuda']:.4f}", f"relative difference {relative:.2g}",
              "ok" if relative < FID_AGREEMENT else "FAILED")
    return relative < FID_AGREEMENT


PBT_SPACE = """\
name: gpu_acceptance_pbt
dataset: mnist5k
fixed: {{arch: dcgan, g_width: 16, d_width: 16, z_dim: 32, optimizer: adam, beta1: 0.5, batch_size: 32}}
search_space:
  lr_g: {{loguniform: [1.0e-4, 3.0e-3]}}
  lr_d: {{loguniform: [1.0e-4, 3.0e-3]}}
search: random
scheduler: pbt
scheduler_options: {{perturbation_interval: 1, quantile_fraction: 0.5}}
metric: fid
mode: min
num_samples: 4
seeds_per_config: 1
budget: {{steps: {steps}, eval_every: {every}}}
evaluation: {{num_samples: 500, metrics: [fid]}}
resources: {{cpus_per_trial: {cpus}, gpus_per_trial: {gpus}, max_concurrent: 4}}
"""
EXPLOIT_LINE = re.compile(r"\[Exploit\]")


def check_pbt(table: Table, device: torch.device, sizes: Sizes) -> bool:
    gpus = 0.25 if device.type == "cuda" else 0
    cpus = 1 if device.type == "cuda" else 0.5
    with tempfile.TemporaryDirectory() as directory:
        space = Path(directory) / "pbt.yaml"
        space.write_text(PBT_SPACE.format(steps=sizes.pbt_steps, every=sizes.pbt_steps // 8, cpus=cpus, gpus=gpus))
        env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "study.run", "--space", str(space), "--verbose",
             "--tracking-uri", f"sqlite:///{directory}/mlflow.db", "--storage-path", f"{directory}/ray_results"],
            capture_output=True, text=True, env=env, cwd=directory, timeout=1200)
        seconds = time.perf_counter() - started
    output = result.stdout + result.stderr
    exploits = len(EXPLOIT_LINE.findall(output))
    passed = result.returncode == 0 and exploits >= 1
    where = f"4 trials at {gpus:g} GPU each" if gpus else "4 trials on the CPU (dry run)"
    table.add("pbt", where, f"exit {result.returncode}, {exploits} exploit(s), {seconds:.0f} s",
              "at least one exploit", "ok" if passed else "FAILED")
    if not passed:
        print(output[-4000:], file=sys.stderr)
    return passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="every part on the CPU at toy sizes")
    parser.add_argument("--parts", nargs="+", default=["throughput", "packing", "restore", "fid", "pbt"],
                        choices=["throughput", "packing", "restore", "fid", "pbt"])
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to bench/RESULTS.md")
    parser.add_argument("--_train-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._train_child:
        directory, device, steps, every = args._train_child
        _train_with_checkpoints(directory, device, int(steps), int(every))
        return 0
    if args.dry_run:
        device, sizes = torch.device("cpu"), DRY_SIZES
    elif torch.cuda.is_available():
        device, sizes = torch.device("cuda"), GPU_SIZES
    else:
        print("gpu_acceptance: no usable CUDA device (torch.cuda.is_available() is false); use --dry-run on a "
              "machine without a GPU", file=sys.stderr)
        return 2
    torch.set_num_threads(min(4, os.cpu_count() or 1))
    run = Run("GPU acceptance" + (" (CPU dry run)" if args.dry_run else ""), device)
    table = Table(["check", "what", "measured", "against", "result"])
    data = load_dataset("mnist5k")
    passed, trained = True, None
    started = time.perf_counter()
    if "throughput" in args.parts:
        passed &= check_throughput(table, data, device, sizes)
    if "packing" in args.parts:
        passed &= check_packing(table, device, sizes)
    if "restore" in args.parts or "fid" in args.parts:
        ok, trained = check_restore(table, data, device, sizes)
        passed &= ok
    if "fid" in args.parts and trained is not None:
        passed &= check_fid(table, data, trained, device, sizes)
    if "pbt" in args.parts:
        passed &= check_pbt(table, device, sizes)
    run.finish([("", table)], [f"total {time.perf_counter() - started:.0f} s; "
                               + ("all checks that ran passed" if passed else "A CHECK FAILED")],
               write=not args.no_write)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
