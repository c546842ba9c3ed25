"""RLOO of the generator against the reward of lab/policy.py, with TRL's `RLOOTrainer` (trl 1.16):
REINFORCE whose baseline for a completion is the mean reward of its prompt's other completions
(Ahmadian et al. 2024), with the probability ratio clipped at policy.clip_range, no value head.

What is TRL's: sampling the completions (`model.generate`, policy.generations_per_prompt per problem,
sampling.temperature and top_p), the log-probs, the KL to the reference (k1 summed over the
completion, times policy.kl_coef, taken from the reward), the leave-one-out advantages, the loss,
the optimizer, checkpoints and logging. What is the lab's: the policy and its reference, and the
reward function TRL calls (`lab_reward`), which cuts each completion where the executor cuts it and
hands the batch to policy.PolicyReward (reward model and/or execution, whitening, penalties), then
logs policy.STEP_METRICS through TRL's `log_metric`. Everything goes through TRL's public
arguments; nothing of TRL's is replaced.

Differences from lab/ppo.py, both from TRL's sampling: a completion ends at an end token or
policy.response_length, not at its stop strings (TRL's generate takes no tokenizer, which
transformers needs for stop strings), so RLOO samples past the cut and trains the tokens after it
with the completion's advantage; and the reference is TRL's "ref" adapter, which is set to the SFT
generator's weights (gen-0's adapter; zeros, i.e. the base model, without one).

Resumable: TRL saves a checkpoint (adapter, optimizer, scheduler, RNG, logs) after every step under
<output_dir>/checkpoint-<step>; a killed stage run again with the same settings
(policy.resumable_output) logs the checkpoint's steps again and continues from it.
The finished stage leaves only the adapter, in the layout lab/ppo.py writes.

Not covered here: the reward (policy.py), PPO (ppo.py), the stage in the loop (loop.py).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from lab.config import LabConfig
from lab.generation import eos_token_ids, format_prompt, stop_strings
from lab.models import load_generator, log_forwarder, trainable_weights_kept, trainer_arguments
from lab.policy import (
    STEP_METRICS,
    Completion,
    PolicyReward,
    check_policy_config,
    cut_completion,
    finish_output,
    resumable_output,
    resume_key,
    summary,
)
from lab.problems import Problem

LOGGED = "lab/"
"""Prefix of the metrics the reward function logs through TRL (its own 'reward' is another number)."""
RENAMES = {**{f"{LOGGED}{name}": name for name in STEP_METRICS}, "reward": "trained_reward",
           "completions/mean_length": "sampled_length", "clip_ratio/region_mean": "clip_fraction"}
"""TRL's log names -> the lab's: STEP_METRICS as PPO logs them; TRL's 'reward' (after whitening and
penalties, what RLOO trains on) becomes trained_reward, its length the sampled one (past the cut)."""


def reward_function(reward: PolicyReward, tokenizer, problems: Sequence[Problem], config: LabConfig, ends: set[int]):
    """The reward function TRL calls with each generation batch (and the dataset's problem_id column)."""
    by_id = {p.id: p for p in problems}

    def lab_reward(completion_ids, problem_id, log_metric, **_) -> list[float]:
        completions = [cut_completion(tokenizer, by_id[pid], ids,
                                      stop_strings(by_id[pid], config.sampling.prompt_style),
                                      config.policy.response_length, ends)
                       for pid, ids in zip(problem_id, completion_ids)]
        rewards, stats = reward(completions)
        for name, value in stats.items():
            log_metric(f"{LOGGED}{name}", value)
        return rewards.tolist()

    return lab_reward


def step_logs(log_history: list[dict]) -> list[dict]:
    """The step entries of a trainer's log history, under the lab's names (as on_log gets them)."""
    return [{RENAMES.get(k, k): v for k, v in entry.items()} for entry in log_history if f"{LOGGED}reward" in entry]


def set_reference(model, reference_adapter: str | None) -> None:
    """TRL's 'ref' adapter (a copy of the policy's starting adapter) becomes the reference: the SFT
    adapter's weights, or, without one, zeros in its B matrices (LoRA's output 0: the base model)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    if reference_adapter:
        weights = load_file(str(Path(reference_adapter) / "adapter_model.safetensors"))
        result: Any = set_peft_model_state_dict(model, weights, adapter_name="ref")  # peft leaves it untyped
        if result.unexpected_keys:
            raise ValueError(f"the reference adapter {reference_adapter} does not fit the policy's LoRA layout "
                             f"(e.g. {result.unexpected_keys[0]}): were model.lora_* changed since it was trained?")
        return
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if ".ref." in name and "lora_B" in name:
                parameter.zero_()


def train_rloo(config: LabConfig, problems: Sequence[Problem], output_dir: str, *, policy_adapter: str | None,
               reference_adapter: str | None, reward_adapter: str | None, seed: int | None = None,
               on_log: Callable[[dict], None] | None = None, on_step: Callable[[int, int], None] | None = None,
               score: Callable[[list[Completion]], list[float]] | None = None) -> dict:
    """Run config.policy.steps RLOO steps on `problems` and save the policy's adapter to `output_dir`;
    the arguments and the result are lab.ppo.train_ppo's."""
    from datasets import Dataset
    from transformers import TrainerState
    from transformers.trainer_utils import get_last_checkpoint
    from trl import RLOOConfig, RLOOTrainer

    check_policy_config(config, problems)
    settings = config.policy
    seed = config.sampling.seed if seed is None else seed
    out = resumable_output(output_dir, resume_key(config, problems, method="rloo", policy=policy_adapter,
                                                  reference=reference_adapter, reward=reward_adapter, seed=str(seed)))
    checkpoint = get_last_checkpoint(str(out))
    saved = TrainerState.load_from_json(f"{checkpoint}/trainer_state.json").log_history if checkpoint else []
    for entry in step_logs(saved):  # a resumed stage's saved steps, logged again
        if on_log is not None:
            on_log(entry)

    policy, tokenizer = load_generator(config.model, adapter_dir=policy_adapter, trainable=True)
    reward = PolicyReward(config, reward_adapter, score)
    args = RLOOConfig(**trainer_arguments(
        config.model, str(out), seed=seed, max_steps=settings.steps, learning_rate=settings.learning_rate,
        lr_scheduler_type="constant", max_grad_norm=settings.max_grad_norm,
        per_device_train_batch_size=settings.batch_size // settings.gradient_accumulation_steps,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        num_generations=settings.generations_per_prompt, max_completion_length=settings.response_length,
        temperature=config.sampling.temperature, top_p=config.sampling.top_p, top_k=0, beta=settings.kl_coef,
        epsilon=settings.clip_range, num_iterations=1, disable_dropout=True, remove_unused_columns=False,
        save_strategy="steps", save_steps=1, save_total_limit=1))
    dataset = Dataset.from_list([{"prompt": format_prompt(p, tokenizer, config.sampling.prompt_style),
                                  "problem_id": p.id} for p in problems])
    function = reward_function(reward, tokenizer, problems, config, eos_token_ids(policy, tokenizer))
    with trainable_weights_kept(policy):
        trainer = RLOOTrainer(model=policy, reward_funcs=function, args=args, train_dataset=dataset,
                              processing_class=tokenizer, callbacks=[log_forwarder(on_log, RENAMES, on_step)])
    set_reference(trainer.model, reference_adapter)
    started, done = time.perf_counter(), len(step_logs(saved))
    try:
        trainer.train(resume_from_checkpoint=checkpoint)
    finally:
        reward.close()
    trained: Any = trainer.model  # the peft model it trained (typed as optional by transformers)
    trained.save_pretrained(str(out), selected_adapters=["default"])
    finish_output(out)
    return summary(step_logs(trainer.state.log_history), settings.batch_size, time.perf_counter() - started,
                   settings.steps - done)
