"""Choosing the isolation backend and building bubblewrap's command line.

  bwrap  bubblewrap started AS the worker's own unprivileged uid (new user/pid/net/ipc/uts
         namespaces, read-only system, cleared environment, no nested user namespaces).
  light  the fallback where bwrap or user namespaces are unusable (setuid, a network namespace,
         Landlock and seccomp: runner.py and landlock.py).
  none   no isolation at all; only with allow_unsandboxed=True.
`choose_isolation` resolves 'auto' by probing bwrap here, and says loudly when it falls back.

Not covered here: running anything in the sandbox (runner.py, zygote.py) or the filters it loads
(seccomp.py, landlock.py).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from lab.config import UsageError
from lab.sandbox.slots import UID_BASE
from lab.sandbox.spec import Mount, SandboxError

SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
"""PATH inside the sandbox."""


def bwrap_usable(uid: int | None = None) -> tuple[bool, str]:
    """Can bubblewrap build our sandbox here (as `uid` when root)? (ok, reason when not)."""
    if shutil.which("bwrap") is None:
        return False, "bwrap is not installed (Debian package: bubblewrap)"
    argv = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
            *system_binds(), "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/", "--", "/bin/true"]
    def drop():
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
    try:
        probe = subprocess.run(argv, capture_output=True, timeout=20, preexec_fn=drop if os.geteuid() == 0 else None)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, f"bwrap failed to start ({error})"
    if probe.returncode != 0:
        return False, f"bwrap cannot create namespaces here: {probe.stderr.decode(errors='replace').strip()}"
    return True, ""


def choose_isolation(isolation: str, allow_unsandboxed: bool) -> str:
    """Resolve 'auto' to 'bwrap' or 'light' (printing why, loudly, on fallback); check 'none' is allowed."""
    if isolation not in ("auto", "bwrap", "light", "none"):
        raise UsageError(f"execution.isolation={isolation!r}: choose auto, bwrap, light or none")
    if isolation == "none":
        if not allow_unsandboxed:
            raise SandboxError(
                "execution.isolation=none runs untrusted generated code with your privileges; "
                "set execution.allow_unsandboxed=true to confirm, or use isolation=auto")
        print("WARNING: running generated code WITHOUT isolation (execution.isolation=none)", file=sys.stderr)
        return "none"
    if isolation == "light":
        return "light"
    ok, reason = bwrap_usable(UID_BASE if os.geteuid() == 0 else None)
    if ok:
        return "bwrap"
    if isolation == "bwrap":
        raise SandboxError(f"execution.isolation=bwrap: {reason}. Install bubblewrap or use isolation=light")
    print(f"WARNING: bubblewrap sandbox unavailable ({reason}); falling back to the LIGHT sandbox "
          "(setuid + network namespace + Landlock + seccomp). Install bubblewrap for full isolation.",
          file=sys.stderr)
    return "light"


def system_binds() -> list[str]:
    """bwrap arguments showing the system read-only: /usr, /etc and the top-level links or dirs into it."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib32", "lib64", "libx32", "sbin"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return args + ["--ro-bind", "/etc", "/etc"]


def bwrap_args(mounts: list[Mount], binds: list[str], env: dict[str, str], *, root: bool) -> list[str]:
    """bwrap's arguments up to the command: namespaces, the read-only system, `mounts` read-only,
    `binds`, and the cleared environment set to `env`."""
    namespaces = ["--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
    if not root:  # as root the worker already sits in its own empty network namespace
        namespaces.append("--unshare-net")
    args = ["bwrap", *namespaces, "--disable-userns", "--die-with-parent", "--new-session",
            *system_binds(), "--proc", "/proc", "--dev", "/dev"]
    for mount in mounts:
        args += ["--ro-bind", mount.host, mount.inside]
    args += [*binds, "--remount-ro", "/", "--hostname", "sandbox", "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return args
