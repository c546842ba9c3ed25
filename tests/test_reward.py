"""The reward model learns a planted preference; scoring and ranking are consistent with it."""
import random

import torch

import pytest

from lab.generation import Candidate
from lab.models import load_reward_model
from lab.reward import (PreferencePair, evaluate_pairs, logprob_scores, rank_candidates, score_completions,
                        train_reward_model)

WORDS = ["x", "y", "total", "items", "n", "value", "result", "count", "a", "b"]


def planted_pairs(count: int, seed: int) -> list[PreferencePair]:
    """Same random body either way; the chosen one returns it, the rejected one raises instead."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        name, body = rng.choice(WORDS), " + ".join(rng.sample(WORDS, 3))
        prompt = f"def f({name}):\n"
        pairs.append(PreferencePair(prompt, f"    return {body}\n", f"    raise {body}\n"))
    return pairs


def test_reward_model_learns_planted_preference(tiny_config, tmp_path):
    config = tiny_config.override(**{"reward.max_steps": 40, "reward.learning_rate": 3e-3, "reward.batch_size": 8})
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

    reloaded, tokenizer = load_reward_model(config.model, adapter_dir=str(tmp_path / "rm"))
    assert evaluate_pairs(reloaded, tokenizer, held_out) == {k: metrics[k] for k in ("eval_accuracy", "eval_reward_gap")}


def test_scores_do_not_depend_on_batching_padding_or_prompt_sharing(tiny_config):
    torch.manual_seed(0)
    model, tokenizer = load_reward_model(tiny_config.model)
    items = [("def f(x):\n", "    return x\n"), ("def g():\n" * 5, "    pass\n"), ("p", ""),
             ("def f(x):\n", "    return x + 1  # longer\n"), ("def f(x):\n", "\n"), ("def f(x):\n", "")]
    plain = [model(**tokenizer(prompt + completion + tokenizer.eos_token, return_tensors="pt")).logits[0, 0].item()
             for prompt, completion in items]  # one whole sequence, no cache, no padding
    one_by_one = [score_completions(model, tokenizer, [item], progress=False)[0] for item in items]
    batched = score_completions(model, tokenizer, items, batch_size=3, progress=False)
    assert one_by_one == pytest.approx(plain, abs=1e-4) and batched == pytest.approx(plain, abs=1e-4)


def test_rank_candidates_orders_by_score_and_logprob_baseline():
    candidates = [Candidate("p", i, f"c{i}", lp, 3, 0.8, 0.95, i) for i, lp in enumerate([-2.0, -0.5, -1.0])]
    ranked = rank_candidates(candidates, logprob_scores(candidates))
    assert [c.sample_index for c in ranked] == [1, 2, 0]
