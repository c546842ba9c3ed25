"""What each sampling precision costs in pass@1 and gains in speed, measured side by side in one run
on held-out MBPP validation problems (never HumanEval): the generator (no adapter) writes a greedy
answer and N samples per problem in each precision; all are executed in the sandbox.

    .venv/bin/python scripts/bench_precision.py                    # the cpu preset's 0.5B, all 84 problems
    .venv/bin/python scripts/bench_precision.py --record           # ... and write lab/benchmarks.json
    .venv/bin/python scripts/bench_precision.py --preset tiny      # seconds, a smoke check

Prints per precision: greedy pass@1 and sampled pass@1 (random pick of N) with 95% intervals over
problems, each one's paired difference from the --baseline precision, generated tokens/s and its ratio
to the baseline's, and which precision `model.sampling_weights=auto` picks on this machine. With
--record the figures become lab/benchmarks.json's 'precision' section, which the job quotes when int8
is asked for (lab.benchmarks.precision_cost).
Not covered here: reward-model scoring or training precision (model.dtype), HumanEval.
"""
from __future__ import annotations

import argparse
import gc
import os
import shlex
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lab import benchmarks  # noqa: E402
from lab.config import make_config, parse_assignments  # noqa: E402
from lab.evaluation import heldout_problems  # noqa: E402
from lab.execution import Executor, build_program  # noqa: E402
from lab.generation import generate  # noqa: E402
from lab.measures import bootstrap_ci, paired_difference_ci, problem_outcomes  # noqa: E402
from lab.models import SAMPLING_WEIGHTS, load_sampler, sampling_weights  # noqa: E402

MEASURES = {"greedy": "greedy", "sampled": "random"}
"""Reported name -> measures.problem_outcomes method."""


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--precisions", default="float32,bfloat16,int8",
                        help=f"comma-separated, of {', '.join(SAMPLING_WEIGHTS)} (default: %(default)s)")
    parser.add_argument("--baseline", default="float32", help="the precision differences are taken from")
    parser.add_argument("--num-samples", type=int, default=4, help="samples per problem besides the greedy answer")
    parser.add_argument("--max-problems", type=int, help="the first N validation problems (default: all)")
    parser.add_argument("--record", action="store_true", help="write the figures to lab/benchmarks.json")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    args = parser.parse_args()
    args.precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    unknown = [p for p in args.precisions + [args.baseline] if p not in SAMPLING_WEIGHTS]
    if unknown:
        parser.error(f"unknown precision {unknown[0]!r}: choose from {', '.join(SAMPLING_WEIGHTS)}")
    if args.baseline not in args.precisions:
        args.precisions.insert(0, args.baseline)
    return args


def main() -> int:
    args = parse_arguments()
    config = make_config(args.preset, **{"data.max_validation_problems": args.max_problems,
                                         **parse_assignments(args.assignments)})
    problems = heldout_problems(config)
    print(f"{len(problems)} MBPP validation problems, greedy + {args.num_samples} samples each "
          f"(T={config.sampling.temperature}, top_p={config.sampling.top_p}), model {config.model.generator}; "
          f"auto picks {sampling_weights(config.model)} here ({benchmarks.machine()})")
    candidates: dict[str, list[dict]] = {}
    speed: dict[str, float] = {}
    for weights in args.precisions:
        model, tokenizer = load_sampler(config.override(**{"model.sampling_weights": weights}).model)
        started, rows, tokens = time.perf_counter(), [], 0
        for origin, count in (("greedy", 1), ("sample", args.num_samples)):
            if count:
                made = generate(model, tokenizer, problems, config.sampling, num_samples=count,
                                greedy=origin == "greedy", progress=False)
                rows += [{"problem_id": c.problem_id, "origin": origin, "completion": c.completion,
                          "mean_logprob": c.mean_logprob} for c in made]
                tokens += sum(c.num_tokens for c in made)
        speed[weights] = tokens / (time.perf_counter() - started)
        candidates[weights] = rows
        print(f"  {weights}: {len(rows)} completions, {speed[weights]:.1f} tokens/s")
        del model
        gc.collect()
    execute(config, problems, candidates)
    figures = summarize(args, len(problems), candidates, speed)
    print_table(figures)
    if args.record:
        benchmarks.record("precision", figures, "python " + shlex.join(["scripts/bench_precision.py", *sys.argv[1:]]))
        print(f"recorded in {benchmarks.BENCHMARKS_PATH}")
    return 0


def execute(config, problems, candidates: dict[str, list[dict]]) -> None:
    """Sets each row's `passed`."""
    by_id = {p.id: p for p in problems}
    rows = [row for precision_rows in candidates.values() for row in precision_rows]
    with Executor(config.execution) as executor:
        results = executor.run_many([(by_id[r["problem_id"]].language, build_program(by_id[r["problem_id"]],
                                                                                      r["completion"])) for r in rows],
                                     progress=False)
    for row, result in zip(rows, results):
        if result.executor_error:
            raise RuntimeError(f"the executor failed (not the program): {result.stderr.strip()[:300]}; "
                               "`python -m lab selftest` checks the sandbox")
        row["passed"] = int(result.passed)


def summarize(args: argparse.Namespace, problem_count: int, candidates: dict[str, list[dict]],
              speed: dict[str, float]) -> dict:
    outcomes = {weights: problem_outcomes(rows) for weights, rows in candidates.items()}
    precisions = {}
    for weights, by_method in outcomes.items():
        entry: dict = {"tokens_per_s": round(speed[weights], 2)}
        for name, method in MEASURES.items():
            per_problem = by_method[method]
            if not per_problem:
                continue
            values = [per_problem[p] for p in sorted(per_problem)]
            entry[name] = sum(values) / len(values)
            entry[f"{name}_ci"] = list(bootstrap_ci(values))
            entry[f"{name}_difference"] = paired_difference_ci(per_problem, outcomes[args.baseline][method])
        precisions[weights] = entry
    return {"problems": problem_count, "num_samples": args.num_samples, "baseline": args.baseline,
            "precisions": precisions}


def print_table(figures: dict) -> None:
    baseline = figures["precisions"][figures["baseline"]]
    print(f"\n| precision | greedy pass@1 (95% CI) | vs {figures['baseline']} | sampled pass@1 (95% CI) | "
          f"vs {figures['baseline']} | tokens/s | speed vs {figures['baseline']} |")
    print("|---|---|---|---|---|---|---|")
    for weights, entry in figures["precisions"].items():
        cells = []
        for name in MEASURES:
            if name not in entry:
                cells += ["–", "–"]
                continue
            low, high = entry[f"{name}_ci"]
            d = entry[f"{name}_difference"]
            cells += [f"{100 * entry[name]:.1f} ({100 * low:.1f}–{100 * high:.1f})",
                      f"{100 * d['difference']:+.1f} ({100 * d['ci_low']:+.1f} to {100 * d['ci_high']:+.1f})"]
        print(f"| {weights} | {' | '.join(cells)} | {entry['tokens_per_s']:.1f} | "
              f"{entry['tokens_per_s'] / baseline['tokens_per_s']:.2f}x |")


if __name__ == "__main__":
    sys.exit(main())
