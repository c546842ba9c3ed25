"""Benchmark the policy-optimisation methods against each other in one run: PPO (lab/ppo.py) and RLOO
(lab/rloo.py) from the same iteration-0 checkpoints of a run (gen-0 and rm-0), on its training
problems, with the same seed and config.policy settings.

    .venv/bin/python -m lab run --run bench --set loop.iterations=0   # once: SFT + the first reward model
    .venv/bin/python scripts/bench_ppo.py --run bench                 # the preset's policy.steps per method
    .venv/bin/python scripts/bench_ppo.py --run bench --out runs/bench/policy --set policy.steps=64
    .venv/bin/python scripts/bench_ppo.py --run bench --record       # ... and write lab/benchmarks.json

Prints per method: seconds per policy step (rollouts, reward, updates), and the first and last step's
reward-model score, executed pass rate, KL and completion length; then the ratio of seconds per step.
With --out, each method's adapter is kept in <out>/<method> (a killed benchmark resumes there) and
every step's logs go to <out>/steps.json. With --record the seconds per step become lab/benchmarks.json's
'policy_steps' section, which the job's estimate uses for the policy stage (lab/estimate.py). Not covered
here: whether either improves pass@1 (the evaluation measures gen-0 against the adapters).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lab import benchmarks  # noqa: E402
from lab.config import make_config, parse_assignments  # noqa: E402
from lab.loop import POLICY_TRAINERS  # noqa: E402
from lab.stages import RunContext  # noqa: E402
from lab.store import Store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a run whose iteration 0 is trained (SFT and reward model)")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--lab-dir")
    parser.add_argument("--methods", default=",".join(POLICY_TRAINERS), help="comma-separated, in the order to run")
    parser.add_argument("--out", help="keep the adapters and step logs here (default: a temporary folder)")
    parser.add_argument("--record", action="store_true", help="write the seconds per step to lab/benchmarks.json")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    overrides = {"run_name": args.run, **parse_assignments(args.assignments)}
    if args.lab_dir:
        overrides["lab_dir"] = args.lab_dir
    config = make_config(args.preset, **overrides)
    with Store(config.store_path) as store:
        run = RunContext.existing(config, store)
        _, gen0 = run.generator_at(0)
        rm0 = run.reward_model_path(0)
        problems = run.problems("train")
    policy = config.policy
    print(f"{len(problems)} problems, {policy.steps} steps of {policy.batch_size} completions "
          f"({policy.generations_per_prompt} per problem), policy.reward={policy.reward}, "
          f"policy.response_length={policy.response_length}, model {config.model.generator}", flush=True)

    results, steps = {}, {}
    with tempfile.TemporaryDirectory(prefix="rr-bench-policy-") as scratch:
        out = Path(args.out or scratch)
        for method in args.methods.split(","):
            steps[method] = []
            metrics = POLICY_TRAINERS[method](
                config.override(**{"policy.method": method}), problems, str(out / method), policy_adapter=gen0,
                reference_adapter=gen0, reward_adapter=rm0,
                on_log=lambda entry, logs=steps[method]: logs.append(entry) if "rm_score" in entry else None)
            results[method] = metrics
            print(f"{method:>5}: {metrics['seconds_per_step']:7.1f} s/step  " + "  ".join(
                f"{name} {metrics[f'first_{name}']:.3f} -> {metrics[f'last_{name}']:.3f}"
                for name in ("rm_score", "pass_rate", "kl", "length")), flush=True)
        if args.out:
            (out / "steps.json").write_text(json.dumps({"config": config.to_dict(), "steps": steps}, indent=1))
    if args.record:
        figures = {"generator": config.model.generator, "methods": {method: {
            "seconds_per_step": metrics["seconds_per_step"], "batch_size": policy.batch_size,
            "response_length": policy.response_length, "epochs": policy.ppo_epochs if method == "ppo" else 1}
            for method, metrics in results.items()}}
        benchmarks.record("policy_steps", figures, "python " + shlex.join(["scripts/bench_ppo.py", *sys.argv[1:]]))
        print(f"recorded in {benchmarks.BENCHMARKS_PATH}")
    if {"ppo", "rloo"} <= set(results):
        print(f"rloo / ppo: {results['rloo']['seconds_per_step'] / results['ppo']['seconds_per_step']:.2f}x "
              "seconds per policy step")


if __name__ == "__main__":
    main()
