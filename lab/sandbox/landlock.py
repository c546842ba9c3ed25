"""Landlock for the light backend: a filesystem allow-list (read-only system, a writable job
directory), and where the kernel's Landlock ABI has them, no TCP bind/connect (ABI >= 4) and no
signals to processes outside the domain (ABI >= 6). Applied by the program's own process, after
setuid and before exec.

Not covered here: the seccomp filter (seccomp.py) and when the light backend is chosen (backends.py).
"""
from __future__ import annotations

import ctypes
import os
import struct

from lab.sandbox.linux import (
    PR_SET_NO_NEW_PRIVS,
    SYS_landlock_add_rule,
    SYS_landlock_create_ruleset,
    SYS_landlock_restrict_self,
    libc,
)

# linux/landlock.h
LANDLOCK_CREATE_RULESET_VERSION = 1 << 0
LANDLOCK_RULE_PATH_BENEATH = 1
LANDLOCK_ACCESS_FS_EXECUTE = 1 << 0
LANDLOCK_ACCESS_FS_WRITE_FILE = 1 << 1
LANDLOCK_ACCESS_FS_READ_FILE = 1 << 2
LANDLOCK_ACCESS_FS_READ_DIR = 1 << 3
LANDLOCK_ACCESS_FS_ABI_1 = (1 << 13) - 1
"""Every filesystem right of ABI 1 (EXECUTE .. MAKE_SYM)."""
LANDLOCK_ACCESS_FS_REFER = 1 << 13  # ABI 2
LANDLOCK_ACCESS_FS_TRUNCATE = 1 << 14  # ABI 3
LANDLOCK_ACCESS_FS_IOCTL_DEV = 1 << 15  # ABI 5
LANDLOCK_ACCESS_NET_BIND_TCP = 1 << 0  # ABI 4
LANDLOCK_ACCESS_NET_CONNECT_TCP = 1 << 1  # ABI 4
LANDLOCK_SCOPE_SIGNAL = 1 << 1  # ABI 6

READ_ACCESS = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR
FILE_ACCESS = (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE
               | LANDLOCK_ACCESS_FS_TRUNCATE)
"""The rights a rule on a file (not a directory) may carry."""


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 without Landlock."""
    abi = libc.syscall(SYS_landlock_create_ruleset, None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    return max(abi, 0)


def apply_landlock(read_paths: list[str], write_paths: list[str]) -> None:
    """Allow-list filesystem access; with ABI >= 4 deny TCP, with ABI >= 6 deny signals out of the domain."""
    abi = landlock_abi()
    if abi < 1:
        return
    all_access = (LANDLOCK_ACCESS_FS_ABI_1 | (LANDLOCK_ACCESS_FS_REFER if abi >= 2 else 0)
                  | (LANDLOCK_ACCESS_FS_TRUNCATE if abi >= 3 else 0)
                  | (LANDLOCK_ACCESS_FS_IOCTL_DEV if abi >= 5 else 0))
    net_access = LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP if abi >= 4 else 0
    scoped = LANDLOCK_SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("=QQQ", all_access, net_access, scoped)  # struct landlock_ruleset_attr
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8  # the fields of it this ABI knows
    ruleset = libc.syscall(SYS_landlock_create_ruleset, ctypes.c_char_p(attr), size, 0)
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    for paths, access in ((read_paths, READ_ACCESS), (write_paths, all_access)):
        for path in paths:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            rule_access = access if os.path.isdir(path) else access & FILE_ACCESS
            rule = struct.pack("=Qi", rule_access, fd)  # struct landlock_path_beneath_attr
            libc.syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, ctypes.c_char_p(rule), 0)
            os.close(fd)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or libc.syscall(SYS_landlock_restrict_self, ruleset, 0) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    os.close(ruleset)
