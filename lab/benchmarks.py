"""Figures the bench scripts measured, as the lab reads them: one JSON file (lab/benchmarks.json), a
section per measurement, each stamped with the machine, the commit, the date and the command that
produced it. What a figure is doing in the code (the job estimate's unit costs, the pass@1 cost of a
sampling precision) is read from here, so a figure lives in one place and says where it came from.

Not covered here: measuring anything (scripts/bench_*.py do, and call `record`), or documenting the
figures for people (docs/benchmarks.md).
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import date
from pathlib import Path

import torch

from lab.config import ModelConfig
from lab.models import SAMPLER_DTYPES, cpu_has_fast_bf16, resolve_device, sampling_weights

BENCHMARKS_PATH = Path(__file__).with_name("benchmarks.json")


def read(section: str, path: Path | None = None) -> dict | None:
    """One section ({"figures": ..., "machine": ..., "commit": ..., "date": ..., "command": ...}) or None."""
    path = path or BENCHMARKS_PATH
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get(section)


def record(section: str, figures: dict, command: str, path: Path | None = None) -> None:
    """Replace one section with `figures`, stamped with this machine, commit and date (atomically: a kill
    leaves the old file whole)."""
    path = path or BENCHMARKS_PATH
    sections = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    sections[section] = {"figures": figures, "machine": machine(), "commit": commit(), "date": date.today().isoformat(),
                         "command": command}
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(sections, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(path)


def machine() -> str:
    """'<CPU model>, <n> cores, bf16 native|not native' (or the CUDA device's name)."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    model = next((line.split(":", 1)[1].strip() for line in _cpuinfo().splitlines() if line.startswith("model name")),
                 platform.processor() or "unknown CPU")
    return f"{model}, {os.cpu_count()} cores, bf16 {'native' if cpu_has_fast_bf16() else 'not native'}"


def commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def precision_cost(weights: str) -> str | None:
    """What scripts/bench_precision.py measured sampling in `weights` to cost, in one sentence, or None
    when it has not been measured."""
    section = read("precision")
    if section is None or weights not in section["figures"]["precisions"]:
        return None
    figures = section["figures"]
    measured, baseline = figures["precisions"][weights], figures["precisions"][figures["baseline"]]
    measures = [f"{name} pass@1 {_against(measured, baseline, name, figures['baseline'])}"
                for name in ("greedy", "sampled") if name in measured]
    return (f"{weights} sampling measured {' and '.join(measures)} on {figures['problems']} MBPP validation "
            f"problems, at {measured['tokens_per_s'] / baseline['tokens_per_s']:.2f}x "
            f"its speed ({section['machine']}, {section['date']}: {section['command']})")


def _against(measured: dict, baseline: dict, name: str, baseline_name: str) -> str:
    difference = measured[f"{name}_difference"]
    return (f"{100 * measured[name]:.1f} against {baseline_name}'s {100 * baseline[name]:.1f} "
            f"({100 * difference['difference']:+.1f} points, 95% CI {100 * difference['ci_low']:+.1f} to "
            f"{100 * difference['ci_high']:+.1f})")


def sampling_note(model_config: ModelConfig) -> str:
    """The sampler's precision in one line for the job's start, with the measured cost of a quantized one."""
    weights = sampling_weights(model_config)
    if weights in SAMPLER_DTYPES:
        if model_config.sampling_weights not in ("auto", "none"):
            why = "as asked"
        elif model_config.device == "cuda" or resolve_device(model_config) == "cuda":
            why = "auto: the training precision on CUDA"
        else:
            why = f"auto: this CPU {'multiplies' if cpu_has_fast_bf16() else 'has no native'} bf16"
            why += " natively" if cpu_has_fast_bf16() else ""
        return f"sampling weights: {weights} ({why})"
    cost = precision_cost(weights) or "its pass@1 cost is not measured on this checkout (scripts/bench_precision.py)"
    return f"sampling weights: {weights}, as asked; {cost}"
