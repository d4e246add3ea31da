"""Torch threads for a CPU training process: the cores it actually gets, never more.

On a 2-core machine that other jobs also use, 2 torch threads made a DPO step several times
slower than 1 (docs/measurements.md, row P9): intra-op
threads that wait for a busy core stall every matmul. torch's default (all cores of the machine) and
accelerate's (physical cores / local processes, exported as ``OMP_NUM_THREADS``) both ignore
the CPU affinity mask, a container's CPU quota and other jobs. :func:`choose_threads` takes
the smallest of:

* the usable cores (``os.sched_getaffinity``, capped by a cgroup v2 ``cpu.max`` quota)
  divided by the processes of this machine (``LOCAL_WORLD_SIZE``, set by accelerate/torchrun);
* ``OMP_NUM_THREADS`` when set (the user's, or what ``accelerate launch`` exported);
* the cores the other jobs leave free: usable cores minus the 1-minute load average, at least
  1; only where the load average describes the same cores (no affinity mask or quota), since
  a container sees its host's load.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def choose_threads(
    environ: Mapping[str, str] | None = None,
    *,
    cores: int | None = None,
    machine_cores: int | None = None,
    load: float | None = None,
) -> tuple[int, str]:
    """``(threads, why)``: the smallest of the caps in the module doc, at least 1."""
    environ = os.environ if environ is None else environ
    cores = usable_cores() if cores is None else cores
    machine_cores = (os.cpu_count() or cores) if machine_cores is None else machine_cores
    processes = max(1, int(environ.get("LOCAL_WORLD_SIZE") or 1))
    threads = max(1, cores // processes)
    why = [f"{cores} usable core(s) / {processes} process(es)"]
    omp = environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) >= 1:
        threads = min(threads, int(omp))
        why.append(f"OMP_NUM_THREADS={omp}")
    if cores == machine_cores:
        load = os.getloadavg()[0] if load is None and hasattr(os, "getloadavg") else load
        if load is not None:
            free = max(1, cores - round(load))
            threads = min(threads, free)
            why.append(f"load average {load:.2f} leaves {free} free")
    return threads, ", ".join(why)


def set_cpu_threads(environ: Mapping[str, str] | None = None) -> str:
    """Apply :func:`choose_threads` to torch; returns the line to print."""
    import torch

    threads, why = choose_threads(environ)
    torch.set_num_threads(threads)
    return f"torch threads: {threads} ({why})"
