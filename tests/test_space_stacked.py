"""Search-space keys of the Stacked MNIST work: dataset_options, packing, the modes/KID metrics, Inception FID."""
import pytest

from gan.metrics.inception import INCEPTION_WEIGHTS_ENV
from gan.stacked_mnist import StackedOptions
from study.space import SpaceError, load_space

BUDGET = "budget: {steps: 10, eval_every: 5}\n"


def _load(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return load_space(path)


def test_stacked_space_gets_its_options_and_default_metrics(tmp_path):
    space = _load(tmp_path, "dataset: stacked_mnist\ndataset_options: {train_size: 25600, seed: 3}\n"
                            "fixed: {arch: dcgan}\nsearch_space: {pack: {grid: [1, 2]}}\nsearch: grid\n" + BUDGET)
    assert space.dataset_options == StackedOptions(train_size=25600, seed=3)
    assert "modes" in space.evaluation.metrics and "coverage" not in space.evaluation.metrics
    assert [v["pack"] for v in space.grid_variants()] == [1, 2]


def test_plain_space_has_no_dataset_options(tmp_path):
    assert _load(tmp_path, BUDGET).dataset_options is None


@pytest.mark.parametrize("text,message", [
    ("dataset: mnist5k\ndataset_options: {train_size: 10}\n", "dataset_options apply to stacked_mnist"),
    ("dataset: stacked_mnist\ndataset_options: {train_sise: 10}\n", "did you mean 'train_size'"),
    ("dataset: stacked_mnist\ndataset_options: {test_size: 0}\n", "test_size must be a positive integer"),
    ("dataset: stacked_mnist\nevaluation: {metrics: [fid, coverage]}\n", "['coverage'] label whole images"),
    ("fixed: {pack: 0}\n", "pack must be >= 1"),
    ("evaluation: {inception: yes please}\n", "evaluation.inception must be true or false"),
    ("evaluation: {inception_weights: /x.pth}\n", "inception_weights is given but evaluation.inception is not true"),
    ("evaluation: {inception: true, inception_weights: /nonexistent/pt_inception.pth}\n", "not found"),
])
def test_bad_keys_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(SpaceError) as info:
        _load(tmp_path, text + BUDGET)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_inception_weights_from_the_environment(tmp_path, monkeypatch):
    weights = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    weights.write_bytes(b"checked for existence only when the space is read")
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(weights))
    assert _load(tmp_path, "evaluation: {inception: true}\n" + BUDGET).evaluation.inception_weights == str(weights)
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV)
    with pytest.raises(SpaceError, match=INCEPTION_WEIGHTS_ENV):
        _load(tmp_path, "evaluation: {inception: true}\n" + BUDGET)
    assert _load(tmp_path, BUDGET).evaluation.inception_weights is None
