"""A throwaway SLURM cluster on this one host: a controller and two `slurmd` posing as nodes
n1 and n2, all state in a temporary folder, stopped by PID.

Debian's slurm-wlm 22.05 + munge, run as root (SlurmUser root, no accounting). The traps it
handles are those of ../shared/ENVIRONMENT.md "SLURM on one machine": n1/n2 must resolve to
this host (else Lightning's rendezvous hangs 30 minutes or goes elsewhere: a marked /etc/hosts
line is added when needed and removed by `stop`), submitit needs job states that
`sacct` gives only with accounting (a stand-in answering from `squeue -t all` goes on the PATH
of the processes that use the cluster, never system-wide), job ids restart when the state
folder is wiped (FirstJobId from the clock), finished jobs stay visible (MinJobAge).

Two failures, two meanings: ``SlurmUnavailable`` only when the packages cannot be installed
here (no root, no apt-get, apt failing) or /etc/hosts cannot take the node names, and the tests
skip; ``SlurmStartError`` when SLURM is installed but the cluster does not come up, and the
tests fail with the daemons' log tails. A start that fails stops whatever it had started.

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
HOSTS_FILE = Path("/etc/hosts")
HOSTS_MARK = "# genlab test SLURM cluster"
HOSTS_RECORD = "hosts.line"  # under the cluster's folder: the /etc/hosts line it added
LOG_TAIL_LINES = 15

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
    """SLURM cannot be installed or wired here (no root, no apt-get, apt failing, /etc/hosts
    read-only): the tests skip with this reason."""


class SlurmStartError(RuntimeError):
    """SLURM is installed but the cluster did not come up: the tests fail (a broken harness
    must not pass as a skip). Test infrastructure, not a genlab error."""


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


def _address(name: str) -> str | None:
    try:
        return socket.gethostbyname(name)
    except OSError:
        return None


def _node_addresses() -> dict[str, str | None]:
    return {node: _address(node) for node in NODES}


def _all_loopback(addresses: dict[str, str | None]) -> bool:
    return all(address and address.startswith("127.") for address in addresses.values())


def hosts_line(root: Path) -> str:
    """The /etc/hosts line this cluster adds, marked with its folder so `stop` removes just it."""
    return f"127.0.0.1 {' '.join(NODES)}  {HOSTS_MARK} {root}"


def _ensure_hosts(root: Path) -> None:
    """n1 and n2 must resolve to this host: Lightning takes MASTER_ADDR from the first node
    name, and a name that resolves elsewhere sends the DDP rendezvous there (a hang)."""
    addresses = _node_addresses()
    if _all_loopback(addresses):
        return
    elsewhere = {node: a for node, a in addresses.items() if a and not a.startswith("127.")}
    if elsewhere:
        raise SlurmStartError(
            f"node names resolve to other hosts: {elsewhere}; the test cluster's nodes must be "
            f"this host. Remove those names from /etc/hosts (or your DNS search domain) or add "
            f"'127.0.0.1 {' '.join(NODES)}' before their entries."
        )
    line = hosts_line(root)
    try:
        text = HOSTS_FILE.read_text()
        with HOSTS_FILE.open("a") as hosts:
            hosts.write(("" if text.endswith("\n") or not text else "\n") + line + "\n")
    except OSError as error:
        raise SlurmUnavailable(
            f"{NODES} do not resolve and {HOSTS_FILE} is not writable ({error}); "
            f"add this line by hand: 127.0.0.1 {' '.join(NODES)}"
        ) from error
    (root / HOSTS_RECORD).write_text(line)
    addresses = _node_addresses()
    if not _all_loopback(addresses):
        raise SlurmStartError(
            f"added '{line}' to {HOSTS_FILE} but the node names resolve to {addresses}; "
            "check /etc/nsswitch.conf (hosts: files first) and any name cache (nscd)"
        )


def _remove_hosts_line(root: Path) -> None:
    """Take out exactly the line this cluster added (in place: /etc/hosts is often a mount)."""
    record = root / HOSTS_RECORD
    if not record.is_file():
        return
    line = record.read_text()
    with HOSTS_FILE.open("r+") as hosts:
        lines = hosts.read().splitlines(keepends=True)
        kept = [entry for entry in lines if entry.rstrip("\n") != line]
        hosts.seek(0)
        hosts.writelines(kept)
        hosts.truncate()
    record.unlink()


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError as error:
        return f"--- {path}: {error.strerror or error}"
    return "\n".join([f"--- {path} (last {len(text)} lines)", *text])


def log_tails(root: Path) -> str:
    """The end of each daemon's log, for an error message."""
    logs = [root / "slurmctld.log", *(root / f"slurmd.{node}.log" for node in NODES)]
    return "\n".join(_tail(path) for path in logs)


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
        """Until both nodes are up. slurmctld forks before it listens: until then `sinfo`
        fails ("unable to contact controller"), which only means not ready yet."""
        deadline = time.monotonic() + timeout
        last: object = "no answer yet"
        while time.monotonic() < deadline:
            try:
                out = self.run("sinfo", "-h", "-N", "-o", "%N %t", timeout=10).stdout
            except subprocess.CalledProcessError as error:
                last = f"sinfo failed: {(error.stderr or '').strip()[-300:]}"
            except subprocess.TimeoutExpired:
                last = "sinfo timed out"
            else:
                states = dict(line.split() for line in out.split("\n") if line.strip())
                last = states
                if set(states) == set(NODES) and all(
                    s in ("idle", "mix", "alloc") for s in states.values()
                ):
                    return
            time.sleep(0.3)
        raise SlurmStartError(
            f"nodes not idle after {timeout}s (last: {last})\n{log_tails(self.root)}"
        )


def start(root: Path) -> SlurmCluster:
    """Write slurm.conf under ``root``, start munged (if not running), slurmctld, 2 slurmd.
    Whatever fails on the way stops what was started (and the /etc/hosts line) first."""
    ensure_installed()
    if os.geteuid() != 0:
        raise SlurmUnavailable("the throwaway cluster runs its daemons as root")
    root.mkdir(parents=True, exist_ok=True)
    try:
        return _start(root)
    except BaseException:
        stop(root)
        raise


def _start(root: Path) -> SlurmCluster:
    _ensure_hosts(root)
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
        _daemon(root, ["runuser", "-u", "munge", "--", _which("munged")], os.environ)
        (root / "munged.started").write_text("/run/munge/munged.pid")
        deadline = time.monotonic() + 10
        while not _munge_works():
            if time.monotonic() > deadline:
                raise SlurmStartError(
                    f"munged did not start\n{_tail(Path('/var/log/munge/munged.log'))}"
                )
            time.sleep(0.1)
    env = cluster.env()
    _daemon(root, [_which("slurmctld"), "-f", str(cluster.conf)], env)
    for node in NODES:
        _daemon(root, [_which("slurmd"), "-f", str(cluster.conf), "-N", node], env)
    cluster.wait_idle_nodes()
    return cluster


def _daemon(root: Path, command: list[str], env: dict[str, str]) -> None:
    """Start a daemon that forks to the background; its failure, with the logs, otherwise."""
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()[-500:]
        raise SlurmStartError(
            f"{' '.join(command)} exited with {result.returncode}: {output}\n{log_tails(root)}"
        )


def _consecutive_ports() -> tuple[int, int]:
    for _ in range(50):
        (port,) = _free_ports(1)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port, port + 1
    raise SlurmStartError("no two consecutive free ports for slurmd")


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
    munged (only when this cluster started it) by their pid files; remove the /etc/hosts line
    this cluster added, if it added one."""
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
    _remove_hosts_line(root)


if __name__ == "__main__":
    action, folder = sys.argv[1], Path(sys.argv[2])
    if action == "start":
        print(start(folder).conf)
    elif action == "stop":
        stop(folder)
    else:
        sys.exit(f"usage: {sys.argv[0]} start|stop FOLDER")
