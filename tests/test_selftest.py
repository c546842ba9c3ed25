"""The attack self-test: zero escapes in Python, C++ and Java, and the host-side checks do
see an escape when there is no sandbox (so a 'held' verdict means something)."""
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from lab.config import ExecutionConfig
from lab.execution import Executor
from lab.selftest import ATTACKS, SELFTEST_LANGUAGES, _run_attack, run_selftest

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="per-uid sandboxing needs root (CI runs as root)")]


def test_no_attack_escapes_the_default_sandbox():
    report = run_selftest(ExecutionConfig())
    assert report.isolation == "bwrap"
    attacked = {(o.attack, o.language) for o in report.outcomes}
    assert attacked == {(a, lang) for a in ATTACKS for lang in SELFTEST_LANGUAGES}
    assert report.escapes == 0, report.format()


@pytest.mark.parametrize("attack", ["read_outside", "write_outside", "network"])
def test_host_side_checks_detect_an_unsandboxed_escape(attack):
    config = ExecutionConfig(isolation="none", allow_unsandboxed=True, use_cache=False, timeout_s=5.0, workers=1)
    host_dir = Path(tempfile.mkdtemp())
    host_dir.chmod(0o777)
    try:
        with Executor(config) as executor:
            outcomes = _run_attack(executor, attack, ["py"], host_dir, config)
    finally:
        shutil.rmtree(host_dir)
    assert outcomes[0].escaped, outcomes[0]
