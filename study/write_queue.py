"""An ordered queue of writes to a store that may go away, spooled to a JSON-lines file while it is away.

Writes are plain dicts applied in order by an `apply` function. When `apply` raises an error that may
pass (a transport error, a 5xx), the queue keeps that write and every later one in memory and in the
spool file, and tries again with the next write, at most every `retry_after_s` seconds. An error that
will not pass (`refused(error)` is true: a bad parameter, a deleted run) drops that one write with a
message, so it cannot hold back the rest. The spool file is replaced atomically and removed once the
queue is empty; a queue made on an existing spool file (e.g. by a resumed study) starts with its writes,
ahead of any new ones.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable

Write = dict


class WriteQueue:
    def __init__(self, apply: Callable[[Write], None], spool_path: Path, store: str,
                 refused: Callable[[Exception], bool] = lambda error: False, retry_after_s: float = 5.0,
                 clock: Callable[[], float] = time.time):
        self.apply = apply
        self.spool_path = Path(spool_path)
        self.store = store  # named in messages
        self.refused = refused
        self.retry_after_s = retry_after_s
        self.clock = clock
        self.pending: list[Write] = self._read_spool()
        self._outage_since: float | None = None
        self._next_try = 0.0

    def submit(self, write: Write) -> bool:
        """Queue one write and flush; True when everything queued is written."""
        self.pending.append(write)
        return self.flush()

    def flush(self, force: bool = False) -> bool:
        """Apply queued writes in order; on a passing failure keep the rest (memory + spool). True if empty.

        Unless `force`, a store that failed less than `retry_after_s` ago is not tried again yet.
        """
        if not self.pending:
            return True
        if not force and self.clock() < self._next_try:
            self._spool()
            return False
        while self.pending:
            write = self.pending[0]
            try:
                self.apply(write)
            except Exception as error:
                reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
                if not self.refused(error):  # the store may come back: keep the write for later
                    if self._outage_since is None:
                        self._outage_since = self.clock()
                        _say(f"{self.store} unreachable ({reason}); buffering writes in {self.spool_path}")
                    self._next_try = self.clock() + self.retry_after_s
                    self._spool()
                    return False
                of_trial = f" of trial {write['trial_id']}" if "trial_id" in write else ""
                _say(f"{self.store} refused a '{write.get('kind')}' write{of_trial} ({reason}); skipped")
            self.pending.pop(0)
        if self._outage_since is not None:
            _say(f"{self.store} reachable again after {self.clock() - self._outage_since:.0f} s; buffered writes logged")
            self._outage_since = None
        self._spool()
        return True

    def drain(self, timeout_s: float, sleep: Callable[[float], None] = time.sleep) -> bool:
        """Flush until empty or `timeout_s` has passed; True when everything is written."""
        deadline = self.clock() + timeout_s
        while not self.flush(force=True):
            if self.clock() >= deadline:
                return False
            sleep(self.retry_after_s)
        return True

    def _read_spool(self) -> list[Write]:
        """The writes an earlier process left in the spool file."""
        if not self.spool_path.exists():
            return []
        return [json.loads(line) for line in self.spool_path.read_text().splitlines() if line.strip()]

    def _spool(self) -> None:
        if not self.pending:
            self.spool_path.unlink(missing_ok=True)
            return
        self.spool_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.spool_path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(write) + "\n" for write in self.pending))
        tmp.replace(self.spool_path)


def _say(message: str) -> None:
    print(f"gan-study: {message}", file=sys.stderr, flush=True)
