"""Smoke run of the gpu path on one GPU, small and timed: 4-bit QLoRA SFT, reward-model, PPO and RLOO steps
on the package-shipped Qwen2.5-Coder-0.5B-Instruct (the gpu preset with that generator), then HumanEval-py
candidates from the PPO generator, sampled with the hand-written decoder and with vLLM (where its
environment exists, see requirements-vllm.txt), executed for a small pass@1.

    scripts/gpu_smoke.sh              # sets up what is missing, then runs this
    .venv/bin/python scripts/gpu_smoke.py --dry-run   # CPU, the tiny model, 4-bit through bitsandbytes' CPU kernels

Prints, per step: seconds per trainer step, tokens/s per sampler, pass@1 per sampler (the mean over
problems of the passing fraction of their samples), and peak GPU memory (torch's allocator in this
process; vLLM's engine runs in its own process and takes sampling.vllm_gpu_memory of the card). The
numbers come back as JSON with --json. Not covered here: anything about quality beyond a sanity
check (a few steps on a few problems), the loop's store and resumption (tests/test_qlora.py).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from lab.config import make_config, parse_assignments  # noqa: E402
from lab.execution import Executor, build_program  # noqa: E402
from lab.generation import generate  # noqa: E402
from lab.loop import select_train_problems  # noqa: E402
from lab.models import resolve_device  # noqa: E402
from lab.ppo import train_ppo  # noqa: E402
from lab.problems import load_problems  # noqa: E402
from lab.reward import PreferencePair, train_reward_model  # noqa: E402
from lab.rloo import train_rloo  # noqa: E402
from lab.sft import train_sft  # noqa: E402
from lab.vllm_backend import load_backend_sampler, resolve_backend  # noqa: E402

SIZES = {"data.max_train_problems": 16, "sft.max_steps": 8, "reward.max_steps": 8, "policy.steps": 2,
         "policy.batch_size": 8, "policy.mini_batch_size": 4, "sampling.num_samples": 4, "sampling.max_new_tokens": 256}
GPU = {"model.generator": "package:qwen2.5-coder-0.5b-instruct", **SIZES}
DRY_RUN = {"model.load_in_4bit": True, "model.dtype": "bfloat16", "model.device": "cpu",
           "reward.trainable_layers": None, "data.max_train_problems": 4, "policy.steps": 2}
"""--dry-run: the tiny preset on the gpu preset's model path (nf4, bf16 compute, LoRA on every layer)."""
EVAL_PROBLEMS = {"gpu": 32, "tiny": 4}
WRONG = "    raise NotImplementedError\n"
"""The rejected side of the smoke's preference pairs (any failing completion times the same)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true",
                        help="CPU and the tiny model: checks the script, measures nothing")
    parser.add_argument("--out", help="directory for checkpoints (default: a temporary one)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    preset = "tiny" if args.dry_run else "gpu"
    config = make_config(preset, **(DRY_RUN if args.dry_run else GPU), **parse_assignments(args.assignments))
    if not args.dry_run and not torch.cuda.is_available():
        sys.exit("gpu_smoke: torch sees no CUDA GPU (scripts/setup.sh installs torch's CUDA build where nvidia-smi "
                 "works); --dry-run runs it on CPU")
    with tempfile.TemporaryDirectory() as scratch:
        figures = smoke(config, Path(args.out or scratch), EVAL_PROBLEMS[preset])
    print(report(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


def smoke(config, out: Path, eval_count: int) -> dict:
    """Train a few steps of each trainer and sample with each backend; returns the figures."""
    device = resolve_device(config.model)
    figures: dict = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
                     "generator": config.model.generator, "steps": {}, "samplers": {}}
    train = [p for p in select_train_problems(config) if p.reference]
    evaluation = load_problems("multipl-e/humaneval", language="py", data=config.data)[:eval_count]

    def step(name: str, run, **kwargs) -> dict:
        reset_peak()
        print(f"[gpu_smoke] {name} ...", flush=True)
        metrics = run(config, **kwargs)
        figures["steps"][name] = {"seconds_per_step": metrics["seconds_per_step"], "steps": metrics["steps"],
                                  "peak_gpu_gib": peak_gib()}
        return metrics

    step("sft", train_sft, examples=[(p.prompt, p.reference) for p in train], output_dir=str(out / "sft"))
    step("reward model", train_reward_model, pairs=[PreferencePair(p.prompt, p.reference, WRONG) for p in train],
         output_dir=str(out / "rm"))
    for name, trainer in (("ppo", train_ppo), ("rloo", train_rloo)):
        step(name, trainer, problems=train, output_dir=str(out / name), policy_adapter=str(out / "sft"),
             reference_adapter=str(out / "sft"), reward_adapter=str(out / "rm"))

    backends = ["hf"] + (["vllm"] if resolve_backend("auto", device) == "vllm" else [])
    with Executor(config.execution) as executor:
        for backend in backends:
            figures["samplers"][backend] = sample(config, backend, str(out / "ppo"), evaluation, executor)
    if "vllm" not in backends:
        figures["samplers"]["vllm"] = {"skipped": "no CUDA" if device != "cuda" else
                                       "no vLLM environment (requirements-vllm.txt)"}
    figures["peak_gpu_gib"] = max([s["peak_gpu_gib"] for s in figures["steps"].values()] +
                                  [s.get("peak_gpu_gib", 0.0) for s in figures["samplers"].values()])
    return figures


def sample(config, backend: str, adapter_dir: str, problems: list, executor: Executor) -> dict:
    print(f"[gpu_smoke] sampling with {backend} ...", flush=True)
    reset_peak()
    started = time.perf_counter()
    model, tokenizer = load_backend_sampler(config.model, replace(config.sampling, backend=backend), adapter_dir)
    loaded = time.perf_counter()
    try:
        candidates = generate(model, tokenizer, problems, config.sampling, progress=False)
    finally:
        if hasattr(model, "close"):
            model.close()
    seconds = time.perf_counter() - loaded
    by_id = {p.id: p for p in problems}
    results = executor.run_many([(by_id[c.problem_id].language, build_program(by_id[c.problem_id], c.completion))
                                 for c in candidates], progress=False)
    passed: dict[str, list[bool]] = {}
    for candidate, result in zip(candidates, results):
        passed.setdefault(candidate.problem_id, []).append(result.passed)
    tokens = sum(c.num_tokens for c in candidates)
    return {"load_seconds": round(loaded - started, 1), "candidates": len(candidates), "tokens": tokens,
            "tokens_per_second": round(tokens / seconds, 1), "pass_at_1": round(
                sum(sum(p) / len(p) for p in passed.values()) / len(passed), 3), "problems": len(passed),
            "peak_gpu_gib": peak_gib()}


def reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else 0.0


def report(figures: dict) -> str:
    lines = [f"gpu smoke on {figures['device']}, generator {figures['generator']} (4-bit nf4 + LoRA training)"]
    for name, step in figures["steps"].items():
        lines.append(f"  {name:<14} {step['seconds_per_step']:7.2f} s/step  ({step['steps']} steps)  "
                     f"peak GPU memory {step['peak_gpu_gib']:.2f} GiB")
    for name, sampler in figures["samplers"].items():
        if "skipped" in sampler:
            lines.append(f"  sampling {name:<5} skipped: {sampler['skipped']}")
            continue
        lines.append(f"  sampling {name:<5} {sampler['tokens_per_second']:8.1f} tok/s  ({sampler['tokens']} tokens, "
                     f"{sampler['candidates']} candidates, load {sampler['load_seconds']} s)  pass@1 "
                     f"{sampler['pass_at_1']:.3f} on {sampler['problems']} HumanEval-py problems  peak GPU memory "
                     f"{sampler['peak_gpu_gib']:.2f} GiB")
    lines.append(f"  peak GPU memory (this process): {figures['peak_gpu_gib']:.2f} GiB")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
