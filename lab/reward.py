"""The reward model (the reranker): Bradley-Terry training on preference pairs, scoring, ranking.

The reward model is `AutoModelForSequenceClassification(num_labels=1)` on the generator's backbone and
tokenizer (PPO needs the shared tokenizer), with LoRA; its input is `prompt + completion + EOS` and
its reward is read at that EOS (the pad token is distinct from EOS, see models.load_tokenizer), the
same text and position PPO scores. Also the no-training baseline: ranking by mean log-prob.

Not covered here: building pairs from executed candidates or mining hard negatives (mining.py).
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from lab.config import LabConfig
from lab.models import load_reward_model, log_forwarder, trainer_arguments


@dataclass
class PreferencePair:
    prompt: str
    chosen: str
    """A completion that passes the tests."""
    rejected: str
    """A completion of the same prompt that fails."""


def train_reward_model(config: LabConfig, pairs: list[PreferencePair], output_dir: str, *,
                       eval_pairs: list[PreferencePair] | None = None, init_adapter: str | None = None,
                       on_log: Callable[[dict], None] | None = None) -> dict:
    """Train the LoRA reward model with TRL's RewardTrainer (-log sigmoid(r_chosen - r_rejected)),
    save the adapter and score head to `output_dir`, and measure it on `eval_pairs`.

    Returns train_loss, eval_accuracy and eval_reward_gap (mean reward of chosen minus rejected;
    None without eval pairs), plus the counts and time.
    """
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    if not pairs:
        raise ValueError("no preference pairs to train the reward model on: a problem needs at least one passing "
                         "and one failing candidate; sample more candidates (sampling.num_samples) or problems")
    model, tokenizer = load_reward_model(config.model, adapter_dir=init_adapter, trainable=True)
    settings = config.reward
    args = RewardConfig(**trainer_arguments(
        config.model, output_dir, seed=config.data.seed, max_steps=settings.max_steps,
        learning_rate=settings.learning_rate, per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps, max_length=settings.max_length))
    dataset = Dataset.from_list([{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs])
    trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                            callbacks=[log_forwarder(on_log, {"accuracy": "train_accuracy", "margin": "reward_margin"})])
    if len(trainer.train_dataset) == 0:
        raise ValueError(f"all {len(pairs)} preference pairs are longer than reward.max_length="
                         f"{settings.max_length} tokens; raise reward.max_length")
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    trainer.save_model(output_dir)
    model.eval()
    metrics = {"train_loss": result.training_loss, "train_pairs": len(trainer.train_dataset),
               "steps": result.global_step, "seconds": round(seconds, 1),
               "seconds_per_step": round(seconds / max(result.global_step, 1), 2),
               "eval_pairs": len(eval_pairs or []), "eval_accuracy": None, "eval_reward_gap": None}
    if eval_pairs:
        metrics.update(evaluate_pairs(model, tokenizer, eval_pairs, batch_size=settings.score_batch_size))
    return metrics


@torch.no_grad()
def score_completions(model, tokenizer, items: list[tuple[str, str]], batch_size: int = 8,
                      progress: bool = True) -> list[float]:
    """The reward of each (prompt, completion), in order: the score head at the last token of
    `prompt + completion + EOS`, tokenized whole (as in training).

    Items of one prompt share their forward pass over the tokens they all start with (the prompt,
    usually more than half the text): it runs once, and its KV cache is copied to each batch of their
    remaining tokens (batches formed by length, padded on the right).
    """
    ids = tokenizer([prompt + completion + tokenizer.eos_token for prompt, completion in items]).input_ids
    groups: dict[str, list[int]] = {}
    for i, (prompt, _) in enumerate(items):
        groups.setdefault(prompt, []).append(i)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    backbone, head = getattr(base, base.base_model_prefix), base.score
    device = base.device
    scores = [0.0] * len(items)
    for indices in tqdm(list(groups.values()), desc="scoring", unit="prompt", disable=not progress):
        shared = _common_prefix_length([ids[i] for i in indices])
        prefix = backbone(input_ids=torch.tensor([ids[indices[0]][:shared]], device=device), use_cache=True).cache \
            if shared else None
        order = sorted(indices, key=lambda i: len(ids[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            lengths = torch.tensor([len(ids[i]) - shared for i in rows], device=device)
            width = int(lengths.max())
            suffixes = torch.tensor([ids[i][shared:] + [tokenizer.pad_token_id] * (width - len(ids[i]) + shared)
                                     for i in rows], device=device)
            mask = torch.cat([lengths.new_ones(len(rows), shared),
                              (torch.arange(width, device=device) < lengths[:, None]).long()], dim=1)
            cache = None
            if prefix is not None:
                cache = copy.deepcopy(prefix)
                cache.batch_repeat_interleave(len(rows))
            hidden = backbone(input_ids=suffixes, attention_mask=mask, cache=cache, use_cache=cache is not None,
                              position_ids=(shared + torch.arange(width, device=device)).expand(len(rows), -1))
            last = hidden.last_hidden_state[torch.arange(len(rows), device=device), lengths - 1]
            for i, value in zip(rows, head(last)[:, 0].float().tolist()):
                scores[i] = value
    return scores


def _common_prefix_length(sequences: list[list[int]]) -> int:
    """Tokens all `sequences` start with, leaving each at least one token of its own."""
    limit = min(len(s) for s in sequences) - 1
    length = 0
    while length < limit and all(s[length] == sequences[0][length] for s in sequences):
        length += 1
    return length


def evaluate_pairs(model, tokenizer, pairs: list[PreferencePair], batch_size: int = 8) -> dict:
    """eval_accuracy (fraction of pairs with r_chosen > r_rejected) and eval_reward_gap (mean difference)."""
    items = [(p.prompt, p.chosen) for p in pairs] + [(p.prompt, p.rejected) for p in pairs]
    scores = score_completions(model, tokenizer, items, batch_size=batch_size, progress=False)
    chosen, rejected = scores[:len(pairs)], scores[len(pairs):]
    return {"eval_accuracy": sum(c > r for c, r in zip(chosen, rejected)) / len(pairs),
            "eval_reward_gap": sum(c - r for c, r in zip(chosen, rejected)) / len(pairs)}


def pairwise_accuracy(model, tokenizer, pairs: list[PreferencePair], batch_size: int = 8) -> float:
    return evaluate_pairs(model, tokenizer, pairs, batch_size)["eval_accuracy"]


def logprob_scores(candidates) -> list[float]:
    """The no-training baseline ranker: each candidate's mean token log-prob under the generator."""
    return [candidate.mean_logprob for candidate in candidates]


def rank_candidates(candidates: list, scores: list[float]) -> list:
    """Candidates best-first by score (ties keep sampling order)."""
    return [candidates[i] for i in sorted(range(len(candidates)), key=lambda i: -scores[i])]
