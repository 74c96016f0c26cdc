"""One feature extractor per study on a real multi-node Ray cluster (`ray start` processes on this machine): every
trial, whichever node it runs on, scores with the driver's classifier, and no node trains or caches one.

Each node and the driver have a classifier cache of their own, empty. The study is given a classifier
(--classifier) other than the shipped mnist5k one, so a trial that loaded its own would report another fingerprint.
"""
import math

import pytest
from mlflow.tracking import MlflowClient

from gan import names
from gan.data import load_dataset
from gan.metrics.classifier import CACHE_ENV, ClassifierWeights, TrainingRecipe, train_classifier
from processes import ray_nodes, run_study, study_runs

pytestmark = pytest.mark.slow

SPACE = """
name: extractors
dataset: mnist5k
fixed: {arch: mlp, z_dim: 8, g_width: 8, d_width: 8, g_depth: 1, d_depth: 1, batch_size: 16}
search_space: {k: {grid: [1]}}
search: grid
scheduler: fifo
metric: fid
mode: min
seeds_per_config: 2
budget: {steps: 200, eval_every: 100}
evaluation: {num_samples: 100, metrics: [fid], final: false}
resources: {cpus_per_trial: 1, max_concurrent: 2}
"""


def test_trials_on_two_nodes_score_with_the_drivers_classifier_and_no_node_trains_one(tmp_path):
    mnist5k = load_dataset("mnist5k")
    recipe = TrainingRecipe(epochs=1, widths=(2, 4), feature_dim=8)
    weights = ClassifierWeights.of(train_classifier(mnist5k, recipe), mnist5k, recipe)
    weights.save(tmp_path / "classifier.pt")
    caches = {name: tmp_path / f"cache-{name}" for name in ("driver", "head", "worker0", "worker1")}
    for cache in caches.values():
        cache.mkdir()
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)

    # the head holds no CPU: the two one-CPU trials run one on each worker node
    with ray_nodes(head=["--num-cpus=0"], workers=[["--num-cpus=1"], ["--num-cpus=1"]],
                   env={CACHE_ENV: str(caches["head"])},
                   worker_envs=[{CACHE_ENV: str(caches["worker0"])}, {CACHE_ENV: str(caches["worker1"])}]) as cluster:
        run_study(tmp_path, str(space), "--address", cluster.address, "--classifier", str(tmp_path / "classifier.pt"),
                  env={CACHE_ENV: str(caches["driver"])})
        workers = {cluster.node_ids["worker0"], cluster.node_ids["worker1"]}

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (parent,), children = study_runs(client)
    assert len(children) == 2 and {c.data.tags[names.STATUS_TAG] for c in children} == {names.COMPLETED}
    assert {c.data.tags[names.placement_tag("node_id")] for c in children} == workers
    # one network: the study's, its reference rows', and each trial's as the trial reported it
    assert parent.data.tags[names.CLASSIFIER_FINGERPRINT_TAG] == weights.fingerprint
    assert [c.data.tags[names.CLASSIFIER_FINGERPRINT_TAG] for c in children] == [weights.fingerprint] * 2
    assert parent.data.metrics[names.reference(names.CLASSIFIER_TEST_ACCURACY)] == weights.test_accuracy
    assert all(math.isfinite(c.data.metrics[names.FID]) for c in children)
    # the weights file travels with the study, for --resume on any machine
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "classifier")] == ["classifier/weights.pt"]
    # nothing trained or cached anywhere
    assert {name: sorted(p.name for p in cache.iterdir()) for name, cache in caches.items()} == \
        {name: [] for name in caches}
