"""Choose the sampling temperature of a run on its held-out MBPP validation problems (lab/temperature.py):
per temperature, random-pick pass@1, mean-log-prob top-1 pass@1 and oracle pass@N with 95% CIs;
the temperature with the best log-prob top-1 is printed as the `--set` to use, and recorded in the
store (eval set 'mbpp-validation-temperature').

    python scripts/choose_temperature.py --run default [--lab-dir runs] [--iteration 0]
        [--temperatures 0.2,0.4,0.6,0.8,1.0] [--set sampling.num_samples=8]

The run's stored configuration is used (its preset and settings: N, top_p, the model), with --set on
top. Resumable: a rerun reuses the candidates already stored. Holds the lab directory's job lock.
Not covered here: training or evaluating the run (python -m lab run / iterate / eval), HumanEval.
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lab.config import UsageError, make_config  # noqa: E402
from lab.launcher import LaunchRefused, job_lock, stored_run_config  # noqa: E402
from lab.reports import percent  # noqa: E402
from lab.stages import ModelCache, RunContext  # noqa: E402
from lab.store import Store, StoreError  # noqa: E402
from lab.temperature import DEFAULT_TEMPERATURES, REPORTED_METHODS, choose_temperature  # noqa: E402

TITLES = {"random": "random pick", "logprob": "log-prob top-1", "oracle": "oracle pass@N"}


def parse_temperatures(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(item) for item in text.split(",") if item.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--temperatures {text!r}: expected numbers separated by commas, "
                                         "e.g. 0.2,0.4,0.6") from None


def main() -> int:
    try:
        return choose(parse_arguments())
    except (StoreError, LaunchRefused, UsageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="default")
    parser.add_argument("--lab-dir")
    parser.add_argument("--iteration", type=int, default=0,
                        help="whose generator samples (default 0: gen-0, after SFT)")
    parser.add_argument("--temperatures", type=parse_temperatures, default=DEFAULT_TEMPERATURES,
                        help="comma-separated grid (default: %(default)s)")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args()


def choose(args: argparse.Namespace) -> int:
    location = {"run_name": args.run, **({"lab_dir": args.lab_dir} if args.lab_dir else {})}
    config = make_config(**location)

    with job_lock(config.lab_dir, [sys.executable, *sys.argv]), Store(config.store_path) as store:
        stored = store.run(args.run)
        config = stored_run_config(stored, args.assignments, **location)
        with ModelCache(config) as models:
            run = RunContext.existing(config, store, models=models, progress=not args.quiet)
            result = choose_temperature(run, args.iteration, args.temperatures)
    print(format_choice(result, args.run))
    return 0


def _pass_cell(row: dict | None) -> str:
    if row is None:
        return "–"
    return f"{percent(row['pass_at_1'])} [{percent(row['ci_low'])}–{percent(row['ci_high'])}]"


def format_choice(result: dict, run_name: str) -> str:
    lines = [f"# Temperature of run {run_name!r}: {result['generator']} (iteration {result['iteration']}), "
             f"{result['problems']} MBPP validation problems, N={result['num_samples']}, top_p={result['top_p']:g}",
             "", "| temperature | " + " | ".join(f"{TITLES[m]} % [95% CI]" for m in REPORTED_METHODS) + " | problems |",
             "|---" * (len(REPORTED_METHODS) + 2) + "|"]
    for t, rows in result["temperatures"].items():
        marks = " (chosen)" if t == result["chosen"] else ""
        marks += " (current)" if t == result["current"] else ""
        problems = max((row["n_problems"] for row in rows.values()), default=0)
        lines.append(f"| {t:g}{marks} | " + " | ".join(_pass_cell(rows.get(m)) for m in REPORTED_METHODS)
                     + f" | {problems} |")
    gain = result["gain_over_current"]
    if gain is not None:
        lines += ["", f"log-prob top-1, chosen - current (t={result['current']:g}), paired over {gain['n_problems']} "
                      f"problems: {100 * gain['difference']:+.1f} points [{100 * gain['ci_low']:+.1f} to "
                      f"{100 * gain['ci_high']:+.1f}]"]
    lines += ["", f"chosen by log-prob top-1: use --set sampling.temperature={result['chosen']:g}"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
