"""The in-sandbox fork server: one per worker, started once inside bubblewrap, it starts every
program of that worker so a run does not pay for a new bwrap (user namespace, mounts) each time.

Stdlib only: it runs under the system python3 inside the sandbox (lab.sandbox also imports
`load_seccomp` from here). Protocol, over the SOCK_SEQPACKET socket passed as fd argv[1]:
  host -> zygote  first message: the seccomp BPF program (raw bytes); answered b"ready"
  host -> zygote  one JSON request per run, with [stdout, stderr] write ends as SCM_RIGHTS
  zygote -> host  {"exit": code} when the run is over (128 + n when it died of signal n)
Each run gets fresh pid, IPC and mount namespaces (a small init as pid 1: when it ends the
kernel kills everything the run left behind, and nothing outside is addressable by pid), its
own /proc, its job directory at /work, /tmp and /dev/shm; the init drops every capability,
sets no_new_privs and loads the seccomp filter before it spawns the program. The zygote itself
is not dumpable, so a program of the same uid cannot read or write its memory.

Not covered here: limits enforced from outside (cgroups, timeouts, output caps: the lab.sandbox package).
"""
import ctypes
import json
import os
import resource
import socket
import struct
import sys

CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWIPC = 0x00020000, 0x20000000, 0x08000000
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP = 4, 38, 22
SECCOMP_MODE_FILTER, LINUX_CAPABILITY_VERSION_3 = 2, 0x20080522

libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        raise OSError(ctypes.get_errno(), f"{what}: {os.strerror(ctypes.get_errno())}")


def load_seccomp(program: bytes) -> None:
    """no_new_privs, then the classic-BPF filter `program` (struct sock_filter[]) for this thread."""
    buffer = ctypes.create_string_buffer(program)
    fprog = struct.pack("=HxxxxxxQ", len(program) // 8, ctypes.addressof(buffer))
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
    _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.c_char_p(fprog), 0, 0), "PR_SET_SECCOMP")


def _drop_all_capabilities() -> None:
    """Empty effective, permitted and inheritable (and so ambient) sets; with no_new_privs an exec
    can then gain nothing, not even from file capabilities."""
    header = ctypes.create_string_buffer(struct.pack("=Ii", LINUX_CAPABILITY_VERSION_3, 0))
    _check(libc.capset(header, ctypes.create_string_buffer(24)), "capset")


def _mount(source, target: str, fstype, flags: int) -> None:
    def encode(value):
        return value.encode() if value else None
    _check(libc.mount(encode(source), target.encode(), encode(fstype), flags, None), f"mount {target}")


def _init(request: dict, stdout: int, stderr: int, seccomp: bytes) -> None:
    """Pid 1 of the run's namespaces: set the run up, confine itself, spawn the program (so the
    program has ordinary signal semantics, which pid 1 lacks) and exit with its status."""
    try:
        _check(libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "PR_SET_DUMPABLE")  # its own /proc/self again
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        for target in ("/work", "/tmp", "/dev/shm"):
            _mount(request["job"], target, None, MS_BIND)
        os.chdir("/work")
        null = os.open("/dev/null", os.O_RDONLY)
        for source, fd in ((null, 0), (stdout, 1), (stderr, 2)):
            os.dup2(source, fd)
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write("1000")
        for name, value in request["rlimits"].items():
            resource.setrlimit(getattr(resource, name), (value, value))
        _drop_all_capabilities()
        load_seccomp(seccomp)
        program = os.posix_spawnp(request["argv"][0], request["argv"], request["env"], setsid=True)
        os._exit(_exit_code(os.waitpid(program, 0)[1]))
    except BaseException as error:  # noqa: BLE001 - anything here must end this process, not the zygote
        os.write(2, f"[sandbox] cannot start {request['argv'][0]!r}: {error}\n".encode())
    os._exit(127)


def _exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _run(request: dict, stdout: int, stderr: int, seccomp: bytes) -> None:
    """The intermediate process: new pid, mount and IPC namespaces, fork their pid 1, pass its status up."""
    try:
        _check(libc.unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC), "unshare")
        child = os.fork()
        if child == 0:
            _init(request, stdout, stderr, seccomp)
        os.close(stdout)
        os.close(stderr)
        os._exit(_exit_code(os.waitpid(child, 0)[1]))
    except BaseException as error:  # noqa: BLE001
        os.write(stderr, f"[sandbox] cannot set up the run: {error}\n".encode())
    os._exit(127)


def main(control_fd: int) -> None:
    _check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "PR_SET_DUMPABLE")
    control = socket.socket(fileno=control_fd)
    seccomp = control.recv(1 << 16)
    control.send(b"ready")
    while True:
        message, fds, _, _ = socket.recv_fds(control, 1 << 20, 2)
        if not message:
            return
        stdout, stderr = fds
        child = os.fork()
        if child == 0:
            control.close()
            _run(json.loads(message), stdout, stderr, seccomp)
        os.close(stdout)
        os.close(stderr)
        control.send(json.dumps({"exit": _exit_code(os.waitpid(child, 0)[1])}).encode())


if __name__ == "__main__":
    main(int(sys.argv[1]))
