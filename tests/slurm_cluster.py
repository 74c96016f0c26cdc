"""A one-node SLURM on this machine for the batch-recipe tests: its own munged (MUNGE authentication on a socket
of its own), slurmctld and slurmd in the foreground, configured in a folder under /tmp and gone afterwards.

Needs the OS's slurm-wlm and munge packages (.ci/run installs them) and root (the daemons run as root here);
the calling test is skipped where either is missing (and fails in CI: tests/components.py).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from processes import free_port, process_tree, wait_for

PROGRAMS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")

CONFIG = """\
ClusterName=gan-study-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={folder}/munge.sock
CredType=cred/munge
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
# no cgroups in a container: processes are tracked through their parents
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
# scancel: SIGTERM, then SIGKILL after this long (the driver saves the study meanwhile)
KillWait=60
MinJobAge=600
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def skip_unless_slurm_can_run() -> None:
    """Skips the calling test where SLURM or MUNGE is missing or this is not root; fails it in CI (which runs as
    root and installs both), naming what is missing."""
    from components import missing_component

    missing = [program for program in PROGRAMS if shutil.which(program) is None]
    if missing:
        missing_component("SLURM/MUNGE",
                          f"SLURM is not installed ({', '.join(missing)} missing; apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        missing_component("root for SLURM", "the test's one-node SLURM runs its daemons as root")


def _daemon(folder: Path, name: str, command: list[str]) -> subprocess.Popen:
    log = open(folder / f"{name}.out", "w")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop_all(processes: list[subprocess.Popen]) -> None:
    trees = [pid for process in processes if process.poll() is None for pid in process_tree(process.pid)]
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            pass
    for pid in trees:  # slurmstepd and what it ran, if a job outlived its daemon
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def slurm_cluster(cpus: int | None = None) -> Iterator[dict[str, str]]:
    """munged + slurmctld + slurmd, one node of `cpus` CPUs (default: this machine's); yields the environment
    (SLURM_CONF) that sbatch, squeue, scontrol and scancel need to find it."""
    skip_unless_slurm_can_run()
    folder = Path(tempfile.mkdtemp(prefix="slurm", dir="/tmp"))  # short: munge's socket path
    folder.chmod(0o755)  # munged wants its socket's folder reachable by everyone
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    processes: list[subprocess.Popen] = []
    env = {"SLURM_CONF": str(folder / "slurm.conf")}
    try:
        subprocess.run(["mungekey", "--create", f"--keyfile={folder / 'munge.key'}"], check=True, capture_output=True)
        (folder / "munge.key").chmod(0o600)
        processes.append(_daemon(folder, "munged", [
            "munged", "--foreground", "--force", f"--socket={folder / 'munge.sock'}",
            f"--key-file={folder / 'munge.key'}", f"--pid-file={folder / 'munged.pid'}",
            f"--log-file={folder / 'munged.log'}", f"--seed-file={folder / 'munged.seed'}"]))
        wait_for(lambda: (folder / "munge.sock").exists(), 30, "munged's socket")
        host = socket.gethostname().split(".")[0]
        (folder / "slurm.conf").write_text(CONFIG.format(host=host, folder=folder, ctld_port=free_port(),
                                                          slurmd_port=free_port(), cpus=cpus or os.cpu_count()))
        conf = str(folder / "slurm.conf")
        processes.append(_daemon(folder, "slurmctld", ["slurmctld", "-D", "-c", "-f", conf]))
        time.sleep(1)
        processes.append(_daemon(folder, "slurmd", ["slurmd", "-D", "-f", conf, "-N", host]))

        def node_idle() -> bool:
            for process in processes:
                assert process.poll() is None, (folder / "slurmctld.log").read_text()[-2000:] + \
                    (folder / "slurmd.log").read_text()[-2000:]
            done = subprocess.run(["sinfo", "-h", "-o", "%t"], env={**os.environ, **env}, capture_output=True,
                                  text=True)
            return done.stdout.strip() == "idle"

        wait_for(node_idle, 60, "the SLURM node to be idle", interval=1)
        yield env
    finally:
        subprocess.run(["scancel", "--full", "--user=root"], env={**os.environ, **env}, capture_output=True)
        _stop_all(list(reversed(processes)))
        shutil.rmtree(folder, ignore_errors=True)
