"""A real single-node SLURM cluster for tests: munged + slurmctld + slurmd on localhost.

Everything lives in a temporary folder: the munge key, socket and logs, a
generated ``slurm.conf`` (accounting off, ``select/cons_tres``,
``proctrack/linuxproc``, ``task/none``, no cgroups, ``SlurmUser=root``), the state,
spool and log folders. Ports are picked free, so it does not clash with a
cluster already on the machine. ``SLURM_CONF`` points SLURM's commands (``sbatch``,
``squeue``, ``scancel``, which submitit calls) at it while the cluster runs.

Needs Debian's SLURM (``slurmctld``, ``slurmd``, ``slurm-client``) and ``munge``, which
``scripts/setup.sh --test`` installs, pinned, before any test runs; nothing is installed
here. Without them the tests that use the cluster are skipped with the reason, except
under ``MICROLIB_CI=1`` (``.ci/run``), where they fail.

Use in a test module::

    from slurm_cluster import slurm_cluster  # noqa: F401  (the fixture)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo", "scontrol")


def ensure_slurm() -> str | None:
    """None when SLURM and munge are installed, else why they are not (they are never installed here)."""
    missing = [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]
    if not missing:
        return None
    return (f"SLURM is not installed ({', '.join(missing)} missing): scripts/setup.sh --test installs it "
            "when run as root")


def _sbin(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_mb() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 2048


class SlurmCluster:
    """One node (``NODE``) in one partition (``PARTITION``), all state under ``root``."""

    NODE = "microlibnode"
    PARTITION = "debug"

    def __init__(self, root: Path):
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"
        self.socket = self.root / "munge" / "munge.socket"
        self.cpus = os.cpu_count() or 1
        self.procs: list[subprocess.Popen] = []
        self._old_conf = None

    # -- setup -----------------------------------------------------------------------
    def _write_conf(self) -> None:
        r = self.root
        for d in ("state", "spool", "log", "munge"):
            (r / d).mkdir(parents=True, exist_ok=True)
        # RealMemory below the machine's, or slurmd would drain the node.
        mem = max(256, int(_mem_mb() * 0.5))
        self.conf.write_text(f"""\
ClusterName=microlibtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.socket}
StateSaveLocation={r / 'state'}
SlurmdSpoolDir={r / 'spool'}
SlurmctldPidFile={r / 'slurmctld.pid'}
SlurmdPidFile={r / 'slurmd.pid'}
SlurmctldLogFile={r / 'log' / 'slurmctld.log'}
SlurmdLogFile={r / 'log' / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
SchedulerParameters=sched_interval=2
NodeName={self.NODE} NodeHostname=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={mem} State=UNKNOWN
PartitionName={self.PARTITION} Nodes={self.NODE} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
""")

    def start(self, timeout_s: float = 60.0) -> "SlurmCluster":
        self._write_conf()
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        self.root.chmod(0o700)
        (self.root / "munge").chmod(0o700)
        m = self.root / "munge"
        subprocess.run([_sbin("munged"), "--force", f"--key-file={key}", f"--socket={self.socket}",
                        f"--pid-file={m / 'munged.pid'}", f"--log-file={m / 'munged.log'}",
                        f"--seed-file={m / 'munged.seed'}"], check=True, capture_output=True, timeout=30)
        self._old_conf = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = str(self.conf)
        env = {**os.environ, "SLURM_CONF": str(self.conf)}
        # -D: stay in the foreground so the test owns the processes and can stop them.
        self.procs.append(subprocess.Popen([_sbin("slurmctld"), "-D", "-i", "-f", str(self.conf)], env=env,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.procs.append(subprocess.Popen([_sbin("slurmd"), "-D", "-N", self.NODE, "-f", str(self.conf)], env=env,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        end = time.monotonic() + timeout_s
        state = ""
        while time.monotonic() < end:
            for p in self.procs:
                if p.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"a SLURM daemon exited at start (code {p.returncode}); "
                                       f"see {self.root / 'log'}: {self.log_tail()}")
            state = self.node_state()
            if state.startswith("idle"):
                return self
            if state.startswith(("down", "drain")):
                subprocess.run(["scontrol", "update", f"nodename={self.NODE}", "state=resume"],
                               capture_output=True, env=env, timeout=10)
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"SLURM node not idle after {timeout_s:.0f} s (state {state!r}): {self.log_tail()}")

    def node_state(self) -> str:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=10,
                             env={**os.environ, "SLURM_CONF": str(self.conf)})
        return out.stdout.strip().lower() if out.returncode == 0 else ""

    def log_tail(self, n: int = 300) -> str:
        texts = []
        for name in ("slurmctld.log", "slurmd.log"):
            p = self.root / "log" / name
            if p.exists():
                texts.append(name + ": " + " ".join(p.read_text(errors="replace")[-n:].split()))
        return " | ".join(texts)

    # -- teardown --------------------------------------------------------------------
    def stop(self) -> None:
        env = {**os.environ, "SLURM_CONF": str(self.conf)}
        subprocess.run(["scancel", "--user", "root"], capture_output=True, env=env, timeout=10)
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        self.procs.clear()
        pidfile = self.root / "munge" / "munged.pid"
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text().strip()), 15)
            except (ValueError, ProcessLookupError):
                pass
        if self._old_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = self._old_conf


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running single-node SLURM cluster (skipped with the reason when SLURM is not installed)."""
    reason = ensure_slurm()
    if reason:
        if os.environ.get("MICROLIB_CI") == "1":  # CI installed it in its setup: absence is a failure
            pytest.fail(reason + " (MICROLIB_CI=1)")
        pytest.skip(reason)
    # A short path: the munge socket path must fit in a Unix socket name (108 bytes).
    root = Path(tmp_path_factory.mktemp("slurm"))
    if len(str(root / "munge" / "munge.socket")) > 100:
        import tempfile

        root = Path(tempfile.mkdtemp(prefix="mslurm-"))
    cluster = SlurmCluster(root).start()
    try:
        yield cluster
    finally:
        cluster.stop()
