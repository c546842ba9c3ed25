"""Self-tests of the executor: the sandbox against real attacks, and the verdicts per language.

run_selftest(): ten attacks (network connect to a host listener, reading and writing outside
the job directory, a bounded fork storm, an 8 GiB allocation, an infinite loop, a detached
daemon, an output flood, a disk fill, signalling a host process), each written in Python,
C++ and Java, run through the real Executor; every escape is judged from the host side
(the listener's accept queue, the files, /proc, the victim process), never from the
program's own report.
exec_check(): per language, a known-correct completion must pass and a wrong one must fail;
with full=True also every HumanEval reference solution (HumanEval.jsonl and the MultiPL-E
Python file), listing the known upstream quirks apart.

Not covered here: the sandbox implementation (the lab.sandbox package) or the language table (languages.py).
"""
from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from lab.config import DataConfig, ExecutionConfig, UsageError
from lab.execution import ExecutionResult, Executor, build_program
from lab.problems import load_problems

SELFTEST_LANGUAGES = ("py", "cpp", "java")
SELFTEST_TIMEOUT_S = 6.0
SELFTEST_MEMORY_MB = 768
"""Low enough that the 8 GiB allocation meets the limit well inside the timeout (first-touch
page faults are slow in a VM)."""
FORK_STORM_SIZE = 3000
ALLOCATION_GIB = 8
DISK_FILL_GIB = 4
SIGNALS_GRACE_S = 0.5

KNOWN_QUIRKS = {
    "HumanEval_10_make_palindrome": "the reference calls is_palindrome, a helper only HumanEval.jsonl's prompt defines",
    "HumanEval_115_max_fill": "the reference needs `import math`, which only HumanEval.jsonl's prompt has",
    "HumanEval_151_double_the_difference": "MultiPL-E's float-typed test inputs break the original solution",
}
"""MultiPL-E humaneval-py problems whose HumanEval reference cannot pass there (upstream, not us)."""

# ---------------------------------------------------------------- attacks

ATTACKS: dict[str, dict[str, str]] = {
    "network": {
        "py": ("import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
               "s.sendall(b'escaped')\nprint('CONNECTED')\n"),
        "cpp": ("#include <arpa/inet.h>\n#include <sys/socket.h>\n#include <cstdio>\n#include <unistd.h>\nint main(){"
                "int s=socket(AF_INET,SOCK_STREAM,0);sockaddr_in a{};a.sin_family=AF_INET;a.sin_port=htons({port});"
                "inet_pton(AF_INET,\"127.0.0.1\",&a.sin_addr);if(connect(s,(sockaddr*)&a,sizeof a)==0){write(s,"
                "\"escaped\",7);puts(\"CONNECTED\");}else perror(\"connect\");}\n"),
        "java": ("import java.net.*;\nclass Problem { public static void main(String[] a) throws Exception { Socket "
                 "s = new Socket(\"127.0.0.1\", {port}); s.getOutputStream().write(\"escaped\".getBytes()); "
                 "System.out.println(\"CONNECTED\"); } }\n"),
    },
    "read_outside": {
        "py": "print(open('{secret_path}').read())\n",
        "cpp": ("#include <fstream>\n#include <iostream>\nint main(){std::ifstream f(\"{secret_path}\");"
                "std::cout<<f.rdbuf();}\n"),
        "java": ("import java.nio.file.*;\nclass Problem { public static void main(String[] a) throws Exception { "
                 "System.out.println(Files.readString(Path.of(\"{secret_path}\"))); } }\n"),
    },
    "write_outside": {
        "py": "open('{outside_path}', 'w').write('escaped')\n",
        "cpp": "#include <fstream>\nint main(){std::ofstream f(\"{outside_path}\");f<<\"escaped\";}\n",
        "java": ("import java.nio.file.*;\nclass Problem { public static void main(String[] a) throws Exception { "
                 "Files.writeString(Path.of(\"{outside_path}\"), \"escaped\"); } }\n"),
    },
    "fork_storm": {
        "py": ("import os\nn = 0\nfor _ in range({forks}):\n    try:\n        if os.fork() == 0:\n            "
               "os.execv('/bin/sleep', ['sleep', '{token}'])\n        n += 1\n    except OSError:\n        break\n"
               "print('FORKED', n)\n"),
        "cpp": ("#include <unistd.h>\n#include <cstdio>\nint main(){int n=0;for(int i=0;i<{forks};i++){pid_t "
                "p=fork();if(p<0)break;if(p==0){execl(\"/bin/sleep\",\"sleep\",\"{token}\",(char*)0);_exit(1);}n++;}"
                "printf(\"FORKED %d\\n\",n);}\n"),
        "java": ("class Problem { public static void main(String[] a) { int n = 0; try { for (int i = 0; i < {forks};"
                 " i++) { new ProcessBuilder(\"sleep\", \"{token}\").start(); n++; } } catch (Throwable e) { } "
                 "System.out.println(\"FORKED \" + n); } }\n"),
    },
    "allocate_8gib": {
        "py": "b = b'x' * ({gib} << 30)\nprint('ALLOCATED')\n",
        "cpp": ("#include <cstdlib>\n#include <cstring>\n#include <cstdio>\nint main(){size_t n=(size_t){gib}<<30;"
                "char*p=(char*)malloc(n);if(!p)return 1;memset(p,1,n);puts(\"ALLOCATED\");}\n"),
        "java": ("import java.lang.reflect.*;\nclass Problem { public static void main(String[] a) throws Exception {"
                 " Field f = sun.misc.Unsafe.class.getDeclaredField(\"theUnsafe\"); f.setAccessible(true); "
                 "sun.misc.Unsafe u = (sun.misc.Unsafe) f.get(null); long n = {gib}L << 30; long p = "
                 "u.allocateMemory(n); u.setMemory(p, n, (byte) 1); System.out.println(\"ALLOCATED\"); } }\n"),
    },
    "infinite_loop": {
        "py": "while True:\n    pass\n",
        "cpp": "int main(){volatile long x=0;for(;;)x++;}\n",
        "java": "class Problem { public static void main(String[] a) { long x = 0; while (true) { x++; } } }\n",
    },
    "detached_daemon": {
        "py": ("import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        "
               "os.execv('/bin/sleep', ['sleep', '{token}'])\n    os._exit(0)\nprint('DAEMONIZED')\n"),
        "cpp": ("#include <unistd.h>\n#include <cstdio>\nint main(){if(fork()==0){setsid();if(fork()==0){"
                "execl(\"/bin/sleep\",\"sleep\",\"{token}\",(char*)0);}_exit(0);}puts(\"DAEMONIZED\");}\n"),
        "java": ("class Problem { public static void main(String[] a) throws Exception { new "
                 "ProcessBuilder(\"setsid\", \"sleep\", \"{token}\").start(); System.out.println(\"DAEMONIZED\"); } }"
                 "\n"),
    },
    "output_flood": {
        "py": "import sys\nline = 'x' * 65535 + '\\n'\nwhile True:\n    sys.stdout.write(line)\n",
        "cpp": ("#include <cstdio>\nint main(){static char b[65536];for(auto&c:b)c='x';for(;;)fwrite(b,1,sizeof b,"
                "stdout);}\n"),
        "java": ("class Problem { public static void main(String[] a) { String s = \"x\".repeat(65535); while (true) "
                 "{ System.out.println(s); } } }\n"),
    },
    "disk_fill": {
        "py": ("import os\nchunk = b'x' * (1 << 20)\nwritten = 0\ntry:\n    for i in range({gib} * 1024):\n        "
               "with open(f'fill{i // 128}', 'ab') as f:\n            f.write(chunk)\n        written += len(chunk)\n"
               "except OSError as e:\n    print('STOPPED', e)\nprint('WROTE', written)\n"),
        "cpp": ("#include <cstdio>\n#include <string>\nint main(){static char b[1<<20];long long w=0;for(int i=0;i<{"
                "gib}*1024;i++){FILE*f=fopen((\"fill\"+std::to_string(i/128)).c_str(),\"ab\");if(!f)break;size_t "
                "k=fwrite(b,1,sizeof b,f);if(fclose(f)!=0||k!=sizeof b)break;w+=k;}printf(\"WROTE %lld\\n\",w);}\n"),
        "java": ("import java.io.*;\nclass Problem { public static void main(String[] a) { long w = 0; byte[] b = "
                 "new byte[1 << 20]; try { for (int i = 0; i < {gib} * 1024; i++) { try (FileOutputStream f = new "
                 "FileOutputStream(\"fill\" + (i / 128), true)) { f.write(b); } w += b.length; } } catch "
                 "(IOException e) { } System.out.println(\"WROTE \" + w); } }\n"),
    },
    "signal_host": {
        "py": ("import os, signal\nfor target in ({victim_pid}, -1):\n    try:\n        os.kill(target, "
               "signal.SIGKILL)\n    except OSError as e:\n        print('kill', target, e)\n"),
        "cpp": ("#include <signal.h>\n#include <cstdio>\nint main(){if(kill({victim_pid},"
                "SIGKILL)!=0)perror(\"kill\");kill(-1,SIGKILL);}\n"),
        "java": ("class Problem { public static void main(String[] a) throws Exception { ProcessHandle.of({"
                 "victim_pid}L).ifPresent(ProcessHandle::destroyForcibly); new ProcessBuilder(\"kill\", \"-9\", "
                 "\"-1\").start().waitFor(); } }\n"),
    },
}


@dataclass
class AttackOutcome:
    attack: str
    language: str
    escaped: bool
    detail: str
    status: str


@dataclass
class SelftestReport:
    isolation: str
    outcomes: list[AttackOutcome] = field(default_factory=list)

    @property
    def escapes(self) -> int:
        return sum(outcome.escaped for outcome in self.outcomes)

    @property
    def ok(self) -> bool:
        return bool(self.outcomes) and self.escapes == 0

    def format(self) -> str:
        lines = [f"sandbox self-test (isolation={self.isolation})"]
        for o in self.outcomes:
            verdict = "ESCAPED" if o.escaped else "held   "
            lines.append(f"  {verdict}  {o.attack:<16} {o.language:<5} [{o.status}] {o.detail}")
        lines.append(f"{self.escapes} escape(s) in {len(self.outcomes)} attacks")
        return "\n".join(lines)


def run_selftest(config: ExecutionConfig | None = None, languages=SELFTEST_LANGUAGES,
                 attacks=tuple(ATTACKS)) -> SelftestReport:
    """Run every attack in every language through a real Executor; judge escapes from the host."""
    config = dataclasses.replace(config or ExecutionConfig(), use_cache=False, timeout_s=SELFTEST_TIMEOUT_S,
                                 memory_mb=SELFTEST_MEMORY_MB)
    if config.isolation == "none":
        raise UsageError("the self-test attacks the sandbox; it refuses to run with execution.isolation=none")
    host_dir = Path(tempfile.mkdtemp(prefix="rr-selftest-"))
    host_dir.chmod(0o777)
    with Executor(config) as executor:
        report = SelftestReport(executor.isolation)
        for attack in attacks:
            report.outcomes += _run_attack(executor, attack, languages, host_dir, config)
    shutil.rmtree(host_dir, ignore_errors=True)
    return report


def _run_attack(executor: Executor, attack: str, languages, host_dir: Path,
                config: ExecutionConfig) -> list[AttackOutcome]:
    token = f"{secrets.randbelow(10**6)}.{secrets.randbelow(10**6)}"
    secret = secrets.token_hex(16)
    secret_path = host_dir / "secret.txt"
    secret_path.write_text(secret)
    secret_path.chmod(0o644)
    outside_path = host_dir / f"written-{token}"
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)
    victim = subprocess.Popen(["sleep", "600"])
    disk_before = shutil.disk_usage(tempfile.gettempdir()).free
    fill = dict(port=listener.getsockname()[1], secret_path=secret_path, outside_path=outside_path, token=token,
                forks=FORK_STORM_SIZE, gib=ALLOCATION_GIB if attack == "allocate_8gib" else DISK_FILL_GIB,
                victim_pid=victim.pid)
    programs = [(language, _fill(ATTACKS[attack][language], fill)) for language in languages]
    started = time.monotonic()
    results = executor.run_many(programs, progress=False)
    elapsed = time.monotonic() - started
    time.sleep(SIGNALS_GRACE_S)
    leftovers = _processes_with(token)
    connections = _accepted(listener)
    outcomes = []
    for (language, _), result in zip(programs, results):
        output = result.stdout + result.stderr
        checks = {
            "network": (connections > 0, f"{connections} connection(s) reached the host listener"),
            "read_outside": (secret in output, f"secret in the output: {secret in output}"),
            "write_outside": (outside_path.exists(), f"file outside written: {outside_path.exists()}"),
            "fork_storm": (bool(leftovers) or _forked(output) > 600,
                           f"forked {_forked(output)}, {len(leftovers)} left running"),
            "allocate_8gib": ("ALLOCATED" in result.stdout, f"allocation succeeded: {'ALLOCATED' in result.stdout}"),
            "infinite_loop": (result.status != "Timeout" or result.duration_s > config.timeout_s + 5,
                              f"ran {result.duration_s:.1f} s"),
            "detached_daemon": (bool(leftovers), f"{len(leftovers)} daemon(s) still running after the run"),
            "output_flood": (len(result.stdout) > config.max_output_bytes or elapsed > config.timeout_s + 10,
                             f"kept {len(result.stdout)} bytes of stdout"),
            "disk_fill": (_wrote(output) >= DISK_FILL_GIB << 30
                          or disk_before - shutil.disk_usage(tempfile.gettempdir()).free > 1 << 30,
                          f"wrote {_wrote(output) >> 20} MiB"),
            "signal_host": (victim.poll() is not None,
                            f"victim pid {victim.pid} {'killed' if victim.poll() is not None else 'alive'}"),
        }
        escaped, detail = checks[attack]
        sandbox_notes = [line for line in result.stderr.splitlines() if line.startswith("[sandbox]")]
        detail += f" ({sandbox_notes[-1][10:]})" if sandbox_notes else ""
        outcomes.append(AttackOutcome(attack, language, bool(escaped), detail, result.status))
    for pid in leftovers:
        _kill(pid)
    victim.kill()
    victim.wait()
    listener.close()
    outside_path.unlink(missing_ok=True)
    return outcomes


def _fill(template: str, values: dict) -> str:
    for key, value in values.items():
        template = template.replace("{" + key + "}", str(value))
    return template


def _processes_with(token: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if token.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _accepted(listener: socket.socket) -> int:
    count = 0
    while True:
        try:
            connection, _ = listener.accept()
        except BlockingIOError:
            return count
        connection.close()
        count += 1


def _number_after(word: str, output: str) -> int:
    for line in output.splitlines():
        if line.startswith(word + " ") and line.split()[1].isdigit():
            return int(line.split()[1])
    return 0


def _forked(output: str) -> int:
    return _number_after("FORKED", output)


def _wrote(output: str) -> int:
    return _number_after("WROTE", output)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except OSError:
        pass


# ---------------------------------------------------------------- verdicts per language

CORRECT_ADD = {
    "py": "    return x + y\n",
    "cpp": "    return x + y;\n",
    "java": "        return x + y;\n",
    "js": "  return x + y;\n}\n",
    "ts": "  return x + y;\n}\n",
    "php": "    return $x + $y;\n}\n",
    "sh": "    echo $(( $1 + $2 ))\n",
    "cs": "        return x + y;\n",
    "rs": "    x + y\n",
    "go": "    return x + y\n}\n",
    "rb": "  x + y\nend\n",
    "pl": "    return $x + $y;\n}\n",
    "lua": "  return x + y\nend\n",
    "r": "  x + y\n}\n",
    "rkt": "  (+ x y))\n",
    "d": "{\n    return x + y;\n}\n",
    "scala": "        x + y\n",
}
"""Known-correct completions of MultiPL-E HumanEval_53_add in every supported language."""


def wrong_add(language: str) -> str:
    """The deliberately wrong twin of CORRECT_ADD[language]: it subtracts."""
    return CORRECT_ADD[language].replace("(+ x y)", "(- x y)").replace("+", "-")


@dataclass
class LanguageCheck:
    language: str
    toolchain: str
    correct: ExecutionResult | None = None
    wrong: ExecutionResult | None = None
    missing: str = ""
    """Debian package to install when the toolchain is missing."""

    @property
    def ok(self) -> bool:
        return (not self.missing and self.correct is not None and self.correct.passed
                and self.wrong is not None and not self.wrong.passed)


@dataclass
class ReferenceCheck:
    source: str
    passed: int
    total: int
    failures: dict[str, str]
    """Problem name -> status, for references that did not pass (see KNOWN_QUIRKS)."""


def exec_check(config: ExecutionConfig | None = None, languages=None, data: DataConfig | None = None,
               full: bool = False) -> tuple[list[LanguageCheck], list[ReferenceCheck]]:
    """Per language: correct add() passes, wrong add() fails. full=True: HumanEval references too."""
    config = config or ExecutionConfig()
    data = data or DataConfig()
    with Executor(config) as executor:
        missing = executor.missing_languages()
        available = executor.available_languages()
        checks, jobs = [], []
        for language in languages or CORRECT_ADD:
            if language in missing:
                checks.append(LanguageCheck(language, "", missing=missing[language]))
                continue
            problem = next(p for p in load_problems("multipl-e/humaneval", language=language, data=data)
                           if p.id.endswith("HumanEval_53_add"))
            checks.append(LanguageCheck(language, available[language]))
            jobs += [(language, build_program(problem, CORRECT_ADD[language])),
                     (language, build_program(problem, wrong_add(language)))]
        results = iter(executor.run_many(jobs))
        for check in checks:
            if not check.missing:
                check.correct, check.wrong = next(results), next(results)
        references = _reference_checks(executor, data) if full else []
    return checks, references


def _reference_checks(executor: Executor, data: DataConfig) -> list[ReferenceCheck]:
    humaneval = load_problems("humaneval", data=data)
    by_number = {p.id.split("/")[1].split("_")[1]: p for p in humaneval}
    multiple = load_problems("multipl-e/humaneval", language="py", data=data)
    sources = {
        "humaneval/HumanEval.jsonl": [(p.id.split("/", 1)[1], p.prompt + (p.reference or "") + "\n" + p.tests)
                                      for p in humaneval],
        "multipl-e/humaneval-py.jsonl": [
            (p.id.rsplit("/", 1)[1],
             p.prompt + (by_number[p.id.rsplit("/", 1)[1].split("_")[1]].reference or "") + "\n" + p.tests)
            for p in multiple],
    }
    checks = []
    for source, named in sources.items():
        results = executor.run_many([("py", program) for _, program in named])
        failures = {name: r.status for (name, _), r in zip(named, results) if not r.passed}
        checks.append(ReferenceCheck(source, len(named) - len(failures), len(named), failures))
    return checks


def format_exec_check(checks: list[LanguageCheck], references: list[ReferenceCheck]) -> str:
    lines = ["language  correct   wrong        toolchain"]
    for c in checks:
        if c.missing or c.correct is None or c.wrong is None:
            lines.append(f"{c.language:<9} MISSING: apt-get install {c.missing}")
            continue
        lines.append(f"{c.language:<9} {('pass' if c.correct.passed else 'FAIL ' + c.correct.status):<9} "
                     f"{('fails' if not c.wrong.passed else 'PASSES'):<5} {c.wrong.status:<12} {c.toolchain}")
    for r in references:
        lines.append(f"{r.source}: {r.passed}/{r.total} reference solutions pass")
        for name, status in r.failures.items():
            lines.append(f"    {name}: {status}  {KNOWN_QUIRKS.get(name, 'NOT a known quirk')}")
    return "\n".join(lines)
