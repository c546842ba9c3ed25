"""The host side's interface to the Linux kernel (x86_64): the libc handle for the calls Python's
standard library lacks, the ABI numbers those calls take, and writing a kernel control file.

Numbers the in-sandbox fork server needs as well are defined in lab/exec_helpers/zygote.py (it runs
under the system python3 with the standard library only, so it cannot import this package) and
imported from there; the rest are defined here.

Not covered here: what the numbers are used for (seccomp.py, landlock.py, runner.py); the seccomp
filter's own table of denied system calls (seccomp.py).
"""
from __future__ import annotations

import ctypes
from pathlib import Path

from lab.exec_helpers.zygote import CLONE_NEWNS, MS_BIND, MS_PRIVATE, MS_REC, PR_SET_NO_NEW_PRIVS

__all__ = ["CLONE_NEWNET", "CLONE_NEWNS", "MNT_DETACH", "MS_BIND", "MS_PRIVATE", "MS_REC",
           "PR_SET_CHILD_SUBREAPER", "PR_SET_NO_NEW_PRIVS", "SYS_clone3", "SYS_landlock_add_rule",
           "SYS_landlock_create_ruleset", "SYS_landlock_restrict_self", "SYS_socket", "SYS_socketpair",
           "libc", "write_kernel_file"]

libc = ctypes.CDLL(None, use_errno=True)

# x86_64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl)
SYS_socket = 41
SYS_socketpair = 53
SYS_clone3 = 435
SYS_landlock_create_ruleset = 444
SYS_landlock_add_rule = 445
SYS_landlock_restrict_self = 446

# prctl(2) options
PR_SET_CHILD_SUBREAPER = 36

# unshare(2) flags
CLONE_NEWNET = 0x40000000

# umount2(2) flags
MNT_DETACH = 2


def write_kernel_file(path: Path, value: str) -> None:
    """Write `value` to a /proc or /sys control file (one write, as the kernel expects)."""
    with open(path, "w") as handle:
        handle.write(value)
