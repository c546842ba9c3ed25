"""Smoke-run every model stage briefly on a real model (default: the cpu preset's Qwen2.5-Coder-0.5B)
and print timings: GGUF conversion (first time and cached), load, sampling tok/s, and s/step of SFT,
reward-model training and PPO (lab/ppo.py). Not part of CI (minutes on 2 CPU cores).

    .venv/bin/python scripts/smoke_real_model.py                 # 0.5B, 2 steps per trainer
    .venv/bin/python scripts/smoke_real_model.py --preset tiny   # the same path in seconds

Uses MBPP train problems from the data directory ($RR_DATA_DIR or ../shared/data). Checks only that
each stage runs and produces its artefacts; a couple of steps cannot show learning (the tests do).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from lab.config import default_data_dir, make_config  # noqa: E402
from lab.generation import generate  # noqa: E402
from lab.models import load_generator, resolve_model_dir  # noqa: E402
from lab.ppo import train_ppo  # noqa: E402
from lab.problems import Problem  # noqa: E402
from lab.reward import PreferencePair, train_reward_model  # noqa: E402
from lab.sft import train_sft  # noqa: E402


def mbpp_train(count: int) -> list[tuple[Problem, str]]:
    """(problem, reference solution) for the first `count` MBPP train rows, completion-style prompts."""
    path = Path(default_data_dir() or "") / "mbpp" / "mbpp-train.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} not found: set RR_DATA_DIR to the directory holding mbpp/mbpp-train.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()[:count]]
    return [(Problem(id=f"mbpp/{row['task_id']}", language="py",
                     prompt=f'"""\n{row["text"]}\n{row["test_list"][0]}\n"""\n', tests="\n".join(row["test_list"]),
                     stop_tokens=("\n\"\"\"", "\nassert", "\nif __name__", "\nprint("), entry_point="",
                     source="mbpp", split="train", training_allowed=True), row["code"].replace("\r\n", "\n"))
            for row in rows]


def timed(label: str, results: dict, function, *args, **kwargs):
    started = time.perf_counter()
    value = function(*args, **kwargs)
    results[f"{label}_s"] = round(time.perf_counter() - started, 1)
    print(f"[smoke] {label}: {results[f'{label}_s']}s  (peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB)", flush=True)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--steps", type=int, default=2, help="optimizer steps per trainer (PPO: policy steps)")
    parser.add_argument("--out", default=None, help="where adapters go (default: a temp dir)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="config override")
    args = parser.parse_args()

    config = make_config(args.preset, **{
        "sft.max_steps": args.steps, "sft.batch_size": 2, "reward.max_steps": args.steps, "reward.batch_size": 2,
        "policy.batch_size": 2, "policy.mini_batch_size": 1, "policy.steps": args.steps,
        "policy.response_length": 48, **dict(item.split("=", 1) for item in args.set)})
    out = Path(args.out or tempfile.mkdtemp(prefix="rr-smoke-"))
    results: dict = {"model": config.model.generator}
    model_dir = timed("resolve_first", results, resolve_model_dir, config.model.generator, config.model)
    marker = model_dir / "converted.json"
    if marker.is_file():
        results["conversion_s"] = json.loads(marker.read_text())["seconds"]
    timed("resolve_cached", results, resolve_model_dir, config.model.generator, config.model)
    model, tokenizer = timed("load_generator", results, load_generator, config.model)
    results["dtype"] = str(model.dtype)

    data = mbpp_train(8)
    sampling = replace(config.sampling, num_samples=4, max_new_tokens=64, batch_size=8)
    candidates = timed("generate", results, generate, model, tokenizer, [p for p, _ in data[:2]], sampling)
    results["generate_tok_s"] = round(sum(c.num_tokens for c in candidates) / results["generate_s"], 1)
    print("[smoke] sample completion:\n" + data[0][0].prompt + candidates[0].completion, flush=True)
    del model

    sft = timed("sft", results, train_sft, config, [(p.prompt, code) for p, code in data], str(out / "sft"))
    pairs = [PreferencePair(p.prompt, code, data[(i + 1) % len(data)][1]) for i, (p, code) in enumerate(data)]
    reward = timed("reward", results, train_reward_model, config, pairs[:6], str(out / "reward"),
                   eval_pairs=pairs[6:])
    ppo = timed("ppo", results, train_ppo, config, [p for p, _ in data], str(out / "ppo"),
                policy_adapter=str(out / "sft"), reference_adapter=str(out / "sft"), reward_adapter=str(out / "reward"))
    results.update({"sft_s_per_step": sft["seconds_per_step"], "reward_s_per_step": reward["seconds_per_step"],
                    "ppo_s_per_step": ppo["seconds_per_step"], "ppo_last_kl": ppo["last_kl"],
                    "ppo_last_length": ppo["last_length"], "adapters": str(out)})
    policy, tokenizer = timed("load_ppo_policy", results, load_generator, config.model, adapter_dir=str(out / "ppo"))
    results["ppo_policy_sample"] = generate(policy, tokenizer, [data[0][0]], sampling, greedy=True,
                                            progress=False)[0].completion
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
