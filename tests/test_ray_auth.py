"""Ray token authentication in the cluster recipes of deploy/ (issue 26, item 1: on by default).

What Ray (2.60) refuses without the cluster's token, against a real one-node cluster started the way
deploy/slurm_study.sbatch starts its head (`ray start --head --block`, RAY_AUTH_MODE=token, the token in a
0600 file named by RAY_AUTH_TOKEN_PATH), the dashboard on: a driver's connection (`ray.init(address=...)`),
a node joining, the Jobs API and `ray job submit`; with the token a driver and a job run to completion
(`deploy/ray_job_submit.sh` itself). Those tests are slow (marked one by one).

The fast ones: the recipes default to token mode (the KubeRay manifest's authOptions and env:
tests/test_kuberay_manifest.py); a node without the token it is told to use does not start; the SLURM recipe,
run with stubbed srun/scontrol/python, creates its token (0600 in a 0700 folder), hands it to every
`srun ... ray start` and to the driver and deletes it; ray_job_submit.sh (stubbed `ray`) finds the token where
Ray would or refuses; RAY_AUTH_MODE=disabled is announced in one line on stderr.

Every subprocess gets an explicit environment without the tester's Ray auth settings and with HOME in tmp_path,
so the real ~/.ray/auth_token is never read or written.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from components import missing_component
from processes import ROOT, _port_open, free_port, kill_tree, process_tree, processes_naming, wait_for

SBATCH = ROOT / "deploy" / "slurm_study.sbatch"
SUBMIT = ROOT / "deploy" / "ray_job_submit.sh"
MANIFEST = ROOT / "deploy" / "kuberay_rayjob.yaml"
VENV_BIN = Path(sys.executable).parent
OFF = "Ray token authentication is OFF:"
AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This process's environment without Ray auth settings (conftest sets RAY_AUTH_MODE=disabled), HOME in
    tmp_path (so ~/.ray/auth_token is never the tester's), this venv's `ray` and `python` first on PATH."""
    env = {key: value for key, value in os.environ.items() if key not in AUTH_VARIABLES}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), USER=env.get("USER", "tester"), RAY_USAGE_STATS_ENABLED="0",
               PATH=f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}")
    env.update(extra)
    return env


def write_token(folder: Path) -> Path:
    """A token as `ray get-auth-token --generate` makes one (secrets.token_hex(32)), mode 600 in a 700 folder."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / "auth_token"
    path.touch(mode=0o600)
    path.write_text(secrets.token_hex(32))
    return path


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def off_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if OFF in line]


# ---------------------------------------------------------------------------------------------------------------
# The recipes as text: token mode by default


def test_every_recipe_defaults_to_token_auth():
    sbatch, submit = SBATCH.read_text(), SUBMIT.read_text()
    for text in (sbatch, submit, MANIFEST.read_text()):
        assert "RAY_AUTH_MODE:-disabled" not in text
    assert "value: disabled" not in MANIFEST.read_text()  # its authOptions and env: tests/test_kuberay_manifest.py
    for text in (sbatch, submit):
        assert 'auth_mode="${RAY_AUTH_MODE:-token}"' in text and "export RAY_AUTH_MODE=token" in text
    # the SLURM job makes its token private: umask 077 for a new file and folder, chmod 700 on its own folder
    assert "umask 077" in sbatch and 'chmod 700 "$token_dir"' in sbatch
    assert 'export RAY_AUTH_TOKEN_PATH="$token_file"' in sbatch


def test_a_node_without_the_token_refuses_to_start(tmp_path):
    """What makes RAY_AUTH_MODE=token fail closed: a node told to use a token it does not have does not start."""
    temp_dir = tempfile.mkdtemp(prefix="rta", dir="/tmp")
    try:
        done = subprocess.run(["ray", "start", "--head", f"--port={free_port()}", "--num-cpus=1",
                               "--include-dashboard=false", f"--temp-dir={temp_dir}", "--disable-usage-stats"],
                              env=clean_env(tmp_path, RAY_AUTH_MODE="token"), capture_output=True, text=True,
                              timeout=120)
        assert done.returncode != 0 and "AuthenticationError" in done.stderr, done.stdout + done.stderr
        assert not (tmp_path / "home" / ".ray" / "auth_token").exists()  # `ray start` creates no token of its own
    finally:
        kill_tree([pid for found in processes_naming(temp_dir) for pid in process_tree(found)])
        shutil.rmtree(temp_dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------------
# deploy/slurm_study.sbatch with stubbed srun / scontrol / python: where the token goes

RECORDER = r'''
import json, os, stat, sys, time
from pathlib import Path

log, tool, args = sys.argv[1], sys.argv[2], sys.argv[3:]
record = {"tool": tool, "args": args, "mode": os.environ.get("RAY_AUTH_MODE"),
          "path": os.environ.get("RAY_AUTH_TOKEN_PATH"), "token_env": os.environ.get("RAY_AUTH_TOKEN")}
if record["path"] and os.path.exists(record["path"]):
    path = Path(record["path"])
    record.update(file_mode=stat.S_IMODE(path.stat().st_mode), dir_mode=stat.S_IMODE(path.parent.stat().st_mode),
                  owner=path.stat().st_uid == os.getuid(), token=path.read_text())
if tool == "python" and args[:1] == ["-"]:
    sys.stdin.read()
    # the recipe's wait for its nodes: here, until each `srun ... ray start` has been recorded
    deadline = time.time() + 20
    def started():
        calls = [json.loads(line) for line in open(log)]
        return sum(call["tool"] == "srun" and "start" in call["args"] for call in calls)
    while time.time() < deadline and started() < int(args[2]):
        time.sleep(0.05)
with open(log, "a") as file:
    file.write(json.dumps(record) + "\n")
if tool == "srun" and "hostname" in args:
    print("127.0.0.1")
'''


def fake_slurm_job(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """The SLURM recipe run as a two-node job whose srun, scontrol, squeue and python record what they were
    given (arguments, RAY_AUTH_* and the token file as they found it) instead of running it."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "calls.jsonl"
    log.touch()
    recorder = tmp_path / "recorder.py"
    recorder.write_text(RECORDER)
    for tool in ("srun", "scontrol", "squeue", "python"):
        stub = venv / "bin" / tool
        stub.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{recorder}" "{log}" "{tool}" "$@"\n')
        stub.chmod(0o755)
    (venv / "bin" / "scontrol").write_text('#!/bin/sh\n[ "$1" = show ] && printf "node1\\nnode2\\n"\nexit 0\n')
    (venv / "bin" / "activate").write_text(f'export PATH="{venv / "bin"}:$PATH"\n')
    job_env = clean_env(tmp_path, SHARED=str(tmp_path / "shared"), VENV=str(venv), SLURM_JOB_ID="4242",
                        SLURM_JOB_NODELIST="node[1-2]", SLURM_CPUS_PER_TASK="2", SLURM_GPUS_PER_TASK="0",
                        MLFLOW_URI=f"sqlite:///{tmp_path}/mlflow.db", **env)
    done = subprocess.run(["bash", str(SBATCH)], cwd=tmp_path, env=job_env, capture_output=True, text=True,
                          timeout=60)
    if done.returncode == 0:  # the `srun ... ray start &` steps may still be writing when the script exits
        wait_for(lambda: sum(1 for _ in open(log)) >= 5, 10, "every stubbed call")
    return done, [json.loads(line) for line in log.read_text().splitlines()]


def ray_steps(calls: list[dict]) -> list[dict]:
    """The `srun ... ray start` steps (head and workers) and the two python processes (the wait, the driver)."""
    starts = [call for call in calls if call["tool"] == "srun" and "ray" in call["args"]]
    pythons = [call for call in calls if call["tool"] == "python"]
    assert len(starts) == 2 and any("--head" in call["args"] for call in starts), calls  # head + one worker
    assert [call["args"][:2] for call in pythons] == [["-", pythons[0]["args"][1]], ["-m", "study.run"]], calls
    return starts + pythons


def test_the_slurm_job_creates_a_private_token_and_hands_it_to_every_node_and_the_driver(tmp_path):
    done, calls = fake_slurm_job(tmp_path)
    assert done.returncode == 0, done.stderr
    assert not off_lines(done.stderr)
    token_file = tmp_path / "shared" / ".ray-auth" / "job-4242"
    tokens = set()
    for step in ray_steps(calls):
        assert step["mode"] == "token" and step["path"] == str(token_file) and step["token_env"] is None, step
        assert step["file_mode"] == 0o600 and step["dir_mode"] == 0o700 and step["owner"], step
        tokens.add(step["token"])
    (token,) = tokens  # one token for the whole cluster
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert not token_file.exists()  # this job's token is gone with the job
    assert mode_of(token_file.parent) == 0o700


def test_the_slurm_job_uses_the_token_file_named_by_ray_auth_token_path(tmp_path):
    mine = tmp_path / "keys" / "ray_token"  # missing: created private, then kept for the clients
    done, calls = fake_slurm_job(tmp_path, RAY_AUTH_TOKEN_PATH=str(mine))
    assert done.returncode == 0, done.stderr
    assert {(step["path"], step["file_mode"], step["token"]) for step in ray_steps(calls)} == {
        (str(mine), 0o600, mine.read_text())}
    assert mode_of(mine) == 0o600 and mode_of(mine.parent) == 0o700
    assert not (tmp_path / "shared" / ".ray-auth").exists()

    # an existing file is used as it is, unless others can read it
    again, calls = fake_slurm_job(tmp_path / "again", RAY_AUTH_TOKEN_PATH=str(mine))
    assert again.returncode == 0 and {step["token"] for step in ray_steps(calls)} == {mine.read_text()}
    mine.chmod(0o644)
    refused, calls = fake_slurm_job(tmp_path / "refused", RAY_AUTH_TOKEN_PATH=str(mine))
    assert refused.returncode == 2 and "chmod 600" in refused.stderr and calls == []


def test_the_slurm_job_announces_the_opt_out_in_one_line(tmp_path):
    done, calls = fake_slurm_job(tmp_path, RAY_AUTH_MODE="disabled")
    assert done.returncode == 0, done.stderr
    assert len(off_lines(done.stderr)) == 1, done.stderr
    assert all(step["mode"] == "disabled" and step["path"] is None for step in ray_steps(calls))
    assert not (tmp_path / "shared" / ".ray-auth").exists()

    wrong, calls = fake_slurm_job(tmp_path / "wrong", RAY_AUTH_MODE="none")
    assert wrong.returncode == 2 and "must be token" in wrong.stderr and calls == []


# ---------------------------------------------------------------------------------------------------------------
# deploy/ray_job_submit.sh with a stubbed `ray`: which token it submits with


def submit_with_stub(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, dict | None]:
    stubs = tmp_path / "stubs"
    stubs.mkdir(parents=True)
    record = tmp_path / "ray_call.json"
    (stubs / "ray").write_text(
        f'#!{sys.executable}\nimport json, os, sys\n'
        f'json.dump({{"args": sys.argv[1:], **{{k: os.environ.get(k) for k in {list(AUTH_VARIABLES)!r}}}}}, '
        f'open({str(record)!r}, "w"))\n')
    (stubs / "ray").chmod(0o755)
    submit_env = clean_env(tmp_path, RAY_HEAD="head-0", MLFLOW_URI="http://mlflow:5000", STORAGE="/shared/x", **env)
    submit_env["PATH"] = f"{stubs}:{submit_env['PATH']}"
    done = subprocess.run(["bash", str(SUBMIT), "smoke.yaml"], cwd=ROOT, env=submit_env, capture_output=True,
                          text=True, timeout=30)
    return done, json.loads(record.read_text()) if record.exists() else None


def test_ray_job_submit_sh_uses_the_token_where_ray_looks_for_it(tmp_path):
    token_file = write_token(tmp_path / "keys")
    done, call = submit_with_stub(tmp_path / "path", RAY_AUTH_TOKEN_PATH=str(token_file))
    assert done.returncode == 0, done.stderr
    assert call["args"][:2] == ["job", "submit"] and call["RAY_AUTH_MODE"] == "token"
    assert call["RAY_AUTH_TOKEN_PATH"] == str(token_file) and not off_lines(done.stderr)

    done, call = submit_with_stub(tmp_path / "env", RAY_AUTH_TOKEN="0123abcd")
    assert done.returncode == 0 and (call["RAY_AUTH_MODE"], call["RAY_AUTH_TOKEN"]) == ("token", "0123abcd")

    write_token(tmp_path / "default" / "home" / ".ray")  # ~/.ray/auth_token (HOME is in tmp_path)
    done, call = submit_with_stub(tmp_path / "default")
    assert done.returncode == 0 and call["RAY_AUTH_MODE"] == "token", done.stderr


def test_ray_job_submit_sh_refuses_without_a_token(tmp_path):
    done, call = submit_with_stub(tmp_path / "none")
    assert done.returncode == 2 and call is None
    assert "no Ray auth token" in done.stderr and "RAY_AUTH_TOKEN_PATH" in done.stderr
    done, call = submit_with_stub(tmp_path / "missing", RAY_AUTH_TOKEN_PATH=str(tmp_path / "nowhere"))
    assert done.returncode == 2 and call is None and "not a readable, non-empty token file" in done.stderr


def test_ray_job_submit_sh_announces_the_opt_out_in_one_line(tmp_path):
    done, call = submit_with_stub(tmp_path, RAY_AUTH_MODE="disabled")
    assert done.returncode == 0, done.stderr
    assert len(off_lines(done.stderr)) == 1 and call["RAY_AUTH_MODE"] == "disabled"


# ---------------------------------------------------------------------------------------------------------------
# A real cluster with token authentication (slow)


class TokenCluster:
    def __init__(self, folder: Path):
        self.folder = folder
        self.token_file = write_token(folder / "keys")
        self.token = self.token_file.read_text()
        self.port, self.dashboard_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}"

    def env(self, **extra: str) -> dict[str, str]:
        """A client of the cluster with its token, as the recipes hand it out."""
        return clean_env(self.folder, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(self.token_file), **extra)

    def http(self, path: str, token: str | None = None, data: bytes | None = None) -> tuple[int, str]:
        request = urllib.request.Request(self.dashboard + path, data=data)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError as error:
            return 0, str(error)


@pytest.fixture(scope="module")
def token_cluster(tmp_path_factory):
    """A one-node cluster as deploy/slurm_study.sbatch starts its head (`ray start --head --block`,
    RAY_AUTH_MODE=token, RAY_AUTH_TOKEN_PATH to a 0600 file), with its dashboard (the Jobs API)."""
    from ray._private.utils import get_dashboard_dependency_error

    if get_dashboard_dependency_error() is not None:
        missing_component("ray[default]", f"Ray's Jobs API needs ray[default]: {get_dashboard_dependency_error()}")
    cluster = TokenCluster(tmp_path_factory.mktemp("token_cluster"))
    temp_dir = tempfile.mkdtemp(prefix="rta", dir="/tmp")  # short: unix socket paths are limited to 107 characters
    log_path = cluster.folder / "head.log"
    head = subprocess.Popen(
        ["ray", "start", "--head", "--block", f"--port={cluster.port}", "--node-ip-address=127.0.0.1",
         "--num-cpus=1", "--num-gpus=0", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={cluster.dashboard_port}", f"--dashboard-agent-listen-port={free_port()}",
         f"--ray-client-server-port={free_port()}", f"--temp-dir={temp_dir}", "--disable-usage-stats"],
        env=cluster.env(), stdout=open(log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: (_port_open(cluster.port) and cluster.http("/api/gcs_healthz")[0] == 200)
                 or head.poll() is not None, 180, "the Ray head and its dashboard")
        assert head.poll() is None, log_path.read_text()[-3000:]
        yield cluster
    finally:
        pids = process_tree(head.pid)
        for found in processes_naming(temp_dir):
            pids += process_tree(found)
        kill_tree(pids)
        head.wait(timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)


DRIVER = ("import ray; ray.init(address={address!r}, log_to_driver=False); "
          "print('RESULT', ray.get(ray.remote(lambda: 1).remote()))")


def run(command: list[str], env: dict[str, str], timeout: float = 120, cwd: Path | None = None):
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_a_driver_or_node_without_the_token_is_refused(token_cluster, tmp_path):
    driver = [sys.executable, "-c", DRIVER.format(address=token_cluster.address)]
    no_token = clean_env(tmp_path, RAY_AUTH_MODE="disabled")  # sends no token at all
    wrong_token = clean_env(tmp_path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    node_dir = tempfile.mkdtemp(prefix="rta", dir="/tmp")
    node = ["ray", "start", f"--address={token_cluster.address}", "--num-cpus=1", "--disable-usage-stats",
            f"--temp-dir={node_dir}"]
    try:
        with ThreadPoolExecutor(3) as pool:  # each waits ~20 s for the GCS before it gives up: all at once
            refused = list(pool.map(lambda args: run(*args),
                                    [(driver, no_token), (driver, wrong_token), (node, no_token)]))
    finally:  # a node that did join would run on after its `ray start`
        kill_tree([pid for found in processes_naming(node_dir) for pid in process_tree(found)])
        shutil.rmtree(node_dir, ignore_errors=True)
    for done in refused:
        output = done.stdout + done.stderr
        assert done.returncode != 0 and "RESULT" not in output, output[-3000:]
        # refused by the cluster's GCS, not by the client
        assert "InvalidAuthToken" in output or "Authentication token is missing or incorrect" in output, output[-3000:]
    # and RAY_AUTH_MODE=token without any token stops in the client, before it connects
    no_token_at_all = run(driver, clean_env(tmp_path, RAY_AUTH_MODE="token"))
    assert no_token_at_all.returncode != 0 and "AuthenticationError" in no_token_at_all.stderr


@pytest.mark.slow
def test_the_jobs_api_and_ray_job_submit_without_the_token_are_refused(token_cluster, tmp_path):
    assert token_cluster.http("/api/jobs/")[0] == 401  # no token
    assert token_cluster.http("/api/jobs/", token=secrets.token_hex(32))[0] == 403  # a wrong one
    submission = json.dumps({"entrypoint": "echo pwned"}).encode()
    assert token_cluster.http("/api/jobs/", data=submission)[0] == 401
    submit = ["ray", "job", "submit", "--address", token_cluster.dashboard, "--no-wait", "--", "echo", "pwned"]
    no_token = run(submit, clean_env(tmp_path, RAY_AUTH_MODE="disabled"))
    assert no_token.returncode != 0 and "Unauthorized" in no_token.stderr, no_token.stderr[-2000:]
    wrong = run(submit, clean_env(tmp_path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32)))
    assert wrong.returncode != 0 and "Forbidden" in wrong.stderr, wrong.stderr[-2000:]
    status, jobs = token_cluster.http("/api/jobs/", token=token_cluster.token)
    assert status == 200 and "pwned" not in jobs  # nothing was submitted


@pytest.mark.slow
def test_with_the_token_a_driver_and_a_submitted_job_run_to_completion(token_cluster, tmp_path):
    done = run([sys.executable, "-c", DRIVER.format(address=token_cluster.address)], token_cluster.env())
    assert done.returncode == 0 and "RESULT 1" in done.stdout, done.stdout[-2000:] + done.stderr[-3000:]

    # deploy/ray_job_submit.sh with the cluster's token file: the job (study.run's --help) runs and succeeds
    env = clean_env(tmp_path, RAY_AUTH_TOKEN_PATH=str(token_cluster.token_file), RAY_HEAD="127.0.0.1",
                    RAY_DASHBOARD_PORT=str(token_cluster.dashboard_port), MLFLOW_URI=f"sqlite:///{tmp_path}/mlflow.db",
                    STORAGE=str(tmp_path / "ray"))

    def submitted():
        done = run(["bash", str(SUBMIT), "smoke.yaml", "--help"], env, cwd=ROOT)
        output = done.stdout + done.stderr
        if "No available agent to submit job" in output:  # the head's job agent is still starting
            return None
        assert done.returncode == 0 and not off_lines(done.stderr), output[-3000:]
        return re.search(r"Job '(raysubmit_\w+)' submitted successfully", output).group(1)

    job = wait_for(submitted, 120, "the Ray job agent to take the job", interval=3)

    def finished():
        status, answer = token_cluster.http(f"/api/jobs/{job}", token=token_cluster.token)
        assert status == 200, answer
        state = json.loads(answer)["status"]
        return state if state in ("SUCCEEDED", "FAILED", "STOPPED") else None

    state = wait_for(finished, 180, f"job {job} to finish", interval=1)
    status, logs = token_cluster.http(f"/api/jobs/{job}/logs", token=token_cluster.token)
    assert state == "SUCCEEDED" and "usage: python -m study.run" in json.loads(logs)["logs"], logs[-3000:]
