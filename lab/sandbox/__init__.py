"""Isolation backends for untrusted programs, one `Sandbox` per worker process.

Backends (ExecutionConfig.isolation):
  bwrap  bubblewrap started AS the worker's own unprivileged uid: new user/pid/net/ipc/uts
         namespaces, read-only system, cleared environment, no nested user namespaces. One
         bwrap per worker holds a fork server (exec_helpers/zygote.py) that gives every run
         fresh pid/mount/IPC namespaces, the job directory as /work, /tmp and /dev/shm, no
         capabilities and a seccomp filter (no inet/netlink sockets, no ptrace/mount/unshare/
         bpf/...): a new bwrap per run cost more than the program (the speed target).
         Compile servers get a bwrap of their own, with the same filter.
  light  the fallback where bwrap or user namespaces are unusable: setuid to the worker's
         uid, a fresh network namespace, Landlock (filesystem allow-list, no TCP, no
         signals out of the domain, where the kernel has them) and the same seccomp filter.
  none   runs the program as-is, as the caller. Only with allow_unsandboxed=True.
Common to all: rlimits, a cgroup v1 memory + pids group per worker (when root), the job
directory on a size-capped tmpfs in the worker's private mount namespace (disk fill is
bounded), a wall-clock timeout that kills the whole process tree, output caps, the worker
as child subreaper and a kill sweep of the cgroup plus reaping after every run.

The rooms, lowest first:
  spec       Limits, Mount, RawRun, SandboxError: what a caller passes in and gets back
  linux      libc and the kernel's ABI numbers (x86_64 system calls, prctl, unshare, mount flags)
  seccomp    the classic-BPF seccomp filter
  landlock   Landlock rules of the light backend
  slots      worker slots and the uids derived from them
  processes  reaping orphans and listing descendants
  cgroups    cgroup v1 memory + pids groups per uid
  backends   choosing bwrap/light/none and bwrap's command line
  zygote     the host side of the fork server (lab/exec_helpers/zygote.py)
  runner     Sandbox: the worker's scratch area, uids, cgroups, and running a program

Not covered here: what to run for a language (languages.py), pools and caching (execution.py).
"""
from lab.sandbox.backends import bwrap_usable, choose_isolation
from lab.sandbox.landlock import landlock_abi
from lab.sandbox.processes import descendants as _descendants
from lab.sandbox.runner import Sandbox
from lab.sandbox.seccomp import DENIED_SYSCALLS, seccomp_filter
from lab.sandbox.spec import Limits, Mount, RawRun, SandboxError

__all__ = ["DENIED_SYSCALLS", "Limits", "Mount", "RawRun", "Sandbox", "SandboxError", "_descendants",
           "bwrap_usable", "choose_isolation", "landlock_abi", "seccomp_filter"]
