"""PPO of the generator against the reward model, with trl 1.12's `trl.experimental.ppo.PPOTrainer`
(the last TRL release that has it).

Models: the policy is the generator with a LoRA adapter (QLoRA on CUDA); the reference is the same
weights with the adapter swapped: the base model when PPO starts from scratch, or a frozen copy of
the SFT adapter (TRL's `ref_adapter_name`) when it starts from one, so the KL is measured against
the SFT policy. The reward model is frozen; the value model is a trainable LoRA copy of it. On the
4-bit path the reward model stays an unmerged PeftModel (merging into nf4 weights re-quantizes them;
TRL's get_reward reaches its backbone through `base_model_prefix`), and the policy's and value's
adapters train in fp32, as SFT's and the reward model's do (models.trainable_weights_kept).

Rollouts end where the executor would cut the completion: `StopStringRollout` replaces TRL's
rollout generation so that each row stops decoding at its prompt's first stop string (MultiPL-E's
`stop_tokens`) or any end token, and the response is cut there and closed with EOS. TRL's own
rollouts end only at the tokenizer's EOS, which Qwen does not emit after code (it ends with
<|endoftext|>): nearly every rollout ran to ppo.response_length (118 of 128 tokens on average in
a main job), lost ppo.missing_eos_penalty, and the reward model scored text the executor never
runs (the next function, test code, ...). scripts/bench_ppo.py measures the difference.

Guards against PPO's known failure modes:
  - the reward is read at the completion's EOS, never at a pad: the pad token is distinct from EOS
    (models.load_tokenizer; TRL issue #3750), and every rollout is checked (`RolloutGuard`);
  - completions without EOS (runaway) lose ppo.missing_eos_penalty (TRL), empty or whitespace-only
    completions lose ppo.empty_completion_penalty (`RolloutGuard`);
  - the KL to the reference uses the k3 estimator (never negative), and reward, KL, entropy and
    completion length are logged at every step.
`RolloutGuard` and `StopStringRollout` stand in for module-level functions of TRL's trainer
(`get_reward`, `generate`), patched only for the duration of `train()`: TRL offers no hooks there.

Not covered here: training the reward model (reward.py), sampling candidates (generation.py).
"""
from __future__ import annotations

import dataclasses
import gc
import time
from collections.abc import Callable
from unittest import mock

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from lab.config import LabConfig
from lab.models import end_token_ids, load_generator, load_reward_model, log_forwarder, trainer_arguments, uses_4bit
from lab.problems import first_stop

PPO_LOG_NAMES = {"objective/scores": "reward", "objective/kl": "kl", "objective/entropy": "entropy",
                 "loss/policy_avg": "loss", "loss/value_avg": "value_loss"}


class RolloutGuard:
    """Called in place of TRL's `get_reward`. For the reward model's calls: checks the reward is read
    at an EOS (or at the last token of a completion cut by the length limit), subtracts the penalty
    from empty completions, and keeps length / empty / EOS statistics of the last rollout."""

    def __init__(self, get_reward: Callable, reward_model, tokenizer, empty_penalty: float):
        if tokenizer.pad_token_id == tokenizer.eos_token_id:
            raise ValueError("PPO needs a pad token distinct from EOS, else the reward is read before the EOS "
                             "(TRL issue #3750); load the tokenizer with lab.models.load_tokenizer")
        self.get_reward, self.reward_model, self.tokenizer = get_reward, reward_model, tokenizer
        self.empty_penalty = empty_penalty
        self.last_stats: dict[str, float] = {}

    def __call__(self, model, query_responses: torch.Tensor, pad_token_id: int, context_length: int):
        logits, scores, ends = self.get_reward(model, query_responses, pad_token_id, context_length)
        if model is not self.reward_model:
            return logits, scores, ends
        responses = query_responses[:, context_length:]
        rows = torch.arange(len(responses), device=responses.device)
        end_tokens = query_responses[rows, ends]
        has_eos = (responses == self.tokenizer.eos_token_id).any(-1)
        lengths = ends - context_length + 1
        if not bool(((end_tokens == self.tokenizer.eos_token_id) | ~has_eos).all()):
            raise RuntimeError(f"PPO reward read at tokens {end_tokens.tolist()} instead of EOS "
                               f"{self.tokenizer.eos_token_id} (TRL issue #3750): check the pad token")
        texts = [self.tokenizer.decode(response[:max(int(length) - int(eos), 0)], skip_special_tokens=False)
                 for response, length, eos in zip(responses, lengths, has_eos)]
        empty = torch.tensor([not text.strip() for text in texts], device=scores.device)
        scores = scores - self.empty_penalty * empty.to(scores.dtype)
        self.last_stats = {"length": lengths.float().mean().item(), "empty_fraction": empty.float().mean().item(),
                           "eos_fraction": has_eos.float().mean().item()}
        return logits, scores, ends


class StopStringRollout:
    """Called in place of TRL's rollout `generate` (one chunk of left-padded queries). Samples as TRL
    does, except that a row stops decoding at the first stop string of its prompt or any end token
    (`models.end_token_ids`: Qwen ends code with <|endoftext|>, not its EOS <|im_end|>), and its
    response is then cut there, closed with the tokenizer's EOS and padded after it. An inserted EOS
    was not sampled, but its log-prob is the policy's own at that position, so PPO also teaches the
    policy to end where the executor cuts (the usual stop-sequence-as-EOS convention)."""

    def __init__(self, tokenizer, stops_by_prompt: dict[tuple[int, ...], tuple[str, ...]]):
        self.tokenizer, self.stops_by_prompt = tokenizer, stops_by_prompt
        self.ends = end_token_ids(tokenizer)

    def __call__(self, lm_backbone, queries: torch.Tensor, pad_token_id: int, generation_config):
        context_length = queries.shape[1]
        attention_mask = queries != pad_token_id
        stops = [self.stops_of(query[mask]) for query, mask in zip(queries, attention_mask)]
        output = lm_backbone.generate(
            input_ids=torch.masked_fill(queries, ~attention_mask, 0), attention_mask=attention_mask,
            generation_config=generation_config, return_dict_in_generate=True, output_scores=True,
            stopping_criteria=StoppingCriteriaList([_StopCriteria(self, stops, context_length)]))
        responses = output.sequences[:, context_length:].clone()
        for response, row_stops in zip(responses, stops):
            end = self.end_position(response, row_stops)
            if end is not None:
                response[end] = self.tokenizer.eos_token_id
                response[end + 1:] = pad_token_id
        return torch.cat((queries, responses), dim=1), torch.stack(output.scores, 1)

    def stops_of(self, prompt_tokens: torch.Tensor) -> tuple[str, ...]:
        key = tuple(prompt_tokens.tolist())
        if key not in self.stops_by_prompt:
            raise RuntimeError(f"PPO rollout for a prompt train_ppo was not given: "
                               f"{self.tokenizer.decode(prompt_tokens)[:200]!r}")
        return self.stops_by_prompt[key]

    def completion(self, response: torch.Tensor) -> tuple[list[int], str, bool]:
        """The response's tokens before its first end token or pad, their text, and whether an end token
        is what follows them."""
        tokens = response.tolist()
        pad = self.tokenizer.pad_token_id
        end = next((i for i, token in enumerate(tokens) if token in self.ends or token == pad), len(tokens))
        kept = tokens[:end]
        return kept, self.tokenizer.decode(kept, skip_special_tokens=False), end < len(tokens) and tokens[end] != pad

    def end_position(self, response: torch.Tensor, stops: tuple[str, ...]) -> int | None:
        """Where the response's EOS belongs: after the whole tokens that precede its first stop string
        (a token straddling the stop string is dropped), else at its first end token; None if neither."""
        tokens, text, ended = self.completion(response)
        cut = first_stop(text, stops)
        if cut < 0:
            return len(tokens) if ended else None
        kept = 0
        while len(self.tokenizer.decode(tokens[:kept + 1], skip_special_tokens=False)) <= cut:
            kept += 1
        return kept


class _StopCriteria(StoppingCriteria):
    """transformers stopping criterion: a row is done at an end token or once its text holds a stop string."""

    def __init__(self, rollout: StopStringRollout, stops: list[tuple[str, ...]], context_length: int):
        self.rollout, self.stops, self.context_length = rollout, stops, context_length

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        done = []
        for row, row_stops in zip(input_ids, self.stops):
            _, text, ended = self.rollout.completion(row[self.context_length:])
            done.append(ended or first_stop(text, row_stops) >= 0)
        return torch.tensor(done, device=input_ids.device)


def train_ppo(config: LabConfig, prompts: list[str], output_dir: str, *, policy_adapter: str | None,
              reward_adapter: str | None, stops: list[tuple[str, ...]] | None = None,
              on_log: Callable[[dict], None] | None = None,
              on_step: Callable[[int, int], None] | None = None, reward_model=None) -> dict:
    """Run PPO on `prompts` and save the policy's adapter to `output_dir`.

    `stops[i]` are prompt i's stop strings (its problem's `stop_tokens`): rollouts end at the first
    one, as the sampler's candidates do; without them a rollout ends only at an end token or
    ppo.response_length tokens. `reward_model` replaces the one loaded from `reward_adapter` (tests
    pass a toy one); the value model starts from `reward_adapter` when given. Returns the first/last
    step's reward, KL, completion length and fraction of rollouts ending in EOS.
    """
    from datasets import Dataset
    from trl.experimental.ppo import PPOConfig, PPOTrainer
    from trl.experimental.ppo import ppo_trainer as trl_ppo

    settings = config.ppo
    if len(prompts) < settings.batch_size:
        raise ValueError(f"PPO got {len(prompts)} prompts but ppo.batch_size={settings.batch_size}: "
                         "pass more prompts or lower ppo.batch_size")
    if settings.batch_size % settings.mini_batch_size:
        raise ValueError(f"ppo.batch_size={settings.batch_size} must be a multiple of "
                         f"ppo.mini_batch_size={settings.mini_batch_size}")
    # no gradient checkpointing on the policy: with it on, transformers turns the KV cache off inside
    # TRL's rollout generation, which then costs O(length^2) forward passes
    policy_config = dataclasses.replace(config.model, gradient_checkpointing=False)
    policy, tokenizer = load_generator(policy_config, adapter_dir=policy_adapter, trainable=True)
    ref_adapter_name = None
    if policy_adapter:
        policy.load_adapter(policy_adapter, adapter_name="reference", is_trainable=False)
        policy.set_adapter("default")
        ref_adapter_name = "reference"
    if reward_model is None:
        if not reward_adapter:
            raise ValueError("train_ppo needs reward_adapter (a directory saved by train_reward_model)")
        reward_model, _ = load_reward_model(config.model, adapter_dir=reward_adapter)
        if not uses_4bit(config.model):
            reward_model = reward_model.merge_and_unload()
    value_model, _ = load_reward_model(config.model, adapter_dir=reward_adapter, trainable=True)

    guard = RolloutGuard(trl_ppo.get_reward, reward_model, tokenizer, settings.empty_completion_penalty)
    steps: list[dict] = []

    def record(entry: dict) -> None:
        entry = {**entry, **guard.last_stats}
        steps.append(entry)
        if on_log is not None:
            on_log(entry)

    args = PPOConfig(**trainer_arguments(
        config.model, output_dir, seed=config.data.seed, learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size, gradient_accumulation_steps=1,
        num_mini_batches=settings.batch_size // settings.mini_batch_size, total_episodes=settings.total_episodes,
        num_ppo_epochs=settings.num_ppo_epochs, kl_coef=settings.kl_coef, kl_estimator="k3",
        response_length=settings.response_length, missing_eos_penalty=settings.missing_eos_penalty,
        stop_token="eos", temperature=config.sampling.temperature, local_rollout_forward_batch_size=settings.batch_size,
        num_sample_generations=0, ref_adapter_name=ref_adapter_name))
    stops = [()] * len(prompts) if stops is None else stops
    if len(stops) != len(prompts):
        raise ValueError(f"train_ppo got {len(prompts)} prompts but {len(stops)} stop-string tuples: one per prompt")
    encoded = [tokenizer(prompt).input_ids for prompt in prompts]
    stops_by_prompt = {}
    for prompt, ids, prompt_stops in zip(prompts, encoded, stops):
        if stops_by_prompt.setdefault(tuple(ids), tuple(prompt_stops)) != tuple(prompt_stops):
            raise ValueError(f"train_ppo got the same prompt twice with different stop strings: {prompt[:200]!r}")
    rollout = StopStringRollout(tokenizer, stops_by_prompt)
    dataset = Dataset.from_dict({"input_ids": encoded})
    trainer = PPOTrainer(args=args, processing_class=tokenizer, model=policy, ref_model=None,
                         reward_model=reward_model, train_dataset=dataset, value_model=value_model,
                         callbacks=[log_forwarder(record, PPO_LOG_NAMES, on_step)])
    started = time.perf_counter()
    gc.freeze()  # TRL runs gc.collect() twice a step; without this each scans every loaded object (~1 s on CPU)
    try:
        with mock.patch.object(trl_ppo, "get_reward", guard), mock.patch.object(trl_ppo, "generate", rollout):
            trainer.train()
    finally:
        gc.unfreeze()
    seconds = time.perf_counter() - started
    policy.save_pretrained(output_dir, selected_adapters=["default"])
    logged = [entry for entry in steps if "reward" in entry]
    return {"steps": len(logged), "episodes": len(logged) * settings.batch_size, "seconds": round(seconds, 1),
            "seconds_per_step": round(seconds / max(len(logged), 1), 2),
            **{f"{edge}_{key}": logged[index][key] if logged else None
               for edge, index in (("first", 0), ("last", -1)) for key in ("reward", "kl", "length", "eos_fraction")}}
