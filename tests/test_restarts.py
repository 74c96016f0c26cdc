"""study.restarts counts the restarts Tune made from the error files it writes (Trial.handle_error's format)."""
from collections import Counter
from dataclasses import dataclass

import pyarrow.fs

from study.outcome import TrialOutcome
from study.restarts import failure_reasons, study_restarts

LOST_NODE = ("The actor 28302f113b6c6a0ebd751ac002000000 is unavailable: The actor is temporarily unavailable: "
             "RpcError: RPC error: Socket closed rpc_code: 14. The task may or may not have been executed on the actor.")
CRASH = "Traceback (most recent call last):\n  File \"trial.py\", line 3, in train\nRuntimeError: CUDA error: boom"


def tune_error_file(*errors: str) -> str:
    """What Tune appends at each failure: ray/tune/experiment/trial.py, Trial.handle_error."""
    return "".join(f"Failure # {n} (occurred at 2026-12-03_16-42-{n:02d})\n{error}\n"
                   for n, error in enumerate(errors, start=1))


@dataclass
class FakeResult:  # the two attributes of a Tune Result that study.restarts reads
    path: str
    filesystem: pyarrow.fs.FileSystem


def test_each_failure_section_gives_its_reason_line():
    assert failure_reasons(tune_error_file(LOST_NODE, CRASH)) == [LOST_NODE, "RuntimeError: CUDA error: boom"]
    assert failure_reasons("") == []


def test_a_finished_trial_was_restarted_after_every_failure_an_errored_one_not_after_its_last(tmp_path):
    trials = [("a", tune_error_file(LOST_NODE, LOST_NODE), "completed"),
              ("b", tune_error_file(LOST_NODE, CRASH, CRASH), "errored"), ("c", None, "completed")]
    results, outcomes = [], []
    for trial, text, status in trials:
        (tmp_path / trial).mkdir()
        if text is not None:
            (tmp_path / trial / "error.txt").write_text(text)
        results.append(FakeResult(str(tmp_path / trial), pyarrow.fs.LocalFileSystem()))
        outcomes.append(TrialOutcome(trial, status, None, {}, {}))

    restarts = study_restarts(results, outcomes)
    # a: 2 failures, both restarted; b: 3 failures, Tune gave up after the third; c: never failed
    assert restarts.trials == 2 and restarts.total == 4
    assert restarts.reasons == Counter({LOST_NODE: 3, "RuntimeError: CUDA error: boom": 1})
    assert restarts.describe().startswith(f"3× {LOST_NODE}; 1× RuntimeError")
