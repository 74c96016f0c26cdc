"""Inception FID features equal pytorch-fid's own pipeline (PNG files -> get_activations) on a network of
pytorch-fid's FID Inception definition with random weights, saved to a file: equality without the real weights."""
import numpy as np
import pytest
import torch
from PIL import Image

from gan.metrics.inception import (
    INCEPTION_WEIGHTS_ENV,
    InceptionFeatures,
    InceptionWeightsUnavailable,
    as_inception_input,
    load_inception_features,
    load_weights,
    weights_path,
)

import pytorch_fid  # noqa: F401  (a dependency: this test must run, never skip)


def random_fid_inception_state_dict(seed: int) -> dict:
    """A state dict of pytorch-fid's FID Inception-v3 (its fid_inception_v3 assembly), randomly initialised.

    pytorch-fid builds the network and loads the downloaded weights in one function; the same blocks are
    assembled here from its classes so that the network exists before any weights do.
    """
    from pytorch_fid import inception as pf

    torch.manual_seed(seed)
    network = pf._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    network.Mixed_5b = pf.FIDInceptionA(192, pool_features=32)
    network.Mixed_5c = pf.FIDInceptionA(256, pool_features=64)
    network.Mixed_5d = pf.FIDInceptionA(288, pool_features=64)
    network.Mixed_6b = pf.FIDInceptionC(768, channels_7x7=128)
    network.Mixed_6c = pf.FIDInceptionC(768, channels_7x7=160)
    network.Mixed_6d = pf.FIDInceptionC(768, channels_7x7=160)
    network.Mixed_6e = pf.FIDInceptionC(768, channels_7x7=192)
    network.Mixed_7b = pf.FIDInceptionE_1(1280)
    network.Mixed_7c = pf.FIDInceptionE_2(2048)
    # batch-norm running statistics at their defaults (mean 0, var 1) would hide the eps and layout; vary them
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return network.state_dict()


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    state_dict = random_fid_inception_state_dict(seed=0)
    path = tmp_path_factory.mktemp("inception") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state_dict, path)
    return path, state_dict


def pytorch_fid_activations(images_uint8: np.ndarray, state_dict: dict, directory, monkeypatch) -> np.ndarray:
    """pytorch-fid's command-line path: PNG files -> ImagePathDataset (PIL, convert RGB) -> InceptionV3."""
    from pytorch_fid import fid_score, inception

    files = []
    for index, image in enumerate(images_uint8):  # N x C x H x W uint8
        mode = "L" if image.shape[0] == 1 else "RGB"
        pixels = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        files.append(directory / f"{index}.png")
        Image.fromarray(pixels, mode=mode).save(files[-1])
    monkeypatch.setattr(inception, "load_state_dict_from_url", lambda *args, **kwargs: state_dict)
    model = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    return fid_score.get_activations([str(f) for f in files], model, batch_size=len(files), dims=2048,
                                     device="cpu", num_workers=0)


@pytest.mark.slow  # four Inception passes at 299 x 299 and two networks built: about 10 s on a CPU
@pytest.mark.parametrize("channels", [1, 3])
def test_our_features_equal_pytorch_fid_on_the_same_images(weights_file, tmp_path, monkeypatch, channels):
    path, state_dict = weights_file
    rng = np.random.default_rng(channels)
    images_uint8 = rng.integers(0, 256, size=(2, channels, 28, 28), dtype=np.uint8)
    theirs = pytorch_fid_activations(images_uint8, state_dict, tmp_path, monkeypatch)
    ours_extractor = load_inception_features(str(path))
    # our input is the [0, 1] float image; a small offset below half a grey level is undone by quantisation
    ours = ours_extractor(torch.from_numpy(images_uint8).float() / 255 + 0.4 / 255)
    assert ours.shape == theirs.shape == (2, 2048)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    assert np.abs(theirs).max() > 1e-3  # the random network's features are not trivially zero


class CountingPool(torch.nn.Module):
    """Stands in for the network: the 2048-d output list pytorch-fid's InceptionV3 returns, and a call count."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, images):
        self.calls += 1
        return [images.mean(dim=(2, 3), keepdim=True).repeat(1, 2048 // 3 + 1, 1, 1)[:, :2048]]


def test_reference_features_are_computed_once_per_tensor():
    extractor = InceptionFeatures(CountingPool(), batch_size=4)
    images, other = torch.rand(6, 1, 28, 28), torch.rand(6, 1, 28, 28)
    first = extractor.reference(images)
    assert extractor.reference(images) is first and extractor.network.calls == 2  # 6 images in batches of 4
    assert not np.array_equal(extractor.reference(other), first) and extractor.network.calls == 4


def test_inception_input_is_pytorch_fids_8_bit_rgb():
    grey = torch.tensor([0.0, 0.3 / 255, 0.6 / 255, 1.0, 1.2]).reshape(1, 1, 1, 5)
    rgb = as_inception_input(grey)
    assert rgb.shape == (1, 3, 1, 5) and torch.equal(rgb[:, 0], rgb[:, 2])
    assert torch.equal(rgb[0, 1, 0], torch.tensor([0.0, 0.0, 1 / 255, 1.0, 1.0]))
    with pytest.raises(ValueError, match="2 channels"):
        as_inception_input(torch.rand(1, 2, 4, 4))


def test_missing_weights_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    with pytest.raises(InceptionWeightsUnavailable, match=INCEPTION_WEIGHTS_ENV) as unset:
        weights_path(None)
    with pytest.raises(InceptionWeightsUnavailable, match="not found") as missing:
        weights_path(tmp_path / "nothing.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InceptionWeightsUnavailable, match="cannot read") as garbage:
        load_weights(tmp_path / "garbage.pth")
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(tmp_path / "garbage.pth"))
    assert weights_path(None) == (tmp_path / "garbage.pth").resolve()
    for error in (unset, missing, garbage):
        assert "\n" not in str(error.value)
