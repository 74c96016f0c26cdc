"""A trial's Tune checkpoint: the trainer's full state and its fixed-noise sample grid, one folder.

Checkpoints live in storage every node of a cluster can write (a shared file system, a bucket), so they
are read with `torch.load(weights_only=True)`: tensors, numbers, strings, bools, None and the dicts, lists
and tuples that hold them (everything `GanTrainer.state_dict()` writes), never an arbitrary pickled object,
whose unpickling could run any code on the node that reads it.
"""
from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch

from gan.trainer import GanTrainer, save_image

CHECKPOINT_FILE = "trainer.pt"
GRID_FILE = "samples.png"


class CheckpointRefused(ValueError):
    """A checkpoint that holds more than tensors and plain data; the message is one line."""


def write_checkpoint(directory: str | Path, trainer: GanTrainer) -> None:
    torch.save(trainer.state_dict(), os.path.join(directory, CHECKPOINT_FILE))
    save_image(trainer.sample_grid(), os.path.join(directory, GRID_FILE))


def read_trainer_state(directory: str | Path) -> dict:
    """The trainer's state on the CPU, whatever device wrote it: `GanTrainer.load_state_dict` moves it to the
    trainer's device, and takes the random generators' states as the CPU byte tensors they must be."""
    path = Path(directory) / CHECKPOINT_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message is a page of advice; the line that names the offending object is what matters
        # (torch 2.6+: "Unsupported global: GLOBAL x.y", torch 2.15: "unsupported GLOBAL x.y whose module x is blocked")
        found = re.search(r"GLOBAL (\S+)", str(error))
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointRefused(f"checkpoint {path} holds a pickled object{what}, not only tensors and plain data: "
                                f"refused (weights_only loading)") from None
