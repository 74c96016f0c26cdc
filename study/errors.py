"""Errors of trials: which ones would recur on every retry, and the one line that names an error.

Tune retries a failed trial up to `--max-failures` times. That helps when a process or node died; it
only wastes time when the same configuration fails the same way again. Such errors are caught in the
trial (study.trial), reported as its last result and not retried:
- ConfigError: a combination of searched values GanConfig refuses (e.g. updates: simultaneous with k 2);
- ConfigTooLarge: the memory estimate exceeds what the node has (gan.memory);
- CheckpointRefused: a checkpoint holding pickled objects (study.checkpoints) is refused on every restore;
- out of memory while the networks, optimizers and data are put on the device (GanTrainer.__init__):
  the same configuration asks for the same memory again.
An out-of-memory error later, during training or evaluation, may depend on what else ran on the device
then, and is retried.
"""
from __future__ import annotations

import re

from gan.config import ConfigError
from gan.memory import ConfigTooLarge
from study.checkpoints import CheckpointRefused

MAX_REASON_CHARS = 500  # of the tag gan_study.error (MLflow allows 8,000)
OUT_OF_MEMORY_MESSAGES = ("out of memory", "can't allocate", "cannot allocate", "not enough memory")
# the last line of a Python traceback: "module.SomeError: message"
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Refused|TooLarge)(:|$)")


def _raised_while_building_the_trainer(error: BaseException) -> bool:
    from gan.trainer import GanTrainer

    construction = GanTrainer.__init__.__code__
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code is construction:
            return True
        traceback = traceback.tb_next
    return False


def is_out_of_memory(error: BaseException) -> bool:
    import torch

    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and any(text in str(error).lower() for text in OUT_OF_MEMORY_MESSAGES))


def will_recur(error: BaseException) -> bool:
    """True for an error that the same trial would raise again on a retry (see the module's docstring)."""
    if isinstance(error, (ConfigError, ConfigTooLarge, CheckpointRefused)):
        return True
    return is_out_of_memory(error) and _raised_while_building_the_trainer(error)


def error_reason(text: str) -> str:
    """The line that names an error in a traceback or Ray error text: its last "SomeError: …" line, else its
    last non-empty line; at most MAX_REASON_CHARS characters."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    named = [line for line in lines if _EXCEPTION_LINE.match(line)]
    reason = named[-1] if named else lines[-1]
    return reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS - 1] + "…"
