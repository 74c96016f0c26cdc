"""One yardstick everywhere: the classifier travels as weights named by a fingerprint, mnist5k's ships with the
package, trials build theirs from the driver's weights, and a report refuses runs scored by different networks."""
import pickle
from dataclasses import asdict, replace

import pytest
import torch

from gan import names
from gan.data import DataSplits, Split, load_dataset
from gan.metrics import classifier as classifier_module
from gan.metrics.classifier import (CACHE_ENV, DEFAULT_RECIPE, ClassifierMismatch, ClassifierWeights, LeNet,
                                    TrainingRecipe, load_or_train_weights, shipped_weights_path, train_classifier,
                                    weights_fingerprint)
from study_store import Trial, fill_study
from test_extractor_cluster import SPACE

# the network every machine scores mnist5k and Stacked MNIST with: changing the shipped file changes this line
SHIPPED_MNIST5K_FINGERPRINT = "9415f0c7e45ab1cc"
TINY_RECIPE = TrainingRecipe(epochs=1, batch_size=64, widths=(2, 4), feature_dim=8)


def no_training(*args, **kwargs):
    raise AssertionError("a classifier was trained")


@pytest.fixture(scope="module")
def tiny_weights(mnist5k):
    """A classifier of mnist5k by a one-epoch recipe: other weights than the shipped ones, for the same data."""
    return ClassifierWeights.of(train_classifier(mnist5k, TINY_RECIPE), mnist5k, TINY_RECIPE)


def test_fingerprint_changes_with_one_weight_but_not_with_dict_order_layout_or_device():
    state = LeNet((1, 28, 28), 10, feature_dim=8, widths=(2, 4)).state_dict()
    fingerprint = weights_fingerprint(state)
    assert len(fingerprint) == 16 and int(fingerprint, 16) >= 0
    assert weights_fingerprint(dict(reversed(list(state.items())))) == fingerprint
    # the same values in a transposed memory layout
    assert weights_fingerprint({**state, "fc.0.weight": state["fc.0.weight"].t().contiguous().t()}) == fingerprint
    if torch.cuda.is_available():
        assert weights_fingerprint({k: v.cuda() for k, v in state.items()}) == fingerprint
    nudged = state["head.bias"].clone()
    nudged[3] = torch.nextafter(nudged[3], torch.tensor(1.0))  # one weight, by one unit in the last place
    assert weights_fingerprint({**state, "head.bias": nudged}) != fingerprint
    assert weights_fingerprint({**state, "head.bias": state["head.bias"].double()}) != fingerprint


def test_mnist5k_and_stacked_mnist_score_with_the_shipped_network_and_never_train(mnist5k, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(classifier_module, "train_classifier", no_training)
    digits = load_or_train_weights(mnist5k)
    stacked = load_or_train_weights(load_dataset("stacked_mnist"))
    assert digits.fingerprint == stacked.fingerprint == SHIPPED_MNIST5K_FINGERPRINT
    assert not (tmp_path / "cache").exists()  # no cache read or written
    assert digits.build().fingerprint == SHIPPED_MNIST5K_FINGERPRINT


def test_the_shipped_file_is_the_default_recipe_on_mnist5k_and_reproduces_its_accuracy(mnist5k):
    path = shipped_weights_path("mnist5k")
    saved = torch.load(path, map_location="cpu", weights_only=True)  # plain tensors and numbers, no pickled code
    assert saved["fingerprint"] == SHIPPED_MNIST5K_FINGERPRINT and path.stat().st_size < 1_500_000
    assert {k: tuple(v) if isinstance(v, list) else v for k, v in saved["recipe"].items()} == asdict(DEFAULT_RECIPE)
    assert (saved["dataset"], saved["data_fingerprint"]) == ("mnist5k", mnist5k.fingerprint())
    assert all(t.dtype == torch.float32 for t in saved["state_dict"].values())
    weights = ClassifierWeights.load(path)
    assert weights.test_accuracy >= 0.98
    with torch.no_grad():
        predicted = weights.build().model(mnist5k.test.images).argmax(1)
    assert abs(float((predicted == mnist5k.test.labels).double().mean()) - weights.test_accuracy) <= 0.002


def test_the_shipped_file_refuses_other_training_data(mnist5k):
    train = mnist5k.train
    other = replace(mnist5k, train=Split(train.images[:-1], train.labels[:-1]))  # one digit fewer
    with pytest.raises(ClassifierMismatch, match="not on this mnist5k"):
        load_or_train_weights(other)


def test_a_weights_file_round_trips_and_refuses_a_changed_weight(tiny_weights, mnist5k, tmp_path):
    path = tmp_path / "tiny.pt"
    tiny_weights.save(path)
    again = ClassifierWeights.load(path)
    assert again == tiny_weights and again.fingerprint == tiny_weights.fingerprint != SHIPPED_MNIST5K_FINGERPRINT
    images = mnist5k.test.images[:50]
    with torch.no_grad():
        assert torch.equal(again.build().model.features(images), tiny_weights.build().model.features(images))
    again.check_data(mnist5k)
    saved = torch.load(path, weights_only=True)
    saved["state_dict"]["head.bias"][0] += 1  # the file still names the old fingerprint
    torch.save(saved, path)
    with pytest.raises(ClassifierMismatch, match="changed or damaged"):
        ClassifierWeights.load(path)
    path.write_bytes(b"not a torch file")
    with pytest.raises(ClassifierMismatch, match="cannot read"):
        ClassifierWeights.load(path)


def test_the_command_trains_by_the_recipe_and_writes_a_file_named_by_its_fingerprint(tmp_path, monkeypatch, capsys,
                                                                                    mnist5k):
    from gan.metrics import train_classifier as command

    monkeypatch.setattr(command, "DEFAULT_RECIPE", TINY_RECIPE)
    assert command.main(["--dataset", "stacked_mnist", "--out", str(tmp_path / "w.pt")]) == 0
    weights = ClassifierWeights.load(tmp_path / "w.pt")
    assert weights.fingerprint in capsys.readouterr().out
    # Stacked MNIST's classifier is that of its channel digits, with the recipe's shape
    assert (weights.dataset, weights.data_fingerprint) == ("mnist5k", mnist5k.fingerprint())
    assert weights.widths == TINY_RECIPE.widths and weights.recipe == asdict(replace(TINY_RECIPE, widths=[2, 4]))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))  # without --out: where a driver here looks first
    monkeypatch.setattr(command, "train_classifier", lambda splits, recipe, device: weights.build())
    assert command.main(["--dataset", "mnist5k"]) == 0
    assert [p.name for p in (tmp_path / "cache").iterdir()] == \
        [classifier_module.cache_path(mnist5k, TINY_RECIPE).name]
    with pytest.raises(SystemExit) as exit_info:
        command.main(["--dataset", "imagenet"])
    assert exit_info.value.code == 2


def test_a_trial_builds_the_drivers_classifier_without_training_or_a_cache(tiny_weights, tmp_path, monkeypatch):
    from study import trial

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(classifier_module, "train_classifier", no_training)
    monkeypatch.setattr(classifier_module, "load_or_train_weights", no_training)
    travelled = pickle.loads(pickle.dumps(tiny_weights))  # as Tune hands the settings to a trial
    data, built = trial._cached_data_and_classifier("mnist5k", None, travelled, "cpu", None)
    assert built.fingerprint == tiny_weights.fingerprint != SHIPPED_MNIST5K_FINGERPRINT
    assert data.name == "mnist5k" and not (tmp_path / "cache").exists()
    # the next trial in the same worker process: the same network, not built again
    assert trial._cached_data_and_classifier("mnist5k", None, travelled, "cpu", None)[1] is built


# --- the driver: one classifier per study, recorded on the parent run -----------------------------------------
def test_a_resumed_study_scores_with_its_own_logged_weights_and_refuses_another(tiny_weights, mnist5k, tmp_path,
                                                                               monkeypatch):
    from mlflow.tracking import MlflowClient

    from study.extractors import log_extractors, study_classifier

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("study", artifact_location=(tmp_path / "artifacts").as_uri())
    run_id = client.create_run(experiment).info.run_id
    log_extractors(client, run_id, tiny_weights, "0123456789abcdef")
    parent = client.get_run(run_id)
    assert parent.data.tags[names.CLASSIFIER_FINGERPRINT_TAG] == tiny_weights.fingerprint
    assert parent.data.tags[names.INCEPTION_FINGERPRINT_TAG] == "0123456789abcdef"
    # resumed on a machine whose own classifier would be another network: the study's weights come back
    monkeypatch.setattr("study.extractors.load_or_train_weights", no_training)
    assert study_classifier(["fid"], mnist5k, parent=parent, tracking_uri=uri).fingerprint == tiny_weights.fingerprint
    assert study_classifier(["discriminator"], mnist5k, parent=parent, tracking_uri=uri) is None
    shipped = shipped_weights_path("mnist5k")
    with pytest.raises(ClassifierMismatch, match=f"scored by classifier {tiny_weights.fingerprint}"):
        study_classifier(["fid"], mnist5k, str(shipped), parent=parent, tracking_uri=uri)


def test_a_classifier_file_of_other_data_is_refused_before_ray_starts(tiny_weights, tmp_path, capsys):
    from study.run import main

    path = tmp_path / "digits.pt"
    replace(tiny_weights, data_fingerprint="0" * 16).save(path)
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)  # a study scored by fid
    status = main(["--space", str(space), "--classifier", str(path), "--tracking-uri", f"sqlite:///{tmp_path}/m.db",
                   "--storage-path", str(tmp_path / "ray"), "--address", "127.0.0.1:1"])
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(error) == 1 and "training split 0000000000000000" in error[0], error
    assert not (tmp_path / "ray").exists()


def test_the_inception_weights_are_named_by_the_fingerprint_of_their_tensors(tmp_path):
    from types import SimpleNamespace

    from study.extractors import inception_fingerprint

    state = {"Conv2d_1a_3x3.conv.weight": torch.rand(4, 3, 3, 3), "fc.bias": torch.rand(8)}
    torch.save(state, tmp_path / "inception.pth")
    fingerprint = inception_fingerprint(str(tmp_path / "inception.pth"))
    assert fingerprint == weights_fingerprint(state) and inception_fingerprint(None) is None
    resumed = SimpleNamespace(data=SimpleNamespace(tags={names.INCEPTION_FINGERPRINT_TAG: "0123456789abcdef"}))
    with pytest.raises(ClassifierMismatch, match="Inception weights 0123456789abcdef"):
        inception_fingerprint(str(tmp_path / "inception.pth"), resumed)


# --- the report: one classifier per study -----------------------------------------------------------------------
def scored_by(tmp_path, *fingerprints, study_fingerprint=None):
    trials = [Trial(params={"arch": "mlp", "g_width": 8, "d_width": 8}, final={names.FID: 10.0 + i},
                    tags={names.CLASSIFIER_FINGERPRINT_TAG: f} if f else {}) for i, f in enumerate(fingerprints)]
    uri, client, parent = fill_study(tmp_path, "study", trials, with_grids=False)
    if study_fingerprint:
        client.set_tag(parent, names.CLASSIFIER_FINGERPRINT_TAG, study_fingerprint)
    return uri


def test_the_report_refuses_to_pool_runs_scored_by_different_classifiers(tmp_path, capsys):
    from reports.cli import main
    from reports.load import load_study

    uri = scored_by(tmp_path / "mixed", "aaaa", "aaaa", "bbbb", study_fingerprint="aaaa")
    capsys.readouterr()
    assert main(["--experiment", "study", "--tracking-uri", uri, "--no-log", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "2 different classifiers (aaaa: 2 trial(s) and the study; bbbb: 1 trial(s))" in error[0]
    # the trials agree, the study's reference rows were scored by another network
    with pytest.raises(Exception, match="2 different classifiers"):
        load_study(scored_by(tmp_path / "reference", "aaaa", "aaaa", study_fingerprint="cccc"), "study")
    # one network, and runs from before fingerprints were recorded: one study
    assert len(load_study(scored_by(tmp_path / "one", "aaaa", None, study_fingerprint="aaaa"), "study").trials) == 2


def test_the_report_header_names_the_studys_classifier(tmp_path):
    from reports.load import load_study
    from reports.tables import header

    rows = dict(header(load_study(scored_by(tmp_path, "aaaa", study_fingerprint="aaaa"), "study")))
    assert rows["feature extractors"] == "classifier aaaa"
