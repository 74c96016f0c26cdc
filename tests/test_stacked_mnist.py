"""Stacked MNIST: built from the mnist5k splits, deterministic, lazy where it is large, and readable like images."""
import pytest
import torch

from gan.config import GanConfig
from gan.data import DatasetUnavailable, load_dataset
from gan.metrics.classifier import channel_features, channel_probabilities
from gan.stacked_mnist import StackedImages, StackedOptions, stack
from gan.trainer import GanTrainer

SMALL = StackedOptions(train_size=3000, validation_size=400, test_size=600, seed=7)


@pytest.fixture(scope="module")
def stacked(mnist5k):
    return stack(mnist5k, "stacked_mnist", SMALL)


def test_each_channel_is_a_digit_of_the_same_split_and_the_label_is_its_mode(mnist5k, stacked):
    for name in ("train", "validation", "test"):
        source, split = getattr(mnist5k, name), getattr(stacked, name)
        assert len(split) == SMALL.size(name) and split.images.shape[1:] == (3, 28, 28)
        digit_rows = {tuple(row): label for row, label in zip(source.images.flatten(1).tolist(), source.labels.tolist())}
        for n in range(0, len(split), 97):
            digits = [digit_rows[tuple(split.images[n][c].flatten().tolist())] for c in range(3)]
            assert split.labels[n] == 100 * digits[0] + 10 * digits[1] + digits[2]


def test_training_split_is_built_on_demand_and_the_others_are_held(mnist5k, stacked):
    train = stacked.train.images
    assert isinstance(train, StackedImages) and train.digits.shape == (3500, 28, 28)
    assert train.triples.shape == (SMALL.train_size, 3)
    assert isinstance(stacked.validation.images, torch.Tensor) and isinstance(stacked.test.images, torch.Tensor)
    assert stacked.channel_source is mnist5k and stacked.num_classes == 1000 and stacked.image_shape == (3, 28, 28)


def test_stacked_images_index_like_a_tensor_and_affine_maps_commute(stacked):
    images = stacked.train.images
    full = images.materialize()
    index = torch.tensor([5, 0, 2999, 5])
    assert torch.equal(images[index], full[index]) and torch.equal(images[10:13], full[10:13])
    assert torch.equal(images[4], full[4]) and len(images) == 3000 and images.shape == full.shape
    mapped = (images * 2 - 1).to("cpu", torch.float64)
    assert mapped.dtype == torch.float64 and torch.allclose(mapped[index], full[index].double() * 2 - 1)
    assert torch.equal((1 + 2 * images)[index], 1 + 2 * full[index])


def test_construction_is_deterministic_per_seed_and_each_split_has_its_own_stream(mnist5k, stacked):
    again = stack(mnist5k, "stacked_mnist", SMALL)
    assert torch.equal(again.train.images.triples, stacked.train.images.triples)
    assert torch.equal(again.test.images, stacked.test.images) and again.fingerprint() == stacked.fingerprint()
    other_seed = stack(mnist5k, "stacked_mnist", StackedOptions(3000, 400, 600, seed=8))
    assert not torch.equal(other_seed.test.labels, stacked.test.labels) and other_seed.fingerprint() != stacked.fingerprint()
    bigger_train = stack(mnist5k, "stacked_mnist", StackedOptions(5000, 400, 600, seed=7))
    assert torch.equal(bigger_train.test.images, stacked.test.images)


def test_the_test_split_holds_nearly_every_mode(stacked):
    # 600 uniform draws of 1,000 modes cover 1000·(1 − 0.999^600) ≈ 451 on average
    assert 400 < stacked.test.labels.unique().numel() < 500


def test_default_data_set_has_the_literatures_training_size():
    data = load_dataset("stacked_mnist")
    assert (len(data.train), len(data.validation), len(data.test)) == (128_000, 5_000, 10_000)


def test_full_variant_without_mnist_files_is_a_one_line_error(tmp_path):
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset("stacked_mnist_full", root=tmp_path, download=False)
    assert "stacked_mnist_full" in str(info.value) and str(tmp_path) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("options,message", [
    (dict(train_size=0), "train_size must be a positive integer"),
    (dict(test_size=2.5), "test_size must be a positive integer"),
    (dict(seed="x"), "seed must be an integer"),
])
def test_bad_options_are_rejected(options, message):
    with pytest.raises(ValueError, match=message):
        StackedOptions(**options)


def test_stacked_options_only_for_stacked_data():
    with pytest.raises(DatasetUnavailable, match="stacked options apply to"):
        load_dataset("mnist5k", stacked=StackedOptions())


def test_the_digit_classifier_reads_each_channel(quick_classifier, stacked):
    model = quick_classifier.model
    images = stacked.test.images[:50]
    with torch.no_grad():
        features = channel_features(model)(images)
        per_channel = [model.features(images[:, c:c + 1]) for c in range(3)]
        logits = [model(images[:, c:c + 1]) for c in range(3)]  # eval mode: no dropout
    assert features.shape == (50, 384) and torch.equal(features, torch.cat(per_channel, dim=1))
    probabilities = channel_probabilities(model, features)
    assert torch.allclose(probabilities, torch.softmax(torch.stack(logits, dim=1).double(), dim=2), atol=1e-6)
    digits = torch.stack([stacked.test.labels[:50] // 100, stacked.test.labels[:50] // 10 % 10,
                          stacked.test.labels[:50] % 10], dim=1)
    assert (probabilities.argmax(dim=2) == digits).double().mean() > 0.9


def test_a_dcgan_trains_on_the_lazy_split(stacked):
    config = GanConfig(arch="dcgan", g_width=4, d_width=4, z_dim=8, batch_size=16, seed=0)
    trainer = GanTrainer(config, stacked.train.images)
    stats = trainer.train(2)
    assert stats.step == 2 and not stats.diverged
    assert trainer.sample(5, seed=0).shape == (5, 3, 28, 28)
