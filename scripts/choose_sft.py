"""Choose the SFT recipe on held-out MBPP validation problems (lab/sft_choice.py): per recipe, the SFT'd
model against the base model (greedy and sampled pass@1, paired 95% CIs over problems), and the
recipe the SFT gate would keep with the largest sampled gain, or none.

    python scripts/choose_sft.py --run sft-choice --set data.max_train_problems=none \\
        --recipe sft.learning_rate=1e-4,sft.max_steps=8 --recipe sft.learning_rate=2e-5,sft.max_steps=32

A new run is opened with the preset and --set (its training and validation problems linked, nothing
else run); an existing run is used with its stored configuration, --set on top. Resumable: a rerun
reuses trained adapters and stored candidates. Holds the lab directory's job lock.
Not covered here: the rest of the loop (python -m lab run), HumanEval.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lab import loop  # noqa: E402
from lab.config import UsageError, make_config, parse_assignments  # noqa: E402
from lab.launcher import LaunchRefused, job_lock, stored_run_config  # noqa: E402
from lab.sft_choice import choose_sft_recipe, parse_recipe  # noqa: E402
from lab.stages import ModelCache  # noqa: E402
from lab.store import Store, StoreError  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="sft-choice")
    parser.add_argument("--lab-dir")
    parser.add_argument("--preset", default="cpu", help="for a new run (default: %(default)s)")
    parser.add_argument("--recipe", action="append", default=[], type=parse_recipe, required=True,
                        metavar="SECTION.FIELD=VALUE[,...]", help="one recipe; repeat for each")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    parser.add_argument("--out", help="also write the figures to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    try:
        result = choose(args)
    except (StoreError, LaunchRefused, UsageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_choice(result, args.run))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            json.dump(as_json(result), out, indent=1)
    return 0


def choose(args: argparse.Namespace) -> dict:
    location = {"run_name": args.run, **({"lab_dir": args.lab_dir} if args.lab_dir else {})}
    config = make_config(args.preset, **location, **parse_assignments(args.assignments))
    with job_lock(config.lab_dir, [sys.executable, *sys.argv]), Store(config.store_path) as store:
        if any(run["name"] == args.run for run in store.runs()):
            config = stored_run_config(store.run(args.run), args.assignments, **location)
        with ModelCache(config) as models:
            run = loop.open_run(config, store, models, progress=not args.quiet, log=print)
            return choose_sft_recipe(run, args.recipe)


def format_choice(result: dict, run_name: str) -> str:
    base = result["base"]
    lines = [f"# SFT recipe of run {run_name!r}: {result['problems']} MBPP validation problems, greedy + "
             f"N={result['num_samples']} samples", "",
             "| model | greedy pass@1 % | vs base (95% CI) | sampled pass@1 % | vs base (95% CI) | oracle pass@N % |",
             "|---|---|---|---|---|---|",
             f"| base model (no SFT) | {100 * base['greedy']:.1f} | | {100 * base['random']:.1f} | | "
             f"{100 * base['oracle']:.1f} |"]
    for label, comparison in result["recipes"].items():
        cells = []
        for method in ("greedy", "random"):
            d = comparison.differences[method]
            cells += [f"{100 * comparison.tuned[method]:.1f}",
                      f"{100 * d['difference']:+.1f} ({100 * d['ci_low']:+.1f} to {100 * d['ci_high']:+.1f})"]
        mark = " (chosen)" if label == result["chosen"] else (" (kept by the gate)" if label in result["kept"] else "")
        lines.append(f"| SFT {label}{mark} | {' | '.join(cells)} | {100 * comparison.tuned['oracle']:.1f} |")
    lines.append("")
    if result["chosen"]:
        lines.append(f"chosen: --set {' --set '.join(result['chosen'].split(','))}")
    else:
        lines.append("no recipe samples better than the base model held out without answering worse greedily: "
                     "with sft.keep=auto a run rejects SFT and gen-0 is the base model")
    return "\n".join(lines)


def as_json(result: dict) -> dict:
    return {**result, "recipes": {label: {"tuned": c.tuned, "baseline": c.baseline, "differences": c.differences}
                                  for label, c in result["recipes"].items()}}


if __name__ == "__main__":
    sys.exit(main())
