"""What a run did, as the job's last screen and the notebooks show it: its
stages in order with their times and one-line info, candidate and pair counts, the SFT gate's verdict,
hard negatives found, the held-out and evaluation tables, and what a run of this size cannot show.

The stage order lives here (the loop runs stages in it, the summary lists them in it).
Not covered here: running stages (loop.py), the tables themselves (reports.py).
"""
from __future__ import annotations

import json
from datetime import datetime

from lab.config import LabConfig
from lab.records import StageRow
from lab.reports import heldout_markdown, ranking_markdown, table_markdown
from lab.store import Store

BOOTSTRAP_STAGES = ("sft", "sample", "execute", "pairs", "train_rm", "validate")
ITERATION_STAGES = ("policy", "sample", "execute", "score", "mine", "train_rm", "validate", "evaluate")
DETAIL_INFO = ("seconds", "measurements", "pass_at_1")
"""Stage info that is stored but left off a stage's one-line summary: its time (shown apart), and the
validate and evaluate stages' values per measure and method (the reports' tables show them)."""


def completed_iterations(store: Store, run_id: int) -> list[int]:
    return [k for k in store.iterations(run_id) if k >= 1 and store.stage_status(run_id, k, "evaluate") == "done"]


def summary_info(info: dict) -> dict:
    return {k: v for k, v in info.items() if k not in DETAIL_INFO}


def format_info(info: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items())


def summarize(store: Store, run_id: int, config: LabConfig) -> dict:
    """Stages with timings and info, counts per iteration (of its pool's candidates), the held-out and
    evaluation numbers."""
    pool_id = store.run_id(config.loop.candidates_from) if config.loop.candidates_from else run_id
    def position(row: StageRow) -> tuple[int, int]:
        names = BOOTSTRAP_STAGES if row["iteration"] == 0 else ITERATION_STAGES
        return row["iteration"], names.index(row["name"]) if row["name"] in names else len(names)

    stages = []
    for row in sorted(store.stages(run_id), key=position):
        seconds = None
        if row["finished_at"]:
            took = datetime.fromisoformat(row["finished_at"]) - datetime.fromisoformat(row["started_at"])
            seconds = took.total_seconds()
        stages.append({"iteration": row["iteration"], "name": row["name"], "status": row["status"], "seconds": seconds,
                       "info": json.loads(row["info_json"] or "{}")})
    evaluations = store.evaluations(run_id)
    measurements = store.measurements(run_id)
    return {
        "run": config.run_name, "preset": config.preset, "store": str(config.store_path),
        "run_dir": str(config.run_dir),
        "iterations_done": completed_iterations(store, run_id), "stages": stages,
        "candidates": store.candidate_counts(pool_id), "pairs": store.pair_counts(run_id),
        "train_problems": len(store.run_problems(pool_id, "train")),
        "evaluations": evaluations, "measurements": measurements, "table_markdown": table_markdown(evaluations),
        "heldout_markdown": heldout_markdown(measurements), "ranking_markdown": ranking_markdown(measurements),
    }


def format_summary(summary: dict) -> str:
    lines = [f"== run {summary['run']!r} (preset {summary['preset']}): "
             f"{len(summary['iterations_done'])} iteration(s) done, store {summary['store']}", "", "stages:"]
    for stage in summary["stages"]:
        seconds = f"{stage['seconds']:7.1f}s" if stage["seconds"] is not None else "      - "
        info = summary_info(stage["info"])
        lines.append(f"  iter {stage['iteration']} {stage['name']:9s} {stage['status']:7s} {seconds}  "
                     f"{format_info(info)}")
    total = sum(stage["seconds"] or 0 for stage in summary["stages"])
    lines.append(f"  all stages               {total:7.1f}s  ({total / 60:.1f} min)")
    lines.append("")
    lines.append("candidates (iteration, role: total / executed / passing):")
    for row in summary["candidates"]:
        lines.append(f"  iter {row['iteration']} {row['role']:10s}: "
                     f"{row['candidates']} / {row['executed']} / {row['passing']}")
    lines.append("preference pairs: " + (", ".join(
        f"iter {r['iteration']} {r['kind']} {r['pairs']}" + (f" ({r['with_reference']} with a reference solution)"
                                                             if r["with_reference"] else "")
        for r in summary["pairs"]) or "none"))
    for stage in summary["stages"]:
        info = stage["info"]
        if stage["name"] == "sft" and stage["status"] == "done" and "kept" in info:
            lines.append(f"generator: {info['gate']}")
        if stage["name"] == "mine" and stage["status"] == "done":
            lines.append(f"hard negatives, iteration {stage['iteration']}: {info.get('hard_negatives')} found in "
                         f"{info.get('problems_with_hard_negatives')} of {info.get('problems')} problems")
    for section in ("heldout_markdown", "ranking_markdown"):
        if summary[section]:
            lines += ["", summary[section].rstrip()]
    lines += ["", summary["table_markdown"], "", scope_note(summary)]
    return "\n".join(lines)


STUDY_COMMAND = "python -m lab study studies/reranker-v1.toml"


def scope_note(summary: dict) -> str:
    """What one run of this size can and cannot show, and the command that can."""
    pairs = sum(row["pairs"] for row in summary["pairs"])
    return (f"This run: {summary['train_problems']} training problems, {pairs} preference pairs, one sampling and one "
            "reward-model seed: it shows the loop working end to end, not whether the reranker beats log-prob or the "
            "visible-examples filter (its intervals resample problems only; the seeds move a reward model by more).\n"
            f"The study replicates it over seeds, with controls and reference models: {STUDY_COMMAND} (docs/study.md).")
