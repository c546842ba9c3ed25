"""PPO of the generator against the reward of lab/policy.py, written out top to bottom in CleanRL's
manner: the pure pieces (KL estimate, per-token rewards, GAE, the clipped losses), the models, one
step, and the training loop.

One step (config.policy.steps of them per stage):
  1. rollouts   batch_size completions, generations_per_prompt of each of batch_size /
                generations_per_prompt training problems drawn for the step, from the lab's own
                sampler (generation.generate: the problems' stop strings, a seed per completion
                derived from the step, sampling.temperature and sampling.top_p as the candidates
                have), each cut where the executor cuts it (policy.cut_completion) and closed with
                EOS unless it ran away. An EOS put at a stop string was not sampled, but its log-prob
                is the policy's own there, so PPO also teaches the policy to end where the executor cuts.
  2. reward     policy.PolicyReward: one number per completion (reward model and/or execution,
                whitened, penalties), on its last token, the EOS where the reward model read it.
  3. old log-probs and values of every response token, and its log-prob under the reference, the
                SFT generator (gen-0's adapter, the base model without one), all without gradients.
  4. per-token rewards: -kl_coef * the KL estimate (policy.kl_estimator) at each token, plus the
                completion's reward at its last; GAE advantages (whitened over the batch) and returns.
  5. updates    ppo_epochs passes over the batch in shuffled mini-batches of mini_batch_size: the
                clipped policy loss + value_coef * the clipped value loss, gradients accumulated over
                gradient_accumulation_steps micro-batches and clipped to max_grad_norm, one AdamW step.
Log-probs are those of the tempered distribution the rollouts were sampled from (logits divided by
sampling.temperature; top-p is not applied to them, as in TRL).

Models: the policy is the generator with a LoRA adapter (nf4 weights where lab.models loads 4-bit,
fp32 adapters), its value head a linear layer on the policy's last hidden state (a shared trunk),
the reference a second, frozen adapter on the same weights. Dropout is off, so that the first update
of a batch starts at a probability ratio of exactly 1.

Resumable: after every step the adapter, the value head, the optimizer and the step logs are saved
to <output_dir>/resume/state.pt (replaced atomically). A stage killed at any point and run again with
the same settings (policy.resumable_output) logs the saved steps again (the loop drops an unfinished
stage's metrics when it restarts it) and continues after them; rollouts and mini-batch order depend
only on the seed and the step, so it samples what an uninterrupted stage would.

Not covered here: the reward (policy.py), RLOO (rloo.py), the stage in the loop (loop.py).
"""
from __future__ import annotations

import dataclasses
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lab.config import LabConfig
from lab.generation import candidate_seed, eos_token_ids, format_prompt, generate, stop_strings
from lab.models import load_generator
from lab.policy import (
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

# ------------------------------------------------------------------ the pure pieces


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean 0 and variance 1 over the masked entries; 0 elsewhere."""
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    return (values - mean) * torch.rsqrt(variance + 1e-8) * mask


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per token, an estimate of KL(policy || reference) from the log-probs of tokens the policy sampled
    (Schulman, "Approximating KL divergence"): k1 = log(pi / pi_ref); k3 = (r - 1) - log r, r = pi_ref / pi."""
    log_ratio = logprobs - ref_logprobs
    if estimator == "k1":
        return log_ratio
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"KL estimator {estimator!r}: use k1 or k3")


def token_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """Per response token, -kl_coef * kl; each completion's score is added on its last token."""
    rewards = -kl_coef * kl * mask
    last = mask.sum(1).long() - 1
    rewards[torch.arange(len(scores)), last] += scores.to(rewards.dtype)
    return rewards


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation along each (right-padded) response, the state after its last
    token being terminal: delta_t = r_t + gamma V_(t+1) - V_t, A_t = delta_t + gamma lam A_(t+1).
    Returns (advantages, returns = advantages + values), 0 on padding."""
    values = values * mask
    advantages = torch.zeros_like(rewards)
    running, next_value = torch.zeros_like(rewards[:, 0]), torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
        next_value = values[:, t]
    advantages = advantages * mask
    return advantages, advantages + values


def clipped_policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                        mask: torch.Tensor, clip_range: float, sign: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate, to minimise: the token mean of max(-A r, -A clip(r, 1 - e, 1 + e)),
    r = exp(logprobs - old_logprobs). `sign` multiplies it (-1 descends the wrong way: the tests show
    training then fails). Returns (loss, fraction of tokens where the clipped term is the larger)."""
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip_range, 1 + clip_range)
    loss = sign * masked_mean(torch.maximum(unclipped, clipped), mask)
    return loss, masked_mean((clipped > unclipped).float(), mask)


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
                       clip_range: float) -> torch.Tensor:
    """Half the token mean of max((V - R)^2, (V_clipped - R)^2), V_clipped = V_old + clip(V - V_old, -e, e)."""
    clipped = old_values + (values - old_values).clamp(-clip_range, clip_range)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)


# ------------------------------------------------------------------ models and batches


def value_head(policy) -> nn.Linear:
    """A linear value head on the policy's last hidden state, fp32, starting at 0."""
    head = nn.Linear(policy.config.hidden_size, 1, device=policy.device)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


def disable_dropout(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0


@contextmanager
def reference_weights(policy, has_reference_adapter: bool):
    """The reference policy while inside: the frozen 'reference' adapter, or the base model."""
    if not has_reference_adapter:
        with policy.disable_adapter():
            yield
        return
    policy.set_adapter("reference")
    try:
        yield
    finally:
        policy.set_adapter("default")


@dataclass
class Rollouts:
    """A batch of (prompt, response) token sequences: prompts left-padded to `prompt_width`, responses
    right-padded after them, so that response token j of every row sits at column prompt_width + j."""
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor
    """(rows, response width) 1.0 on response tokens."""
    prompt_width: int

    @classmethod
    def of(cls, prompts: Sequence[list[int]], responses: Sequence[list[int]], pad: int, device) -> Rollouts:
        prompt_width, response_width = max(map(len, prompts)), max(map(len, responses))
        rows, masks, response_masks = [], [], []
        for prompt, response in zip(prompts, responses):
            left, right = prompt_width - len(prompt), response_width - len(response)
            rows.append([pad] * left + prompt + response + [pad] * right)
            masks.append([0] * left + [1] * (len(prompt) + len(response)) + [0] * right)
            response_masks.append([1.0] * len(response) + [0.0] * right)
        return cls(torch.tensor(rows, device=device), torch.tensor(masks, device=device),
                   torch.tensor(response_masks, device=device), prompt_width)

    def rows(self, index: torch.Tensor) -> Rollouts:
        return Rollouts(self.input_ids[index], self.attention_mask[index], self.response_mask[index], self.prompt_width)

    def __len__(self) -> int:
        return len(self.input_ids)


def response_outputs(policy, head: nn.Linear, batch: Rollouts, temperature: float):
    """Per response token: its log-prob under the tempered policy, the entropy of that distribution,
    and the value of the state before it."""
    causal_lm = policy.get_base_model()
    backbone = getattr(causal_lm, causal_lm.base_model_prefix)
    positions = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
    hidden = backbone(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                      position_ids=positions).last_hidden_state[:, batch.prompt_width - 1:-1]
    logprobs = (causal_lm.lm_head(hidden).float() / temperature).log_softmax(-1)
    tokens = batch.input_ids[:, batch.prompt_width:]
    entropy = -(logprobs.exp() * logprobs).sum(-1)
    return logprobs.gather(-1, tokens[..., None])[..., 0], entropy, head(hidden.float())[..., 0]


@torch.no_grad()
def outputs_in_chunks(policy, head: nn.Linear, batch: Rollouts, temperature: float, rows: int):
    """response_outputs without gradients, `rows` rows at a time."""
    chunks = [response_outputs(policy, head, batch.rows(index), temperature)
              for index in torch.arange(len(batch)).split(rows)]
    return tuple(torch.cat(parts) for parts in zip(*chunks))


# ------------------------------------------------------------------ one step


def sample_completions(policy, tokenizer, problems: Sequence[Problem], config: LabConfig, seed: int,
                       step: int) -> list[Completion]:
    """Step 1: the step's problems (drawn by seed and step) and their completions from the lab's sampler."""
    settings = config.policy
    chosen = random.Random(f"{seed}/{step}").sample(list(problems),
                                                    settings.batch_size // settings.generations_per_prompt)
    sampling = dataclasses.replace(config.sampling, seed=candidate_seed(seed, "policy-step", step),
                                   max_new_tokens=settings.response_length)
    policy.eval()
    candidates = generate(policy, tokenizer, chosen, sampling, num_samples=settings.generations_per_prompt,
                          progress=False)
    ends, by_id = eos_token_ids(policy, tokenizer), {p.id: p for p in chosen}
    return [cut_completion(tokenizer, by_id[c.problem_id], c.token_ids,
                           stop_strings(by_id[c.problem_id], config.sampling.prompt_style), settings.response_length,
                           ends)
            for c in candidates]


def ppo_step(policy, head: nn.Linear, tokenizer, optimizer, reward: PolicyReward, problems: Sequence[Problem],
             config: LabConfig, *, seed: int, step: int, has_reference_adapter: bool) -> dict:
    """One PPO step (the module docstring's 1-5); returns what it logs."""
    settings, temperature = config.policy, config.sampling.temperature
    completions = sample_completions(policy, tokenizer, problems, config, seed, step)
    scores, stats = reward(completions)
    prompts = [tokenizer(format_prompt(c.problem, tokenizer, config.sampling.prompt_style)).input_ids
               for c in completions]
    responses = [c.token_ids + ([tokenizer.eos_token_id] if c.ended else []) for c in completions]
    if not all(responses):  # a runaway completion of no tokens: only with policy.response_length 0
        raise ValueError("policy.response_length must be at least 1")
    batch = Rollouts.of(prompts, responses, tokenizer.pad_token_id, policy.device)
    micro_rows = settings.mini_batch_size // settings.gradient_accumulation_steps
    old_logprobs, entropy, old_values = outputs_in_chunks(policy, head, batch, temperature, micro_rows)
    with reference_weights(policy, has_reference_adapter):
        ref_logprobs, _, _ = outputs_in_chunks(policy, head, batch, temperature, micro_rows)
    mask = batch.response_mask
    kl = kl_estimate(old_logprobs, ref_logprobs, settings.kl_estimator)
    per_token = token_rewards(scores.to(mask.device), kl, mask, settings.kl_coef)
    advantages, returns = gae(per_token, old_values, mask, settings.gamma, settings.lam)
    advantages = masked_whiten(advantages, mask)

    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    order = torch.Generator().manual_seed(candidate_seed(seed, "policy-minibatches", step))
    losses: dict[str, list[float]] = {"loss": [], "value_loss": [], "clip_fraction": []}
    policy.train()
    for _ in range(settings.ppo_epochs):
        for mini_batch in torch.randperm(len(batch), generator=order).split(settings.mini_batch_size):
            optimizer.zero_grad()
            for rows in mini_batch.split(micro_rows):
                logprobs, _, values = response_outputs(policy, head, batch.rows(rows), temperature)
                policy_loss, clip_fraction = clipped_policy_loss(logprobs, old_logprobs[rows], advantages[rows],
                                                                 mask[rows], settings.clip_range)
                value_loss = clipped_value_loss(values, old_values[rows], returns[rows], mask[rows],
                                                settings.value_clip_range)
                ((policy_loss + settings.value_coef * value_loss) / settings.gradient_accumulation_steps).backward()
                for name, value in (("loss", policy_loss), ("value_loss", value_loss),
                                    ("clip_fraction", clip_fraction)):
                    losses[name].append(value.item())
            torch.nn.utils.clip_grad_norm_(parameters, settings.max_grad_norm)
            optimizer.step()
    policy.eval()
    return {**stats, "kl": masked_mean(kl, mask).item(), "entropy": masked_mean(entropy, mask).item(),
            **{name: sum(values) / len(values) for name, values in losses.items()}}


# ------------------------------------------------------------------ training


def save_state(path: Path, policy, head: nn.Linear, optimizer, logged: list[dict]) -> None:
    from peft import get_peft_model_state_dict
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save({"adapter": get_peft_model_state_dict(policy, adapter_name="default"),
                "value_head": head.state_dict(), "optimizer": optimizer.state_dict(), "logged": logged}, partial)
    os.replace(partial, path)


def restore_state(path: Path, policy, head: nn.Linear, optimizer) -> list[dict]:
    """The step logs of the state saved at `path`, its weights and optimizer restored; [] (a fresh
    start) when there is none or it is unreadable."""
    from peft import set_peft_model_state_dict
    if not path.is_file():
        return []
    try:
        state = torch.load(path, map_location=policy.device, weights_only=True)
    except Exception as error:  # torch raises several types for truncated or garbled files
        print(f"[policy] {path} is unreadable ({type(error).__name__}): starting the stage afresh", file=sys.stderr)
        return []
    set_peft_model_state_dict(policy, state["adapter"], adapter_name="default")
    head.load_state_dict(state["value_head"])
    optimizer.load_state_dict(state["optimizer"])
    return state["logged"]


def train_ppo(config: LabConfig, problems: Sequence[Problem], output_dir: str, *, policy_adapter: str | None,
              reference_adapter: str | None, reward_adapter: str | None, seed: int | None = None,
              on_log: Callable[[dict], None] | None = None, on_step: Callable[[int, int], None] | None = None,
              score: Callable[[list[Completion]], list[float]] | None = None) -> dict:
    """Run config.policy.steps PPO steps on `problems` and save the policy's adapter to `output_dir`.

    The policy starts from `policy_adapter` (None: a new LoRA adapter on the base model) and is held
    near `reference_adapter` (the SFT generator's; None: the base model). The reward model is loaded
    from `reward_adapter`; `score` replaces it (tests). `seed` (default sampling.seed) draws the
    rollouts. on_log(entry) gets every step's metrics (first those of the steps a killed stage saved, when
    it resumes), and on_step(step, steps) follows progress. Returns policy.summary's numbers."""
    check_policy_config(config, problems)
    settings = config.policy
    seed = config.sampling.seed if seed is None else seed
    policy, tokenizer = load_generator(config.model, adapter_dir=policy_adapter, trainable=True)
    if reference_adapter:
        policy.load_adapter(reference_adapter, adapter_name="reference", is_trainable=False)
        policy.set_adapter("default")
    disable_dropout(policy)
    head = value_head(policy)
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad] + list(head.parameters()),
                                  lr=settings.learning_rate, weight_decay=0.0)
    out = resumable_output(output_dir, resume_key(config, problems, method="ppo", policy=policy_adapter,
                                                  reference=reference_adapter, reward=reward_adapter, seed=str(seed)))
    state_path = out / "resume" / "state.pt"
    logged = restore_state(state_path, policy, head, optimizer)
    done = len(logged)
    for entry in logged:  # a resumed stage's saved steps, logged again
        if on_log is not None:
            on_log(entry)
    reward = PolicyReward(config, reward_adapter, score)
    started = time.perf_counter()
    try:
        for step in range(done, settings.steps):
            entry = {"step": step + 1, **ppo_step(policy, head, tokenizer, optimizer, reward, problems, config,
                                                  seed=seed, step=step, has_reference_adapter=bool(reference_adapter))}
            logged.append(entry)
            if on_log is not None:
                on_log(entry)
            save_state(state_path, policy, head, optimizer, logged)
            if on_step is not None:
                on_step(step + 1, settings.steps)
    finally:
        reward.close()
    policy.save_pretrained(str(out), selected_adapters=["default"])
    finish_output(out)
    return summary(logged, settings.batch_size, time.perf_counter() - started, settings.steps - done)
