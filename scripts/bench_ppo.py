"""Benchmark PPO rollouts that end at the problems' stop strings against rollouts without them, in
the same run, from a run's iteration-0 checkpoints (the SFT generator and the first reward model).

    .venv/bin/python -m lab run --run bench --set loop.iterations=0   # once: SFT + first reward model
    .venv/bin/python scripts/bench_ppo.py --run bench

Both arms run the same PPO (same prompts, seed and config) on the run's training problems; the
baseline's rollouts end only at an end token or ppo.response_length tokens. Prints seconds per PPO
step, mean completion length, the fraction of rollouts that end (EOS) and the first step's reward,
and the ratio of seconds per step. Not covered here: whether PPO helps pass@1 (the loop evaluates).
"""
from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from lab.config import make_config, parse_assignments  # noqa: E402
from lab.ppo import train_ppo  # noqa: E402
from lab.stages import RunContext  # noqa: E402
from lab.store import Store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a run whose iteration 0 is trained (SFT and reward model)")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--lab-dir")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    overrides = {"run_name": args.run, **parse_assignments(args.assignments)}
    if args.lab_dir:
        overrides["lab_dir"] = args.lab_dir
    config = make_config(args.preset, **overrides)
    with Store(config.store_path) as store:
        run = RunContext.existing(config, store)
        _, policy = run.generator_at(0)
        reward = run.reward_model_path(0)
        problems = run.problems("train")
    prompts = [p.prompt for p in problems]
    print(f"{len(prompts)} prompts, {config.ppo.total_episodes} episodes in batches of {config.ppo.batch_size}, "
          f"ppo.response_length={config.ppo.response_length}, model {config.model.generator}", flush=True)

    results = {}
    for arm, stops in (("end token or length", None), ("stop strings", [p.stop_tokens for p in problems])):
        with tempfile.TemporaryDirectory(prefix="rr-bench-ppo-") as out:
            metrics = train_ppo(config, prompts, out, policy_adapter=policy, reward_adapter=reward, stops=stops)
        results[arm] = metrics
        eos = metrics["first_eos_fraction"]
        print(f"{arm:>20}: {metrics['seconds_per_step']:6.1f} s/step  length {metrics['first_length']:5.1f} -> "
              f"{metrics['last_length']:5.1f}  ending in EOS {eos:.0%}  first reward {metrics['first_reward']:+.3f}",
              flush=True)
    baseline, ours = results["end token or length"], results["stop strings"]
    print(f"speed-up: {baseline['seconds_per_step'] / ours['seconds_per_step']:.2f}x per PPO step")


if __name__ == "__main__":
    main()
