"""`python -m bench.metric_cost`: time and peak memory of the Fréchet distance and the Parzen protocol.

(a) Fréchet distance at 2048 feature dimensions: `frechet_distance` (pytorch-fid's formula, scipy's
    sqrtm) against `frechet_distance_fast` (symmetric eigendecompositions), same statistics; the two
    must agree to 1e-6 relative. Target: fast >= 2x.
(b) The Parzen log-likelihood of every test point under 10,000 kernel centres x 784 dims for the 10
    default sigmas (the sigma-selection pass of Goodfellow et al.'s protocol, which dominates it):
    `gan.metrics.parzen.parzen_log_densities` against a straightforward numpy reference (a loop over
    test points: squared distances to all centres, then logsumexp per sigma, float64). Identical to
    1e-6 relative. Target: >= 10x. Two sizes: mnist5k's 1,000 test points, and 10,000 random test
    points (the paper's size); at 10,000 the reference is timed on its first `--reference-points`
    points and scaled linearly (its cost is exactly linear in the test points), unless --full-reference.

Memory, CPU: growth of the process's peak resident set (Linux VmHWM, reset through
/proc/self/clear_refs before each call, minus VmRSS before it): covers numpy, LAPACK and torch alike.
GPU: torch.cuda.max_memory_allocated for the torch paths.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from scipy.special import logsumexp

from bench.report import Run, Table, choose_device, median, stopwatch
from gan.data import load_dataset
from gan.metrics.frechet import frechet_distance, frechet_distance_fast, gaussian_statistics
from gan.metrics.parzen import DEFAULT_SIGMAS, parzen_log_densities

STATUS = Path("/proc/self/status")
TOLERANCE = 1e-6
FRECHET_TARGET, PARZEN_TARGET = 2.0, 10.0


def _status_kib(field: str) -> int:
    for line in STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def peak_rss_growth_mib(function, *args) -> tuple[float, object]:
    """(MiB by which the peak resident set rose above the resident set before the call, result)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
    except OSError:
        return math.nan, function(*args)
    before = _status_kib("VmRSS")
    result = function(*args)
    return (_status_kib("VmHWM") - before) / 1024, result


def timed(function, args, device: torch.device, repeats: int) -> tuple[float, object]:
    seconds: list[float] = []
    result = None
    for _ in range(repeats):
        with stopwatch(device, seconds):
            result = function(*args)
    return median(seconds), result


def relative_difference(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), np.finfo(np.float64).tiny)))


# --- (a) Fréchet distance ---------------------------------------------------------------------
def frechet_inputs(dim: int, samples: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Statistics of two correlated, shifted feature sets, N x dim each (N > dim: full-rank covariances)."""
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((dim, dim)) / math.sqrt(dim)
    first = rng.standard_normal((samples, dim)) @ mixing
    second = rng.standard_normal((samples, dim)) @ (mixing + 0.1 * rng.standard_normal((dim, dim)) / math.sqrt(dim)) + 0.05
    return (*gaussian_statistics(first), *gaussian_statistics(second))


def bench_frechet(args, device: torch.device, table: Table) -> None:
    stats = frechet_inputs(args.fid_dim, args.fid_samples)
    cpu = torch.device("cpu")
    memory_ref, _ = peak_rss_growth_mib(frechet_distance, *stats)
    memory_fast, _ = peak_rss_growth_mib(frechet_distance_fast, *stats)
    # interleave the repeats, so that load from other processes hits both alike
    ref_times, fast_times, ref, fast = [], [], None, None
    for _ in range(args.repeats):
        seconds, ref = timed(frechet_distance, stats, cpu, 1)
        ref_times.append(seconds)
        seconds, fast = timed(frechet_distance_fast, stats, cpu, 1)
        fast_times.append(seconds)
    ref_s, fast_s = median(ref_times), median(fast_times)
    error = relative_difference(fast, ref)
    speedup = ref_s / fast_s
    name = f"Fréchet distance, {args.fid_dim} dims"
    table.add(name, "frechet_distance (scipy sqrtm)", ref_s, f"{memory_ref:.0f}", "-", "1x", "", "")
    table.add(name, "frechet_distance_fast (torch float64 eigh)", fast_s, f"{memory_fast:.0f}", f"{error:.1e}",
              f"{speedup:.1f}x", f">= {FRECHET_TARGET:g}x", _met(speedup >= FRECHET_TARGET and error <= TOLERANCE))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        seconds, on_gpu = timed(lambda *s: frechet_distance_fast(*s, device=device), stats, device, args.repeats)
        gpu_mib = torch.cuda.max_memory_allocated(device) / 2**20
        table.add(name, "frechet_distance_fast (torch, cuda)", seconds, f"{gpu_mib:.0f} (GPU)",
                  f"{relative_difference(on_gpu, ref):.1e}", f"{ref_s / seconds:.1f}x", "", "")


# --- (b) Parzen ----------------------------------------------------------------------------------
def parzen_reference(centres: np.ndarray, test: np.ndarray, sigmas) -> np.ndarray:
    """S x N log p(x) in nats, one test point at a time, float64: the formula written out directly."""
    centres = centres.reshape(len(centres), -1).astype(np.float64)
    test = test.reshape(len(test), -1).astype(np.float64)
    sigmas = np.asarray(sigmas, dtype=np.float64)
    num_centres, dim = centres.shape
    out = np.empty((len(sigmas), len(test)))
    for j, x in enumerate(test):
        squared = ((centres - x) ** 2).sum(axis=1)  # M
        for s, sigma in enumerate(sigmas):
            out[s, j] = (logsumexp(-squared / (2 * sigma**2)) - math.log(num_centres)
                         - dim * math.log(sigma * math.sqrt(2 * math.pi)))
    return out


def parzen_centres(splits, count: int, seed: int = 0) -> np.ndarray:
    """`count` stand-ins for generated samples: training images with pixel noise, clipped to [0, 1]."""
    rng = np.random.default_rng(seed)
    images = splits.train.images.numpy().reshape(len(splits.train), -1)
    picked = images[rng.integers(len(images), size=count)]
    return np.clip(picked + 0.1 * rng.standard_normal(picked.shape), 0, 1)


def bench_parzen_case(name: str, centres: np.ndarray, test: np.ndarray, reference_points: int,
                      args, device: torch.device, table: Table) -> None:
    sigmas = list(DEFAULT_SIGMAS)
    on_device = torch.as_tensor(centres, device=device)
    memory_ours, ours = peak_rss_growth_mib(lambda: parzen_log_densities(on_device, test, sigmas).cpu().numpy())
    ours_s, _ = timed(lambda: parzen_log_densities(on_device, test, sigmas), (), device, args.repeats)
    subset = test[:reference_points]
    memory_ref, _ = peak_rss_growth_mib(lambda: parzen_reference(centres, subset[:10], sigmas))
    ref_subset_s, ref = timed(parzen_reference, (centres, subset, sigmas), torch.device("cpu"), 1)
    ref_s = ref_subset_s * len(test) / len(subset)
    error = relative_difference(ours[:, :len(subset)], ref)
    speedup = ref_s / ours_s
    scaled = "" if len(subset) == len(test) else f" (timed on {len(subset)}, scaled)"
    table.add(name, "numpy reference, loop over test points" + scaled, ref_s, f"{memory_ref:.0f}", "-", "1x", "", "")
    label = "gan.metrics.parzen" + (f" ({device.type})" if device.type != "cpu" else "")
    table.add(name, label, ours_s, f"{memory_ours:.0f}", f"{error:.1e}", f"{speedup:.1f}x",
              f">= {PARZEN_TARGET:g}x", _met(speedup >= PARZEN_TARGET and error <= TOLERANCE))


def _met(ok: bool) -> str:
    return "yes" if ok else "no"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.metric_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--fid-dim", type=int, default=2048)
    parser.add_argument("--fid-samples", type=int, default=4096, help="feature vectors per set")
    parser.add_argument("--centres", type=int, default=10_000)
    parser.add_argument("--large-test", type=int, default=10_000, help="random test points of the paper-sized case")
    parser.add_argument("--reference-points", type=int, default=1000,
                        help="test points the reference is timed on in the large case (default 1000)")
    parser.add_argument("--full-reference", action="store_true", help="time the reference on every test point")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--skip", nargs="*", choices=("frechet", "parzen"), default=[])
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to RESULTS.md")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    device = choose_device(args.device, args.threads)
    run = Run("Metric cost: Fréchet distance and Parzen window", device)
    table = Table(["case", "implementation", "seconds", "peak RSS growth MiB", "max rel. diff", "speed-up",
                   "target", "met"])
    started = time.time()
    if "frechet" not in args.skip:
        bench_frechet(args, device, table)
        print("Fréchet distance done", flush=True)
    if "parzen" not in args.skip:
        splits = load_dataset("mnist5k")
        centres = parzen_centres(splits, args.centres)
        test = splits.test.images.numpy().reshape(len(splits.test), -1).astype(np.float64)
        bench_parzen_case(f"Parzen, {args.centres:,} x {len(test):,} (mnist5k test) x 784, 10 sigmas",
                          centres, test, len(test), args, device, table)
        print("Parzen on mnist5k done", flush=True)
        rng = np.random.default_rng(1)
        random_centres, random_test = rng.random((args.centres, 784)), rng.random((args.large_test, 784))
        bench_parzen_case(f"Parzen, {args.centres:,} x {args.large_test:,} (random) x 784, 10 sigmas",
                          random_centres, random_test,
                          args.large_test if args.full_reference else min(args.reference_points, args.large_test),
                          args, device, table)
    notes = [f"seconds: median of {args.repeats} runs (the reference Parzen loop: 1 run); total {time.time() - started:.0f} s",
             "peak RSS growth: VmHWM after the call minus VmRSS before it (VmHWM reset via /proc/self/clear_refs); "
             "the Parzen reference's memory is measured on 10 test points (it does not grow with N)",
             f"Fréchet statistics from {args.fid_samples} correlated Gaussian feature vectors per set; "
             f"Parzen mnist5k centres: {args.centres:,} training images + N(0, 0.1²) pixel noise, clipped"]
    run.finish([("", table)], notes, write=not args.no_write)


if __name__ == "__main__":
    main()
