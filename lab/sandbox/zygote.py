"""The host side of the worker's fork server (lab/exec_helpers/zygote.py): start it in one
long-lived bwrap, hand it a run (argv, environment, rlimits, the output pipes), learn the run's exit
code, kill a run parents first, and shut it down. The protocol is described in exec_helpers/zygote.py.

Not covered here: what happens inside the fork server (exec_helpers/zygote.py), timeouts and output
collection (runner.py).
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from lab.sandbox.backends import SANDBOX_PATH, bwrap_args
from lab.sandbox.processes import descendants
from lab.sandbox.seccomp import seccomp_filter
from lab.sandbox.spec import Mount, SandboxError

ZYGOTE_DIR = Path(__file__).resolve().parents[1] / "exec_helpers"
"""Holds zygote.py, the fork server that starts every bwrap-sandboxed run of a worker."""
ZYGOTE_INSIDE = "/opt/rr-sandbox"
ZYGOTE_START_TIMEOUT_S = 20.0
ZYGOTE_EXIT_TIMEOUT_S = 10.0


class Zygote:
    """The worker's fork server (exec_helpers/zygote.py) in one long-lived bwrap: every mount the
    programs may need, CAP_SYS_ADMIN in its user namespace only (to give each run fresh pid and
    mount namespaces), no seccomp itself; each program loses every capability and gets the filter.
    `runs`: the host directory holding the run directories (/jobs inside); `popen(argv, cwd, env,
    stdin=, stderr=, pass_fds=)` starts the bwrap with the worker's per-process set-up (uid, rlimits)."""

    def __init__(self, mounts: list[Mount], runs: Path, *, root: bool, popen: Callable[..., subprocess.Popen]):
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {"PATH": SANDBOX_PATH, "LANG": "C.UTF-8"}
        argv = [*bwrap_args(mounts, ["--bind", str(runs), "/jobs", "--dir", "/work", "--dir", "/tmp", "--chdir", "/"],
                            env, root=root),
                "--cap-add", "CAP_SYS_ADMIN", "--", "/usr/bin/python3", "-I", "-S", f"{ZYGOTE_INSIDE}/zygote.py",
                str(theirs.fileno())]
        self.process = popen(argv, runs, env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             pass_fds=(theirs.fileno(),))
        theirs.close()
        try:
            self.control.send(seccomp_filter())
            ready = (select.select([self.control], [], [], ZYGOTE_START_TIMEOUT_S)[0]
                     and self.control.recv(16) == b"ready")
        except OSError:
            ready = False
        if not ready:
            self.process.kill()
            detail = self.process.communicate()[1].decode(errors="replace").strip()
            raise SandboxError(f"the sandbox's fork server did not start: {detail or 'no answer'}. "
                               "Run `python -m lab selftest`, or use execution.isolation=light")
        chain = [self.process.pid, *descendants(self.process.pid)]  # bwrap, its pid-1 init, the zygote
        self.pids, self.server_pid = set(chain), chain[-1]

    def start(self, request: dict, stdout: int, stderr: int) -> None:
        """Hand a run over; SandboxError when the fork server is gone (nothing was started then)."""
        try:
            if select.select([self.control], [], [], 0)[0]:  # between runs, readable means hung up
                raise OSError("it hung up")
            socket.send_fds(self.control, [json.dumps(request).encode()], [stdout, stderr])
        except OSError as error:
            raise SandboxError(f"the sandbox's fork server is gone ({error})") from error

    def wait_exit(self) -> int:
        """The run's exit code (128 + n for signal n), once its main process is over."""
        try:
            if select.select([self.control], [], [], ZYGOTE_EXIT_TIMEOUT_S)[0]:
                message = self.control.recv(256)
                if message:
                    return json.loads(message)["exit"]
        except OSError:
            pass
        raise SandboxError(f"the sandbox's fork server did not report the run's end (exit code {self.process.poll()}); "
                           "it restarts with the next run")

    def kill_run(self) -> None:
        """SIGKILL the run, parents first: once its pid namespace's init is gone the kernel kills the rest."""
        for pid in descendants(self.server_pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        self.control.close()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.kill()
        self.process.communicate()
