"""The seccomp filter every sandboxed program runs under: a classic-BPF program (x86_64 only),
assembled here, that denies the system calls a program has no business making (ptrace, mount,
unshare, bpf, io_uring, kernel keyrings, ...), refuses every socket but AF_UNIX ones, and answers
clone3 with ENOSYS (so libc falls back to clone(), whose flags the bwrap and user namespace rules
cover).

bwrap loads it with --seccomp (from a file the sandbox writes), the fork server's run init and the
light backend load it with lab/exec_helpers/zygote.py's `load_seccomp`.

Not covered here: loading the filter (exec_helpers/zygote.py), or any other confinement
(landlock.py, backends.py, runner.py).
"""
from __future__ import annotations

import errno
import socket
import struct

from lab.sandbox.linux import SYS_clone3, SYS_socket, SYS_socketpair

AUDIT_ARCH_X86_64 = 0xC000003E
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_KILL_PROCESS = 0x80000000

# classic BPF opcodes (linux/bpf_common.h)
BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS: load 32 bits of struct seccomp_data
BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
BPF_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
BPF_RET_K = 0x06  # BPF_RET | BPF_K

# offsets into struct seccomp_data
SECCOMP_DATA_NR = 0
SECCOMP_DATA_ARCH = 4
SECCOMP_DATA_ARG0 = 16  # the low 32 bits of args[0] (little-endian)

X32_SYSCALL_BIT = 0x40000000
"""System call numbers at or above it are the x32 ABI's, answered ENOSYS."""

DENIED_SYSCALLS = {  # x86_64 numbers
    "ptrace": 101, "mount": 165, "umount2": 166, "unshare": 272, "setns": 308, "bpf": 321,
    "perf_event_open": 298, "add_key": 248, "request_key": 249, "keyctl": 250, "kexec_load": 246,
    "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "delete_module": 176,
    "pivot_root": 155, "chroot": 161, "swapon": 167, "swapoff": 168, "reboot": 169, "acct": 163,
    "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "process_vm_readv": 310, "process_vm_writev": 311, "open_by_handle_at": 304,
    "name_to_handle_at": 303, "fanotify_init": 300, "open_tree": 428, "move_mount": 429,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    "quotactl": 179, "settimeofday": 164, "clock_settime": 227, "adjtimex": 159,
}
SOCKET_SYSCALLS = (SYS_socket, SYS_socketpair)
"""Allowed only for the domain AF_UNIX (their first argument)."""


def seccomp_filter() -> bytes:
    """The BPF program (struct sock_filter[]) that bwrap's --seccomp and the light backend load."""
    def insn(code, k, jt=0, jf=0):
        return [code, jt, jf, k]

    body = [insn(BPF_LD_W_ABS, SECCOMP_DATA_ARCH), insn(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
            insn(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
            insn(BPF_LD_W_ABS, SECCOMP_DATA_NR), insn(BPF_JGE_K, X32_SYSCALL_BIT, "enosys", 0),
            insn(BPF_JEQ_K, SYS_clone3, "enosys", 0)]
    body += [insn(BPF_JEQ_K, nr, "eperm", 0) for nr in DENIED_SYSCALLS.values()]
    body += [insn(BPF_JEQ_K, nr, "domain", 0) for nr in SOCKET_SYSCALLS]
    body += [insn(BPF_RET_K, SECCOMP_RET_ALLOW)]
    labels = {"domain": len(body)}
    body += [insn(BPF_LD_W_ABS, SECCOMP_DATA_ARG0), insn(BPF_JEQ_K, socket.AF_UNIX, "allow", 0),
             insn(BPF_RET_K, SECCOMP_RET_ERRNO | errno.EACCES)]
    labels.update(allow=len(body), eperm=len(body) + 1, enosys=len(body) + 2)
    body += [insn(BPF_RET_K, SECCOMP_RET_ALLOW), insn(BPF_RET_K, SECCOMP_RET_ERRNO | errno.EPERM),
             insn(BPF_RET_K, SECCOMP_RET_ERRNO | errno.ENOSYS)]
    out = b""
    for i, (code, jt, jf, k) in enumerate(body):
        jt = labels[jt] - i - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - i - 1 if isinstance(jf, str) else jf
        out += struct.pack("=HBBI", code, jt, jf, k)
    return out
