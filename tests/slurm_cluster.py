"""Start and stop a real single-node Slurm (Debian's slurmctld, slurmd, munge) for tests.

Needs root and the packages (``.ci/run`` installs them). slurm.conf must live at
/etc/slurm/slurm.conf: the executor plugin's in-job ``srun`` drops SLURM_CONF. The node
declares one GPU GRES backed by /dev/null, so GPU requests schedule on a machine
without a GPU. A task prolog hides that stand-in from the jobs (it unsets
CUDA_VISIBLE_DEVICES and SLURM_JOB_GPUS, which Slurm sets to 0): fold jobs with
``fold.device: auto`` then run on the CPU, as they must where no GPU is visible; with
the variables set they would stop, as a fold job allocated a GPU that torch cannot see
must (:class:`foldatlas.model.GpuUnavailableError`). No accounting
daemon: poll with ``--slurm-status-command squeue`` (MinJobAge keeps finished jobs
visible for an hour). The partition has a time limit (:data:`MAX_TIME_MINUTES`), enforced
at submission, so a workflow that asks for more is refused instead of hanging.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

CONF = Path("/etc/slurm/slurm.conf")
GRES = Path("/etc/slurm/gres.conf")
TASK_PROLOG = Path("/etc/slurm/task_prolog.sh")
PIDS = {"slurmd": Path("/run/slurmd.pid"), "slurmctld": Path("/run/slurmctld.pid"), "munged": Path("/run/munge/munged.pid")}
BINARIES = ("slurmctld", "slurmd", "sinfo", "squeue", "sbatch", "scontrol", "munged")
#: The partition's time limit (minutes); EnforcePartLimits=ALL refuses a job asking more.
MAX_TIME_MINUTES = 60


def unavailable() -> str | None:
    """Why a Slurm cannot be started here, or None."""
    if os.geteuid() != 0:
        return "needs root to start slurmctld/slurmd/munged"
    missing = [b for b in BINARIES if shutil.which(b) is None and not Path(f"/usr/sbin/{b}").exists()]
    if missing:
        return f"Slurm packages not installed (missing {', '.join(missing)}): apt-get install slurmctld slurmd slurm-client munge"
    return None


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(int(line.split()[1]) / 1024 * 0.9)
    return 4000


def _run(*cmd: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)


#: What :func:`start` found at the configuration files it writes (None: no file), for
#: :func:`stop` to put back. A slurm.conf left behind naming a stopped controller makes
#: every later ``import snakemake.api`` wait about 9 s: the Slurm executor plugin runs
#: ``scontrol show config`` when it is imported, which retries the controller.
_FOUND: dict[Path, bytes | None] = {}


def start() -> None:
    """Write the configuration, start munged, slurmctld and slurmd; wait for an idle node."""
    _stop_daemons()
    for path in (CONF, GRES, TASK_PROLOG):
        _FOUND.setdefault(path, path.read_bytes() if path.exists() else None)
    for d in ("/etc/slurm", "/var/spool/slurmctld", "/var/spool/slurmd", "/var/log/slurm", "/run/munge", "/etc/munge"):
        Path(d).mkdir(parents=True, exist_ok=True)
    cpus = os.cpu_count() or 2
    CONF.write_text(
        "\n".join(
            [
                "ClusterName=foldatlas-ci",
                "SlurmctldHost=localhost",
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/munge",
                "StateSaveLocation=/var/spool/slurmctld",
                "SlurmdSpoolDir=/var/spool/slurmd",
                f"SlurmctldPidFile={PIDS['slurmctld']}",
                f"SlurmdPidFile={PIDS['slurmd']}",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                f"TaskProlog={TASK_PROLOG}",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core_Memory",
                "GresTypes=gpu",
                "MinJobAge=3600",
                "ReturnToService=2",
                "SchedulerType=sched/backfill",
                "AccountingStorageType=accounting_storage/none",
                "JobAcctGatherType=jobacct_gather/none",
                "SlurmctldLogFile=/var/log/slurm/slurmctld.log",
                "SlurmdLogFile=/var/log/slurm/slurmd.log",
                f"NodeName=localhost CPUs={cpus} RealMemory={_memory_mb()} Gres=gpu:1 State=UNKNOWN",
                # a time limit, as sites have, below what some rules ask for (slurm.max_runtime
                # caps them); a job over it is refused at once instead of pending forever
                "EnforcePartLimits=ALL",
                f"PartitionName=debug Nodes=localhost Default=YES MaxTime={MAX_TIME_MINUTES} State=UP",
                "",
            ]
        )
    )
    GRES.write_text("NodeName=localhost Name=gpu File=/dev/null\n")
    # each line a task prolog prints is applied to the task's environment
    TASK_PROLOG.write_text("#!/bin/sh\n" + "".join(f"echo unset {v}\n" for v in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "GPU_DEVICE_ORDINAL")))
    TASK_PROLOG.chmod(0o755)
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        key.write_bytes(os.urandom(1024))
    shutil.chown(key, "munge", "munge")
    key.chmod(0o400)
    shutil.chown("/run/munge", "munge", "munge")
    for d in ("/var/lib/munge", "/var/log/munge"):
        Path(d).mkdir(parents=True, exist_ok=True)
        shutil.chown(d, "munge", "munge")
    _check(_run("runuser", "-u", "munge", "--", "/usr/sbin/munged"), "munged")
    _check(_run("/usr/sbin/slurmctld"), "slurmctld")
    _check(_run("/usr/sbin/slurmd"), "slurmd")
    deadline = time.monotonic() + 60
    state = ""
    while time.monotonic() < deadline:
        try:
            state = _run("sinfo", "-h", "-N", "-o", "%T", timeout=10).stdout.strip()
        except subprocess.TimeoutExpired:
            state = "timeout"
        if state.startswith("idle"):
            return
        if state.startswith(("drain", "down")):
            _run("scontrol", "update", "nodename=localhost", "state=resume")
        time.sleep(0.5)
    raise RuntimeError(f"Slurm node not idle after 60 s (state {state!r}); see /var/log/slurm/")


def _check(res: subprocess.CompletedProcess, name: str) -> None:
    if res.returncode != 0:
        raise RuntimeError(f"{name} failed to start (exit {res.returncode}): {res.stderr.strip()[-500:]}")


def stop() -> None:
    """Stop every daemon started by :func:`start`, then put back the configuration files
    as :func:`start` found them (removed where there were none)."""
    _stop_daemons()
    for path, found in _FOUND.items():
        if found is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(found)
    _FOUND.clear()


def _stop_daemons() -> None:
    """Stop the daemons by PID file (SIGKILL after 10 s)."""
    for name in ("slurmd", "slurmctld", "munged"):
        pidfile = PIDS[name]
        if not pidfile.exists():
            continue
        try:
            pid = int(pidfile.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.1)
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
        pidfile.unlink(missing_ok=True)


def jobs() -> list[dict[str, str]]:
    """Every job Slurm remembers (MinJobAge=3600): id, name, state, exit code."""
    out = _run("scontrol", "show", "job", "--oneliner", timeout=20).stdout
    result = []
    for line in out.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if "JobId" in fields:
            result.append(fields)
    return result
