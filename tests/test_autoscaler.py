"""Ray's own autoscaler adds the node a study's trials need, and removes it when the study is done.

The cluster: a head without GPUs, started as Ray's "Testing Autoscaling Locally" describes
(`RAY_FAKE_CLUSTER=1 ray start --head --autoscaling-config=…` with the format of Ray's
fake_multi_node/example.yaml): its autoscaler launches worker nodes as Ray processes on this machine.
Its one worker node type declares 1 CPU and 1 GPU that no device backs. Each trial asks for half a GPU,
so no running node can hold one: the driver says once that it waits for the autoscaler, which launches a
GPU node, where both trials run and complete; the idle node is removed after the study.
"""
import json
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from processes import finish_study, free_port, ray_nodes, start_study, study_runs, tiny_space, wait_for
from study.trial import LOGICAL_GPUS_ENV

pytestmark = pytest.mark.slow  # starts Ray clusters and runs studies

IDLE_TIMEOUT_MINUTES = 0.1  # an idle worker node is removed 6 s after its last task


def autoscaling_config(port: int) -> dict:
    """Ray's fake_multi_node/example.yaml with our node types (the wheel does not ship the file)."""
    return {
        "cluster_name": "gan_study_fake", "max_workers": 1, "upscaling_speed": 1.0,
        "idle_timeout_minutes": IDLE_TIMEOUT_MINUTES,
        "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                     "disable_launch_config_check": True, "gcs_address": f"127.0.0.1:{port}"},
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 1, "GPU": 0}, "node_config": {}, "max_workers": 0},
            "ray.worker.gpu": {"resources": {"CPU": 1, "GPU": 1, "object_store_memory": 200_000_000},
                               "node_config": {}, "min_workers": 0, "max_workers": 1},
        },
        "head_node_type": "ray.head.default", "auth": {}, "docker": {}, "file_mounts": {},
        "cluster_synced_files": [], "file_mounts_sync_continuously": False, "rsync_exclude": [], "rsync_filter": [],
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }


@pytest.fixture
def autoscaling_cluster(tmp_path):
    port = free_port()
    config = tmp_path / "autoscaling.json"
    config.write_text(json.dumps(autoscaling_config(port)))
    with ray_nodes(head=["--num-cpus=1", "--num-gpus=0", f"--autoscaling-config={config}"], port=port,
                   # the fake provider's GPU node declares a GPU it does not have: its trials train on the CPU
                   env={"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1", LOGICAL_GPUS_ENV: "1"}) as cluster:
        yield cluster


def test_the_autoscaler_adds_a_gpu_node_for_the_trials_and_removes_it_after_the_study(autoscaling_cluster, tmp_path):
    import ray

    space = tiny_space(tmp_path, steps=200, eval_every=50, seeds=2)
    driver = None
    ray.init(address=autoscaling_cluster.address, log_to_driver=False)
    try:
        def gpu_nodes():
            return {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU")}

        # before the study: the head alone (what the trials run on below is a node the autoscaler added for them)
        before_study = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        assert before_study == {autoscaling_cluster.node_ids["head"]} and not gpu_nodes()
        started = time.time()
        driver = start_study(tmp_path, space, "--address", autoscaling_cluster.address, "--gpus-per-trial", "0.5",
                             "--cpus-per-trial", "0.5")
        (added_id,) = wait_for(gpu_nodes, 240, "the autoscaler's GPU node")
        added = time.time()
        finish_study(driver, tmp_path, timeout=300)
        finished = time.time()
        wait_for(lambda: not gpu_nodes(), 120, "the idle GPU node's removal", interval=1)
        removed = time.time()
        remaining = [n for n in ray.nodes() if n["Alive"]]
    finally:
        ray.shutdown()
        if driver is not None and driver.poll() is None:  # a wait above failed: the study's driver goes too
            driver.kill()
            driver.wait()
    monitor = Path(autoscaling_cluster.temp_dir, "session_latest", "logs", "monitor.log")
    events = [line for line in monitor.read_text().splitlines() if "Adding" in line or "Terminating" in line]
    print("\nautoscaler (monitor.log): " + "\n".join(events))

    log = (tmp_path / "driver.log").read_text()
    waiting = [line for line in log.splitlines() if "waiting for the autoscaler to add a node" in line]
    print(f"\nautoscaler timeline (t=0: driver started): {waiting!r}; GPU node {added_id[:8]} alive at "
          f"t={added - started:.0f} s; study done at t={finished - started:.0f} s; node removed by "
          f"t={removed - started:.0f} s")
    assert len(waiting) == 1 and "each trial asks for 0.5 CPUs and 0.5 GPUs" in waiting[0], log[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (parent,), children = study_runs(client)
    assert parent.data.tags["gan_study.status"] == "completed" and len(children) == 2
    # both ran on the node the autoscaler launched, which did not exist when the study started, each on the GPU id
    # Ray gave it (what happened, not when: no clock is compared on a loaded machine)
    assert added_id not in before_study
    for child in children:
        assert child.data.tags["gan_study.status"] == "completed"
        assert child.data.tags["gan_study.node_id"] == added_id and child.data.tags["gan_study.gpu_ids"] == "0"
    assert [n["NodeID"] for n in remaining] == [autoscaling_cluster.node_ids["head"]]
