"""deploy/kuberay_rayjob.yaml cannot run here (no Kubernetes) and KubeRay's CRD is not on the package registries
this project installs from, so this is the check that is possible: the manifest has the fields KubeRay's RayJob
(ray.io/v1) requires, and its entrypoint is a command line study.run accepts, with a space that ships."""
import shlex

import yaml

from processes import ROOT
from study.run import parse_args
from study.space import resolve_space_path

MANIFEST = ROOT / "deploy" / "kuberay_rayjob.yaml"


def test_the_rayjob_has_the_fields_kuberay_requires():
    job = yaml.safe_load(MANIFEST.read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    cluster = job["spec"]["rayClusterSpec"]
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        assert "rayStartParams" in group and group["template"]["spec"]["containers"]
        for container in group["template"]["spec"]["containers"]:
            assert container["name"] and container["image"]
            env = {variable["name"] for variable in container["env"]}
            assert "RAY_AUTH_MODE" in env  # the same in every Ray process
    for group in cluster["workerGroupSpecs"]:
        assert group["groupName"] and group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def test_the_entrypoint_is_a_study_run_command_line_with_a_shipped_space():
    words = shlex.split(yaml.safe_load(MANIFEST.read_text())["spec"]["entrypoint"])
    assert words[:3] == ["python", "-m", "study.run"]
    args = parse_args(words[3:])  # exits with status 2 on an unknown option
    assert resolve_space_path(args.space).exists()
    assert args.storage_path.startswith("s3://") and args.tracking_uri.startswith("http")


def test_token_authentication_is_on_in_every_ray_container():
    """KubeRay >= 1.5.1 (RayClusterSpec.authOptions, ray.io/v1) creates a Secret with a random token and sets
    RAY_AUTH_TOKEN from it in every Ray container, the wait-gcs-ready init containers and the job submitter; the
    explicit RAY_AUTH_MODE=token makes an operator without authOptions fail closed (a Ray node told to use a token
    it lacks does not start: tests/test_ray_auth.py) rather than start an open cluster."""
    cluster = yaml.safe_load(MANIFEST.read_text())["spec"]["rayClusterSpec"]
    assert cluster["authOptions"] == {"mode": "token"}
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        for container in group["template"]["spec"]["containers"]:
            env = {variable["name"]: variable for variable in container["env"]}
            assert env["RAY_AUTH_MODE"]["value"] == "token"
            assert "RAY_AUTH_TOKEN" not in env  # KubeRay's, from its Secret: never a literal in the manifest
