"""Run generated programs with MultiPL-E semantics, sandboxed, in parallel, with a result cache.

    with Executor(config.execution) as ex:
        result = ex.run("py", build_program(problem, completion))
        results = ex.run_many([("cpp", program), ...])     # in order, tqdm on long batches

A program is prompt + completion (cut at the first stop token) + "\\n" + tests. Statuses are
MultiPL-E's: OK, SyntaxError (compile errors included), Exception, Timeout; a run passes when
the status is OK and the exit code is 0. Each worker is its own process (a fresh interpreter,
no fork of the caller) with its own sandbox uid; compilers that pay for a warm process (javac,
the TypeScript checker) live on in a sandbox beside each worker (compile_servers.py).

Not covered here: the isolation itself (the lab.sandbox package) and the per-language table (languages.py).
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import cast

from lab.compile_servers import CompileServer
from lab.config import ExecutionConfig, default_cache_dir
from lab.languages import (
    HELPERS_DIR,
    LANGUAGES,
    Language,
    get_language,
    missing_tools,
    prepare_toolchain,
    rust_sysroot,
    toolchain_version,
    verdict,
)
from lab.problems import Problem, truncate_at_stop
from lab.sandbox import Limits, Mount, Sandbox, SandboxError, choose_isolation

PROGRESS_MIN_JOBS = 20
WORKER_START_TIMEOUT_S = 60.0
SERVER_ROOT = "/opt/rr"
"""Where toolchain artefacts, helpers and the Rust sysroot appear inside the bwrap sandbox."""


@dataclass
class ExecutionResult:
    status: str
    """'OK', 'SyntaxError' (compile errors included), 'Exception' or 'Timeout'."""
    exit_code: int | None
    stdout: str
    """Capped at ExecutionConfig.max_output_bytes, decoded with errors='replace'."""
    stderr: str
    duration_s: float
    passed: bool
    """status == 'OK' and exit_code == 0."""
    toolchain: str
    cached: bool = False
    executor_error: bool = False
    """The executor itself failed (a worker died, the sandbox broke): no verdict on the program.
    Never cached; callers should retry rather than record it."""


class ToolchainMissing(RuntimeError):
    """A language's compiler or interpreter is not installed; raised before any job runs."""

    def __init__(self, language: str, debian_package: str, detail: str = ""):
        self.language, self.debian_package = language, debian_package
        super().__init__(
            f"cannot run {language!r} programs: {detail or 'toolchain not installed'}. "
            f"Install it with: apt-get install {debian_package} (or drop {language!r} from data.eval_languages)")


def build_program(problem: Problem, completion: str) -> str:
    return problem.prompt + truncate_at_stop(completion, problem.stop_tokens) + "\n" + problem.tests


def toolchains_dir(cache_dir: str | None) -> Path:
    """Build artefacts shared by every run (PCH, javac server, Go cache); readable by sandbox uids."""
    root = Path("/var/cache/rewardranker") if os.geteuid() == 0 else Path(cache_dir or default_cache_dir())
    path = root / "toolchains"
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        for directory in (root, path):
            directory.chmod(0o755)
    return path


# ---------------------------------------------------------------- the executor (caller's process)

class Executor:
    def __init__(self, config: ExecutionConfig, cache_dir: str | None = None):
        self.config = config
        self.cache_root = Path(cache_dir or default_cache_dir())
        self.isolation = choose_isolation(config.isolation, config.allow_unsandboxed)
        self.toolchains = toolchains_dir(cache_dir)
        self.workers: list[_Worker] = []
        self._reported_missing: set[str] = set()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []

    # -- toolchains

    def available_languages(self) -> dict[str, str]:
        """Language code -> toolchain version, for every language that can run here."""
        return {code: toolchain_version(code) for code in LANGUAGES if self._missing_reason(code) is None}

    def missing_languages(self) -> dict[str, str]:
        """Language code -> Debian package that provides its toolchain, for the missing ones."""
        return {code: LANGUAGES[code].debian_package for code in LANGUAGES if self._missing_reason(code)}

    def _missing_reason(self, code: str) -> str | None:
        language = get_language(code)
        tools = missing_tools(language)
        if tools:
            return f"{', '.join(tools)} not found on PATH"
        return None

    def _check_toolchains(self, codes: set[str]) -> None:
        missing = [(code, reason) for code in sorted(codes) if (reason := self._missing_reason(code))]
        for code, reason in missing:
            if code not in self._reported_missing:
                self._reported_missing.add(code)
                print(f"[execution] {code}: {reason}; Debian package: {get_language(code).debian_package}",
                      file=sys.stderr)
        if missing:
            code, reason = missing[0]
            others = f" (also missing: {', '.join(c for c, _ in missing[1:])})" if len(missing) > 1 else ""
            raise ToolchainMissing(code, get_language(code).debian_package, reason + others)
        for code in codes:
            prepare_toolchain(code, self.toolchains)

    # -- running

    def run(self, language: str, program: str) -> ExecutionResult:
        return self.run_many([(language, program)], progress=False)[0]

    def run_many(self, jobs: list[tuple[str, str]], progress: bool = True) -> list[ExecutionResult]:
        """Run every (language, program); results in input order. Raises ToolchainMissing up front."""
        jobs = [(get_language(code).code, program) for code, program in jobs]
        self._check_toolchains({code for code, _ in jobs})
        results: list[ExecutionResult | None] = [None] * len(jobs)
        keys = [self._cache_key(code, program) for code, program in jobs]
        pending = []
        for index, key in enumerate(keys):
            results[index] = self._cache_get(key)
            if results[index] is None:
                pending.append(index)
        bar = None
        if progress and len(pending) >= PROGRESS_MIN_JOBS:
            from tqdm import tqdm
            bar = tqdm(total=len(pending), desc="executing", unit="prog", file=sys.stderr)
        for index, result in self._dispatch([(i, *jobs[i]) for i in pending]):
            result.toolchain = toolchain_version(jobs[index][0])
            results[index] = result
            if result.status != "Timeout" and not result.executor_error:
                self._cache_put(keys[index], result)
            if bar:
                bar.update(1)
        if bar:
            bar.close()
        return cast(list[ExecutionResult], results)  # every job is cached or ran

    def _dispatch(self, tasks: list[tuple[int, str, str]]):
        """Yield (index, result) as workers finish; one job in flight per worker."""
        if not tasks:
            return
        wanted = min(self.config.workers or os.cpu_count() or 1, len(tasks))
        while len(self.workers) < wanted:
            self.workers.append(_Worker(self.isolation, self._limits(), self.toolchains))
        queue = list(reversed(tasks))
        busy: dict[Connection, tuple[_Worker, tuple[int, str, str]]] = {}
        idle = list(self.workers)
        while queue or busy:
            while queue and idle:
                worker = idle.pop()
                task = queue.pop()
                worker.send(task[1:])
                busy[worker.responses] = (worker, task)
            for connection in cast(list[Connection], wait(list(busy))):
                worker, task = busy.pop(connection)
                try:
                    result = connection.recv()
                except (EOFError, OSError):  # e.g. the OOM killer took the worker: the run failed
                    result = ExecutionResult("Exception", None, "", f"[execution] worker died: {worker.exit_note()}",
                                             0.0, False, "", executor_error=True)
                    print(f"[execution] a worker died mid-run ({worker.exit_note()}); starting a new one",
                          file=sys.stderr)
                    self.workers.remove(worker)
                    worker.stop()
                    worker = _Worker(self.isolation, self._limits(), self.toolchains)
                    self.workers.append(worker)
                idle.append(worker)
                yield task[0], result

    def _limits(self) -> Limits:
        return Limits(timeout_s=self.config.timeout_s, memory_mb=self.config.memory_mb,
                      max_output_bytes=self.config.max_output_bytes)

    # -- cache

    def _cache_key(self, code: str, program: str) -> str:
        identity = [code, program, toolchain_version(code), self.config.timeout_s, self.config.memory_mb,
                    self.config.max_output_bytes]
        return hashlib.sha256(json.dumps(identity).encode()).hexdigest()

    def _cache_path(self, key: str) -> Path:
        return self.cache_root / "execution" / key[:2] / f"{key}.json"

    def _cache_get(self, key: str) -> ExecutionResult | None:
        if not self.config.use_cache:
            return None
        try:
            return ExecutionResult(**{**json.loads(self._cache_path(key).read_text()), "cached": True})
        except (OSError, ValueError, TypeError):
            return None

    def _cache_put(self, key: str, result: ExecutionResult) -> None:
        if not self.config.use_cache:
            return
        path = self._cache_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps({**asdict(result), "cached": False}))
        os.replace(temporary, path)


class _Worker:
    """A worker process (`python -c ...`), talking pickles over two pipes."""

    def __init__(self, isolation: str, limits: Limits, toolchains: Path):
        request_read, request_write = os.pipe()
        response_read, response_write = os.pipe()
        env = {**os.environ,
               "PYTHONPATH": os.pathsep.join([str(HELPERS_DIR.parent.parent), os.environ.get("PYTHONPATH", "")])}
        setup = pickle.dumps((isolation, limits, str(toolchains))).hex()
        self.process = subprocess.Popen(
            [sys.executable, "-c",
             f"from lab.execution import worker_main; worker_main({request_read}, {response_write}, '{setup}')"],
            pass_fds=(request_read, response_write), env=env, stdin=subprocess.DEVNULL)
        os.close(request_read)
        os.close(response_write)
        self.requests = Connection(request_write, readable=False)
        self.responses = Connection(response_read, writable=False)
        try:
            greeting = self.responses.recv() if self.responses.poll(WORKER_START_TIMEOUT_S) else "no answer"
        except EOFError:
            greeting = f"exited with code {self.process.wait()}"
        if greeting != "ready":
            self.stop()
            raise SandboxError(f"an execution worker could not set up its sandbox ({greeting}); "
                               "run `python -m lab selftest` for details, or try execution.isolation=light")

    def send(self, job: tuple[str, str]) -> None:
        self.requests.send(job)

    def exit_note(self) -> str:
        code = self.process.poll()
        return "still running" if code is None else f"exit code {code}"

    def stop(self) -> None:
        try:
            self.requests.send(None)
        except OSError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.requests.close()
        self.responses.close()


# ---------------------------------------------------------------- the worker process

def worker_main(request_fd: int, response_fd: int, setup_hex: str) -> None:
    isolation, limits, toolchains = pickle.loads(bytes.fromhex(setup_hex))
    requests, responses = Connection(request_fd, writable=False), Connection(response_fd, readable=False)
    try:
        runner = JobRunner(isolation, limits, Path(toolchains))
    except Exception as error:
        responses.send(f"{type(error).__name__}: {error}")
        return
    responses.send("ready")
    try:
        while (job := requests.recv()) is not None:
            started = time.monotonic()
            try:
                result = runner.run(*job)
            except Exception as error:  # an executor bug must not look like a verdict on the program
                result = ExecutionResult("Exception", None, "", f"[execution] internal error: {error!r}",
                                         time.monotonic() - started, False, "", executor_error=True)
            responses.send(result)
    except EOFError:
        pass
    finally:
        runner.close()


class JobRunner:
    """Compiles and runs one program at a time in this worker's sandbox."""

    def __init__(self, isolation: str, limits: Limits, toolchains: Path):
        mounts = [Mount(str(toolchains), f"{SERVER_ROOT}/toolchains"),
                  Mount(str(HELPERS_DIR), f"{SERVER_ROOT}/helpers")]
        if rust_sysroot():
            mounts.append(Mount(rust_sysroot(), f"{SERVER_ROOT}/rust"))
        self.sandbox = Sandbox(isolation, limits, mounts)
        self.limits = limits
        self.toolchains = toolchains
        self.servers: dict[str, CompileServer] = {}

    def close(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.sandbox.close()

    def run(self, code: str, program: str) -> ExecutionResult:
        language = get_language(code)
        if language.compile_server:
            self._server(language.compile_server).ensure_warm()
        started = time.monotonic()
        deadline = started + self.limits.timeout_s + language.startup_allowance_s
        job = self.sandbox.new_job_dir()
        try:
            (job / language.source_file).write_text(program, encoding="utf-8", errors="surrogateescape")
            if code == "go":
                self._copy_go_cache(job)
            fill = self._placeholders(language, job)
            env = self.sandbox.environment(job, {k: v.format(**fill) for k, v in language.env.items()})
            failed_compile = self._compile(language, program, job, env, fill, deadline)
            if failed_compile:
                return self._result(*failed_compile, started)
            raw = self.sandbox.run([a.format(**fill) for a in language.run], job, env, deadline - time.monotonic())
            stdout, stderr = _decode(raw.stdout), _decode(raw.stderr)
            return self._result(verdict(language, raw.exit_code, stdout, stderr, raw.timed_out), raw.exit_code,
                                stdout, stderr, started)
        finally:
            shutil.rmtree(job, ignore_errors=True)

    def _compile(self, language: Language, program: str, job: Path, env: dict, fill: dict,
                 deadline: float) -> tuple[str, int | None, str, str] | None:
        """None when the program compiled (or needs no compiling), else (status, exit_code, stdout, stderr)."""
        if language.compile_server:
            try:
                ok, diagnostics, files = self._server(language.compile_server).compile(program, deadline)
            except TimeoutError:
                return "Timeout", None, "", "[execution] compilation timed out"
            if not ok:
                return "SyntaxError", 1, "", diagnostics
            for name, data in files.items():
                path = job / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            return None
        if not language.compile:
            return None
        raw = self.sandbox.run([a.format(**fill) for a in language.compile], job, env, deadline - time.monotonic())
        if raw.timed_out:
            return "Timeout", None, _decode(raw.stdout), _decode(raw.stderr)
        if raw.exit_code != 0:
            return "SyntaxError", raw.exit_code, _decode(raw.stdout), _decode(raw.stderr)
        return None

    def _server(self, kind: str) -> CompileServer:
        if kind not in self.servers:
            self.servers[kind] = CompileServer(kind, self.sandbox, self.toolchains)
        return self.servers[kind]

    def _result(self, status: str, exit_code: int | None, stdout: str, stderr: str, started: float):
        return ExecutionResult(status, exit_code, stdout, stderr, round(time.monotonic() - started, 4),
                               status == "OK" and exit_code == 0, "")

    def _placeholders(self, language: Language, job: Path) -> dict[str, str]:
        def inside(path):
            return self.sandbox.inside(path, job)
        return {"src": inside(job / language.source_file), "work": inside(job), "toolchains": inside(self.toolchains),
                "helpers": inside(HELPERS_DIR), "rust": inside(rust_sysroot()) if rust_sysroot() else ""}

    def _copy_go_cache(self, job: Path) -> None:
        shutil.copytree(self.toolchains / "go" / "gocache", job / ".gocache")
        if self.sandbox.uid is not None:
            for root, _, files in os.walk(job / ".gocache"):
                os.chown(root, self.sandbox.uid, self.sandbox.uid)
                for name in files:
                    os.chown(os.path.join(root, name), self.sandbox.uid, self.sandbox.uid)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")
