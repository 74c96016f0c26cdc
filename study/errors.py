"""Errors of trials: which ones would recur on every retry, and the one line that names an error.

Tune retries a failed trial up to `--max-failures` times. That helps when a process or node died; it
only wastes time when the same configuration fails the same way again. Such errors are caught in the
trial (study.trial), reported as its last result and not retried:
- ConfigError: a combination of searched values GanConfig refuses (e.g. updates: simultaneous with k 2);
- ConfigTooLarge: the memory estimate exceeds what the node has (gan.memory);
- CheckpointRefused: a checkpoint holding pickled objects (study.checkpoints) is refused on every restore;
- GpuUnusableError: Ray gave the trial a GPU that CUDA cannot use (a CPU-only torch, no driver, no device);
  the trial does not fall back to the CPU;
- out of memory while the networks, optimizers and data are put on the device (GanTrainer.__init__), on a
  device of its own: the same configuration asks for the same memory again.
An out-of-memory error later, during training or evaluation, may depend on what else ran on the device
then, and is retried. So is one at start-up on a GPU shared with other trials (gpus_per_trial < 1), and
gan.memory's GpuMemoryBusyError (the configuration fits its share, but its neighbours still hold the memory):
the neighbours that started together settle, and the retry waits a random few seconds for it (`settle_delay`).
"""
from __future__ import annotations

import random
import re

from gan.config import ConfigError
from gan.memory import ConfigTooLarge, GpuMemoryBusyError
from study.checkpoints import CheckpointRefused

MAX_REASON_CHARS = 500  # of the tag gan_study.error (MLflow allows 8,000)
OUT_OF_MEMORY_MESSAGES = ("out of memory", "can't allocate", "cannot allocate", "not enough memory")
# the last line of a Python traceback: "module.SomeError: message"
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Refused|TooLarge)(:|$)")
# an out-of-memory error on a shared GPU is retried after a random wait in this range (seconds): long enough for
# neighbours that started together to finish allocating, spread so that the retries do not start together again
SETTLE_SECONDS = (5.0, 30.0)


class GpuUnusableError(RuntimeError):
    """Ray gave a trial GPUs that CUDA cannot use; the message is one line and says why."""


def cuda_unusable_reason(cuda_version: str | None, available: bool, device_count: int,
                         init_error: str | None = None) -> str | None:
    """Why CUDA cannot be used, from torch.version.cuda, torch.cuda.is_available(), torch.cuda.device_count() and
    the first line of torch.cuda.init()'s error (None: not tried); None when it can."""
    if cuda_version is None:
        return "this torch is CPU-only (torch.version.cuda is None)"
    if not available:
        return f"torch.cuda.is_available() is false ({init_error or 'no NVIDIA driver, or no device visible'})"
    if device_count == 0:
        return "torch.cuda.device_count() is 0"
    return None


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


def will_recur(error: BaseException, shared_gpu: bool = False) -> bool:
    """True for an error that the same trial would raise again on a retry (see the module's docstring);
    `shared_gpu`: the trial runs on a fraction of a GPU, beside other trials."""
    if isinstance(error, (ConfigError, ConfigTooLarge, CheckpointRefused, GpuUnusableError)):
        return True
    return is_out_of_memory(error) and _raised_while_building_the_trainer(error) and not shared_gpu


def settle_delay(error: BaseException, shared_gpu: bool, rng: random.Random) -> float:
    """Seconds to wait before Tune retries `error`: a random time in SETTLE_SECONDS for an out-of-memory error on a
    shared GPU (GpuMemoryBusyError included), else 0."""
    if shared_gpu and (isinstance(error, GpuMemoryBusyError) or is_out_of_memory(error)):
        return rng.uniform(*SETTLE_SECONDS)
    return 0.0


def error_reason(text: str) -> str:
    """The line that names an error in a traceback or Ray error text: its last "SomeError: …" line, else its
    last non-empty line; at most MAX_REASON_CHARS characters."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    named = [line for line in lines if _EXCEPTION_LINE.match(line)]
    reason = named[-1] if named else lines[-1]
    return reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS - 1] + "…"
