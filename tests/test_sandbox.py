"""Sandbox properties, each checked from the host side: who the program runs as, what it can
see and touch, its network, its environment, and that runs cannot see each other's files."""
import contextlib
import dataclasses
import os
import socket
import time

import pytest

from lab.config import ExecutionConfig
from lab.execution import Executor
from lab.sandbox import DENIED_SYSCALLS, _descendants, seccomp_filter

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="per-uid sandboxing needs root (CI runs as root)")]


@pytest.fixture(scope="module", params=["bwrap", "light"])
def executor(request):
    with Executor(ExecutionConfig(isolation=request.param, use_cache=False, workers=1, timeout_s=10.0)) as ex:
        yield ex


def test_programs_run_as_an_unprivileged_uid(executor):
    result = executor.run("py", "import os\nprint(os.getuid(), os.geteuid())\n")
    uid, euid = map(int, result.stdout.split())
    assert uid >= 60000 and euid >= 60000


def test_environment_is_cleared(executor, monkeypatch):
    monkeypatch.setenv("RR_SANDBOX_CANARY", "leaked")  # set before the worker starts: it inherits it
    with Executor(dataclasses.replace(executor.config, workers=1)) as fresh:
        result = fresh.run("py", "import os\nprint(sorted(os.environ))\n")
    assert result.passed and "RR_SANDBOX_CANARY" not in result.stdout


def test_system_is_read_only_and_host_files_stay_untouched(executor, tmp_path):
    tmp_path.chmod(0o777)
    target = tmp_path / "planted"
    program = ("import sys\nfailures = 0\n"
               f"for path in ['/usr/rr_planted', '/etc/rr_planted', '{target}']:\n"
               "    try:\n        open(path, 'w').write('x')\n    except OSError:\n        failures += 1\n"
               "sys.exit(0 if failures == 3 else 1)\n")
    result = executor.run("py", program)
    assert result.passed, result.stderr
    assert not target.exists() and not os.path.exists("/usr/rr_planted") and not os.path.exists("/etc/rr_planted")


def test_no_network_even_to_a_local_listener(executor):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    result = executor.run("py", f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n")
    with pytest.raises(socket.timeout):
        listener.accept()
    listener.close()
    assert not result.passed


def test_runs_do_not_see_each_others_files(executor):
    first = executor.run("py", "open('left_behind.txt', 'w').write('secret')\nimport os\nprint(os.getcwd())\n")
    second = executor.run("py", "import os, sys\nsys.exit(1 if os.path.exists('left_behind.txt') else 0)\n")
    assert first.passed and second.passed


def test_job_directory_is_writable_and_is_the_working_directory(executor):
    result = executor.run("py", "open('scratch.txt', 'w').write('ok')\nprint(open('scratch.txt').read())\n")
    assert result.passed and result.stdout.strip() == "ok"


def test_seccomp_filter_is_well_formed():
    program = seccomp_filter()
    assert len(program) % 8 == 0 and len(program) // 8 > len(DENIED_SYSCALLS)


def test_inet_sockets_are_refused_but_unix_sockets_work(executor):
    program = ("import socket, sys\nsocket.socketpair(socket.AF_UNIX)\n"
               "try:\n    socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n"
               "except OSError:\n    sys.exit(0)\nsys.exit(1)\n")
    result = executor.run("py", program)
    assert result.passed, result.stderr


def test_programs_hold_no_capabilities(executor):
    result = executor.run("py", "print(open('/proc/self/status').read())\n")
    capabilities = dict(line.split(":\t") for line in result.stdout.splitlines() if line.startswith("Cap"))
    assert all(int(capabilities[name], 16) == 0 for name in ("CapInh", "CapPrm", "CapEff", "CapAmb")), capabilities


SYSV_SHM = "import ctypes\nlibc = ctypes.CDLL(None)\n"


def test_runs_share_no_ipc_or_shared_memory(executor):
    if executor.isolation != "bwrap":
        pytest.skip("the light backend shares the host's IPC namespace (one reason it is the fallback)")
    first = executor.run("py", SYSV_SHM + "assert libc.shmget(0x5252, 4096, 0o1666) >= 0\n"
                               "open('/dev/shm/left_behind', 'w').write('secret')\n")
    second = executor.run("py", SYSV_SHM + "import os\nassert libc.shmget(0x5252, 0, 0o666) == -1\n"
                                "assert not os.path.exists('/dev/shm/left_behind')\n")
    assert first.passed and second.passed, (first.stderr, second.stderr)


def test_a_run_cannot_take_the_next_one_down(executor):
    attack = ("import os, signal\n"
              "for pid in [int(p) for p in os.listdir('/proc') if p.isdigit()]:\n"
              "    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\n"
              "os.kill(-1, signal.SIGKILL)\n")
    executor.run("py", attack)
    assert executor.run("py", "print('still here')\n").passed


def running(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in open(f"/proc/{pid}/status").read()
    except FileNotFoundError:
        return False


def test_a_dead_fork_server_is_replaced_before_the_next_run(executor):
    if executor.isolation != "bwrap":
        pytest.skip("only the bwrap backend has a fork server")
    assert executor.run("py", "pass\n").passed
    worker = executor.workers[0].process.pid
    servers = [pid for pid in _descendants(worker) if b"zygote.py" in open(f"/proc/{pid}/cmdline", "rb").read()]
    assert servers
    for pid in servers:
        with contextlib.suppress(ProcessLookupError):  # a run's own fork of the server may have ended already
            os.kill(pid, 9)
    deadline = time.monotonic() + 10
    while any(map(running, servers)) and time.monotonic() < deadline:
        time.sleep(0.01)
    result = executor.run("py", "print('fresh')\n")
    assert result.passed and not result.executor_error, result.stderr
