"""`Sandbox`: one worker's sandbox (the uids of its slot, its cgroups, a size-capped tmpfs scratch
area in a private mount namespace, job directories) and running a program in it to completion or
timeout with the steps every backend shares (see the package docstring): rlimits, the wall-clock
timeout, output caps, the kill sweep and reaping. Under bwrap every run is started by the worker's
fork server (zygote.py); under light and none each run is a process of its own, set up here
(setuid, and for light a network namespace, Landlock and the seccomp filter).

Not covered here: choosing the backend and bwrap's arguments (backends.py), the filters
(seccomp.py, landlock.py), the cgroups themselves (cgroups.py), the fork server (zygote.py).
"""
from __future__ import annotations

import ctypes
import functools
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from lab.exec_helpers.zygote import load_seccomp
from lab.sandbox.backends import SANDBOX_PATH, bwrap_args
from lab.sandbox.cgroups import CGROUP_ROOT, CgroupPair
from lab.sandbox.landlock import apply_landlock
from lab.sandbox.linux import (
    CLONE_NEWNET,
    CLONE_NEWNS,
    MNT_DETACH,
    MS_BIND,
    MS_PRIVATE,
    MS_REC,
    PR_SET_CHILD_SUBREAPER,
    libc,
    write_kernel_file,
)
from lab.sandbox.processes import reap
from lab.sandbox.seccomp import seccomp_filter
from lab.sandbox.slots import SERVER_UID_OFFSET, UID_BASE, claim_slot
from lab.sandbox.spec import Limits, Mount, RawRun, SandboxError
from lab.sandbox.zygote import ZYGOTE_DIR, ZYGOTE_INSIDE, Zygote

SCRATCH_SIZE_MB = 1024
PIDS_MAX = 512
OUTPUT_KILL_FACTOR = 16
"""A program whose output passes OUTPUT_KILL_FACTOR x the kept bytes is killed (output flood)."""


def _world_traversable(path: Path) -> bool:
    return all(p.stat().st_mode & 0o005 == 0o005 for p in (path, *path.parents))


@dataclass
class Sandbox:
    """One worker's sandbox: a uid, cgroups and a tmpfs scratch area. Create it inside the worker."""
    isolation: str
    limits: Limits
    mounts: list[Mount] = field(default_factory=list)

    def __post_init__(self):
        self.root = os.geteuid() == 0
        self._aliases: dict[str, str] = {}
        if self.isolation != "none" and not self.root:
            print("WARNING: not root: sandboxed programs run as your own uid, without cgroup limits",
                  file=sys.stderr)
        self.slot, self._lock_fd = claim_slot()
        self.uid = UID_BASE + self.slot if self.root and self.isolation != "none" else None
        self.server_uid = UID_BASE + SERVER_UID_OFFSET + self.slot if self.uid else None
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        self.scratch = Path(tempfile.mkdtemp(prefix=f"rr-sandbox-{self.slot}-"))
        if self.root:
            self._private_namespaces(self.scratch, network=self.isolation != "none")
        os.chmod(self.scratch, 0o755)
        self.runs_dir = self.scratch / "runs"
        self.runs_dir.mkdir(mode=0o755)
        if self.isolation == "bwrap":
            self.mounts.append(Mount(str(ZYGOTE_DIR), ZYGOTE_INSIDE))
        self.mounts = [self._reachable(mount, index) for index, mount in enumerate(self.mounts)]
        self.cgroups = self.server_cgroups = None
        if self.uid and (CGROUP_ROOT / "memory").is_dir():
            self.cgroups = CgroupPair(str(self.uid), self.limits.memory_mb, PIDS_MAX)
            self.server_cgroups = CgroupPair(str(self.server_uid), max(self.limits.memory_mb, 3072), PIDS_MAX)
            # The worker joins its runs' group once, so runs inherit it at fork: moving a process
            # between cgroup v1 groups waits for an RCU grace period, every time. The kill sweep spares
            # the worker, and runs raise their oom_score_adj so the OOM killer takes them first.
            self.cgroups.enter()
        self._seccomp_path = self.scratch / "seccomp.bpf"
        self._seccomp_path.write_bytes(seccomp_filter())
        self._jobs = 0
        # started now, so a failure is said now
        self._zygote = self._start_zygote() if self.isolation == "bwrap" else None

    @staticmethod
    def _private_namespaces(path: Path, network: bool) -> None:
        """A mount namespace whose tmpfs at `path` lives and dies with this worker, and (unless
        isolation is 'none') one empty network namespace for the worker and all its runs: no
        interfaces up, no host abstract sockets; made once, as making one is slow enough to show in
        every run's latency (docs/benchmarks.md)."""
        flags = CLONE_NEWNS | (CLONE_NEWNET if network else 0)
        if libc.unshare(flags) != 0:
            raise SandboxError(f"unshare({flags:#x}) failed: {os.strerror(ctypes.get_errno())}")
        libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None)
        options = f"size={SCRATCH_SIZE_MB}m,nr_inodes=200000,mode=0755".encode()
        if libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", 0, options) != 0:
            raise SandboxError(f"mounting the scratch tmpfs failed: {os.strerror(ctypes.get_errno())}")

    def _reachable(self, mount: Mount, index: int) -> Mount:
        """Sandbox uids cannot traverse e.g. /root (0700): bind such paths into the scratch area."""
        if not self.root or _world_traversable(Path(mount.host)):
            return mount
        alias = self.scratch / f"mount{index}"
        alias.mkdir()
        if libc.mount(mount.host.encode(), str(alias).encode(), None, MS_BIND | MS_REC, None) != 0:
            raise SandboxError(f"bind-mounting {mount.host} failed: {os.strerror(ctypes.get_errno())}")
        self._aliases[mount.host] = str(alias)
        return Mount(str(alias), mount.inside)

    # -- job directories

    def new_job_dir(self, owner: int | None = None) -> Path:
        """A fresh directory on the scratch tmpfs, owned by `owner` (default: the program uid, and
        then among the run directories, the only ones the fork server can see)."""
        self._jobs += 1
        path = (self.scratch if owner is not None else self.runs_dir) / f"job{self._jobs}"
        path.mkdir(mode=0o755)
        owner = owner if owner is not None else self.uid
        if owner is not None:
            os.chown(path, owner, owner)
        return path

    def inside(self, host_path: Path | str, job_dir: Path) -> str:
        """The path a program sees for `host_path` (the job dir is /work under bwrap)."""
        host_path = str(host_path)
        for original, alias in self._aliases.items():
            if host_path.startswith(original):
                host_path = alias + host_path[len(original):]
        if self.isolation != "bwrap":
            return host_path
        if host_path.startswith(str(job_dir)):
            return "/work" + host_path[len(str(job_dir)):]
        for mount in self.mounts:
            if host_path.startswith(mount.host):
                return mount.inside + host_path[len(mount.host):]
        return host_path

    # -- running

    def command(self, argv: list[str], job_dir: Path, env: dict[str, str]) -> list[str]:
        """The full argv (bwrap wrapper included) for running `argv` on `job_dir` in a sandbox of its own."""
        if self.isolation != "bwrap":
            return argv
        referenced = " ".join([*argv, *env.values()])
        mounts = [m for m in self.mounts if m.inside in referenced]  # every mount costs start-up time
        binds = ["--bind", str(job_dir), "/work", "--bind", str(job_dir), "/tmp", "--chdir", "/work"]
        return [*bwrap_args(mounts, binds, env, root=self.root), "--cap-drop", "ALL", "--seccomp", "{seccomp_fd}",
                "--", *argv]

    def environment(self, job_dir: Path, extra: dict[str, str]) -> dict[str, str]:
        work = self.inside(job_dir, job_dir)
        return {"PATH": SANDBOX_PATH, "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8", **extra}

    def spawn(self, argv: list[str], job_dir: Path, env: dict[str, str], *, server: bool = False,
              stdin=subprocess.DEVNULL, stderr=subprocess.PIPE) -> subprocess.Popen:
        """Start `argv` in a sandbox of its own (uid, cgroups, rlimits, seccomp); the caller waits on it.
        `server`: a long-lived helper (compile server) with the server uid, no CPU limit, its own cgroups."""
        seccomp_fd = os.open(self._seccomp_path, os.O_RDONLY) if self.isolation == "bwrap" else -1
        full = [str(seccomp_fd) if a == "{seccomp_fd}" else a for a in self.command(argv, job_dir, env)]
        try:
            return self._popen(full, job_dir, env, role="server" if server else "run", stdin=stdin, stderr=stderr,
                               pass_fds=(seccomp_fd,) if seccomp_fd >= 0 else ())
        finally:
            if seccomp_fd >= 0:
                os.close(seccomp_fd)

    def _popen(self, full: list[str], job_dir: Path, env: dict[str, str], *, role: str, stdin, stderr,
               pass_fds: tuple[int, ...]) -> subprocess.Popen:
        """Popen with the per-role set-up in the child: 'run' (a program), 'server' (compile server) or
        'zygote' (the fork server, which sets each program's own limits itself)."""
        uid = self.server_uid if role == "server" else self.uid
        move_to = self.server_cgroups if role == "server" else None
        limits = self.limits
        isolation, root = self.isolation, self.root
        read_paths = ["/usr", "/bin", "/lib", "/lib64", "/etc", "/proc", "/dev"] + [m.host for m in self.mounts]
        seccomp_program = seccomp_filter() if isolation == "light" else b""
        cpu_s = int(limits.timeout_s) + 2 if role == "run" else resource.RLIM_INFINITY

        def prepare_child():
            if move_to:
                move_to.enter()
            if role == "run":
                write_kernel_file(Path("/proc/self/oom_score_adj"), "1000")
            for name, value in self._rlimits(cpu_s).items():
                resource.setrlimit(getattr(resource, name), (value, value))
            if isolation == "light" and not root and libc.unshare(CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            if isolation == "light":
                apply_landlock(read_paths, [str(job_dir), "/dev/null"])
                load_seccomp(seccomp_program)

        return subprocess.Popen(
            full, cwd=job_dir, env=env if isolation != "bwrap" else {"PATH": SANDBOX_PATH},
            stdin=stdin, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True,
            pass_fds=pass_fds, preexec_fn=prepare_child)

    def _rlimits(self, cpu_s: int) -> dict[str, int]:
        rlimits = {"RLIMIT_CORE": 0, "RLIMIT_FSIZE": self.limits.max_file_mb << 20, "RLIMIT_NOFILE": 1024,
                   "RLIMIT_CPU": cpu_s}
        if self.uid is not None:
            rlimits["RLIMIT_NPROC"] = PIDS_MAX
        return rlimits

    def run(self, argv: list[str], job_dir: Path, env: dict[str, str], timeout_s: float) -> RawRun:
        """Run to completion or timeout; kill every process of the run afterwards; reap. Under bwrap
        the worker's fork server starts it (see exec_helpers/zygote.py), else a process of its own."""
        start = time.monotonic()
        oom_before = self.cgroups.oom_kills() if self.cgroups else 0
        if self.isolation == "bwrap":
            exit_code, outputs, timed_out, reason = self._run_forked(argv, job_dir, env, start + timeout_s)
        else:
            exit_code, outputs, timed_out, reason = self._run_process(argv, job_dir, env, start + timeout_s)
        reap()
        if self.cgroups and self.cgroups.oom_kills() > oom_before:
            reason = reason or f"killed: memory limit of {self.limits.memory_mb} MB reached"
        if reason:
            outputs[1].extend(f"\n[sandbox] {reason}\n".encode())
        return RawRun(
            exit_code=None if timed_out else exit_code,
            stdout=bytes(outputs[0][: self.limits.max_output_bytes]),
            stderr=bytes(outputs[1][: self.limits.max_output_bytes + 200]),
            timed_out=timed_out, duration_s=time.monotonic() - start, killed_reason=reason)

    def _run_process(self, argv, job_dir, env, deadline):
        process = self.spawn(argv, job_dir, env)
        pidfd = os.pidfd_open(process.pid)
        outputs = [bytearray(), bytearray()]
        try:
            timed_out, reason = self._collect([process.stdout, process.stderr], pidfd, deadline, outputs)
        finally:
            os.close(pidfd)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        exit_code = process.wait()  # before the sweep reaps orphans, which would otherwise steal it
        self._sweep()
        self._drain(process.stdout, process.stderr, outputs)
        return (128 - exit_code if exit_code < 0 else exit_code), outputs, timed_out, reason

    def _run_forked(self, argv, job_dir, env, deadline):
        if job_dir.parent != self.runs_dir:
            raise SandboxError(f"{job_dir} is not a run directory of this sandbox (new_job_dir() makes one)")
        request = {"argv": argv, "env": env, "job": f"/jobs/{job_dir.name}",
                   "rlimits": self._rlimits(int(self.limits.timeout_s) + 2)}
        stdout_read, stdout_write = os.pipe()
        stderr_read, stderr_write = os.pipe()
        streams = [os.fdopen(stdout_read, "rb", buffering=0), os.fdopen(stderr_read, "rb", buffering=0)]
        outputs = [bytearray(), bytearray()]
        try:
            try:
                self._start_in_zygote(request, stdout_write, stderr_write)
            finally:
                os.close(stdout_write)
                os.close(stderr_write)
            timed_out, reason = self._collect(streams, self._zygote.control.fileno(), deadline, outputs)
            if timed_out or reason:
                self._zygote.kill_run()
            exit_code = self._zygote.wait_exit()
        except SandboxError:
            self._close_zygote()
            raise
        finally:
            self._sweep()
            self._drain(*streams, outputs)
        return exit_code, outputs, timed_out, reason

    def _start_in_zygote(self, request: dict, stdout: int, stderr: int) -> None:
        if self._zygote is not None:
            try:
                return self._zygote.start(request, stdout, stderr)
            except SandboxError:  # it died between runs; the program never started, so start it anew
                self._close_zygote()
        self._zygote = self._start_zygote()
        self._zygote.start(request, stdout, stderr)

    def _start_zygote(self) -> Zygote:
        return Zygote(self.mounts, self.runs_dir, root=self.root,
                      popen=functools.partial(self._popen, role="zygote"))

    def _close_zygote(self) -> None:
        if self._zygote is not None:
            self._zygote.close()
            self._zygote = None

    def _sweep(self) -> None:
        """Kill whatever of the run is left in the cgroup (the fork server excepted)."""
        if self.cgroups:
            self.cgroups.kill_all(spare=self._zygote.pids if self._zygote else set())

    def _collect(self, streams, done_fd: int, deadline: float, outputs: list[bytearray]) -> tuple[bool, str]:
        """Read stdout/stderr into `outputs` until `done_fd` is readable (the run's main process is
        over: not EOF, as daemons may hold the pipes), the deadline passes or the output floods.
        (timed out, why the run must be killed)."""
        fds = {stream.fileno(): index for index, stream in enumerate(streams)}
        for fd in fds:
            os.set_blocking(fd, False)
        poller = select.poll()
        for fd in (*fds, done_fd):
            poller.register(fd, select.POLLIN)
        hard_cap = self.limits.max_output_bytes * OUTPUT_KILL_FACTOR
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True, f"timeout after {self.limits.timeout_s:g} s"
            for fd, _ in poller.poll(remaining * 1000):
                if fd == done_fd:
                    return False, ""
                if not _read_some(fd, outputs[fds[fd]]):
                    poller.unregister(fd)
            if sum(map(len, outputs)) > hard_cap:
                return False, f"output limit exceeded ({hard_cap} bytes)"

    def _drain(self, stdout, stderr, outputs: list[bytearray]) -> None:
        for stream, into in ((stdout, outputs[0]), (stderr, outputs[1])):
            _drain_into(stream, into, self.limits.max_output_bytes)
            stream.close()

    def close(self) -> None:
        self._close_zygote()
        for cgroups in (self.cgroups, self.server_cgroups):
            if cgroups:
                cgroups.remove()
        reap()
        if self.root:
            libc.umount2(str(self.scratch).encode(), MNT_DETACH)
        shutil.rmtree(self.scratch, ignore_errors=True)
        os.close(self._lock_fd)


def _read_some(fd: int, into: bytearray) -> bool:
    """Read what is available; False at EOF."""
    try:
        chunk = os.read(fd, 1 << 16)
    except BlockingIOError:
        return True
    into.extend(chunk)
    return bool(chunk)


def _drain_into(stream, into: bytearray, cap: int) -> None:
    fd = stream.fileno()
    os.set_blocking(fd, False)
    while len(into) <= cap * OUTPUT_KILL_FACTOR:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            return
        into.extend(chunk)
