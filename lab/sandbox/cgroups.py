"""cgroup v1 memory + pids groups, one pair per uid: the memory limit (with swap), the process
limit, and killing every process a run left behind. Only as root, and only where the v1
controllers are mounted.

Not covered here: which uid gets which group and when a process joins (runner.py), rlimits (runner.py).
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Set
from pathlib import Path

from lab.sandbox.linux import write_kernel_file
from lab.sandbox.processes import reap

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_NAME = "rewardranker"


class CgroupPair:
    """cgroup v1 memory + pids groups for one uid, for limits and for killing every process of a run."""

    def __init__(self, name: str, memory_mb: int, pids_max: int):
        self.dirs: list[Path] = []
        for controller in ("memory", "pids"):
            path = CGROUP_ROOT / controller / CGROUP_NAME / name
            if not (CGROUP_ROOT / controller).is_dir():
                continue
            path.mkdir(parents=True, exist_ok=True)
            self.dirs.append(path)
        self.kill_all()
        for path in self.dirs:
            if path.parent.parent.name == "memory":
                limit = str(memory_mb * 1024 * 1024)
                memsw = path / "memory.memsw.limit_in_bytes"
                if memsw.exists():  # memsw must stay >= the limit: lift it, set the limit, lower it
                    write_kernel_file(memsw, "-1")
                write_kernel_file(path / "memory.limit_in_bytes", limit)
                if memsw.exists():
                    write_kernel_file(memsw, limit)
            else:
                write_kernel_file(path / "pids.max", str(pids_max))

    def enter(self) -> None:
        """Move the calling process into both groups."""
        for path in self.dirs:
            write_kernel_file(path / "cgroup.procs", str(os.getpid()))

    def pids(self) -> list[int]:
        """Every process in the group (both controllers hold the same ones; one read suffices)."""
        try:
            return [int(line) for line in (self.dirs[-1] / "cgroup.procs").read_text().split()]
        except (OSError, IndexError):
            return []

    def kill_all(self, spare: Set[int] = frozenset()) -> None:
        """SIGKILL every process in the group but the caller and `spare`, until none is left."""
        for _ in range(200):
            pids = [pid for pid in self.pids() if pid != os.getpid() and pid not in spare]
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            reap()
            time.sleep(0.002)

    def oom_kills(self) -> int:
        for path in self.dirs:
            control = path / "memory.oom_control"
            if control.exists():
                for line in control.read_text().splitlines():
                    if line.startswith("oom_kill "):
                        return int(line.split()[1])
        return 0

    def remove(self) -> None:
        self.kill_all()
        for path in self.dirs:
            try:
                path.rmdir()
            except OSError:
                pass
