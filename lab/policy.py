"""What both policy-optimisation methods (lab/ppo.py, lab/rloo.py) share: where a sampled completion
ends, the reward it gets, the statistics every step logs, and the key that says whether a killed
stage's saved state may be resumed.

A completion ends where the executor cuts it: before the first of its problem's stop strings (a
token that straddles one is dropped) or at an end token; one that reaches policy.response_length
without either ran away. The reward of a batch of completions (`PolicyReward`):

  1. each is scored by the reward model, `prompt + completion + EOS` read at that EOS as
     reward.score_completions reads it (or by a `score` function given instead: the tests' toy
     rewards), and run against its training problem's tests in the sandbox (execution.Executor);
  2. its score is policy.reward's: the reward model's score ('rm'), execution_weight if it passed
     else 0 ('execution'), or their sum ('rm+execution');
  3. with policy.whiten_rewards the batch's scores are normalised to mean 0 and std 1 (so penalties
     and policy.kl_coef are in units of the batch's spread, whatever the reward model's scale);
  4. runaway completions lose policy.missing_eos_penalty, empty ones policy.empty_completion_penalty.

A killed stage resumes from what it saved in its output folder (`resumable_output`) only when run
again with the same settings, problems and starting adapters (`resume_key`).

Every step logs (STEP_METRICS): `reward` (the mean score before 3 and 4), `rm_score`, `pass_rate`
(the fraction of completions that pass when executed, whatever trains: a reward that rises while it
falls is reward hacking), `length`, `runaway_fraction`, `empty_fraction`; the methods add `kl`,
`entropy`, `loss` and their own.

Not covered here: sampling (generation.py), the updates (ppo.py, rloo.py), storing (the loop).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from lab.config import LabConfig, UsageError
from lab.execution import Executor, build_program
from lab.hidden_states import HiddenStateCache
from lab.models import load_reward_model
from lab.problems import Problem, first_stop
from lab.reward import score_completions

POLICY_METHODS = ("ppo", "rloo")
POLICY_REWARDS = ("rm", "execution", "rm+execution")
KL_ESTIMATORS = ("k1", "k3")
STEP_METRICS = ("reward", "rm_score", "pass_rate", "length", "runaway_fraction", "empty_fraction")
RESUME_KEY, RESUME_STATES = "resume.key", ("resume", "checkpoint-*")
"""In a stage's output folder while it runs: its resume_key, and what the methods save to resume
(lab/ppo.py's resume/, TRL's checkpoint-<step>/); the finished stage leaves neither."""


@dataclass
class Completion:
    problem: Problem
    token_ids: list[int]
    """The sampled tokens before the cut (no end token)."""
    text: str
    """Their text: what the reward model scores and the executor runs after `problem.prompt`."""
    ended: bool
    """False when it ran to policy.response_length without a stop string or an end token."""

    @property
    def empty(self) -> bool:
        return not self.text.strip()


def check_policy_config(config: LabConfig, problems: Sequence[Problem]) -> None:
    """UsageError naming the field when config.policy cannot run on `problems`."""
    policy = config.policy
    choices = (("method", POLICY_METHODS), ("reward", POLICY_REWARDS), ("kl_estimator", KL_ESTIMATORS))
    for name, allowed in choices:
        if getattr(policy, name) not in allowed:
            raise UsageError(f"policy.{name}={getattr(policy, name)!r}: choose one of {', '.join(allowed)}")
    if policy.batch_size % policy.generations_per_prompt:
        raise UsageError(f"policy.batch_size={policy.batch_size} must be a multiple of "
                         f"policy.generations_per_prompt={policy.generations_per_prompt}")
    if policy.batch_size // policy.generations_per_prompt > len(problems):
        raise UsageError(f"a policy step samples {policy.batch_size // policy.generations_per_prompt} problems "
                         f"(policy.batch_size / policy.generations_per_prompt) but there are {len(problems)} training "
                         "problems: lower policy.batch_size or raise data.max_train_problems")
    update = policy.mini_batch_size if policy.method == "ppo" else policy.batch_size
    if policy.method == "ppo" and policy.batch_size % policy.mini_batch_size:
        raise UsageError(f"policy.batch_size={policy.batch_size} must be a multiple of "
                         f"policy.mini_batch_size={policy.mini_batch_size}")
    if update % policy.gradient_accumulation_steps:
        raise UsageError(f"policy.gradient_accumulation_steps={policy.gradient_accumulation_steps} must divide the "
                         f"{update} completions of an update")
    if policy.method == "rloo" and policy.generations_per_prompt < 2:
        raise UsageError("policy.method=rloo needs policy.generations_per_prompt >= 2 (its baseline is the mean "
                         "reward of a prompt's other completions)")


def cut_completion(tokenizer, problem: Problem, token_ids: Sequence[int], stops: tuple[str, ...],
                   response_length: int, ends: set[int]) -> Completion:
    """The completion of `problem` that sampled `token_ids` (the stopping token included), cut before
    its first stop string (whole tokens only: one straddling it is dropped) or at its first token of
    `ends` (the end tokens, generation.eos_token_ids) or pad."""
    ends = ends | {tokenizer.pad_token_id}
    tokens = list(token_ids)
    end = next((i for i, token in enumerate(tokens) if token in ends), len(tokens))
    text = tokenizer.decode(tokens[:end], skip_special_tokens=False)
    cut = first_stop(text, stops)
    if cut < 0:
        kept = tokens[:end]
        return Completion(problem, kept, text, ended=end < len(tokens) or len(tokens) < response_length)
    count = 0
    while count < end and len(tokenizer.decode(tokens[:count + 1], skip_special_tokens=False)) <= cut:
        count += 1
    return Completion(problem, tokens[:count], tokenizer.decode(tokens[:count], skip_special_tokens=False), ended=True)


def whiten(values: torch.Tensor) -> torch.Tensor:
    """Mean 0 and std 1 (all zeros when the values are all equal)."""
    centred = values - values.mean()
    return centred / (centred.std(unbiased=False) + 1e-8) if len(values) > 1 else centred


class PolicyReward:
    """The reward of batches of completions (the module docstring's steps 1-4), with the reward model
    (from `reward_adapter`) and an executor open until `close()`. `score(completions)` replaces the
    reward model's scores when given."""

    def __init__(self, config: LabConfig, reward_adapter: str | None,
                 score: Callable[[list[Completion]], list[float]] | None = None):
        self.settings = config.policy
        if score is None:
            if not reward_adapter:
                raise ValueError("the policy's reward needs reward_adapter (a directory saved by train_reward_model)")
            self.reward_model, self.tokenizer = load_reward_model(config.model, adapter_dir=reward_adapter)
            self.score_batch_size = config.reward.score_batch_size
        self.score = score or self.reward_model_scores
        self.executor = Executor(config.execution)

    def reward_model_scores(self, completions: list[Completion]) -> list[float]:
        return score_completions(self.reward_model, self.tokenizer, [(c.problem.prompt, c.text) for c in completions],
                                 batch_size=self.score_batch_size, progress=False, cache=HiddenStateCache(None))

    def __call__(self, completions: list[Completion]) -> tuple[torch.Tensor, dict[str, float]]:
        """(reward of each completion, the batch's STEP_METRICS)."""
        rm = torch.tensor(self.score(completions), dtype=torch.float32)
        results = self.executor.run_many([(c.problem.language, build_program(c.problem, c.text)) for c in completions],
                                         progress=False)
        failed = [r for r in results if r.executor_error]
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(results)} rollouts failed inside the executor, not in the "
                               f"programs (first: {failed[0].stderr.strip()[:300]}); `python -m lab selftest` checks "
                               "the sandbox. The policy stage resumes from its last step when run again.")
        passed = torch.tensor([float(r.passed) for r in results])
        execution = self.settings.execution_weight * passed
        scores = {"rm": rm, "execution": execution, "rm+execution": rm + execution}[self.settings.reward]
        runaway = torch.tensor([float(not c.ended) for c in completions])
        empty = torch.tensor([float(c.empty) for c in completions])
        rewards = whiten(scores) if self.settings.whiten_rewards else scores.clone()
        rewards -= self.settings.missing_eos_penalty * runaway + self.settings.empty_completion_penalty * empty
        stats = {"reward": scores.mean().item(), "rm_score": rm.mean().item(), "pass_rate": passed.mean().item(),
                 "length": sum(len(c.token_ids) for c in completions) / len(completions),
                 "runaway_fraction": runaway.mean().item(), "empty_fraction": empty.mean().item()}
        return rewards, stats

    def close(self) -> None:
        self.executor.close()


def resume_key(config: LabConfig, problems: Sequence[Problem], **adapters: str | None) -> str:
    """What a stage is trained with (settings, problems, the adapters it starts from): a killed stage
    resumes from its saved state only under the same key."""
    model = {k: v for k, v in dataclasses.asdict(config.model).items() if k not in ("threads", "report_to")}
    described = {"policy": dataclasses.asdict(config.policy), "sampling": dataclasses.asdict(config.sampling),
                 "model": model, "seed": config.data.seed, "problems": [p.id for p in problems], "adapters": adapters}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


def resumable_output(output_dir: str, key: str) -> Path:
    """The stage's output folder, holding what a killed run of the same `key` saved there; emptied first
    when it holds anything else (another method's or another setting's state, an older adapter)."""
    out, key_file = Path(output_dir), Path(output_dir) / RESUME_KEY
    if not (key_file.is_file() and key_file.read_text() == key):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        key_file.write_text(key)
    return out


def finish_output(out: Path) -> None:
    """Drop the resume key and the saved states of a finished stage: its adapter stays."""
    for path in [out / RESUME_KEY, *(found for pattern in RESUME_STATES for found in out.glob(pattern))]:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def summary(logged: list[dict], batch_size: int, seconds: float, steps_run: int) -> dict:
    """The stage's numbers for the checkpoint row, the same for both methods: steps and completions (all
    of them, a resumed stage's earlier steps included), the steps run in this process and their time,
    and the first and last step's reward, rm_score, pass_rate, kl and length."""
    return {"steps": len(logged), "completions": len(logged) * batch_size, "steps_run": steps_run,
            "seconds": round(seconds, 1),
            "seconds_per_step": round(seconds / max(steps_run, 1), 2),
            **{f"{edge}_{name}": logged[index].get(name) if logged else None
               for edge, index in (("first", 0), ("last", -1)) for name in ("reward", "rm_score", "pass_rate", "kl",
                                                                             "length")}}
