"""What an evaluation keeps on the trial's device between evaluations: each reference split's copy there (for D,
Parzen and the features), made once per process, and the reference's pixel statistics."""
import importlib

import pytest
import torch
from test_metrics_on_device import pytorch_fid

from gan.evaluation import evaluate, on_device
from gan.metrics.parzen import ParzenResult
from gan.splits import Split

evaluation_module = importlib.import_module("gan.evaluation")
META = torch.device("meta")  # a device that holds no data: where a tensor lives is all there is to check


def split(n: int, seed: int) -> Split:
    images = torch.rand(n, 1, 6, 6, generator=torch.Generator().manual_seed(seed))
    return Split(images, torch.zeros(n, dtype=torch.long))


def test_a_split_is_copied_to_a_device_once_per_process():
    images = split(8, 0).images
    copy = on_device(images, META)
    assert copy.device == META and copy.shape == images.shape
    assert on_device(images, META) is copy
    assert on_device(images, torch.device("cpu")) is images  # already there: no copy at all
    assert on_device(images.clone(), META) is not copy  # another tensor, its own copy


class TrainerOnMeta:
    """Samples on another device than the splits (as a GPU trainer's); records what D is given."""

    def __init__(self):
        self.seen_by_d = []

    def sample(self, num_samples, seed):
        return torch.empty(num_samples, 1, 6, 6, device=META)

    def discriminator_probabilities(self, images):
        self.seen_by_d.append(images)
        return torch.empty(len(images), device=META)


def test_every_evaluation_gives_d_and_parzen_the_same_device_copies_of_the_splits(monkeypatch):
    seen_by_parzen = []

    def parzen_protocol(samples, validation, test):
        seen_by_parzen.append((validation, test))
        return ParzenResult(sigma=0.1, mean=0.0, standard_error=0.0, validation_scores={})

    monkeypatch.setattr(evaluation_module, "parzen_protocol", parzen_protocol)
    trainer, reference, validation = TrainerOnMeta(), split(10, 1), split(12, 2)
    for seed in range(3):
        evaluate(trainer, reference, validation, ("parzen",), 5, seed, None, 10)
    references_seen_by_d = trainer.seen_by_d[0::2]  # D sees the reference, then the samples
    assert [images.device for images in references_seen_by_d] == [META] * 3
    assert all(images is references_seen_by_d[0] for images in references_seen_by_d)
    assert all(v.device == t.device == META for v, t in seen_by_parzen) and len(seen_by_parzen) == 3
    assert all(v is seen_by_parzen[0][0] and t is seen_by_parzen[0][1] for v, t in seen_by_parzen)
    assert seen_by_parzen[0][1] is references_seen_by_d[0]


class ReplayOnCpu:
    def __init__(self, images):
        self.images = images

    def sample(self, num_samples, seed):
        index = torch.randint(len(self.images), (num_samples,), generator=torch.Generator().manual_seed(seed))
        return self.images[index]

    def discriminator_probabilities(self, images):
        return torch.full((len(images),), 0.5)


def test_pixel_fd_keeps_the_reference_statistics_and_is_pytorch_fids_formula(monkeypatch):
    statistics_of = []
    original = evaluation_module.gaussian_statistics

    def counting(features):
        statistics_of.append(len(features))
        return original(features)

    monkeypatch.setattr(evaluation_module, "gaussian_statistics", counting)
    reference, generator = split(300, 3), ReplayOnCpu(split(400, 4).images * 0.8)
    for seed in range(3):
        fake = generator.sample(200, seed)
        got = evaluate(generator, reference, reference, ("pixel_fd",), 200, seed, None, 10)["pixel_fd"]
        expected = pytorch_fid(fake.flatten(1).double().numpy(), reference.images.flatten(1).double().numpy())
        assert got == pytest.approx(expected, rel=1e-6)
    assert statistics_of == [300, 200, 200, 200]  # the reference's statistics once, each sample's every time
