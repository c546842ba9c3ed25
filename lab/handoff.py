"""Hand-off to the engines people scale out on, and back: a run's preference pairs and prompts in the
formats TRL, OpenRLHF and verl read, its reward model as a plain Hugging Face sequence classifier, and
a policy trained elsewhere imported as the run's gen-k. docs/scale-out.md shows each engine's command.

`export_for_engines(run, out)` (`python -m lab export engines --out DIR`) writes
  trl/preference.jsonl       prompt, chosen, rejected: TRL's RewardTrainer / DPOTrainer
  openrlhf/preference.jsonl  prompt, chosen, rejected: openrlhf.cli.train_rm (--prompt_key prompt ...)
  openrlhf/prompts.jsonl     prompt (+ problem_id, language, tests): the prompt dataset of its PPO
  verl/train.parquet, verl/validation.parquet
                             data_source, prompt (chat messages), ability, reward_model {style,
                             ground_truth: the tests}, extra_info: verl's RL datasets
  reward_model/              rm-k (the newest, or the iteration asked for) with its LoRA merged and its
                             score head: loads with AutoModelForSequenceClassification alone
  manifest.json              the run, the reward model's version, the row counts
The pairs are the ones the lab trains its reward model on (manual labels that contradict a pair leave
it out: curation.training_pairs, the one rule that training and every export follow); the prompts are
the run's training problems and its held-out validation problems. Completions are continuations of the
prompt (prompt + completion is the program), and the reward model reads its score at an EOS appended to
prompt + completion, as the lab trains it.

Licence: only problems whose training is allowed are written; MultiPL-E (evaluation-only) never is:
the store refuses it as a training problem and in pairs, and every problem is checked again here
(LicenceError naming it).

`import_policy(run, iteration, adapter_dir)` (`python -m lab import-policy`) copies a LoRA adapter of
the generator trained elsewhere into the run as gen-k and marks iteration k's training stage done, so
that `python -m lab iterate` and `python -m lab eval` sample, rank and evaluate it like their own.

Not covered here: what the pairs are (mining.py, curation.py), loading models (models.py).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from lab import curation
from lab.config import UsageError
from lab.generation import chat_request
from lab.models import load_generator, load_reward_model, resolve_dtype
from lab.problems import LicenceError, Problem
from lab.stages import RunContext, generator_version, reward_model_version

ABILITY = "code"
VERL_REWARD_STYLE = "rule"
"""verl's reward_model.style: the ground truth is the unit tests (a learned reward model, given to verl
as reward_model.model.path, scores whatever the style says)."""


def export_for_engines(run: RunContext, out: str | Path, *, iteration: int | None = None,
                       reward_model: bool = True) -> dict:
    """Write the hand-off files (module docstring) under `out`; rm-`iteration` (default: the newest
    trained) as the reward model, unless `reward_model` is False. Returns the manifest."""
    out = Path(out)
    pairs = curation.training_pairs(run.store, run.run_id, labels_from=run.pool_id).kept
    train, validation = run.problems("train"), run.problems("validation")
    for problem in [*train, *validation, *(run.store.problem(pid) for pid in {p["problem_id"] for p in pairs})]:
        check_training_allowed(problem)
    preference = [{"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]} for p in pairs]
    manifest: dict[str, Any] = {"run": run.name, "pairs": len(preference), "train_prompts": len(train),
                "validation_prompts": len(validation), "files": {}}
    for engine in ("trl", "openrlhf"):
        manifest["files"][f"{engine}/preference.jsonl"] = curation.write_jsonl(out / engine / "preference.jsonl",
                                                                               preference)
    manifest["files"]["openrlhf/prompts.jsonl"] = curation.write_jsonl(out / "openrlhf" / "prompts.jsonl", [
        {"prompt": p.prompt, "problem_id": p.id, "language": p.language, "tests": p.tests} for p in train])
    for split, problems in (("train", train), ("validation", validation)):
        rows = [verl_row(p, i, split) for i, p in enumerate(problems)]
        manifest["files"][f"verl/{split}.parquet"] = _write_parquet(out / "verl" / f"{split}.parquet", rows)
    if reward_model:
        trained = run.trained_iterations()
        if not trained:
            raise UsageError(f"run {run.name!r} has no trained reward model yet; export without it "
                             "(--no-reward-model) or train one first (python -m lab iterate)")
        chosen = trained[-1] if iteration is None else iteration
        export_reward_model(run, chosen, out / "reward_model")
        manifest["reward_model"] = reward_model_version(run.name, chosen)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def check_training_allowed(problem: Problem) -> None:
    if not problem.training_allowed:
        raise LicenceError(f"{problem.id} is evaluation-only ({problem.source}): it is never exported as training data")


def verl_row(problem: Problem, index: int, split: str) -> dict:
    """One row of verl's RL parquet: the problem as a chat request, its tests as the ground truth."""
    return {
        "data_source": f"rewardranker/{problem.source}",
        "prompt": [{"role": "user", "content": chat_request(problem)}],
        "ability": ABILITY,
        "reward_model": {"style": VERL_REWARD_STYLE, "ground_truth": problem.tests},
        "extra_info": {"split": split, "index": index, "problem_id": problem.id, "language": problem.language,
                       "completion_prompt": problem.prompt, "entry_point": problem.entry_point,
                       "stop_tokens": list(problem.stop_tokens)},
    }


def export_reward_model(run: RunContext, iteration: int, out: Path) -> Path:
    """rm-`iteration` as one Hugging Face directory: the backbone with the LoRA adapter merged (merged
    in fp32 on unquantized weights, saved in the model's dtype), the trained score head, the tokenizer
    with its pad token (no end token, so the classifier reads the score at the EOS)."""
    model_config = run.config.model
    model, tokenizer = load_reward_model(replace(model_config, load_in_4bit=False, dtype="float32"),
                                         adapter_dir=run.reward_model_path(iteration))
    merged = model.merge_and_unload().to(resolve_dtype(model_config))
    merged.config.pad_token_id = tokenizer.pad_token_id
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    merged.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return out


def import_policy(run: RunContext, iteration: int, adapter_dir: str | Path) -> str:
    """Copy the LoRA adapter in `adapter_dir` (a policy of the run's generator trained elsewhere) into
    the run as gen-`iteration`, and mark that iteration's training stage (sft for 0, ppo after) done.
    Checks that it loads onto the generator first. Returns the version."""
    source = Path(adapter_dir).expanduser().resolve()
    if not (source / "adapter_config.json").is_file():
        raise UsageError(f"{source} is not a LoRA adapter (no adapter_config.json). A fully fine-tuned policy is a "
                         f"model of its own: evaluate it in a run started with --set model.generator=local:{source}")
    if iteration < 0:
        raise UsageError(f"--iteration {iteration}: use 0 (the bootstrap's generator) or later")
    target = run.checkpoint_dir(iteration, "generator")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    load_generator(run.config.model, adapter_dir=str(partial))  # refuses an adapter of another model
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    version = generator_version(run.name, iteration)
    stage, info = ("sft" if iteration == 0 else "ppo"), {"imported_from": str(source)}
    run.store.ensure_iteration(run.run_id, iteration)
    run.store.add_checkpoint(run.run_id, iteration, "generator", version, str(target), info)
    run.store.start_stage(run.run_id, iteration, stage)
    run.store.finish_stage(run.run_id, iteration, stage, "done", info)
    return version


def _write_parquet(path: Path, rows: list[dict]) -> int:
    """verl rows (`verl_row`) as parquet, with their schema spelled out (an empty split keeps its columns)."""
    import pyarrow
    import pyarrow.parquet

    text = pyarrow.string()
    schema = pyarrow.schema([
        ("data_source", text),
        ("prompt", pyarrow.list_(pyarrow.struct([("role", text), ("content", text)]))),
        ("ability", text),
        ("reward_model", pyarrow.struct([("style", text), ("ground_truth", text)])),
        ("extra_info", pyarrow.struct([("split", text), ("index", pyarrow.int64()), ("problem_id", text),
                                       ("language", text), ("completion_prompt", text), ("entry_point", text),
                                       ("stop_tokens", pyarrow.list_(text))])),
    ])
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows, schema=schema), partial)
    partial.replace(path)
    return len(rows)
