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

Not covered here: what to run for a language (languages.py), pools and caching (execution.py).
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from lab.config import UsageError
from lab.exec_helpers.zygote import load_seccomp

UID_BASE = 60000
"""Worker slot n (1..MAX_SLOTS) runs programs as uid UID_BASE+n and helper servers as UID_BASE+1000+n."""
MAX_SLOTS = 999
LOCK_DIR = Path("/run/rewardranker-sandbox") if os.geteuid() == 0 else Path(tempfile.gettempdir()) / "rewardranker-sandbox"
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_NAME = "rewardranker"
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
SCRATCH_SIZE_MB = 1024
PIDS_MAX = 512
OUTPUT_KILL_FACTOR = 16
"""A program whose output passes OUTPUT_KILL_FACTOR x the kept bytes is killed (output flood)."""
ZYGOTE_DIR = Path(__file__).resolve().parent / "exec_helpers"
"""Holds zygote.py, the fork server that starts every bwrap-sandboxed run of a worker."""
ZYGOTE_INSIDE = "/opt/rr-sandbox"
ZYGOTE_START_TIMEOUT_S = 20.0
ZYGOTE_EXIT_TIMEOUT_S = 10.0

libc = ctypes.CDLL(None, use_errno=True)


class SandboxError(RuntimeError):
    """The sandbox could not be set up; the message says what failed and what to do."""


@dataclass
class Limits:
    timeout_s: float = 10.0
    memory_mb: int = 2048
    max_output_bytes: int = 64 * 1024
    max_file_mb: int = 256
    """RLIMIT_FSIZE: the largest single file a program may write."""


@dataclass
class RawRun:
    """What one sandboxed command did."""
    exit_code: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool
    duration_s: float
    killed_reason: str = ""
    """Why the sandbox killed it (timeout, output flood, memory limit); empty when it just ended."""


@dataclass
class Mount:
    """A host path made visible read-only inside the sandbox at `inside` (bwrap) or as-is (light/none)."""
    host: str
    inside: str


# ---------------------------------------------------------------- seccomp (classic BPF, x86_64)

AUDIT_ARCH_X86_64 = 0xC000003E
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_KILL_PROCESS = 0x80000000
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
SOCKET_SYSCALLS = (41, 53)  # socket, socketpair: only AF_UNIX (1) is allowed
CLONE3 = 435  # answered ENOSYS so libc falls back to clone(), whose flags bwrap/userns rules cover


def seccomp_filter() -> bytes:
    """The BPF program (struct sock_filter[]) that bwrap's --seccomp and the light backend load."""
    def insn(code, k, jt=0, jf=0):
        return [code, jt, jf, k]

    ld_abs, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    body = [insn(ld_abs, 4), insn(jeq, AUDIT_ARCH_X86_64, 1, 0), insn(ret, SECCOMP_RET_KILL_PROCESS),
            insn(ld_abs, 0), insn(jge, 0x40000000, "enosys", 0), insn(jeq, CLONE3, "enosys", 0)]
    body += [insn(jeq, nr, "eperm", 0) for nr in DENIED_SYSCALLS.values()]
    body += [insn(jeq, nr, "domain", 0) for nr in SOCKET_SYSCALLS]
    body += [insn(ret, SECCOMP_RET_ALLOW)]
    labels = {"domain": len(body)}
    body += [insn(ld_abs, 16), insn(jeq, 1, "allow", 0), insn(ret, SECCOMP_RET_ERRNO | errno.EACCES)]
    labels.update(allow=len(body), eperm=len(body) + 1, enosys=len(body) + 2)
    body += [insn(ret, SECCOMP_RET_ALLOW), insn(ret, SECCOMP_RET_ERRNO | errno.EPERM),
             insn(ret, SECCOMP_RET_ERRNO | errno.ENOSYS)]
    out = b""
    for i, (code, jt, jf, k) in enumerate(body):
        jt = labels[jt] - i - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - i - 1 if isinstance(jf, str) else jf
        out += struct.pack("=HBBI", code, jt, jf, k)
    return out


# ---------------------------------------------------------------- Landlock (light backend)

def landlock_abi() -> int:
    abi = libc.syscall(444, None, 0, 1)  # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    return max(abi, 0)


def _apply_landlock(read_paths: list[str], write_paths: list[str]) -> None:
    """Allow-list filesystem access; with ABI >= 4 deny TCP, with ABI >= 6 deny signals out of the domain."""
    abi = landlock_abi()
    if abi < 1:
        return
    read_access = 1 | 4 | 8  # EXECUTE | READ_FILE | READ_DIR
    all_access = (1 << 13) - 1 | (1 << 13 if abi >= 2 else 0) | (1 << 14 if abi >= 3 else 0) | (1 << 15 if abi >= 5 else 0)
    attr = struct.pack("=QQQ", all_access, 3 if abi >= 4 else 0, 2 if abi >= 6 else 0)  # net: BIND|CONNECT_TCP, scope: SIGNAL
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(444, ctypes.c_char_p(attr), size, 0)
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    for paths, access in ((read_paths, read_access), (write_paths, all_access)):
        for path in paths:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            rule_access = access if os.path.isdir(path) else access & (1 | 2 | 4 | (1 << 14))
            rule = struct.pack("=Qi", rule_access, fd)
            libc.syscall(445, ruleset, 1, ctypes.c_char_p(rule), 0)
            os.close(fd)
    if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.syscall(446, ruleset, 0) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    os.close(ruleset)


# ---------------------------------------------------------------- choosing a backend

def bwrap_usable(uid: int | None = None) -> tuple[bool, str]:
    """Can bubblewrap build our sandbox here (as `uid` when root)? (ok, reason when not)."""
    if shutil.which("bwrap") is None:
        return False, "bwrap is not installed (Debian package: bubblewrap)"
    argv = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
            *_system_binds(), "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/", "--", "/bin/true"]
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


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib32", "lib64", "libx32", "sbin"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return args + ["--ro-bind", "/etc", "/etc"]


# ---------------------------------------------------------------- the per-worker sandbox

def _claim_slot() -> tuple[int, int]:
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


def _write(path: Path, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


class CgroupPair:
    """cgroup v1 memory + pids groups for one uid, for limits and for killing every process of a run."""

    def __init__(self, name: str, memory_mb: int, pids_max: int):
        self.dirs = []
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
                    _write(memsw, "-1")
                _write(path / "memory.limit_in_bytes", limit)
                if memsw.exists():
                    _write(memsw, limit)
            else:
                _write(path / "pids.max", str(pids_max))

    def enter(self) -> None:
        """Move the calling process into both groups."""
        for path in self.dirs:
            _write(path / "cgroup.procs", str(os.getpid()))

    def pids(self) -> list[int]:
        """Every process in the group (both controllers hold the same ones; one read suffices)."""
        try:
            return [int(line) for line in (self.dirs[-1] / "cgroup.procs").read_text().split()]
        except (OSError, IndexError):
            return []

    def kill_all(self, spare: set[int] = frozenset()) -> None:
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
            _reap()
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


def _world_traversable(path: Path) -> bool:
    return all(p.stat().st_mode & 0o005 == 0o005 for p in (path, *path.parents))


def _reap() -> None:
    """Collect every exited child (the worker is subreaper, so orphans end up here)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


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
        self.slot, self._lock_fd = _claim_slot()
        self.uid = UID_BASE + self.slot if self.root and self.isolation != "none" else None
        self.server_uid = UID_BASE + 1000 + self.slot if self.uid else None
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
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
            # between cgroup v1 groups costs ~15 ms (an RCU grace period). The kill sweep spares
            # the worker, and runs raise their oom_score_adj so the OOM killer takes them first.
            self.cgroups.enter()
        self._seccomp_path = self.scratch / "seccomp.bpf"
        self._seccomp_path.write_bytes(seccomp_filter())
        self._jobs = 0
        self._zygote = _Zygote(self) if self.isolation == "bwrap" else None  # started now, so a failure is said now

    @staticmethod
    def _private_namespaces(path: Path, network: bool) -> None:
        """A mount namespace whose tmpfs at `path` lives and dies with this worker, and (unless
        isolation is 'none') one empty network namespace for the worker and all its runs: no
        interfaces up, no host abstract sockets; made once, as a new one per run costs ~10 ms."""
        flags = 0x00020000 | (0x40000000 if network else 0)  # CLONE_NEWNS | CLONE_NEWNET
        if libc.unshare(flags) != 0:
            raise SandboxError(f"unshare({flags:#x}) failed: {os.strerror(ctypes.get_errno())}")
        libc.mount(b"none", b"/", None, 16384 | (1 << 18), None)  # MS_REC | MS_PRIVATE
        options = f"size={SCRATCH_SIZE_MB}m,nr_inodes=200000,mode=0755".encode()
        if libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", 0, options) != 0:
            raise SandboxError(f"mounting the scratch tmpfs failed: {os.strerror(ctypes.get_errno())}")

    def _reachable(self, mount: Mount, index: int) -> Mount:
        """Sandbox uids cannot traverse e.g. /root (0700): bind such paths into the scratch area."""
        if not self.root or _world_traversable(Path(mount.host)):
            return mount
        alias = self.scratch / f"mount{index}"
        alias.mkdir()
        if libc.mount(mount.host.encode(), str(alias).encode(), None, 4096 | 16384, None) != 0:  # MS_BIND | MS_REC
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
        return [*self._bwrap(mounts, ["--bind", str(job_dir), "/work", "--bind", str(job_dir), "/tmp", "--chdir", "/work"],
                             env), "--cap-drop", "ALL", "--seccomp", "{seccomp_fd}", "--", *argv]

    def _bwrap(self, mounts: list[Mount], binds: list[str], env: dict[str, str]) -> list[str]:
        namespaces = ["--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
        if not self.root:  # as root the worker already sits in its own empty network namespace
            namespaces.append("--unshare-net")
        args = ["bwrap", *namespaces, "--disable-userns", "--die-with-parent", "--new-session",
                *_system_binds(), "--proc", "/proc", "--dev", "/dev"]
        for mount in mounts:
            args += ["--ro-bind", mount.host, mount.inside]
        args += [*binds, "--remount-ro", "/", "--hostname", "sandbox", "--clearenv"]
        for key, value in env.items():
            args += ["--setenv", key, value]
        return args

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
                _write(Path("/proc/self/oom_score_adj"), "1000")
            for name, value in self._rlimits(cpu_s).items():
                resource.setrlimit(getattr(resource, name), (value, value))
            if isolation == "light" and not root and libc.unshare(0x40000000) != 0:  # CLONE_NEWNET
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            if isolation == "light":
                _apply_landlock(read_paths, [str(job_dir), "/dev/null"])
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
        _reap()
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
        self._zygote = _Zygote(self)
        self._zygote.start(request, stdout, stderr)

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
            for fd, event in poller.poll(remaining * 1000):
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
        _reap()
        if self.root:
            libc.umount2(str(self.scratch).encode(), 2)  # MNT_DETACH
        shutil.rmtree(self.scratch, ignore_errors=True)
        os.close(self._lock_fd)


class _Zygote:
    """The worker's fork server (exec_helpers/zygote.py) in one long-lived bwrap: every mount the
    programs may need, CAP_SYS_ADMIN in its user namespace only (to give each run fresh pid and
    mount namespaces), no seccomp itself; each program loses every capability and gets the filter."""

    def __init__(self, sandbox: Sandbox):
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        runs = sandbox.scratch / "runs"
        env = {"PATH": SANDBOX_PATH, "LANG": "C.UTF-8"}
        argv = [*sandbox._bwrap(sandbox.mounts,
                                ["--bind", str(runs), "/jobs", "--dir", "/work", "--dir", "/tmp", "--chdir", "/"], env),
                "--cap-add", "CAP_SYS_ADMIN", "--", "/usr/bin/python3", "-I", "-S", f"{ZYGOTE_INSIDE}/zygote.py",
                str(theirs.fileno())]
        self.process = sandbox._popen(argv, runs, env, role="zygote", stdin=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, pass_fds=(theirs.fileno(),))
        theirs.close()
        try:
            self.control.send(seccomp_filter())
            ready = select.select([self.control], [], [], ZYGOTE_START_TIMEOUT_S)[0] and self.control.recv(16) == b"ready"
        except OSError:
            ready = False
        if not ready:
            self.process.kill()
            detail = self.process.communicate()[1].decode(errors="replace").strip()
            raise SandboxError(f"the sandbox's fork server did not start: {detail or 'no answer'}. "
                               "Run `python -m lab selftest`, or use execution.isolation=light")
        chain = [self.process.pid, *_descendants(self.process.pid)]  # bwrap, its pid-1 init, the zygote
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
        for pid in _descendants(self.server_pid):
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


def _descendants(pid: int) -> list[int]:
    """Every descendant of `pid`, parents before children (from /proc/<pid>/task/*/children)."""
    found = []
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
            found += [child, *_descendants(child)]
    return found


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
