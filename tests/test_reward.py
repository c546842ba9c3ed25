"""The reward model learns a planted preference; every path to a reward (PPO's full model, the trainer,
scoring, cold or warm cache) gives the same number; the cache follows the backbone and the text and
survives damaged files."""
import dataclasses
import random
import shutil

import pytest
import torch

from lab.hidden_states import HiddenStateCache, backbone_identity
from lab.models import load_reward_model
from lab.reward import (
    PreferencePair,
    evaluate_pairs,
    reward_trainer,
    score_completions,
    split_layer,
    train_reward_model,
    training_steps,
)

WORDS = ["x", "y", "total", "items", "n", "value", "result", "count", "a", "b"]
ITEMS = [("def f(x):\n", "    return x\n"), ("def g():\n" * 5, "    pass\n"), ("p", ""),
         ("def f(x):\n", "    return x + 1  # longer\n"), ("def f(x):\n", "\n"), ("def f(x):\n", ""),
         ("def f(x):\n", "    return x\n")]  # a repeat
FP16_TOLERANCE = 2e-3
"""Cached states are float16: rewards from them differ from the full fp32 forward by about this much."""


def planted_pairs(count: int, seed: int) -> list[PreferencePair]:
    """Same random body either way; the chosen one returns it, the rejected one raises instead."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        name, body = rng.choice(WORDS), " + ".join(rng.sample(WORDS, 3))
        prompt = f"def f({name}):\n"
        pairs.append(PreferencePair(prompt, f"    return {body}\n", f"    raise {body}\n"))
    return pairs


def random_adapter_model(model_config, trainable_layers):
    """A reward model whose adapter and head are far from their initial values (LoRA B starts at 0)."""
    torch.manual_seed(0)
    model, tokenizer = load_reward_model(model_config, trainable=True, trainable_layers=trainable_layers)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_(0, 0.2)
    return model.eval(), tokenizer


def full_forward(model, tokenizer, items):
    """The reward as PPO's get_reward and any plain caller read it: one whole sequence, every layer."""
    with torch.no_grad():
        return [model(**tokenizer(prompt + completion + tokenizer.eos_token, return_tensors="pt")).logits[0, 0].item()
                for prompt, completion in items]


def test_reward_model_learns_planted_preference(tiny_config, tmp_path):
    config = tiny_config.override(**{"reward.max_steps": 40, "reward.epochs": 5, "reward.learning_rate": 3e-3,
                                     "reward.batch_size": 8})
    assert config.reward.trainable_layers == 1  # the tiny preset takes the cached top-layer path
    held_out = planted_pairs(32, seed=1)
    logs = []
    torch.manual_seed(0)  # the untrained score head is random: fix it so the 'before' check is not order-dependent
    model, tokenizer = load_reward_model(config.model)
    before = evaluate_pairs(model, tokenizer, held_out)
    metrics = train_reward_model(config, planted_pairs(64, seed=0), str(tmp_path / "rm"), eval_pairs=held_out,
                                 on_log=logs.append)
    assert metrics["eval_accuracy"] > 0.9 and metrics["eval_reward_gap"] > 0, metrics
    assert before["eval_accuracy"] < 0.9  # the untrained head does not already separate them
    assert logs and all("step" in entry for entry in logs) and any("loss" in entry for entry in logs)
    assert metrics["split_layer"] == 1 and metrics["cache_misses"] > 0

    reloaded, tokenizer = load_reward_model(config.model, adapter_dir=str(tmp_path / "rm"))
    assert split_layer(reloaded) == 1  # an ordinary peft adapter, on the top layer only
    assert not any("lora" in name for name, _ in reloaded.base_model.model.model.layers[0].named_parameters())
    evaluated = evaluate_pairs(reloaded, tokenizer, held_out)
    assert evaluated == {k: metrics[k] for k in ("eval_accuracy", "eval_reward_gap")}


@pytest.mark.parametrize("trainable_layers", [1, None])
def test_scores_equal_the_full_model_forward_whatever_the_batching(tiny_config, tmp_path, trainable_layers):
    model, tokenizer = random_adapter_model(tiny_config.model, trainable_layers)
    plain = full_forward(model, tokenizer, ITEMS)
    cache = HiddenStateCache(tmp_path / "hidden", backbone_identity(tiny_config.model))
    one_by_one = [score_completions(model, tokenizer, [item], progress=False, cache=cache)[0] for item in ITEMS]
    batched = score_completions(model, tokenizer, ITEMS, batch_size=3, progress=False, cache=cache)
    uncached = score_completions(model, tokenizer, ITEMS[::-1], batch_size=8, progress=False)[::-1]
    tolerance = FP16_TOLERANCE if trainable_layers else 1e-4
    assert one_by_one == pytest.approx(plain, abs=tolerance) and batched == pytest.approx(plain, abs=tolerance)
    assert batched == pytest.approx(one_by_one, abs=1e-5) and uncached == pytest.approx(one_by_one, abs=1e-5)
    assert max(plain) - min(plain) > 100 * tolerance  # the rewards differ: agreeing is not trivial


def test_trainer_forward_agrees_with_scoring(tiny_config, tmp_path):
    model, tokenizer = random_adapter_model(tiny_config.model, 1)
    pairs = planted_pairs(6, seed=2)
    cache = HiddenStateCache(tmp_path / "hidden", backbone_identity(tiny_config.model))
    trainer = reward_trainer(tiny_config.override(**{"reward.batch_size": 6}), model, tokenizer, pairs,
                             str(tmp_path / "out"), cache)
    batch = next(iter(trainer.get_train_dataloader()))
    model.train()  # as in training (dropout is off in TRL's trainer)
    loss, outputs = trainer.compute_loss(model, batch, return_outputs=True)
    model.eval()
    chosen, rejected = outputs.logits[:, 0].detach().chunk(2)
    assert loss.requires_grad and cache.misses == 2 * len(pairs)
    text_of = {tuple(tokenizer(p.prompt + c + tokenizer.eos_token).input_ids): (p.prompt, c)
               for p in pairs for c in (p.chosen, p.rejected)}
    items = [text_of[tuple(ids[mask.bool()].tolist())]
             for ids, mask in zip(batch["input_ids"], batch["attention_mask"])]
    scored = score_completions(model, tokenizer, items[::-1], batch_size=5, progress=False, cache=cache)[::-1]
    assert scored == pytest.approx(chosen.tolist() + rejected.tolist(), abs=1e-5)
    assert scored == pytest.approx(full_forward(model, tokenizer, items), abs=FP16_TOLERANCE)


def test_cache_is_reused_and_follows_the_text(tiny_config, tmp_path):
    model, tokenizer = random_adapter_model(tiny_config.model, 1)
    cache = HiddenStateCache(tmp_path / "hidden", backbone_identity(tiny_config.model))
    first = score_completions(model, tokenizer, ITEMS, progress=False, cache=cache)
    distinct = len(set(ITEMS))
    assert (cache.hits, cache.misses) == (0, distinct)
    assert score_completions(model, tokenizer, ITEMS, progress=False, cache=cache) == first
    assert (cache.hits, cache.misses) == (distinct, distinct)
    edited = [(prompt, completion.replace("x", "y")) for prompt, completion in ITEMS[:2]]
    assert edited[0] != ITEMS[0] and edited[1] == ITEMS[1]
    scores = score_completions(model, tokenizer, edited, progress=False, cache=cache)
    assert (cache.hits, cache.misses) == (distinct + 1, distinct + 1)  # only the changed text is recomputed
    assert scores == pytest.approx(full_forward(model, tokenizer, edited), abs=FP16_TOLERANCE)


def test_cache_follows_the_backbone_weights(tiny_config, tmp_path):
    from lab.models import resolve_model_dir
    from lab.tiny import build_tiny_model

    model_dir = tmp_path / "backbone"
    shutil.copytree(resolve_model_dir("tiny", tiny_config.model), model_dir)
    config = dataclasses.replace(tiny_config.model, generator=f"local:{model_dir}")
    cache_dir = tmp_path / "hidden"
    model, tokenizer = random_adapter_model(config, 1)
    old = score_completions(model, tokenizer, ITEMS, progress=False,
                            cache=HiddenStateCache(cache_dir, backbone_identity(config)))

    build_tiny_model(tokenizer, seed=1).save_pretrained(model_dir)  # same path, new weights
    model, tokenizer = random_adapter_model(config, 1)
    cache = HiddenStateCache(cache_dir, backbone_identity(config))
    new = score_completions(model, tokenizer, ITEMS, progress=False, cache=cache)
    assert cache.hits == 0 and cache.misses == len(set(ITEMS))
    assert new == pytest.approx(full_forward(model, tokenizer, ITEMS), abs=FP16_TOLERANCE)
    assert new != pytest.approx(old, abs=1e-2)


def test_damaged_cache_files_are_detected_and_recomputed(tiny_config, tmp_path):
    model, tokenizer = random_adapter_model(tiny_config.model, 1)
    cache_dir = tmp_path / "hidden"
    expected = score_completions(model, tokenizer, ITEMS, progress=False,
                                 cache=HiddenStateCache(cache_dir, backbone_identity(tiny_config.model)))
    files = sorted(cache_dir.glob("*/*.safetensors"))
    assert len(files) == len(set(ITEMS))
    truncated, garbled, emptied = files[:3]
    truncated.write_bytes(truncated.read_bytes()[:-7])  # a write cut short
    data = bytearray(garbled.read_bytes())
    data[-4:] = bytes(b ^ 0xFF for b in data[-4:])  # same size, other numbers
    garbled.write_bytes(bytes(data))
    emptied.write_bytes(b"")
    (truncated.parent / f"{truncated.name}.999.tmp").write_bytes(b"half")  # a killed writer's leftover

    cache = HiddenStateCache(cache_dir, backbone_identity(tiny_config.model))
    assert score_completions(model, tokenizer, ITEMS, progress=False, cache=cache) == pytest.approx(expected, abs=1e-5)
    assert (cache.rejected, cache.misses, cache.hits) == (3, 3, len(files) - 3)
    again = HiddenStateCache(cache_dir, backbone_identity(tiny_config.model))
    assert score_completions(model, tokenizer, ITEMS, progress=False, cache=again) == pytest.approx(expected, abs=1e-5)
    assert (again.rejected, again.misses) == (0, 0)  # the recomputed files were written whole


def test_evaluate_pairs_counts_ties_half(tiny_config):
    model, tokenizer = random_adapter_model(tiny_config.model, 1)
    pair = planted_pairs(1, seed=3)[0]
    same = PreferencePair(pair.prompt, pair.chosen, pair.chosen)
    result = evaluate_pairs(model, tokenizer, [pair, same])
    assert result["eval_accuracy"] in (0.25, 0.75)  # the tie counts half; the other pair one or nothing


@pytest.mark.integration
def test_gpu_preset_trains_every_layer_in_4bit(tiny_config, tmp_path):
    """The gpu preset's reward settings on the tiny model, 4-bit with gradient checkpointing as on CUDA."""
    from lab.config import make_config
    layers = make_config("gpu").reward.trainable_layers
    config = tiny_config.override(**{"reward.trainable_layers": layers, "model.load_in_4bit": True,
                                     "model.dtype": "bfloat16", "model.gradient_checkpointing": True,
                                     "reward.max_steps": 40, "reward.epochs": 5, "reward.learning_rate": 3e-3,
                                     "reward.batch_size": 8})
    metrics = train_reward_model(config, planted_pairs(64, seed=0), str(tmp_path / "rm"),
                                 eval_pairs=planted_pairs(32, seed=1))
    assert layers is None and metrics["split_layer"] == 0 and metrics["cache_misses"] == 0
    assert metrics["eval_accuracy"] > 0.9, metrics
    reloaded, _ = load_reward_model(config.model, adapter_dir=str(tmp_path / "rm"))
    assert all(any("lora" in name for name, _ in layer.named_parameters())
               for layer in reloaded.base_model.model.model.layers)


def test_the_recipe_counts_epochs_at_the_effective_batch_and_caps_them():
    from lab.config import RewardConfig

    recipe = RewardConfig()
    assert recipe.batch_size * recipe.gradient_accumulation_steps >= 32
    assert recipe.warmup_ratio > 0 and recipe.center_rewards_coefficient
    assert training_steps(RewardConfig(epochs=2, batch_size=8, gradient_accumulation_steps=4), 100) == 8  # 4 a pass
    assert training_steps(RewardConfig(epochs=2, max_steps=5, batch_size=8, gradient_accumulation_steps=4), 100) == 5
    assert training_steps(RewardConfig(epochs=0.5, batch_size=8, gradient_accumulation_steps=4), 10) == 1


def test_reward_seed_alone_decides_the_model_and_the_watch_slice_is_logged(tiny_config, tmp_path):
    config = tiny_config.override(**{"reward.max_steps": 4, "reward.batch_size": 4, "reward.learning_rate": 3e-3})
    pairs, watched, probe = planted_pairs(16, seed=0), planted_pairs(8, seed=3), planted_pairs(8, seed=4)
    logs = []

    def trained(name, seed, **kwargs):
        settings = config.override(**{"reward.seed": seed})
        metrics = train_reward_model(settings, pairs, str(tmp_path / name), **kwargs)
        model, tokenizer = load_reward_model(settings.model, adapter_dir=str(tmp_path / name))
        items = [(p.prompt, p.chosen) for p in probe]
        return metrics, score_completions(model, tokenizer, items, progress=False)

    first, scores = trained("a", 7, watch_pairs=watched, on_log=logs.append)
    _, again = trained("b", 7)
    _, other = trained("c", 8)
    assert again == pytest.approx(scores, abs=1e-4) and other != pytest.approx(scores, abs=1e-4)
    assert first["seed"] == 7 and first["steps"] == 4 and first["watch_pairs"] == 8
    assert first["watch_accuracy"] is not None and first["watch_loss"] is not None
    watched_steps = [entry["step"] for entry in logs if "watch_accuracy" in entry]
    assert len(watched_steps) >= 2 and all("watch_loss" in e for e in logs if "watch_accuracy" in e)


def test_trainable_layers_out_of_range_is_refused(tiny_config):
    with pytest.raises(ValueError, match="trainable_layers=3.*2 decoder layers"):
        load_reward_model(tiny_config.model, trainable=True, trainable_layers=3)

