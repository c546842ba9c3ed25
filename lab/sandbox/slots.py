"""Worker slots: each sandboxed worker on this machine claims a slot number (an flock held for the
worker's lifetime), and from it the uids its programs and helper servers run as, so no two
workers share a uid (RLIMIT_NPROC counts per uid) or a cgroup.

Not covered here: switching to those uids (runner.py) or the cgroups named after them (cgroups.py).
"""
from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

from lab.sandbox.spec import SandboxError

UID_BASE = 60000
"""Worker slot n (1..MAX_SLOTS) runs programs as uid UID_BASE+n and helper servers as
UID_BASE+SERVER_UID_OFFSET+n."""
SERVER_UID_OFFSET = 1000
MAX_SLOTS = 999
LOCK_DIR = (Path("/run/rewardranker-sandbox") if os.geteuid() == 0
            else Path(tempfile.gettempdir()) / "rewardranker-sandbox")


def claim_slot() -> tuple[int, int]:
    """Take the first free worker slot on this machine (an flock held for the process lifetime)."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    for slot in range(1, MAX_SLOTS + 1):
        fd = os.open(LOCK_DIR / f"slot-{slot}.lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return slot, fd
        except BlockingIOError:
            os.close(fd)
    raise SandboxError(f"all {MAX_SLOTS} sandbox slots in {LOCK_DIR} are taken; end other executors")
