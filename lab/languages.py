"""The language registry: every MultiPL-E language code a problem may have (MULTIPLE_E_CODES), and
for the languages that run here the toolchain table (LANGUAGES): how to compile and run a program,
how to read the verdict (MultiPL-E's statuses, with each language's traps), which Debian package
provides the toolchain, how to ask its version, and the name and lexer to show it with.

Argument templates use {src} (the source file), {work} (the job directory), {toolchains}
(build artefacts made once: C++ precompiled header, Go cache template), {helpers}
(lab/exec_helpers) and {rust} (the Rust sysroot), all as the sandboxed program sees them.

Not covered here: sandboxing (the lab.sandbox package) or scheduling and caching (execution.py).
"""
from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from lab.config import UsageError

HELPERS_DIR = Path(__file__).resolve().parent / "exec_helpers"
JAVATUPLES = "/usr/share/java/javatuples.jar"
GOLD_LINKER = ("-fuse-ld=gold",) if shutil.which("ld.gold") else ()
"""gold links a test program faster than ld.bfd (binutils ships both on Debian)."""
JVM_FAST_START = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-XX:-UsePerfData")


@dataclass(frozen=True)
class Language:
    code: str
    """MultiPL-E language code."""
    name: str
    source_file: str
    """Name of the program file in the job directory."""
    tools: tuple[str, ...]
    """Executables that must be on PATH for the language to be available."""
    debian_package: str
    version_command: tuple[str, ...]
    run: tuple[str, ...]
    compile: tuple[str, ...] = ()
    """Run first; a non-zero exit is a SyntaxError (MultiPL-E counts compile errors so)."""
    compile_server: str | None = None
    """'java' or 'ts': compile through a persistent checker process instead of `compile`."""
    env: dict[str, str] = field(default_factory=dict)
    syntax_markers: tuple[str, ...] = ()
    """Text in the output of a failing run that makes it a SyntaxError rather than an Exception."""
    failure_markers: tuple[str, ...] = ()
    """Text in the output that makes a run an Exception even when it exits 0."""
    stderr_is_failure: bool = False
    """Any stderr output at all is a failure (test libraries that report but exit 0)."""
    startup_allowance_s: float = 0.0
    """Added to the timeout for toolchains whose fixed start-up alone nears it (scalac)."""
    lexer: str = ""
    """Pygments lexer and Markdown fence name; empty = the code itself."""


LANGUAGES: dict[str, Language] = {lang.code: lang for lang in [
    Language("py", "Python", "main.py", ("python3",), "python3", ("/usr/bin/python3", "--version"),
             run=("/usr/bin/python3", "{src}"), syntax_markers=("SyntaxError", "IndentationError", "TabError"),
             lexer="python"),
    Language("cpp", "C++", "main.cpp", ("g++",), "g++", ("g++", "--version"),
             compile=("g++", "-std=c++17", "-pipe", *GOLD_LINKER, "-include", "{toolchains}/cpp/stdc++.h", "-o", "main",
                      "{src}"),
             run=("./main",)),
    Language("java", "Java", "Problem.java", ("java", "javac"), "openjdk-17-jdk-headless libjavatuples-java",
             ("javac", "-version"), compile_server="java",
             run=("java", *JVM_FAST_START, "-ea", "-cp", f"{{work}}:{JAVATUPLES}", "Problem")),
    Language("js", "JavaScript", "main.js", ("node",), "nodejs", ("node", "--version"),
             run=("node", "{src}"), syntax_markers=("SyntaxError",), lexer="javascript"),
    Language("ts", "TypeScript", "main.ts", ("node", "tsc"), "node-typescript", ("tsc", "--version"),
             compile_server="ts", run=("node", "main.js"), lexer="typescript"),
    Language("php", "PHP", "main.php", ("php",), "php-cli", ("php", "--version"),
             run=("php", "{src}"), syntax_markers=("PHP Parse error", "Parse error:")),
    Language("sh", "Bash", "main.sh", ("bash",), "bash", ("bash", "--version"),
             run=("bash", "{src}"), syntax_markers=("syntax error",), lexer="bash"),
    Language("cs", "C#", "main.cs", ("mcs", "mono"), "mono-mcs", ("mcs", "--version"),
             compile=("mcs", "-d:DEBUG", "-r:System.Numerics.dll", "-out:main.exe", "{src}"),
             run=("mono", "main.exe"), env={"MONO_TRACE_LISTENER": "Console.Error"},
             failure_markers=("DefaultTraceListener.Fail", "Unhandled Exception"), lexer="csharp"),
    Language("rs", "Rust", "main.rs", ("rustc",), "rustc", ("rustc", "--version"),
             compile=("{rust}/bin/rustc", "-o", "main", "{src}"), run=("./main",), lexer="rust"),
    Language("go", "Go", "main_test.go", ("go",), "golang-go", ("go", "version"),
             run=("go", "test", "{src}"),
             env={"GOCACHE": "{work}/.gocache", "GOPATH": "{work}/.gopath", "GOPROXY": "off",
                  "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"},
             syntax_markers=("[setup failed]", "[build failed]"), failure_markers=("FAIL",)),
    Language("rb", "Ruby", "main.rb", ("ruby",), "ruby", ("ruby", "--version"),
             run=("ruby", "{src}"), syntax_markers=("SyntaxError", "syntax error"), lexer="ruby"),
    Language("pl", "Perl", "main.pl", ("perl",), "perl libtest-deep-perl", ("perl", "-e", "print $^V"),
             run=("perl", "{src}"), syntax_markers=("syntax error",), lexer="perl"),
    Language("lua", "Lua", "main.lua", ("lua5.4",), "lua5.4", ("lua5.4", "-v"),
             run=("lua5.4", "{src}"), env={"LUA_PATH": "{helpers}/?.lua;;"}),
    Language("r", "R", "main.r", ("Rscript",), "r-base-core", ("Rscript", "--version"),
             run=("Rscript", "{src}"), syntax_markers=("Error: unexpected",)),
    Language("rkt", "Racket", "main.rkt", ("racket",), "racket", ("racket", "--version"),
             run=("racket", "{src}"), syntax_markers=("read-syntax:",), stderr_is_failure=True, lexer="racket"),
    Language("d", "D", "main.d", ("ldc2",), "ldc", ("ldc2", "--version"),
             compile=("ldc2", "-unittest", "-of=main", "{src}"), run=("./main",)),
    Language("scala", "Scala", "main.scala", ("scalac", "scala"), "scala", ("scalac", "-version"),
             compile=("scalac", "-d", "{work}", "{src}"), run=("scala", "-cp", "{work}", "Problem"),
             stderr_is_failure=True, startup_allowance_s=20.0),
]}
MULTIPLE_E_CODES = frozenset(LANGUAGES) | {"jl", "swift", "adb", "clj", "dart", "elixir", "hs", "ml", "luau"}
"""Every MultiPL-E language code: those of LANGUAGES, which run here, and the ones no toolchain here
runs (a problem in one still loads; executing it is refused by name)."""


def get_language(code: str) -> Language:
    if code == "go_test.go":
        code = "go"
    if code not in LANGUAGES:
        raise UsageError(f"unknown language {code!r}: supported are {', '.join(LANGUAGES)}")
    return LANGUAGES[code]


def lexer_name(code: str) -> str:
    """The Pygments lexer / Markdown fence name of a language code (the code itself when unknown)."""
    language = LANGUAGES.get(code)
    return (language.lexer or language.code) if language else code


def display_name(code: str) -> str:
    """'Python', 'C++', ... for a language code (the code itself when unknown)."""
    language = LANGUAGES.get(code)
    return language.name if language else code


def missing_tools(language: Language) -> list[str]:
    return [tool for tool in language.tools if shutil.which(tool) is None]


@functools.cache
def toolchain_version(code: str) -> str:
    """First line of the version command, e.g. 'g++ (Debian 12.2.0-14) 12.2.0'. Trusted, unsandboxed."""
    language = get_language(code)
    probe = subprocess.run(language.version_command, capture_output=True, text=True, errors="replace", timeout=60)
    lines = [line.strip() for line in (probe.stdout + probe.stderr).splitlines() if line.strip()]
    return f"{language.name}: {lines[0] if lines else 'unknown version'}"[:120]


@functools.cache
def rust_sysroot() -> str:
    rustc = shutil.which("rustc")
    if rustc is None:
        return ""
    return subprocess.run([rustc, "--print", "sysroot"], capture_output=True, text=True, timeout=60).stdout.strip()


def verdict(language: Language, exit_code: int | None, stdout: str, stderr: str, timed_out: bool) -> str:
    """MultiPL-E status of a finished run (the compile step is judged by the caller)."""
    if timed_out:
        return "Timeout"
    output = stdout + stderr
    if exit_code != 0:
        return "SyntaxError" if any(marker in output for marker in language.syntax_markers) else "Exception"
    if any(marker in output for marker in language.failure_markers):
        return "Exception"
    if language.stderr_is_failure and stderr.strip():
        return "Exception"
    return "OK"


# ---------------------------------------------------------------- one-off build artefacts (trusted)

def prepare_toolchain(code: str, toolchains_dir: Path) -> None:
    """Build what a language's fast path needs, once per machine: idempotent and safe to call often."""
    builders = {"cpp": _build_cpp_pch, "java": _build_java_server, "go": _build_go_cache_template}
    if code in builders:
        target = toolchains_dir / code
        if not (target / ".ready").exists():
            staging = Path(tempfile.mkdtemp(prefix=f".{code}-", dir=toolchains_dir))
            staging.chmod(0o755)
            builders[code](staging)
            (staging / ".ready").write_text(toolchain_version(code))
            try:
                staging.rename(target)
            except OSError:  # another process finished first
                shutil.rmtree(staging, ignore_errors=True)


def _checked(argv: list[str], **kwargs) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"building a toolchain artefact failed: {' '.join(argv)}\n{result.stderr[-2000:]}")


def _build_cpp_pch(target: Path) -> None:
    """bits/stdc++.h precompiled with the exact flags programs are compiled with (-include finds the .gch)."""
    header = subprocess.run(["g++", "-std=c++17", "-H", "-fsyntax-only", "-x", "c++", "-"],
                            input="#include <bits/stdc++.h>\n", capture_output=True, text=True,
                            ).stderr.splitlines()[0].lstrip(". ").strip()
    shutil.copy(header, target / "stdc++.h")
    _checked(["g++", "-std=c++17", "-x", "c++-header", "-o", str(target / "stdc++.h.gch"), str(target / "stdc++.h")])


def _build_java_server(target: Path) -> None:
    _checked(["javac", "-d", str(target), str(HELPERS_DIR / "CompileServer.java")])


def _build_go_cache_template(target: Path) -> None:
    """A GOCACHE warmed by one trivial test; each run gets a private copy (a cold cache makes every
    test's build many times slower: docs/benchmarks.md)."""
    work = Path(tempfile.mkdtemp())
    (work / "main_test.go").write_text(
        'package main_test\n\nimport (\n    "testing"\n    "fmt"\n)\n\n'
        'func TestWarm(t *testing.T) {\n    if fmt.Sprintf("%v", 1) != "1" { t.Errorf("no") }\n}\n')
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(work), "GOCACHE": str(target / "gocache"),
           "GOPATH": str(work / "gopath"), "GOPROXY": "off", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    _checked(["go", "test", "main_test.go"], cwd=work, env=env)
    shutil.rmtree(work, ignore_errors=True)
    for path in (target / "gocache").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
