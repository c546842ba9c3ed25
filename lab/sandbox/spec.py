"""What a caller hands the sandbox and gets back: the limits of a run, the host paths to show
inside, what a run did, and the error raised when the sandbox cannot be set up.

Not covered here: any behaviour (runner.py runs programs, backends.py picks the isolation).
"""
from __future__ import annotations

from dataclasses import dataclass


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
