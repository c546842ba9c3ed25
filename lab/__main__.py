"""Command line: `python -m lab <command> --help`. A thin layer over the package.

Commands: run (the main job), iterate, eval, study, problems, export, import-policy, app, selftest,
exec-check, config.
Not covered here: any logic beyond parsing arguments and printing results.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys

from lab.config import PRESETS, UsageError, describe_fields, make_config, parse_assignments

DESCRIPTION = (
    "RewardRanker Lab: a code LLM plus a learned reranker, trained by iterative self-training "
    "with PPO and hard negatives."
)


def _add_config_arguments(parser: argparse.ArgumentParser, default_preset: str = "cpu") -> None:
    parser.add_argument("--preset", choices=PRESETS, default=default_preset,
                        help=f"configuration preset (default: {default_preset}); tiny = random tiny models for tests")
    parser.add_argument("--lab-dir", help="directory of the store and run artefacts (default: $RR_LAB_DIR or ./runs)")
    parser.add_argument("--run", dest="run_name", help="run name inside the lab directory (default: 'default')")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override one config field, e.g. --set sampling.num_samples=4 (repeatable; "
                             "`python -m lab config --list` shows every field)")


def _config_from(args: argparse.Namespace):
    overrides = parse_assignments(args.assignments)
    if args.lab_dir:
        overrides["lab_dir"] = args.lab_dir
    if args.run_name:
        overrides["run_name"] = args.run_name
    return make_config(args.preset, **overrides)


def cmd_run(args: argparse.Namespace) -> int:
    from lab import evaluation, loop, run_summary
    from lab.console import JobConsole
    from lab.estimate import estimate_job, format_estimate
    from lab.launcher import job_lock
    from lab.store import Store

    config = _config_from(args)
    print(f"RewardRanker Lab main job: preset {config.preset}, run {config.run_name!r}, store {config.store_path}")
    print(format_estimate(config, estimate_job(config)))
    with job_lock(config.lab_dir, ["python", "-m", "lab", *sys.argv[1:]]), \
            JobConsole(config.run_dir / "log.txt", verbose=args.verbose) as console:
        summary = loop.run_loop(config, progress=args.verbose, log=console.say, console=console)
        latest = summary["iterations_done"][-1] if summary["iterations_done"] else 0
        # with loop.iterations=0 no evaluate stage ran: evaluate_run evaluates the bootstrap's models here
        with console.stage(latest, "reports" if summary["evaluations"] else "evaluate"):
            report = evaluation.evaluate_run(config, progress=args.verbose, log=console.say, bars=console.progress)
        with Store(config.store_path) as store:
            summary = run_summary.summarize(store, store.run_id(config.run_name), config)
    print(run_summary.format_summary(summary))
    _print_outputs(config, report)
    return 0


def _print_outputs(config, report: dict) -> None:
    for path in report["files"]:
        print(f"wrote {path}")
    print(f"browse the candidates: python -m lab app --lab-dir {config.lab_dir}")


def cmd_iterate(args: argparse.Namespace) -> int:
    from lab import loop, run_summary
    from lab.console import JobConsole
    from lab.launcher import job_lock

    config = _config_from(args)
    with job_lock(config.lab_dir, ["python", "-m", "lab", *sys.argv[1:]]), \
            JobConsole(config.run_dir / "log.txt", verbose=args.verbose) as console:
        summary = loop.run_loop(config, iterations=args.iterations, progress=args.verbose, log=console.say,
                                console=console)
    print(run_summary.format_summary(summary))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from lab import evaluation
    from lab.launcher import job_lock

    config = _config_from(args)
    if args.compare:
        from lab import compare
        from lab.store import Store

        with Store(config.store_path) as store:
            print(compare.comparison_markdown(compare.compare_runs(store, args.compare)), end="")
        return 0
    with job_lock(config.lab_dir, ["python", "-m", "lab", *sys.argv[1:]]):
        report = evaluation.evaluate_run(config, iteration=args.iteration, progress=not args.quiet)
    print(report["table_markdown"])
    for path in report["files"]:
        print(f"wrote {path}")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from lab import study
    from lab.console import JobConsole
    from lab.estimate import estimate_study, format_study_estimate
    from lab.launcher import job_lock
    from lab.protocol import load_protocol

    protocol = load_protocol(args.protocol)
    folder = study.study_folder(protocol, args.results)
    print(format_study_estimate(protocol, estimate_study(protocol)))
    if args.estimate:
        return 0
    if not args.aggregate:
        config = protocol.config(args.lab_dir)
        with job_lock(config.lab_dir, ["python", "-m", "lab", *sys.argv[1:]]), \
                JobConsole(f"{config.lab_dir}/study.log", verbose=args.verbose) as console:
            console.say(f"study {protocol.name}: store {config.store_path}, results {folder}")
            study.run_study(protocol, lab_dir=args.lab_dir, results_dir=args.results, log=console.say,
                            progress=args.verbose)
    study.write_aggregate(protocol, folder)
    print((folder.parent.parent / "study.md").read_text(encoding="utf-8"))
    print(f"wrote {folder.parent.parent / 'study.json'} and study.md (from the files in {folder})")
    return 0


def cmd_problems(args: argparse.Namespace) -> int:
    from collections import Counter

    from lab.problems import load_problems, mbpp_left_out

    config = _config_from(args)
    problems = load_problems(args.benchmark, language=args.language, split=args.split, purpose=args.purpose,
                             data=config.data)
    splits = Counter(p.split for p in problems)
    print(f"{args.benchmark} [{args.language}]: {len(problems)} problems "
          f"({', '.join(f'{name} {count}' for name, count in sorted(splits.items()))})")
    if args.benchmark == "mbpp" and config.data.mbpp_form == "humaneval":
        left_out = mbpp_left_out(args.split, config.data)
        print(f"left out (cannot be posed in the evaluation's form): {len(left_out)}")
        for task_id, reason in left_out[:5]:
            print(f"  mbpp {task_id}: {reason}")
    for problem in problems[: args.show]:
        entry = f"entry point {problem.entry_point!r}, " if problem.entry_point else ""
        print(f"--- {problem.id} ({entry}split {problem.split})")
        print(problem.prompt)
    if args.check:
        from lab import problem_check
        report = problem_check.check_problems(problems, config.execution)
        print(problem_check.format_report(report))
        return 0 if report.ok else 1
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from lab import curation
    from lab.store import Store

    config = _config_from(args)
    if args.what == "engines":
        from lab.handoff import export_for_engines
        from lab.stages import RunContext

        with Store(config.store_path) as store:
            manifest = export_for_engines(RunContext.existing(config, store), args.out, iteration=args.iteration,
                                          reward_model=not args.no_reward_model)
        for name, count in manifest["files"].items():
            print(f"wrote {count} rows to {args.out}/{name}")
        if "reward_model" in manifest:
            print(f"wrote {manifest['reward_model']} as a Hugging Face sequence classifier to {args.out}/reward_model")
        print("the command each engine runs with them: docs/scale-out.md")
        return 0
    with Store(config.store_path) as store:
        run_id = store.run_id(config.run_name)
        if args.what == "dataset":
            export = curation.export_dataset(store, config.run_name, args.out)
            print(f"exported the curated dataset of run {config.run_name!r} ({export.counts}) to {export.folder} "
                  f"and {export.zip_path}")
            return 0
        if args.what == "pairs":
            curated = curation.training_pairs(store, run_id)
            count = curation.write_pairs(curated.kept, args.out, args.format)
            dropped = f" ({len(curated.dropped)} left out: a later label contradicts them)" if curated.dropped else ""
        else:
            if args.format != "jsonl":
                raise UsageError("labels are exported as JSONL: drop --format")
            count = curation.write_jsonl(args.out, store.labels_for_export(run_id, history=args.history))
            dropped = ""
    print(f"wrote {count} {args.what} rows of run {config.run_name!r} to {args.out}{dropped}")
    return 0


def cmd_import_policy(args: argparse.Namespace) -> int:
    from lab.handoff import import_policy
    from lab.stages import RunContext
    from lab.store import Store

    config = _config_from(args)
    with Store(config.store_path) as store:
        version = import_policy(RunContext.existing(config, store), args.iteration, args.adapter)
    print(f"imported {args.adapter} as {version}; continue with: python -m lab iterate (or eval --iteration "
          f"{args.iteration}) with the same --preset, --lab-dir and --run")
    return 0


def cmd_selftest(args: argparse.Namespace) -> int:
    from lab import selftest

    config = _config_from(args)
    if args.languages:
        report = selftest.run_selftest(config.execution, languages=tuple(args.languages))
    else:
        report = selftest.run_selftest(config.execution)
    print(report.format())
    return 0 if report.ok else 1


def cmd_exec_check(args: argparse.Namespace) -> int:
    from lab import selftest

    config = _config_from(args)
    checks, references = selftest.exec_check(config.execution, languages=args.languages, data=config.data,
                                             full=args.full)
    print(selftest.format_exec_check(checks, references))
    return 0 if all(check.ok for check in checks if not check.missing) else 1


def cmd_config(args: argparse.Namespace) -> int:
    if args.list:
        for name, kind, default in describe_fields():
            print(f"{name:36s} {kind:28s} {default!r}")
        return 0
    print(_config_from(args).to_json())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _add_config_arguments(sub)
        sub.set_defaults(handler=handler)
        return sub

    run = command("run", cmd_run, "the main job: run the self-training loop and evaluate (default: cpu preset, "
                                  "Qwen2.5-Coder-0.5B from its PyPI packages, a small subset; it prints its time "
                                  "estimate as it starts)")
    run.add_argument("--verbose", action="store_true", help="show the libraries' output and progress bars live "
                                                            "(it always goes to <run dir>/log.txt)")
    iterate = command("iterate", cmd_iterate, "run more self-training iterations (resumes an interrupted one)")
    iterate.add_argument("--iterations", type=int, default=1, help="how many iterations to add (default: 1)")
    iterate.add_argument("--verbose", action="store_true", help="show the libraries' output and progress bars live "
                                                                "(it always goes to <run dir>/log.txt)")
    evaluate = command("eval", cmd_eval, "evaluate a run: pass@1 table (paper's Table 1 layout) and plots")
    evaluate.add_argument("--iteration", type=int, help="iteration to evaluate (default: the latest)")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bars")
    evaluate.add_argument("--compare", nargs="+", metavar="RUN",
                          help="print two or more runs side by side instead of evaluating: pass@1, ranking accuracy, "
                               "held-out reward-model measurements per iteration, config differences")
    study_help = ("run (or continue) a study protocol: sampling seeds x reward seeds, controls, the examples filter "
                  "and reference models, each finished piece written to results/ (docs/study.md)")
    study = commands.add_parser("study", help=study_help, description=study_help)
    study.add_argument("protocol", help="the protocol file (TOML or JSON), e.g. studies/reranker-v1.toml")
    study.add_argument("--lab-dir", help="where the study's store goes (<lab dir>/study-<name>; default: $RR_LAB_DIR "
                                         "or ./runs); keep it to continue a sampling seed in a later session")
    study.add_argument("--results", help="results directory (default: the repository's results/)")
    study.add_argument("--estimate", action="store_true", help="print the estimated time and stop")
    study.add_argument("--aggregate", action="store_true",
                       help="only aggregate the files already in results/ into study.json and study.md")
    study.add_argument("--verbose", action="store_true", help="show the libraries' output and progress bars live")
    study.set_defaults(handler=cmd_study)
    problems = command("problems", cmd_problems, "load a benchmark and summarise it (checks a user JSONL file too)")
    problems.add_argument("--benchmark", default="humaneval",
                          help="humaneval | mbpp | multipl-e/humaneval | multipl-e/mbpp | jsonl:PATH")
    problems.add_argument("--language", default="py", help="MultiPL-E language code (default: py)")
    problems.add_argument("--split", help="MBPP split: train | validation | test | prompt")
    problems.add_argument("--purpose", choices=("eval", "train"), default="eval",
                          help="'train' refuses evaluation-only data (MultiPL-E)")
    problems.add_argument("--show", type=int, default=1, help="print the prompts of the first N problems")
    problems.add_argument("--check", action="store_true",
                          help="run each reference and an empty completion in the sandbox; list references that fail "
                               "and tests that pass without code (exit 1 if any)")
    export = command("export", cmd_export, "export a run's curated dataset (the pairs the reward-model training "
                                           "uses, labels applied; its labels; all of it as a folder and a zip), or "
                                           "everything the RLHF engines (TRL, OpenRLHF, verl) need")
    export.add_argument("what", choices=("dataset", "pairs", "labels", "engines"))
    export.add_argument("--out", required=True, help="output path: a folder for dataset (the export goes in it) and "
                                                     "engines, a file (or a folder with --format dataset) for pairs "
                                                     "and labels")
    export.add_argument("--format", choices=("jsonl", "parquet", "dataset"), default="jsonl", help="pairs only")
    export.add_argument("--history", action="store_true", help="labels: every label row, not each current label")
    export.add_argument("--iteration", type=int, help="engines: the reward model rm-K to export (default: the newest)")
    export.add_argument("--no-reward-model", action="store_true", help="engines: write the data files only")
    import_policy = command("import-policy", cmd_import_policy, "import a policy trained elsewhere (a LoRA adapter "
                                                                "of the generator) into a run as gen-K")
    import_policy.add_argument("adapter", help="the adapter's folder (adapter_config.json + weights)")
    import_policy.add_argument("--iteration", type=int, required=True,
                               help="K: the iteration whose generator it becomes (its training stage is marked done)")
    app_help = ("open the Gradio app to browse rerankings and label hard negatives "
                "(its options: python -m lab app --help)")
    # main() hands the app's options to lab.app.server
    commands.add_parser("app", help=app_help, description=app_help, add_help=False)
    selftest = command("selftest", cmd_selftest, "attack the execution sandbox and report escapes (exit 1 on any)")
    selftest.add_argument("--languages", nargs="*",
                          help="languages to attack with (default: py, a compiled and a JVM one)")
    exec_check = command("exec-check", cmd_exec_check, "per language: the toolchain (or the package to install), "
                                                       "a correct completion passes and a wrong one fails")
    exec_check.add_argument("--languages", nargs="*", help="language codes (default: all supported)")
    exec_check.add_argument("--full", action="store_true", help="also run every HumanEval reference solution")
    config = command("config", cmd_config, "print the resolved configuration as JSON")
    config.add_argument("--list", action="store_true", help="list every field with its type and default")
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["app"]:
        from lab.app import server
        return server.main(argv[1:], prog="python -m lab app") or 0
    args = build_parser().parse_args(argv)
    from lab.launcher import LaunchRefused
    from lab.problems import LicenceError, ProblemLoadError
    from lab.store import StoreError

    signal.signal(signal.SIGTERM, _interrupt)  # a cancel from the app ends a stage as Ctrl-C does: recorded
    try:
        return args.handler(args)
    except (ProblemLoadError, LicenceError, StoreError, LaunchRefused, UsageError) as error:
        print(f"error: {error}", file=sys.stderr)  # the lab's own input errors; anything else keeps its traceback
        return 2
    except KeyboardInterrupt:
        print("interrupted: everything committed so far is kept; rerun the same command to continue", file=sys.stderr)
        return 130


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


if __name__ == "__main__":
    sys.exit(main())
