"""Shared test setup: offline hub, no analytics, and the data directory fixture."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


import pytest  # noqa: E402


def execution_result(passed: bool, *, stderr: str = "", **fields):
    """A real lab.execution.ExecutionResult for tests that fill a store: a pass is OK with exit
    code 0, a failure an Exception with exit code 1 unless `fields` say otherwise."""
    from lab.execution import ExecutionResult
    values = {"status": "OK" if passed else "Exception", "exit_code": 0 if passed else 1, "stdout": "",
              "duration_s": 0.01, "toolchain": "Python: Python 3.11.2", **fields}
    return ExecutionResult(passed=passed, stderr=stderr, **values)


def measurement_row(measure: str, subject: str, value, *, iteration: int = 0, eval_set: str = "mbpp-validation",
                    count=None, ci_low=None, ci_high=None) -> dict:
    """A Store.measurements row (lab.records.MeasurementRow), for tests of what reads them."""
    from lab.records import MeasureKey
    return {"iteration": iteration, "eval_set": eval_set, "measure": measure, "subject": subject,
            "name": MeasureKey(measure, subject).label, "value": value, "count": count, "ci_low": ci_low,
            "ci_high": ci_high}


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory):
    """The `tiny` preset with its model cache in a session temp dir (the tiny model is built once)."""
    from lab.config import make_config
    root = tmp_path_factory.mktemp("tiny")
    return make_config("tiny", **{"model.cache_dir": str(root / "cache"), "lab_dir": str(root / "lab")})
