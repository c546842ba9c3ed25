"""Benchmark the batched sampler against batch-1 decoding, in the same run (the machines are shared,
so only ratios measured side by side mean anything).

    .venv/bin/python scripts/bench_generation.py                 # the cpu preset's 0.5B model
    .venv/bin/python scripts/bench_generation.py --preset tiny   # seconds, for a smoke check

Prints aggregate generated tokens/s at batch 1 and at --batch-size, their ratio (target >= 8x on
the 0.5B model), and the process's peak RSS (and peak CUDA memory on GPU). Stop tokens are off so
every sequence decodes --max-new-tokens tokens (unless it emits EOS).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from lab.config import default_data_dir, make_config  # noqa: E402
from lab.generation import generate  # noqa: E402
from lab.models import load_sampler, resolve_model_dir, sampling_weights  # noqa: E402
from lab.problems import Problem  # noqa: E402


def humaneval_prompts(count: int) -> list[Problem]:
    """The first `count` HumanEval prompts, with no stop tokens (fixed-length decoding)."""
    data_dir = default_data_dir()
    path = Path(data_dir or "") / "humaneval" / "HumanEval.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} not found: set RR_DATA_DIR to the directory holding humaneval/HumanEval.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()[:count]]
    return [Problem(id=row["task_id"], language="py", prompt=row["prompt"], tests="", stop_tokens=(),
                    entry_point=row["entry_point"], source="humaneval", split="test", training_allowed=False)
            for row in rows]


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def timed(model, tokenizer, problems, sampling, num_samples) -> tuple[float, int]:
    started = time.perf_counter()
    candidates = generate(model, tokenizer, problems, sampling, num_samples=num_samples, progress=False)
    return time.perf_counter() - started, sum(c.num_tokens for c in candidates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--problems", type=int, default=2,
                        help="HumanEval prompts (batched run: batch-size samples each)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="config override")
    args = parser.parse_args()

    overrides = dict(item.split("=", 1) for item in args.set)
    if args.threads:
        overrides["model.threads"] = str(args.threads)
    config = make_config(args.preset, **overrides)
    started = time.perf_counter()
    resolve_model_dir(config.model.generator, config.model)
    resolved_s = time.perf_counter() - started
    model, tokenizer = load_sampler(config.model)
    loaded_s = time.perf_counter() - started
    problems = humaneval_prompts(args.problems)
    sampling = replace(config.sampling, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    print(f"model {config.model.generator} dtype={model.dtype} weights={sampling_weights(config.model)} "
          f"device={model.device} threads={torch.get_num_threads()} "
          f"(resolve {resolved_s:.1f}s, load {loaded_s:.1f}s)")

    timed(model, tokenizer, problems[:1], replace(sampling, batch_size=1, max_new_tokens=4), 1)  # warm-up
    single_s, single_tokens = timed(model, tokenizer, problems, replace(sampling, batch_size=1), 1)
    single_rate = single_tokens / single_s
    print(f"batch 1:  {single_tokens} tokens in {single_s:.1f}s = {single_rate:.1f} tok/s  "
          f"(peak RSS {peak_rss_gib():.2f} GiB)")
    batched_s, batched_tokens = timed(model, tokenizer, problems, sampling, args.batch_size)
    batched_rate = batched_tokens / batched_s
    print(f"batch {args.batch_size}: {batched_tokens} tokens in {batched_s:.1f}s = {batched_rate:.1f} tok/s  "
          f"(peak RSS {peak_rss_gib():.2f} GiB)")
    print(f"speed-up: {batched_rate / single_rate:.1f}x (target >= 8x on the 0.5B model)")
    if torch.cuda.is_available():
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
