"""Warm compile servers: javac in a long-lived JVM (lab/exec_helpers/CompileServer.java) and the
TypeScript checker (lab/exec_helpers/ts_checker.js), each in its own sandbox beside an executor worker,
as the worker's server uid. A Java or TypeScript program is compiled through one instead of paying a
compiler's start-up for every program; a server that dies or overruns a program's deadline is
restarted.

Not covered here: running the compiled program and its verdict (execution.py), the sandbox itself
(the lab.sandbox package), building the Java server's classes (languages.prepare_toolchain).
"""
from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import IO

from lab.languages import HELPERS_DIR, JAVATUPLES
from lab.sandbox import Sandbox

SERVER_START_TIMEOUT_S = 120.0
WARM_UP_PROGRAMS = {"java": "class Problem { public static void main(String[] args) { } }\n",
                    "ts": "const warm: number = 1;\n"}


class CompileServer:
    """A warm compiler (javac in a JVM, or the TypeScript checker) in its own sandbox, as the
    worker's server uid. Restarted when it dies or overruns a program's deadline."""

    def __init__(self, kind: str, sandbox: Sandbox, toolchains: Path):
        self.kind, self.sandbox, self.toolchains = kind, sandbox, toolchains
        self.process: subprocess.Popen | None = None
        self.home: Path | None = None

    def _start(self) -> None:
        self.home = self.sandbox.new_job_dir(owner=self.sandbox.server_uid)
        def inside(path):
            return self.sandbox.inside(path, self.home)
        env = self.sandbox.environment(self.home, {})
        if self.kind == "java":
            argv = ["java", "-XX:+UseSerialGC", "-Xmx1g", "-XX:-UsePerfData", "-cp", inside(self.toolchains / "java"),
                    "CompileServer", JAVATUPLES]
        else:
            typescript = Path(os.path.realpath(shutil.which("tsc") or "tsc")).parent.parent
            env["NODE_PATH"] = str(typescript.parent)
            argv = ["node", inside(HELPERS_DIR / "ts_checker.js")]
        self.log = open(self.home / "server.log", "wb")
        self.process = self.sandbox.spawn(argv, self.home, env, server=True, stdin=subprocess.PIPE, stderr=self.log)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.log.close()
            if self.home is not None:
                shutil.rmtree(self.home, ignore_errors=True)
            self.process = None

    def ensure_warm(self) -> None:
        """(Re)start the server and compile a trivial program, so start-up is not billed to a job."""
        if self.process is not None and self.process.poll() is None:
            return
        self.stop()
        self._start()
        ok, diagnostics, _ = self.compile(WARM_UP_PROGRAMS[self.kind], time.monotonic() + SERVER_START_TIMEOUT_S)
        if not ok:
            raise RuntimeError(f"the {self.kind} compile server cannot compile a trivial program: {diagnostics}")

    def compile(self, source: str, deadline: float) -> tuple[bool, str, dict[str, bytes]]:
        """(compiled, diagnostics, {relative path: bytes}); TimeoutError past the deadline."""
        try:
            if self.kind == "java":
                return self._compile_java(source, deadline)
            return self._compile_ts(source, deadline)
        except TimeoutError:
            self.stop()
            raise
        except (OSError, EOFError, ValueError) as error:
            self.stop()
            raise RuntimeError(f"the {self.kind} compile server failed: {error!r}") from error

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        """The running server's stdin and stdout."""
        if self.process is None or self.process.stdin is None or self.process.stdout is None:
            raise RuntimeError(f"the {self.kind} compile server is not running")
        return self.process.stdin, self.process.stdout

    def _compile_java(self, source: str, deadline: float) -> tuple[bool, str, dict[str, bytes]]:
        data = source.encode("utf-8", errors="surrogateescape")
        stdin, _ = self._pipes()
        stdin.write(len(data).to_bytes(4, "big") + data)
        stdin.flush()
        def read_int() -> int:
            return int.from_bytes(self._read(4, deadline), "big")

        def read_block() -> bytes:
            return self._read(read_int(), deadline)
        ok = read_int() == 1
        diagnostics = read_block().decode("utf-8", errors="replace")
        files = {}
        for _ in range(read_int()):
            name = read_block().decode()
            files[name.replace(".", "/") + ".class"] = read_block()
        return ok, diagnostics, files

    def _compile_ts(self, source: str, deadline: float) -> tuple[bool, str, dict[str, bytes]]:
        stdin, _ = self._pipes()
        stdin.write(json.dumps({"source": source}).encode() + b"\n")
        stdin.flush()
        line = bytearray()
        while not line.endswith(b"\n"):
            line += self._read(1, deadline, up_to=1 << 20)
        reply = json.loads(line)
        return reply["ok"], reply["diagnostics"], {"main.js": reply["js"].encode()}

    def _read(self, count: int, deadline: float, up_to: int | None = None) -> bytes:
        """Read exactly `count` bytes (or, with up_to, whatever is there, at least one byte)."""
        fd = self._pipes()[1].fileno()
        out = bytearray()
        while len(out) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError
            chunk = os.read(fd, (up_to or count - len(out)))
            if not chunk:
                raise EOFError(f"{self.kind} compile server exited ({self.process and self.process.poll()})")
            out += chunk
            if up_to:
                break
        return bytes(out)
