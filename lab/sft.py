"""Supervised fine-tuning of the generator on (prompt, reference completion) pairs (MBPP train) with
TRL's SFTTrainer: LoRA on CPU, QLoRA on CUDA; loss on the completion and its EOS only.

The EOS matters downstream: it teaches the policy to end a function with EOS, which is where the
reward model reads its reward (reward.py, policy.py).

Not covered here: choosing the examples (the loop), sampling from the tuned model (generation.py).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable

from lab.config import LabConfig, SFTConfig
from lab.models import load_generator, log_forwarder, trainable_weights_kept, trainer_arguments


def sft_steps(settings: SFTConfig, examples: int) -> int:
    """Optimizer steps of SFT on `examples` examples: sft.max_steps, or fewer when sft.max_epochs passes
    over them come first."""
    per_step = settings.batch_size * settings.gradient_accumulation_steps
    return max(1, min(settings.max_steps, math.ceil(settings.max_epochs * examples / per_step)))


def train_sft(config: LabConfig, examples: list[tuple[str, str]], output_dir: str, *,
              init_adapter: str | None = None, on_log: Callable[[dict], None] | None = None,
              on_step: Callable[[int, int], None] | None = None) -> dict:
    """Fine-tune a LoRA adapter on `examples` for `sft_steps` steps and save it to `output_dir`; returns the
    loss curve's ends."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    if not examples:
        raise ValueError("no SFT examples: pass (prompt, reference completion) pairs, e.g. MBPP train")
    model, tokenizer = load_generator(config.model, adapter_dir=init_adapter, trainable=True)
    settings = config.sft
    losses = []

    def record(entry: dict) -> None:
        if "loss" in entry:
            losses.append(entry["loss"])
        if on_log is not None:
            on_log(entry)

    args = SFTConfig(**trainer_arguments(
        config.model, output_dir, seed=config.data.seed, max_steps=sft_steps(settings, len(examples)),
        learning_rate=settings.learning_rate, per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps, max_length=settings.max_length,
        completion_only_loss=True))
    dataset = Dataset.from_list([{"prompt": prompt, "completion": completion} for prompt, completion in examples])
    with trainable_weights_kept(model):
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                             callbacks=[log_forwarder(record, {}, on_step)])
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    trainer.save_model(output_dir)
    return {"train_loss": result.training_loss, "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None, "examples": len(examples), "steps": result.global_step,
            "seconds": round(seconds, 1), "seconds_per_step": round(seconds / max(result.global_step, 1), 2)}
