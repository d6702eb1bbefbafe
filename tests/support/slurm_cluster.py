"""A throwaway SLURM cluster on this one host: a controller and two `slurmd` posing as nodes
n1 and n2, all state in a temporary folder, stopped by PID.

Debian's slurm-wlm 22.05 + munge, run as root (SlurmUser root, no accounting). The traps it
handles are those of ../shared/ENVIRONMENT.md "SLURM on one machine": n1/n2 must resolve (an
/etc/hosts line, else Lightning's rendezvous hangs 30 minutes), submitit needs job states that
`sacct` gives only with accounting (a stand-in answering from `squeue -t all` goes on the PATH
of the processes that use the cluster, never system-wide), job ids restart when the state
folder is wiped (FirstJobId from the clock), finished jobs stay visible (MinJobAge).

`python -m tests.support.slurm_cluster start <folder>` / `stop <folder>` for a shell.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

INSTALL_COMMAND = (
    "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
    "--no-install-recommends slurm-wlm munge"
)
BINARIES = ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "scontrol", "scancel")
NODES = ("n1", "n2")
PARTITION = "debug"
HOSTS_LINE = "127.0.0.1 n1 n2  # genlab test SLURM cluster"

SACCT_STANDIN = """#!/bin/sh
# sacct stand-in for a cluster without accounting: submitit reads job states from it.
# Answers `sacct -o JobID,State,NodeList --parsable2 -j ID ...` from squeue (MinJobAge keeps
# finished jobs listed).
ids=""
while [ $# -gt 0 ]; do
  case "$1" in -j) shift; ids="${ids:+$ids,}$1";; esac
  shift
done
echo "JobID|State|NodeList"
if [ -n "$ids" ]; then
  squeue -h -t all -j "$ids" -o '%i|%T|%N' 2>/dev/null
else
  squeue -h -t all -o '%i|%T|%N' 2>/dev/null
fi
exit 0
"""


class SlurmUnavailable(RuntimeError):
    """Why the cluster cannot start here (the tests skip with this reason)."""


def _which(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def ensure_installed() -> None:
    """Install slurm-wlm and munge with apt when missing (root only); else explain how."""
    if all(_which(binary) for binary in BINARIES):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SlurmUnavailable(
            f"slurm-wlm/munge missing and no root apt-get; run: {INSTALL_COMMAND}"
        )
    result = subprocess.run(
        ["sh", "-c", INSTALL_COMMAND], capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0 or not all(_which(binary) for binary in BINARIES):
        raise SlurmUnavailable(
            f"could not install slurm-wlm/munge ({result.stderr.strip()[-300:]}); "
            f"run: {INSTALL_COMMAND}"
        )


def _ensure_hosts() -> None:
    """n1 and n2 must resolve: Lightning takes MASTER_ADDR from the first node name."""
    try:
        if all(socket.gethostbyname(node) for node in NODES):
            return
    except OSError:
        pass
    with open("/etc/hosts", "a") as hosts:
        hosts.write(f"\n{HOSTS_LINE}\n")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _munge_works() -> bool:
    try:
        munge = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
        if munge.returncode != 0:
            return False
        return subprocess.run(["unmunge"], input=munge.stdout, capture_output=True).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@dataclass
class SlurmCluster:
    """A started cluster: point a process at it with :meth:`env`."""

    root: Path

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of a process that uses this cluster (sacct stand-in first)."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = f"{self.bin_dir}:{env.get('PATH', '')}"
        return env

    def run(self, *command: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(
            command, env=self.env(), capture_output=True, text=True, timeout=timeout, check=True
        )

    def jobs(self) -> dict[str, str]:
        """Every job id the controller still lists (MinJobAge), with its state."""
        out = self.run("squeue", "-h", "-t", "all", "-o", "%i|%T").stdout
        return dict(line.split("|", 1) for line in out.split())

    def wait_idle_nodes(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.run("sinfo", "-h", "-N", "-o", "%N %t").stdout.split("\n")
            states = dict(line.split() for line in out if line.strip())
            if set(states) == set(NODES) and all(
                s in ("idle", "mix", "alloc") for s in states.values()
            ):
                return
            time.sleep(0.3)
        raise SlurmUnavailable(f"nodes not idle after {timeout}s: {states}; see {self.root}/*.log")


def start(root: Path) -> SlurmCluster:
    """Write slurm.conf under ``root``, start munged (if not running), slurmctld, 2 slurmd."""
    ensure_installed()
    if os.geteuid() != 0:
        raise SlurmUnavailable("the throwaway cluster runs its daemons as root")
    _ensure_hosts()
    root.mkdir(parents=True, exist_ok=True)
    cluster = SlurmCluster(root)
    cluster.bin_dir.mkdir(exist_ok=True)
    sacct = cluster.bin_dir / "sacct"
    sacct.write_text(SACCT_STANDIN)
    sacct.chmod(0o755)
    for folder in ("state", "spool.n1", "spool.n2"):
        (root / folder).mkdir(exist_ok=True)
    ctld_port, node_port1, node_port2 = _free_ports(3)
    if node_port2 != node_port1 + 1:  # slurmd ports are a range
        node_port1, node_port2 = _consecutive_ports()
    cpus = max(1, os.cpu_count() or 1)
    host = socket.gethostname()
    node_ports = f"Port=[{node_port1}-{node_port2}]"
    first_job_id = 1000 + int(time.time()) % 60_000_000  # unique across wiped state folders
    cluster.conf.write_text(
        f"""ClusterName=genlabtest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={node_port1}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool.%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.%n.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
MinJobAge=3600
FirstJobId={first_job_id}
KillWait=20
SchedulerType=sched/backfill
NodeName=n[1-2] NodeHostname={host} NodeAddr=127.0.0.1 {node_ports} CPUs={cpus} RealMemory=4000
PartitionName={PARTITION} Nodes=n[1-2] Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
"""
    )
    if not _munge_works():
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        subprocess.run(["runuser", "-u", "munge", "--", _which("munged")], check=True)
        (root / "munged.started").write_text("/run/munge/munged.pid")
        deadline = time.monotonic() + 10
        while not _munge_works():
            if time.monotonic() > deadline:
                raise SlurmUnavailable("munged did not start; see /var/log/munge/munged.log")
            time.sleep(0.1)
    env = cluster.env()
    subprocess.run([_which("slurmctld"), "-f", str(cluster.conf)], env=env, check=True)
    for node in NODES:
        subprocess.run([_which("slurmd"), "-f", str(cluster.conf), "-N", node], env=env, check=True)
    cluster.wait_idle_nodes()
    return cluster


def _consecutive_ports() -> tuple[int, int]:
    for _ in range(50):
        (port,) = _free_ports(1)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port, port + 1
    raise SlurmUnavailable("no two consecutive free ports for slurmd")


def _kill_pid_file(path: Path, timeout: float = 15) -> None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop(root: Path, drain_timeout: float = 60) -> None:
    """scancel every job, wait for the queue to drain, then kill slurmd x2, slurmctld and
    munged (only when this cluster started it) by their pid files."""
    cluster = SlurmCluster(root)
    if (root / "slurmctld.pid").is_file():
        try:
            subprocess.run(["scancel", "--full", "-u", "root"], env=cluster.env(), timeout=30)
            deadline = time.monotonic() + drain_timeout
            while time.monotonic() < deadline:
                out = subprocess.run(
                    ["squeue", "-h", "-o", "%i"],
                    env=cluster.env(),
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
                if out.returncode != 0 or not out.stdout.strip():
                    break
                time.sleep(0.5)
        except (OSError, subprocess.SubprocessError):
            pass
    for node in NODES:
        _kill_pid_file(root / f"slurmd.{node}.pid")
    _kill_pid_file(root / "slurmctld.pid")
    started = root / "munged.started"
    if started.is_file():
        _kill_pid_file(Path(started.read_text().strip()))
        started.unlink()


if __name__ == "__main__":
    action, folder = sys.argv[1], Path(sys.argv[2])
    if action == "start":
        print(start(folder).conf)
    elif action == "stop":
        stop(folder)
    else:
        sys.exit(f"usage: {sys.argv[0]} start|stop FOLDER")
