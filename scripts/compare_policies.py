"""Measure policy adapters against the generator they started from: gen-0 and each adapter that
scripts/bench_ppo.py trained (<out>/<method>) answer the same problems (a greedy answer and N samples
each, executed), on held-out MBPP validation and on an evaluation set, with paired 95% intervals over
problems (lab/generators.py). The rollouts' executed pass rate per step comes from <out>/steps.json.

    .venv/bin/python scripts/bench_ppo.py --run policy-cpu --out runs/policy-cpu/policy --set policy.steps=64
    .venv/bin/python scripts/compare_policies.py --run policy-cpu --out runs/policy-cpu/policy

Candidates are stored in the run under the model names '<run>/policy[<method>]' (iteration 0), so a
rerun samples nothing twice. Prints a Markdown table per problem set and writes <out>/comparison.json.
Not covered here: training the adapters (bench_ppo.py), reward models.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lab import generators  # noqa: E402
from lab.config import make_config, parse_assignments  # noqa: E402
from lab.evaluation import eval_problems, eval_set_name  # noqa: E402
from lab.measures import HELDOUT_SET  # noqa: E402
from lab.stages import ModelCache, RunContext  # noqa: E402
from lab.store import Store  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--out", required=True, help="the folder bench_ppo.py wrote (<out>/<method>/, steps.json)")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--lab-dir")
    parser.add_argument("--benchmark", default="humaneval", help="the evaluation set (default: %(default)s, Python)")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    overrides = {"run_name": args.run, "data.max_eval_problems": None, "data.max_validation_problems": None,
                 "data.eval_benchmarks": (args.benchmark,), "data.eval_languages": ("py",),
                 **parse_assignments(args.assignments)}
    if args.lab_dir:
        overrides["lab_dir"] = args.lab_dir
    config = make_config(args.preset, **overrides)
    out = Path(args.out)
    methods = sorted(path.name for path in out.iterdir() if (path / "adapter_model.safetensors").is_file())
    if not methods:
        print(f"error: no adapter under {out}: run scripts/bench_ppo.py --out {out} first", file=sys.stderr)
        return 2
    sets = {}
    with Store(config.store_path) as store, ModelCache(config) as models:
        run = RunContext.existing(config, store, models=models, progress=True)
        gen0 = generators.generator_chain(run, 0)[-1]
        problem_sets = {HELDOUT_SET: run.problems("validation")}
        for (benchmark, language), problems in eval_problems(config).items():
            store.add_problems(problems, run.run_id, role="eval")
            problem_sets[eval_set_name(benchmark, language)] = problems
        for name, problems in problem_sets.items():
            outcomes = {gen0.label: generators.generator_outcomes(run, gen0.stored_in, (gen0.model, gen0.adapter),
                                                                  problems)}
            for method in methods:
                outcomes[method] = generators.generator_outcomes(
                    run, 0, (f"{run.name}/policy[{method}]", str(out / method)), problems)
            sets[name] = {method: generators.compare(outcomes[method], outcomes[gen0.label]) for method in methods}
            print(table(name, len(problems), gen0.label, sets[name]))
    steps = json.loads((out / "steps.json").read_text())["steps"] if (out / "steps.json").is_file() else {}
    for method, entries in steps.items():
        rates = [round(entry["pass_rate"], 3) for entry in entries if "pass_rate" in entry]
        print(f"{method}: executed pass rate of the rollouts by step: {rates}")
    (out / "comparison.json").write_text(json.dumps({
        "run": args.run, "generator": gen0.label,
        "sets": {name: {method: dataclasses.asdict(c) for method, c in by.items()} for name, by in sets.items()},
        "rollout_pass_rate": {m: [e["pass_rate"] for e in entries if "pass_rate" in e]
                              for m, entries in steps.items()}},
        indent=1))
    return 0


def table(name: str, problems: int, baseline: str, comparisons: dict) -> str:
    lines = [f"\n{name}, {problems} problems: each adapter against {baseline} (pass@1 %, paired 95% CI)", "",
             "| model | greedy | vs start | sampled | vs start | oracle |", "|---|---|---|---|---|---|"]
    first = next(iter(comparisons.values()))
    lines.append(f"| {baseline} | {100 * first.baseline['greedy']:.1f} | | {100 * first.baseline['random']:.1f} | | "
                 f"{100 * first.baseline['oracle']:.1f} |")
    for method, c in comparisons.items():
        cells = []
        for measure in ("greedy", "random"):
            d = c.differences[measure]
            cells += [f"{100 * c.tuned[measure]:.1f}",
                      f"{100 * d['difference']:+.1f} ({100 * d['ci_low']:+.1f} to {100 * d['ci_high']:+.1f})"]
        lines.append(f"| {method} | {' | '.join(cells)} | {100 * c.tuned['oracle']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
