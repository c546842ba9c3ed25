"""The reward model (the reranker): Bradley-Terry training on preference pairs, scoring, ranking.

The reward model is `AutoModelForSequenceClassification(num_labels=1)` on the generator's backbone and
tokenizer, with LoRA; its input is `prompt + completion + EOS` and its reward is read at that EOS (the
pad token is distinct from EOS, see models.load_tokenizer); the policy stage scores its rollouts with
the same function (lab/policy.py). Also the no-training baseline: ranking by mean log-prob.

Where the work goes: `reward.trainable_layers=K` puts the LoRA adapter on the top K decoder layers
only (`split_layer` = the first adapted one; None = every layer, split 0). The layers below are the
base backbone, so their output for a text is computed once and kept on disk (hidden_states.py);
training epochs, later iterations' retraining, scoring and evaluation then run the top K layers
only. Every reward, in training and in scoring, comes from one function, `sequence_rewards`: the
sequences sharing a prefix (a pair's chosen and rejected; a prompt's completions) are one packed row,
the prefix computed once. The saved adapter is an ordinary peft adapter (its config lists the
layers), so the full model (`load_reward_model`) gives the same reward up to the
float16 rounding of the cached states (tests/test_reward.py).

What is TRL's and what is written here: training is TRL's `RewardTrainer` (dataset filtering by
max_length, the collator, the loss -log sigmoid(r_chosen - r_rejected) plus reward centering, its
metrics, logging, evaluation, optimiser and warmup schedule, saving, data parallelism under `accelerate
launch`); `RewardTrainer.compute_loss` is kept and the model's forward is `sequence_rewards` there
(`PackedRewardTrainer`), because TRL's forward runs every layer over each padded sequence and has no way
to start from cached states or to share a prompt. The packed forward, the cache and scoring are written
by hand.

The recipe (config.RewardConfig): an effective batch of batch_size x gradient_accumulation_steps pairs,
linear warmup then decay, reward centering, `epochs` passes over the pairs (`training_steps`; max_steps
caps them), and reward.seed alone seeding the adapter's and score head's initialisation and the order
of the pairs. `watch_pairs` (the watch slice of the training problems, loop.py) are evaluated by TRL a
few times while training (WATCH_EVERY) and logged as watch_loss / watch_accuracy.

Not covered here: building pairs from executed candidates or mining hard negatives (mining.py).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from lab.config import LabConfig, RewardConfig
from lab.hidden_states import HiddenStateCache, pack, run_layers, shared_prefix_length
from lab.measures import pairwise_accuracy
from lab.models import load_reward_model, log_forwarder, trainable_weights_kept, trainer_arguments

WATCH_EVERY = 0.25
"""The watch slice is evaluated after every quarter of the training steps."""
WATCH_METRICS = {"eval_loss": "watch_loss", "eval_accuracy": "watch_accuracy", "eval_margin": "watch_margin"}


@dataclass
class PreferencePair:
    prompt: str
    chosen: str
    """A completion that passes the tests."""
    rejected: str
    """A completion of the same prompt that fails."""


def split_layer(model) -> int:
    """The first decoder layer the model's LoRA adapter changes (0 for an adapter on every layer, or
    no adapter): the layers below it are the base backbone's, and their output can be cached."""
    peft_config = getattr(model, "peft_config", {}).get(getattr(model, "active_adapter", None))
    layers = getattr(peft_config, "layers_to_transform", None)
    if layers is None:
        return 0
    return layers if isinstance(layers, int) else min(layers)


def sequence_rewards(model, cache: HiddenStateCache, rows: list[list[list[int]]]) -> torch.Tensor:
    """The reward of every token sequence of `rows` (each row: sequences of token ids ending in EOS,
    packed on their shared prefix), flattened in row order: the cached states after the frozen layers,
    then the layers from `split_layer(model)` up, the final norm and the score head at each sequence's
    last token. Gradients flow into the adapter and the head when grad is enabled."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    backbone, split = getattr(base, base.base_model_prefix), split_layer(model)
    packed = pack(cache.states(backbone, split, rows), [shared_prefix_length(row) for row in rows])
    hidden = backbone.norm(run_layers(backbone, backbone.layers[split:], packed))
    row_index = torch.tensor([r for r, tokens in enumerate(packed.tokens) for _ in tokens], device=hidden.device)
    last_index = torch.stack([index[-1] for tokens in packed.tokens for index in tokens])
    return base.score(hidden[row_index, last_index])[:, 0].float()


def training_steps(settings: RewardConfig, pairs: int) -> int:
    """Optimizer steps for `pairs` pairs: `epochs` passes at the effective batch, capped by max_steps."""
    per_step = settings.batch_size * settings.gradient_accumulation_steps
    steps = max(1, math.ceil(settings.epochs * math.ceil(pairs / per_step)))
    return steps if settings.max_steps is None else max(1, min(steps, settings.max_steps))


def reward_trainer(config: LabConfig, model, tokenizer, pairs: list[PreferencePair], output_dir: str,
                   cache: HiddenStateCache, callbacks: list | None = None, *,
                   watch_pairs: list[PreferencePair] | None = None, steps: int | None = None):
    """TRL's RewardTrainer on `pairs` (tokenized as `prompt + completion + EOS`) for `steps` optimizer
    steps (default `training_steps`), its forward replaced by `sequence_rewards` over each pair as one
    packed row (chosen, rejected); `watch_pairs` are its evaluation set, evaluated every WATCH_EVERY."""
    from datasets import Dataset
    from transformers.modeling_outputs import SequenceClassifierOutput
    from trl import RewardConfig as TRLRewardConfig
    from trl import RewardTrainer

    class PackedRewardTrainer(RewardTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            # the packed forward is set on the model itself for this call, so that TRL's compute_loss reaches it
            # through `model`, the trainer's wrapper: under `accelerate launch` DistributedDataParallel, which
            # averages the gradients of calls made through it only
            self.model.forward = self.packed_forward
            try:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            finally:
                del self.model.forward

        def packed_forward(self, input_ids, attention_mask, **_):
            """TRL's collator stacks the chosen sequences, then the rejected ones, right-padded."""
            sequences = [row[:length].tolist() for row, length in zip(input_ids, attention_mask.sum(-1).tolist())]
            half = len(sequences) // 2
            rewards = sequence_rewards(self.model, cache,
                                       [list(pair) for pair in zip(sequences[:half], sequences[half:])])
            return SequenceClassifierOutput(logits=torch.cat([rewards[0::2], rewards[1::2]])[:, None])

    settings = config.reward

    def dataset(rows: list[PreferencePair]):
        return Dataset.from_list([{"chosen_ids": ids[0], "rejected_ids": ids[1]} for ids in (
            _token_ids(tokenizer, [(p.prompt, p.chosen), (p.prompt, p.rejected)]) for p in rows)])

    watching = {"eval_strategy": "steps", "eval_steps": WATCH_EVERY,
                "per_device_eval_batch_size": settings.batch_size} if watch_pairs else {}
    args = TRLRewardConfig(**trainer_arguments(
        config.model, output_dir, seed=settings.seed, max_steps=steps or training_steps(settings, len(pairs)),
        learning_rate=settings.learning_rate, per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps, max_length=settings.max_length,
        warmup_steps=settings.warmup_ratio, center_rewards_coefficient=settings.center_rewards_coefficient,
        **watching))
    with trainable_weights_kept(model):
        return PackedRewardTrainer(model=model, args=args, train_dataset=dataset(pairs), processing_class=tokenizer,
                                   eval_dataset=dataset(watch_pairs) if watch_pairs else None, callbacks=callbacks)


def train_reward_model(config: LabConfig, pairs: list[PreferencePair], output_dir: str, *,
                       eval_pairs: list[PreferencePair] | None = None, watch_pairs: list[PreferencePair] | None = None,
                       init_adapter: str | None = None, steps: int | None = None,
                       on_log: Callable[[dict], None] | None = None,
                       on_step: Callable[[int, int], None] | None = None,
                       cache: HiddenStateCache | None = None) -> dict:
    """Train the LoRA reward model (on the top reward.trainable_layers layers, or on all; an
    `init_adapter` keeps the layers it was trained on) for `steps` steps (default: `training_steps`),
    seeded by reward.seed alone, watching `watch_pairs` on the way; save the adapter and score head to
    `output_dir`, and measure it on `eval_pairs`. The frozen layers' states are kept in `cache`
    (default: HiddenStateCache.for_reward_backbone(config.model), under model.cache_dir).

    Returns train_loss, eval_accuracy and eval_reward_gap (mean reward of chosen minus rejected;
    None without eval pairs), the last watch_accuracy / watch_loss (None without watch pairs), plus the
    counts, time and the cache's hits and misses.
    """
    from transformers import set_seed

    if not pairs:
        raise ValueError("no preference pairs to train the reward model on: a problem needs at least one passing "
                         "and one failing candidate; sample more candidates (sampling.num_samples) or problems")
    settings = config.reward
    set_seed(settings.seed)  # before loading: the new adapter's and score head's initial weights come from it
    model, tokenizer = load_reward_model(config.model, adapter_dir=init_adapter, trainable=True,
                                         trainable_layers=settings.trainable_layers)
    cache = cache or HiddenStateCache.for_reward_backbone(config.model)
    watched: dict = {}

    def log(values: dict) -> None:
        watched.update({k: v for k, v in values.items() if k in WATCH_METRICS.values()})
        if on_log is not None:
            on_log(values)

    trainer = reward_trainer(config, model, tokenizer, pairs, output_dir, cache, watch_pairs=watch_pairs, steps=steps,
                             callbacks=[log_forwarder(log, {"accuracy": "train_accuracy", "margin": "reward_margin",
                                                            **WATCH_METRICS}, on_step)])
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
               "split_layer": split_layer(model), "cache_hits": cache.hits, "cache_misses": cache.misses,
               "seed": settings.seed, "watch_pairs": len(watch_pairs or []),
               "watch_accuracy": watched.get("watch_accuracy"), "watch_loss": watched.get("watch_loss"),
               "eval_pairs": len(eval_pairs or []), "eval_accuracy": None, "eval_reward_gap": None}
    if eval_pairs:
        metrics.update(evaluate_pairs(model, tokenizer, eval_pairs, batch_size=settings.score_batch_size, cache=cache))
    return metrics


@torch.no_grad()
def score_completions(model, tokenizer, items: list[tuple[str, str]], batch_size: int = 8,
                      progress: bool = True, *, cache: HiddenStateCache | None = None) -> list[float]:
    """The reward of each (prompt, completion), in order: the score head at the EOS of
    `prompt + completion + EOS`, tokenized whole (as in training), computed by `sequence_rewards`.

    A prompt's completions are packed in rows of at most `batch_size`, which share the prompt's
    forward; a forward takes rows up to `batch_size` completions in all. `cache` keeps the frozen
    layers' states (HiddenStateCache.for_reward_backbone(config.model)); without it they are
    computed every time.
    """
    cache = cache or HiddenStateCache(None)
    unique = list(dict.fromkeys(items))  # an item repeated (a candidate in several pairs) is scored once
    ids = _token_ids(tokenizer, unique)
    groups: dict[str, list[int]] = {}
    for i, (prompt, _) in enumerate(unique):
        groups.setdefault(prompt, []).append(i)
    rows = [indices[start:start + batch_size] for indices in groups.values()
            for start in range(0, len(indices), batch_size)]
    forwards: list[list[list[int]]] = []
    for row in rows:
        if forwards and sum(map(len, forwards[-1])) + len(row) <= batch_size:
            forwards[-1].append(row)
        else:
            forwards.append([row])
    scores = [0.0] * len(unique)
    for forward in tqdm(forwards, desc="scoring", unit="batch", disable=not progress):
        values = sequence_rewards(model, cache, [[ids[i] for i in row] for row in forward]).tolist()
        for i, value in zip((i for row in forward for i in row), values):
            scores[i] = value
    score_of = dict(zip(unique, scores))
    return [score_of[item] for item in items]


def _token_ids(tokenizer, items: list[tuple[str, str]]) -> list[list[int]]:
    return tokenizer([prompt + completion + tokenizer.eos_token for prompt, completion in items]).input_ids


def evaluate_pairs(model, tokenizer, pairs: list[PreferencePair], batch_size: int = 8, *,
                   cache: HiddenStateCache | None = None) -> dict:
    """eval_accuracy (lab.measures.pairwise_accuracy: ties count half) and eval_reward_gap (mean
    r_chosen - r_rejected)."""
    items = [(p.prompt, p.chosen) for p in pairs] + [(p.prompt, p.rejected) for p in pairs]
    scores = score_completions(model, tokenizer, items, batch_size=batch_size, progress=False, cache=cache)
    chosen, rejected = scores[:len(pairs)], scores[len(pairs):]
    return {"eval_accuracy": pairwise_accuracy(chosen, rejected),
            "eval_reward_gap": sum(c - r for c, r in zip(chosen, rejected)) / len(pairs)}
