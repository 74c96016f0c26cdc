"""The GPU acceptance run's CPU dry run: every part through the code paths the GPU run takes, at toy sizes.

The GPU rows must say they were skipped, never carry CPU numbers in their place.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.gpu_acceptance import SKIPPED

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def _rows(output: str) -> dict[str, list[str]]:
    """check name -> the table lines of that check."""
    rows: dict[str, list[str]] = {}
    for line in output.splitlines():
        name = line.split("  ", 1)[0].strip()
        if name in ("throughput", "packing", "restore", "fid", "pbt"):
            rows.setdefault(name, []).append(line)
    return rows


def test_dry_run_passes_every_cpu_check_and_skips_the_gpu_rows():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, "-m", "bench.gpu_acceptance", "--dry-run", "--no-write"],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    rows = _rows(result.stdout)
    assert set(rows) == {"throughput", "packing", "restore", "fid", "pbt"}, result.stdout
    # the restored run continues bitwise where the killed one checkpointed (the CPU is deterministic)
    (restore,) = rows["restore"]
    assert "max |G restored - G uninterrupted| 0 " in restore and restore.rstrip().endswith("ok"), restore
    # PBT exploited at least once and the study completed
    (pbt,) = rows["pbt"]
    assert "exit 0" in pbt and " 0 exploit(s)" not in pbt and pbt.rstrip().endswith("ok"), pbt
    assert all(line.rstrip().endswith("ok") for line in rows["packing"]), rows["packing"]
    # what needs a GPU is shown as skipped, not measured on the CPU
    assert all(SKIPPED in line for line in rows["throughput"] + rows["fid"] + rows["packing"])
    assert "gpu " not in " ".join(rows["throughput"])


def test_without_a_gpu_and_without_dry_run_it_says_so_in_one_line():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, "-m", "bench.gpu_acceptance", "--no-write"], capture_output=True,
                            text=True, cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "no usable CUDA device" in result.stderr
