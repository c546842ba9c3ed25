"""The worker's process tree: reaping the orphans it inherits as child subreaper, and listing a
process's descendants (to kill a run parents first).

Not covered here: killing by cgroup (cgroups.py) or by process group (runner.py).
"""
from __future__ import annotations

import os


def reap() -> None:
    """Collect every exited child (the worker is subreaper, so orphans end up here)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def descendants(pid: int) -> list[int]:
    """Every descendant of `pid`, parents before children (from /proc/<pid>/task/*/children)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            children = open(f"/proc/{pid}/task/{task}/children").read().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found
