"""The ordered write queue: nothing lost or reordered while the store is away, refused writes skipped."""
import json

from study.write_queue import WriteQueue


class FlakyStore:
    """Applies writes to a list; raises while `down`; refuses writes whose value is 'bad'."""

    def __init__(self):
        self.written, self.down = [], False

    def apply(self, write):
        if self.down:
            raise ConnectionError("connection refused")
        if write.get("value") == "bad":
            raise ValueError("refused: bad value")
        self.written.append(write["value"])


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make_queue(tmp_path, store, clock):
    return WriteQueue(store.apply, tmp_path / "pending.jsonl", "test store",
                      refused=lambda error: isinstance(error, ValueError), retry_after_s=5.0, clock=clock)


def spooled(tmp_path):
    path = tmp_path / "pending.jsonl"
    return [json.loads(line)["value"] for line in path.read_text().splitlines()] if path.exists() else []


def test_writes_are_applied_in_order_and_the_spool_is_removed(tmp_path):
    store, clock = FlakyStore(), Clock()
    queue = make_queue(tmp_path, store, clock)
    for value in range(3):
        assert queue.submit({"value": value})
    assert store.written == [0, 1, 2] and not (tmp_path / "pending.jsonl").exists()


def test_an_outage_keeps_every_write_in_order_in_memory_and_in_the_spool(tmp_path, capsys):
    store, clock = FlakyStore(), Clock()
    queue = make_queue(tmp_path, store, clock)
    queue.submit({"value": 0})
    store.down = True
    assert not queue.submit({"value": 1})
    clock.now += 1  # within the retry interval the store is not tried: the write only joins the queue
    store.down = False
    assert not queue.submit({"value": 2})
    assert store.written == [0] and spooled(tmp_path) == [1, 2]
    clock.now += 5  # past it: everything goes, in order
    assert queue.submit({"value": 3})
    assert store.written == [0, 1, 2, 3] and spooled(tmp_path) == []
    err = capsys.readouterr().err
    assert "test store unreachable (connection refused)" in err and "reachable again after 6 s" in err


def test_a_refused_write_is_skipped_without_holding_back_the_rest(tmp_path, capsys):
    store, clock = FlakyStore(), Clock()
    queue = make_queue(tmp_path, store, clock)
    for value in (0, "bad", 2):
        queue.submit({"kind": "metrics", "trial_id": "t1", "value": value})
    assert store.written == [0, 2]
    assert "refused a 'metrics' write of trial t1 (refused: bad value); skipped" in capsys.readouterr().err


def test_a_new_process_replays_the_spool_before_its_own_writes(tmp_path):
    store, clock = FlakyStore(), Clock()
    store.down = True
    first = make_queue(tmp_path, store, clock)
    first.submit({"value": "a"})
    first.submit({"value": "b"})
    store.down = False
    second = make_queue(tmp_path, store, clock)  # e.g. a resumed driver
    assert second.submit({"value": "c"})
    assert store.written == ["a", "b", "c"] and spooled(tmp_path) == []


def test_drain_waits_for_a_store_that_comes_back_and_gives_up_after_its_timeout(tmp_path):
    store, clock = FlakyStore(), Clock()
    queue = make_queue(tmp_path, store, clock)
    store.down = True
    queue.submit({"value": 0})
    sleeps = []

    def sleep(seconds):  # the store comes back during the second wait
        sleeps.append(seconds)
        clock.now += seconds
        store.down = len(sleeps) < 2

    assert queue.drain(60, sleep) and store.written == [0] and sleeps == [5.0, 5.0]
    store.down = True
    queue.submit({"value": 1})
    assert not queue.drain(12, lambda s: setattr(clock, "now", clock.now + s))
    assert spooled(tmp_path) == [1]
