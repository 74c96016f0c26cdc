"""What every benchmark shares: the device choice, a wall clock, the result table and bench/RESULTS.md.

A benchmark builds a `Table`, prints it, and calls `append_results`, which writes one Markdown section:
the title, the environment (machine, device, versions, date, load average before and after) and the table.
"""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

RESULTS_FILE = Path(__file__).resolve().parent / "RESULTS.md"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def choose_device(name: str | None, threads: int) -> torch.device:
    """The device named on the command line (default: cuda if available), with `threads` CPU threads (0: torch's)."""
    if threads:
        torch.set_num_threads(threads)
    return torch.device(name) if name else default_device()


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a wall-clock reading covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _nproc() -> str:
    try:
        return subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return str(os.cpu_count())


def environment(device: torch.device) -> dict[str, str]:
    """Where and with what a result was measured."""
    import ray

    if device.type == "cuda":
        device_name = f"cuda ({torch.cuda.get_device_name(device)})"
    else:
        device_name = f"cpu ({torch.get_num_threads()} torch threads)"
    return {
        "machine": f"{platform.node()}, {platform.system()} {platform.release()}, {platform.machine()}, "
                   f"{_cpu_model()}, nproc {_nproc()}",
        "device": device_name,
        "versions": f"python {platform.python_version()}, torch {torch.__version__}, ray {ray.__version__}",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def add(self, *values) -> None:
        self.rows.append([_format(v) for v in values])

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)

    def text(self) -> str:
        widths = [max(len(c), *(len(r[i]) for r in self.rows)) if self.rows else len(c)
                  for i, c in enumerate(self.columns)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(self.columns, widths))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in self.rows]
        return "\n".join(lines)


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


class Run:
    """One benchmark run: records the load average at its start and writes its section at the end."""

    def __init__(self, title: str, device: torch.device):
        self.title, self.device = title, device
        self.load_before = load_average()

    def finish(self, tables: list[tuple[str, Table]], notes: list[str] = (), write: bool = True) -> None:
        """Print the tables and (unless `write` is false) append them with the environment to RESULTS.md."""
        env = environment(self.device)
        env["load average (1/5/15 min)"] = f"{self.load_before} at start, {load_average()} at end"
        for caption, table in tables:
            print(f"\n{caption}\n{table.text()}" if caption else f"\n{table.text()}")
        for note in notes:
            print(f"note: {note}")
        if not write:
            return
        section = [f"## {self.title}", ""]
        section += [f"- {key}: {value}" for key, value in env.items()]
        for caption, table in tables:
            section += (["", caption] if caption else []) + ["", table.markdown()]
        if notes:
            section += [""] + [f"- {note}" for note in notes]
        if not RESULTS_FILE.exists():
            RESULTS_FILE.write_text("# Benchmark results\n\nAppended by `python -m bench.<name>`; newest last.\n")
        with RESULTS_FILE.open("a") as file:
            file.write("\n" + "\n".join(section) + "\n")
        print(f"\nappended to {RESULTS_FILE}")


@contextmanager
def stopwatch(device: torch.device, into: list[float]):
    """Append the wall-clock seconds of the block (GPU work included) to `into`."""
    synchronize(device)
    start = time.perf_counter()
    yield
    synchronize(device)
    into.append(time.perf_counter() - start)


def median(values: list[float]) -> float:
    return statistics.median(values)
