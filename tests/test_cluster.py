"""Studies on a real multi-node Ray cluster (`ray start` processes on this machine) joined with --address.

The cluster: a head node declaring 2 CPUs and 2 GPUs (this machine has no GPU, so Ray hands
out GPU ids that no CUDA device backs) and a worker node with 2 CPUs and no GPU.
"""
import pytest
from mlflow.tracking import MlflowClient

from processes import ray_cluster, run_study, study_runs, tiny_space
from study.trial import LOGICAL_GPUS_ENV


@pytest.fixture(scope="module")
def cluster():
    # the GPUs are declared, not real: the nodes say so (study.trial.LOGICAL_GPUS_ENV), so trials train on the CPU
    # instead of ending as errored for want of CUDA
    with ray_cluster(head=["--num-cpus=2", "--num-gpus=2"], workers=[["--num-cpus=2"]],
                     env={LOGICAL_GPUS_ENV: "1"}) as address:
        yield address


def test_trials_run_on_both_nodes_of_a_two_node_cluster(cluster, tmp_path):
    # 2 CPUs per trial: each node holds one trial, so two trials at once need both nodes
    space = tiny_space(tmp_path, steps=200, eval_every=100, seeds=2)
    run_study(tmp_path, space, "--address", cluster, "--cpus-per-trial", "2", "--max-concurrent", "2")

    parents, children = study_runs(MlflowClient(f"sqlite:///{tmp_path}/mlflow.db"))
    assert len(parents) == 1 and len(children) == 2
    assert {c.data.tags["gan_study.status"] for c in children} == {"completed"}
    node_ids = {c.data.tags["gan_study.node_id"] for c in children}
    assert len(node_ids) == 2, node_ids


def test_half_gpu_trials_pack_four_on_two_declared_gpus_and_fall_back_to_cpu(cluster, tmp_path):
    space = tiny_space(tmp_path, steps=600, eval_every=100, seeds=4)
    run_study(tmp_path, space, "--address", cluster, "--gpus-per-trial", "0.5", "--cpus-per-trial", "0.5",
              "--max-concurrent", "4")

    parents, children = study_runs(MlflowClient(f"sqlite:///{tmp_path}/mlflow.db"))
    assert len(children) == 4 and parents[0].data.params["gpus_per_trial"] == "0.5"
    # each trial sees the one GPU id Ray assigned to it: two trials share GPU 0, two share GPU 1
    assert sorted(c.data.tags["gan_study.gpu_ids"] for c in children) == ["0", "0", "1", "1"]
    # no CUDA device behind the ids, as the nodes declared: every trial trained on the CPU, and completed
    assert {c.data.tags["gan_study.device"] for c in children} == {"cpu"}
    assert {c.data.tags["gan_study.status"] for c in children} == {"completed"}
    # four at once: every trial's run started (resources acquired) before any of them ended
    starts = [c.info.start_time for c in children]
    ends = [c.info.end_time for c in children]
    assert max(starts) < min(ends), (starts, ends)
