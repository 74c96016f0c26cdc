"""A trial's Tune checkpoint: the trainer's full state and its fixed-noise sample grid, one folder."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from gan.trainer import GanTrainer, save_image

CHECKPOINT_FILE = "trainer.pt"
GRID_FILE = "samples.png"


def write_checkpoint(directory: str | Path, trainer: GanTrainer) -> None:
    torch.save(trainer.state_dict(), os.path.join(directory, CHECKPOINT_FILE))
    save_image(trainer.sample_grid(), os.path.join(directory, GRID_FILE))


def read_trainer_state(directory: str | Path, device: torch.device) -> dict:
    return torch.load(Path(directory) / CHECKPOINT_FILE, map_location=device, weights_only=False)
