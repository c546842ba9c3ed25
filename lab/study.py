"""The study (`python -m lab study PROTOCOL`): S sampling seeds x R reward-model seeds of the reranker, with
its controls, the seed ensemble, the examples-filter rankers and reference models, as a protocol file
fixes them (protocol.py), every stage resumable, every finished piece written to results/ at once.

Runs, in one store (<lab_dir>/study-<name>/lab.sqlite):
  s<S>        a sampling run per sampling seed: SFT and its gate, the bootstrap's training samples and
              the hard-negative iteration's (loop.resample), the held-out pool, and each evaluation
              set's greedy answer + max(n) samples; all executed and checked against the prompts'
              visible examples. Drawn once, shared by every reward seed and control.
  s<S>-r<R>   a reward run per reward seed on it (loop.candidates_from = s<S>, reward.seed = R): the
              loop's bootstrap (pairs, rm-0, validate) and hard-negative iteration (score, mine, rm-1,
              validate), then the controls (controls.py), the evaluation pools scored by rm-0, rm-1 and
              the controls (a score is kept per reward-model version: no model scores a text twice), and
              its replicate file.
  references  the base model's greedy answers and the reference models' (protocol [[references]]).

Order: a sampling seed at a time; within it every reward seed's bootstrap first, so that each replicate
can measure its hard negatives "before" with the other seeds' rm-0 (reseeded models that did not choose
them), then each replicate's hard-negative iteration; then the seed ensemble of the R rm-1s.

Files (results/study/<name>/), each written as soon as its piece is done:
  replicate-s<S>-r<R>.json   per evaluation set and N, each problem's outcome under the replicate's own
                             rankers and controls; its held-out measures; its training metrics
  sampling-s<S>.json         when all R replicates of S are done: the rankers without a reward model and
                             the seed ensemble (and its held-out measures)
  references.json            the base model's and the reference models' outcomes
and after each of them results/study.json + results/study.md, aggregated from what is finished
(study_stats.py).

Resuming: every stage is a store stage (loop.run_stage), skipped once done, so the same command continues
after a kill. A sampling seed whose sampling file exists is done for good (a fresh machine skips it); one
without is redone from its store, or from scratch on a fresh machine (its replicate files are rewritten
then). To spread one sampling seed over several sessions, keep its lab directory.

Not covered here: the loop's stages (loop.py), the statistics (study_stats.py), the protocol (protocol.py).
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from lab import benchmarks, evaluation, loop, mining
from lab.config import LabConfig, UsageError, repo_root
from lab.controls import CONTROLS, control_stage, train_control
from lab.evaluation import eval_problems, eval_set_name, heldout_lambda, with_combined_score
from lab.execution import Executor
from lab.measures import (
    macro_accuracy_ci,
    pairwise_accuracy,
    problem_outcomes,
    ranking_counts,
    top_pick_outcomes,
    with_ensemble,
)
from lab.protocol import Protocol
from lab.records import CandidateRow, RankerKey
from lab.stages import (
    ModelCache,
    RunContext,
    check_visible_examples,
    execute_candidates,
    reward_model_version,
    sample_candidates,
    score_candidates,
)
from lab.store import Store
from lab.study_stats import aggregate, study_markdown

REPLICATE_METHODS = ("reranker", "reranker+logprob", "filter+reranker")
SAMPLING_METHODS = ("greedy", "random", "logprob", "filter+logprob", "oracle", "ensemble", "filter+ensemble")
MODELS = {"rm-0": (0, ""), "rm-1": (1, ""), **{variant: (1, variant) for variant in CONTROLS}}
"""A replicate's reward models by name: (iteration, checkpoint variant)."""


def run_study(protocol: Protocol, *, lab_dir: str | None = None, results_dir: str | Path | None = None,
              log: Callable[[str], None] = print, progress: bool = False) -> dict:
    """Run (or continue) the whole study; returns study.json's content."""
    folder = study_folder(protocol, results_dir)
    config = protocol.config(lab_dir)
    _check_toolchains(config)
    for seed in protocol.sampling_seeds:
        if (folder / f"sampling-s{seed}.json").is_file():
            log(f"sampling seed {seed}: done ({folder / f'sampling-s{seed}.json'})")
            continue
        with opened(protocol.sampling_config(seed, lab_dir), log, progress) as run:
            _sampling_stages(run, protocol)
        for reward_seed in protocol.reward_seeds:
            loop.run_loop(protocol.replicate_config(seed, reward_seed, lab_dir), until=(0, "validate"),
                          progress=progress, log=log)
        for reward_seed in protocol.reward_seeds:
            replicate = protocol.replicate_config(seed, reward_seed, lab_dir)
            loop.run_loop(replicate, until=(1, "validate"), progress=progress, log=log)
            with opened(replicate, log, progress) as run:
                _replicate_stages(run, protocol, folder)
            write_aggregate(protocol, folder)
        with opened(protocol.sampling_config(seed, lab_dir), log, progress) as run:
            loop.run_stage(run, 1, "ensemble", functools.partial(_write_sampling_file, run, protocol,
                                                                 folder / f"sampling-s{seed}.json"))
        write_aggregate(protocol, folder)
    if not (folder / "references.json").is_file():
        with opened(config.override(run_name="references", **{"sampling.seed": protocol.sampling_seeds[0]}),
                     log, progress) as run:
            _reference_stages(run, protocol, folder)
    return write_aggregate(protocol, folder)


def study_folder(protocol: Protocol, results_dir: str | Path | None = None) -> Path:
    folder = Path(results_dir or repo_root() / "results") / "study" / protocol.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_aggregate(protocol: Protocol, folder: Path) -> dict:
    """results/study.json and study.md (beside the study's folder) from every file in it."""
    def read(pattern: str) -> list[dict]:
        return [json.loads(path.read_text()) for path in sorted(folder.glob(pattern))]
    references = read("references.json")
    study = aggregate(protocol, read("replicate-*.json"), read("sampling-*.json"),
                      references[0] if references else None, benchmarks.commit())
    results = folder.parent.parent
    _write(results / "study.json", study)
    (results / "study.md").write_text(study_markdown(study), encoding="utf-8")
    return study


def _write_sampling_file(run: RunContext, protocol: Protocol, path: Path) -> dict:
    return _write(path, sampling_file(run, protocol))


def _write(path: Path, data: dict) -> dict:
    """Write JSON whole or not at all (a temporary file renamed over the old one)."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return {"wrote": str(path)}


@contextlib.contextmanager
def opened(config: LabConfig, log: Callable[[str], None], progress: bool) -> Iterator[RunContext]:
    """The run of `config` opened in its store (its problems linked), its models released at the end."""
    with Store(config.store_path) as store, ModelCache(config) as models:
        yield loop.open_run(config, store, models, progress=progress, log=log)


def _check_toolchains(config: LabConfig) -> None:
    with Executor(config.execution) as executor:
        missing = sorted({language for _, language in eval_problems(config)} - set(executor.available_languages()))
    if missing:
        raise UsageError(f"the study evaluates {', '.join(missing)} and this machine has no toolchain for it: "
                         "install it (scripts/setup.sh; `python -m lab exec-check` names the package)")


# ---------------------------------------------------------------- the sampling run

def _sampling_stages(run: RunContext, protocol: Protocol) -> None:
    bootstrap, iteration = loop.stage_work(run, 0), loop.stage_work(run, 1)
    for name in ("sft", "sample", "execute"):
        loop.run_stage(run, 0, name, bootstrap[name])
    loop.run_stage(run, 0, "heldout_pool", lambda: {"candidates": len(evaluation.prepare_heldout_pool(run, 0))})
    loop.run_stage(run, 0, "evaluation_pools", lambda: {
        eval_set_name(*key): len(ids) for key, ids in evaluation.prepare_eval_pools(run, 0, max(protocol.n)).items()})
    for name in ("sample", "execute"):
        loop.run_stage(run, 1, name, iteration[name])


def pool_label(run: RunContext) -> str:
    """Which draw of candidates a file was measured on: its sampling run's name and creation time."""
    pool = next(r for r in run.store.runs() if r["id"] == run.pool_id)
    return f"{pool['name']}@{pool['created_at']}"


def _eval_sets(run: RunContext) -> dict[str, set[str]]:
    return {eval_set_name(*key): {p.id for p in problems} for key, problems in eval_problems(run.config).items()}


def _first(rows: list[CandidateRow], n: int) -> list[CandidateRow]:
    """The greedy answers and each problem's first n samples."""
    return [c for c in rows if c["origin"] != "sample" or c["sample_index"] < n]


def _outcome_lists(outcomes: dict[str, dict[str, float]], problems: list[str]) -> dict[str, list]:
    return {method: [per_problem.get(p) for p in problems] for method, per_problem in outcomes.items()}


def _scores(run: RunContext, role: str, ids: set[str], version: str) -> dict[int, float]:
    """candidate id -> its score under `version`, for the pool's candidates of `role` on these problems."""
    return {c["id"]: c["reward"] for c in run.store.candidates(run.pool_id, role=role, reward_model=version)
            if c["problem_id"] in ids and c["reward"] is not None}


def sampling_file(run: RunContext, protocol: Protocol) -> dict:
    """The sampling seed's file: the rankers without a reward model and the seed ensemble of every
    replicate's rm-1, per evaluation set and N; the ensemble's held-out measures."""
    versions = [reward_model_version(protocol.replicate_run(run.config.sampling.seed, r), 1)
                for r in protocol.reward_seeds]
    sets = {}
    for name, ids in _eval_sets(run).items():
        rows = with_ensemble(evaluation.eval_pool(run, 1, ids), [_scores(run, "eval", ids, v) for v in versions])
        problems = sorted(ids)
        sets[name] = {"problems": problems, "n": {str(n): _outcome_lists(
            {m: v for m, v in problem_outcomes(_first(rows, n)).items() if m in SAMPLING_METHODS}, problems)
            for n in protocol.n}}
    heldout = evaluation.prepare_heldout_pool(run, 1)
    ids = {c["problem_id"] for c in heldout}
    ensemble = with_ensemble(heldout, [_scores(run, "validation", ids, v) for v in versions])
    return {"protocol": protocol.path, "sampling_seed": run.config.sampling.seed, "pool": pool_label(run),
            "reward_seeds": list(protocol.reward_seeds), "commit": benchmarks.commit(), "finished_at": _now(),
            "sets": sets, "heldout": {"ensemble": _heldout_measures(run, ensemble, "ensemble")},
            "generator": _stage_info(run, 0, "sft")}


def _heldout_measures(run: RunContext, rows: list[CandidateRow], key: RankerKey) -> dict:
    """Pair accuracy on pairs built as training pairs are, and the ranking AUC, of the ranker `key`."""
    pairs = mining.execution_pairs(mining.eligible_negatives(rows, run.config.reward.negatives),
                                   run.config.reward.max_pairs_per_problem,
                                   balance_lengths=run.config.reward.balance_lengths)
    return {"pair_accuracy": _pair_accuracy(rows, pairs, key),
            "ranking_auc": macro_accuracy_ci(ranking_counts(rows, key))["accuracy"], "pairs": len(pairs)}


def _pair_accuracy(rows: list[CandidateRow], pairs: list[tuple[int, int, str]], key: RankerKey) -> float | None:
    """Pair accuracy of the ranker `key` over the pairs both of whose sides it scores (None: no such pair)."""
    score = {c["id"]: value for c in rows if (value := c.get(key)) is not None}
    both = [(a, b) for a, b, _ in pairs if a in score and b in score]
    return pairwise_accuracy([score[a] for a, _ in both], [score[b] for _, b in both])


def _rescored(rows: list[CandidateRow], score: dict[int, float]) -> list[CandidateRow]:
    """The rows with `reward` from `score` (None where it has none)."""
    return [{**c, "reward": score.get(c["id"])} for c in rows]


def _stage_info(run: RunContext, iteration: int, name: str) -> dict:
    row = next((s for s in run.store.stages(run.pool_id) if (s["iteration"], s["name"]) == (iteration, name)), None)
    return json.loads(row["info_json"] or "{}") if row else {}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------- a replicate

def _replicate_stages(run: RunContext, protocol: Protocol, folder: Path) -> None:
    for variant in CONTROLS:
        loop.run_stage(run, 1, control_stage(variant), functools.partial(train_control, run, 1, variant))
    loop.run_stage(run, 1, "score_study", lambda: _score_everything(run, protocol.n[0]))
    name = f"replicate-s{run.config.sampling.seed}-r{run.config.reward.seed}.json"
    loop.run_stage(run, 1, "replicate", lambda: _write(folder / name, replicate_file(run, protocol)))


def _score_everything(run: RunContext, headline_n: int) -> dict:
    """Every evaluation pool scored by rm-1, and its first `headline_n` samples per problem (the headline N,
    where they are compared) by rm-0 and the controls; the held-out pool by the controls (rm-0 and rm-1
    scored it in their validate stages)."""
    scored = 0
    for ids in _eval_sets(run).values():
        rows = evaluation.eval_pool(run, 1, ids)
        for model, (iteration, variant) in MODELS.items():
            scored += score_candidates(run, iteration, rows if model == "rm-1" else _first(rows, headline_n), variant)
    heldout = evaluation.prepare_heldout_pool(run, 1)
    for variant in CONTROLS:
        scored += score_candidates(run, 1, heldout, variant)
    return {"scored": scored}


def _version(run: RunContext, model: str) -> str:
    iteration, variant = MODELS[model]
    return reward_model_version(run.name, iteration, variant)


def replicate_file(run: RunContext, protocol: Protocol) -> dict:
    """The replicate's file: per evaluation set and N, each problem's outcome under rm-1's rankers (reranker,
    + λ·log-prob with λ fitted on the held-out problems, the examples filter + reranker) and under rm-0
    and the controls; the held-out measures of each reward model; its training metrics."""
    weight = heldout_lambda(run.store, run.run_id, 1)
    sets = {}
    for name, ids in _eval_sets(run).items():
        by_model = {model: evaluation.eval_pool(run, 1, ids, *MODELS[model]) for model in MODELS}
        per_n = {}
        for n in protocol.n:
            ranked = problem_outcomes(with_combined_score(_first(by_model["rm-1"], n), weight))
            outcomes = {m: ranked[m] for m in REPLICATE_METHODS}
            if n == protocol.n[0]:  # scored at the headline N only (_score_everything)
                outcomes.update({model: top_pick_outcomes(_first(by_model[model], n), "reward")
                                 for model in ("rm-0", *CONTROLS)})
            per_n[str(n)] = _outcome_lists(outcomes, sorted(ids))
        sets[name] = {"problems": sorted(ids), "n": per_n}
    return {"protocol": protocol.path, "sampling_seed": run.config.sampling.seed, "reward_seed": run.config.reward.seed,
            "pool": pool_label(run), "commit": benchmarks.commit(), "finished_at": _now(), "lambda": weight,
            "sets": sets, "heldout": replicate_heldout(run, protocol),
            "training": {model: checkpoint["metrics"] for model, (k, variant) in MODELS.items()
                         if (checkpoint := run.store.checkpoint(run.run_id, "reward_model", k, variant))}}


def replicate_heldout(run: RunContext, protocol: Protocol) -> dict:
    """Each reward model's held-out pair accuracy and ranking AUC on the held-out pool, and the held-out hard
    negatives (mined with this replicate's rm-0): their accuracy under that rm-0 (before, selecting), under
    the other reward seeds' rm-0 (before, reseeded: models that did not choose them; their mean) and
    under rm-1 (after)."""
    pool = evaluation.prepare_heldout_pool(run, 1)
    ids = {c["problem_id"] for c in pool}
    scored = {model: _rescored(pool, score) for model in MODELS
              if (score := _scores(run, "validation", ids, _version(run, model)))}
    measures: dict = {model: _heldout_measures(run, rows, "reward") for model, rows in scored.items()}
    if "rm-0" not in scored or "rm-1" not in scored:
        return measures  # no held-out problems: nothing was scored
    hard = mining.hard_negative_pairs(scored["rm-0"], run.config.mining,
                                      balance_lengths=run.config.reward.balance_lengths)
    siblings = [reward_model_version(protocol.replicate_run(run.config.sampling.seed, r), 0)
                for r in protocol.reward_seeds if r != run.config.reward.seed]
    reseeded = [value for version in siblings
                if (value := _pair_accuracy(_rescored(pool, _scores(run, "validation", ids, version)), hard, "reward"))
                is not None]
    measures["hard_negatives"] = {
        "pairs": len(hard), "before_selecting": _pair_accuracy(scored["rm-0"], hard, "reward"),
        "before_reseeded": sum(reseeded) / len(reseeded) if reseeded else None,
        "after": _pair_accuracy(scored["rm-1"], hard, "reward")}
    return measures


# ---------------------------------------------------------------- references

def _reference_stages(run: RunContext, protocol: Protocol, folder: Path) -> None:
    """The base model's greedy answers and each reference model's answers (protocol [[references]]) on every
    evaluation set, sampled, executed and checked against the visible examples; then references.json."""
    base = run.config.model.generator
    loop.run_stage(run, 0, "base_greedy", lambda: _answer(run, run.config, base, ("greedy",), 1))
    for reference in protocol.references:
        config = run.config.override(**{**reference.overrides, "model.generator": reference.model})
        loop.run_stage(run, 0, f"reference {reference.model}",
                       functools.partial(_answer, run, config, reference.model, reference.methods, reference.n))

    def write() -> dict:
        models = {r.model: {"n": r.n, "sets": _reference_outcomes(run, r.model, r.methods, r.n)}
                  for r in protocol.references}
        return _write(folder / "references.json", {
            "protocol": protocol.path, "commit": benchmarks.commit(), "finished_at": _now(), "models": models,
            "base": {"model": base, "sets": _reference_outcomes(run, base, ("greedy",), 1)}})
    loop.run_stage(run, 0, "references", write)


def _answer(run: RunContext, config: LabConfig, model: str, methods: tuple[str, ...], n: int) -> dict:
    origins = (("greedy",) if "greedy" in methods else ()) + (("sample",) if set(methods) - {"greedy"} else ())
    with ModelCache(config) as models:
        for problems in eval_problems(run.config).values():
            run.store.add_problems(problems, run.pool_id, role="eval")
            sample_candidates(run, 0, problems, origins=origins, num_samples=n, generator=(model, None), models=models)
    for problems in eval_problems(run.config).values():
        ids = {p.id for p in problems}
        execute_candidates(run, 0, ids)
        check_visible_examples(run, 0, ids)
    return {"model": model, "methods": list(methods)}


def _reference_outcomes(run: RunContext, model: str, methods: tuple[str, ...], n: int) -> dict:
    sets = {}
    for name, ids in _eval_sets(run).items():
        rows = [c for c in run.store.candidates(run.pool_id, iteration=0, model=model) if c["problem_id"] in ids]
        outcomes = problem_outcomes(_first(rows, n))
        sets[name] = {"problems": sorted(ids), **{m: [outcomes[m].get(p) for p in sorted(ids)] for m in methods}}
    return sets
