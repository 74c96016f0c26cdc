"""The domain classifier: shapes, deterministic training, and a disk cache that trains once under concurrency."""
import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from gan.data import DataSplits, Split
from gan.metrics.classifier import CACHE_ENV, LeNet, TrainingRecipe, load_or_train_classifier, train_classifier

TINY_RECIPE = TrainingRecipe(epochs=2, batch_size=16, widths=(4, 8), feature_dim=16)


def tiny_splits(seed=0, shape=(1, 28, 28)) -> DataSplits:
    generator = torch.Generator().manual_seed(seed)

    def split(n):
        return Split(torch.rand(n, *shape, generator=generator), torch.randint(0, 3, (n,), generator=generator))

    return DataSplits("tiny", split(48), split(8), split(16), num_classes=3)


def state_digest(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.cpu().numpy().tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_lenet_shapes(shape):
    model = LeNet(shape, num_classes=10, feature_dim=64)
    images = torch.rand(5, *shape)
    assert model(images).shape == (5, 10)
    assert model.features(images).shape == (5, 64)


def test_training_with_the_same_seed_gives_identical_weights_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = train_classifier(tiny_splits(), TINY_RECIPE)
    assert torch.equal(torch.rand(1), expected_next)
    second = train_classifier(tiny_splits(), TINY_RECIPE)
    assert state_digest(first.model) == state_digest(second.model)
    third = train_classifier(tiny_splits(), TrainingRecipe(**{**TINY_RECIPE.__dict__, "seed": 1}))
    assert state_digest(first.model) != state_digest(third.model)


def test_cache_is_reused_and_keyed_by_training_data(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    first = load_or_train_classifier(tiny_splits(0), recipe=TINY_RECIPE)
    files = sorted(tmp_path.glob("*.pt"))
    assert len(files) == 1
    again = load_or_train_classifier(tiny_splits(0), recipe=TINY_RECIPE)
    assert sorted(tmp_path.glob("*.pt")) == files
    assert state_digest(first.model) == state_digest(again.model)
    assert again.test_accuracy == first.test_accuracy
    load_or_train_classifier(tiny_splits(1), recipe=TINY_RECIPE)  # other training data: another entry
    assert len(list(tmp_path.glob("*.pt"))) == 2


WORKER = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {root!r})
    import gan.metrics.classifier as classifier
    from tests.test_metrics_classifier import TINY_RECIPE, state_digest, tiny_splits

    original = classifier.train_classifier

    def counting_train(*args, **kwargs):
        with open({count_file!r}, "a") as f:  # one line per training run, appended
            f.write(f"{{os.getpid()}}\\n")
        time.sleep(1.0)  # widen the race window
        return original(*args, **kwargs)

    classifier.train_classifier = counting_train
    splits = tiny_splits(0)
    # a barrier on files: each worker says it is ready, then both start once every worker is (however long the
    # imports took on a loaded machine); the deadline only keeps a worker whose partner died from waiting for good
    open(os.path.join({barrier!r}, str(os.getpid())), "w").close()
    deadline = time.monotonic() + 600
    while len(os.listdir({barrier!r})) < {workers}:
        if time.monotonic() > deadline:
            sys.exit("the other worker never became ready")
        time.sleep(0.005)
    trained = classifier.load_or_train_classifier(splits, cache_dir={cache_dir!r}, recipe=TINY_RECIPE)
    print("DIGEST", state_digest(trained.model))
""")


def test_concurrent_processes_train_exactly_once_and_load_identical_weights(tmp_path):
    root = str(Path(__file__).resolve().parents[1])
    count_file = tmp_path / "trainings.log"
    barrier = tmp_path / "ready"
    barrier.mkdir()
    script = WORKER.format(root=root, count_file=str(count_file), cache_dir=str(tmp_path / "cache"),
                           barrier=str(barrier), workers=2)
    workers = [subprocess.Popen([sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        outputs = [w.communicate(timeout=900) for w in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err
    assert len(list(barrier.iterdir())) == 2  # both reached the barrier before loading or training
    digests = [line.split()[1] for out, _ in outputs for line in out.splitlines() if line.startswith("DIGEST")]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert len(count_file.read_text().splitlines()) == 1
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    assert not list((tmp_path / "cache").glob("*.tmp"))
