"""The reward model (the reranker): Bradley-Terry training on preference pairs, scoring, ranking.

The reward model is `AutoModelForSequenceClassification(num_labels=1)` on the generator's backbone and
tokenizer (PPO needs the shared tokenizer), with LoRA; its input is `prompt + completion + EOS` and
its reward is read at that EOS (the pad token is distinct from EOS, see models.load_tokenizer), the
same text and position PPO scores. Also the no-training baseline: ranking by mean log-prob.

Not covered here: building pairs from executed candidates or mining hard negatives (mining.py).
"""
from __future__ import annotations

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
    """The reward of each (prompt, completion), in order. Batches are formed by length to limit padding."""
    texts = [prompt + completion + tokenizer.eos_token for prompt, completion in items]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    scores = [0.0] * len(texts)
    tokenizer.padding_side = "left"  # the reward is read at the last position; trainers may have set "right"
    for start in tqdm(range(0, len(order), batch_size), desc="scoring", disable=not progress):
        indices = order[start:start + batch_size]
        encoded = tokenizer([texts[i] for i in indices], return_tensors="pt", padding=True).to(model.device)
        logits = model(**encoded).logits[:, 0].float().tolist()
        for i, value in zip(indices, logits):
            scores[i] = value
    return scores


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
