"""Policy optimisation: PPO's pieces against hand-computed values; PPO raises a toy reward with the tiny
model while its KL stays bounded, and fails to with its policy loss sign-flipped; completions are cut
where the executor cuts them; the reward combines reward model, execution and penalties; both methods
hold the policy to the SFT reference; RLOO runs on the tiny model and a killed RLOO resumes."""
import functools
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from lab import ppo
from lab.config import UsageError
from lab.models import load_generator
from lab.policy import (
    STEP_METRICS,
    Completion,
    PolicyReward,
    check_policy_config,
    cut_completion,
    finish_output,
    resumable_output,
)
from lab.ppo import clipped_policy_loss, clipped_value_loss, gae, kl_estimate, masked_whiten, token_rewards, train_ppo
from lab.problems import load_problems
from lab.rloo import train_rloo

TOY = {"policy.steps": 12, "policy.batch_size": 8, "policy.mini_batch_size": 4, "policy.learning_rate": 1e-2,
       "policy.response_length": 8, "policy.kl_coef": 0.05, "policy.missing_eos_penalty": 0.0,
       "policy.empty_completion_penalty": 0.0}
"""A toy task PPO learns in a dozen steps: 8 completions of 8 tokens per step, a high learning rate."""


@pytest.fixture(scope="module")
def problems(tiny_config):
    return load_problems("mbpp", split="train", purpose="train", data=tiny_config.data)[:8]


# ------------------------------------------------------------------ the pure pieces, by hand


def test_gae_matches_a_hand_computation():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.5, 2.0, 0.0]])
    values = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 9.0]])  # 9.0 is padding: never read
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.5)
    # row 0: deltas 0.08, 0.07, 0.7; A2 = 0.7, A1 = 0.07 + 0.45 * 0.7, A0 = 0.08 + 0.45 * A1
    # row 1: deltas 0.55, 1.5 (its last state is terminal); A1 = 1.5, A0 = 0.55 + 0.45 * 1.5
    assert torch.allclose(advantages, torch.tensor([[0.25325, 0.385, 0.7], [1.225, 1.5, 0.0]]))
    assert torch.allclose(returns, torch.tensor([[0.35325, 0.585, 1.0], [1.625, 2.0, 0.0]]))
    assert torch.allclose(gae(rewards, values, mask, gamma=1.0, lam=1.0)[0][0], torch.tensor([0.9, 0.8, 0.7]))


def test_clipped_policy_loss_matches_a_hand_computation_and_its_sign_flips():
    old = torch.zeros(1, 4)
    new = torch.log(torch.tensor([[1.5, 0.5, 1.1, 9.0]]))  # ratios; the last token is masked out
    advantages, mask = torch.tensor([[1.0, 1.0, -1.0, 5.0]]), torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    loss, clipped = clipped_policy_loss(new, old, advantages, mask, clip_range=0.2)
    # per token max(-A r, -A clip(r)): max(-1.5, -1.2) = -1.2 (clipped), max(-0.5, -0.8) = -0.5, max(1.1, 1.1) = 1.1
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 1.1) / 3) and clipped.item() == pytest.approx(1 / 3)
    flipped, _ = clipped_policy_loss(new, old, advantages, mask, clip_range=0.2, sign=-1.0)
    assert flipped.item() == pytest.approx(-loss.item())


def test_clipped_value_loss_matches_a_hand_computation():
    values, old, returns = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.5]]), torch.tensor([[2.0, 0.4]])
    loss = clipped_value_loss(values, old, returns, torch.ones(1, 2), clip_range=0.2)
    # token 1: max((1 - 2)^2, (0.7 - 2)^2) = 1.69; token 2: max((0 - 0.4)^2, (0.3 - 0.4)^2) = 0.16
    assert loss.item() == pytest.approx(0.5 * (1.69 + 0.16) / 2)


def test_kl_estimators_per_token_rewards_and_whitening():
    logprobs, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-2.0, -1.0])
    assert torch.allclose(kl_estimate(logprobs, ref, "k1"), torch.tensor([1.0, -1.0]))
    assert torch.allclose(kl_estimate(logprobs, ref, "k3"), torch.tensor([torch.e ** -1, torch.e - 2]))  # never < 0
    kl, mask = torch.tensor([[0.1, 0.2, 0.3], [0.5, 0.5, 7.0]]), torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rewards = token_rewards(torch.tensor([2.0, 3.0]), kl, mask, kl_coef=0.5)
    assert torch.allclose(rewards, torch.tensor([[-0.05, -0.1, 1.85], [-0.25, 2.75, 0.0]]))
    whitened = masked_whiten(torch.tensor([[1.0, 3.0, 100.0]]), torch.tensor([[1.0, 1.0, 0.0]]))
    assert torch.allclose(whitened, torch.tensor([[-1.0, 1.0, 0.0]]), atol=1e-4)


# ------------------------------------------------------------------ PPO learns, and not with the sign flipped


def good_tokens(tiny_config) -> torch.Tensor:
    """One side of a random hyperplane through the token embeddings: raising all of them together is
    something a LoRA-adapted policy can express."""
    model, _ = load_generator(tiny_config.model)
    embeddings = model.get_input_embeddings().weight.detach()
    return embeddings @ torch.randn(embeddings.shape[1], generator=torch.Generator().manual_seed(0)) > 0


def good_mass(model, tokenizer, problems, good: torch.Tensor) -> float:
    """Mean probability the policy gives good tokens as a completion's first token."""
    with torch.no_grad():
        encoded = tokenizer([p.prompt for p in problems], return_tensors="pt", padding=True)
        probs = model(**encoded).logits[:, -1].softmax(-1)
    return probs[:, good].sum(-1).mean().item()


def toy_training(tiny_config, problems, out) -> tuple[float, float, list[dict]]:
    """PPO on the toy reward (the fraction of good tokens in a completion): good-token mass before and
    after, and the step logs."""
    config = tiny_config.override(**TOY)
    good = good_tokens(tiny_config)
    model, tokenizer = load_generator(config.model)
    before = good_mass(model, tokenizer, problems, good)
    logs = []
    train_ppo(config, problems, str(out), policy_adapter=None, reference_adapter=None, reward_adapter=None,
              score=lambda completions: [good[c.token_ids].float().mean().item() if c.token_ids else 0.0
                                         for c in completions], on_log=logs.append)
    tuned, _ = load_generator(config.model, adapter_dir=str(out))
    return before, good_mass(tuned, tokenizer, problems, good), logs


def check_the_reward_rose(before: float, after: float, logs: list[dict]) -> None:
    rewards = [entry["reward"] for entry in logs]
    assert after > before + 0.1, (before, after)
    assert sum(rewards[-4:]) / 4 > sum(rewards[:4]) / 4 + 0.1, rewards


@pytest.mark.integration
def test_ppo_raises_a_toy_reward_and_keeps_the_kl_bounded(tiny_config, problems, tmp_path):
    before, after, logs = toy_training(tiny_config, problems, tmp_path / "ppo")
    check_the_reward_rose(before, after, logs)
    assert len(logs) == TOY["policy.steps"]
    assert set(STEP_METRICS) | {"kl", "entropy", "loss", "value_loss"} <= set(logs[0])
    # bounded: far from the ~6 nats per token of a collapse onto single tokens (the tiny model's 512-token
    # vocabulary starts near uniform), and still sampling broadly
    assert logs[0]["kl"] == pytest.approx(0.0, abs=1e-6) and 0 < max(entry["kl"] for entry in logs) < 2.0
    assert logs[-1]["entropy"] > 0.5 * logs[0]["entropy"]
    assert not (tmp_path / "ppo" / "resume").exists() and (tmp_path / "ppo" / "adapter_model.safetensors").is_file()


@pytest.mark.integration
def test_ppo_with_its_policy_loss_sign_flipped_fails_that_check(tiny_config, problems, tmp_path, monkeypatch):
    monkeypatch.setattr(ppo, "clipped_policy_loss", functools.partial(clipped_policy_loss, sign=-1.0))
    before, after, logs = toy_training(tiny_config, problems, tmp_path / "flipped")
    with pytest.raises(AssertionError):
        check_the_reward_rose(before, after, logs)


# ------------------------------------------------------------------ completions and their reward


def test_completions_are_cut_before_the_first_stop_string_or_end_token(tiny_config, problems):
    _, tokenizer = load_generator(tiny_config.model)
    other_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    ends = {tokenizer.eos_token_id, other_end}

    def cut(*parts, stops=("\ndef",), limit=64):
        ids = [i for part in parts for i in (tokenizer(part).input_ids if isinstance(part, str) else [part])]
        completion = cut_completion(tokenizer, problems[0], ids, stops, limit, ends)
        return completion.token_ids, completion.text, completion.ended

    assert cut("    return x\ndef g") == (tokenizer("    return x").input_ids, "    return x", True)
    assert cut("    return x\n\ndef g")[1] == "    return x"  # the token '\n\n' straddles the stop string: dropped
    assert cut(" x", other_end, "\ndef")[1:] == (" x", True)  # an end token that is not EOS ends it too
    assert cut("\ndef g")[1:] == ("", True)  # empty
    assert cut("    return x", limit=3)[2] is False  # ran to the length limit: runaway
    assert cut("    return x", stops=(), limit=64)[2] is True  # stopped by the sampler before the limit


def test_the_reward_is_the_chosen_score_whitened_then_penalised(tiny_config, problems):
    passing, failing = problems[0], problems[1]
    completions = [Completion(passing, [1], passing.reference, True), Completion(failing, [1], "    return 0", True),
                   Completion(failing, [], " ", True), Completion(failing, [1] * 8, "    x = (", False)]
    toy_scores = [3.0, 1.0, 1.0, 1.0]
    for choice, raw in (("rm", toy_scores), ("execution", [2.0, 0.0, 0.0, 0.0]),
                        ("rm+execution", [5.0, 1.0, 1.0, 1.0])):
        config = tiny_config.override(**{"policy.reward": choice, "policy.execution_weight": 2.0,
                                         "policy.missing_eos_penalty": 0.5, "policy.empty_completion_penalty": 0.25})
        reward = PolicyReward(config, None, score=lambda batch: toy_scores)
        try:
            rewards, stats = reward(completions)
        finally:
            reward.close()
        expected = (torch.tensor(raw) - torch.tensor(raw).mean()) / torch.tensor(raw).std(unbiased=False)
        assert torch.allclose(rewards, expected - torch.tensor([0.0, 0.0, 0.25, 0.5]), atol=1e-5), choice
        assert stats == pytest.approx({"reward": sum(raw) / 4, "rm_score": 1.5, "pass_rate": 0.25, "length": 2.5,
                                       "runaway_fraction": 0.25, "empty_fraction": 0.25})


def test_a_policy_config_that_cannot_run_names_the_field(tiny_config, problems):
    for overrides, field in (({"policy.method": "dpo"}, "policy.method"), ({"policy.reward": "tests"}, "policy.reward"),
                             ({"policy.batch_size": 3}, "policy.generations_per_prompt"),
                             ({"policy.batch_size": 20}, "data.max_train_problems"),
                             ({"policy.method": "rloo", "policy.generations_per_prompt": 1}, "generations_per_prompt")):
        with pytest.raises(UsageError, match=field):
            check_policy_config(tiny_config.override(**overrides), problems)


# ------------------------------------------------------------------ both methods on the loop's adapters


@pytest.fixture(scope="module")
def adapters(tiny_config, problems, tmp_path_factory):
    """An SFT adapter, a policy adapter that moved away from it (gen-k), and a reward model."""
    from lab.reward import PreferencePair, train_reward_model
    from lab.sft import train_sft

    root = tmp_path_factory.mktemp("adapters")
    config = tiny_config.override(**{"sft.max_steps": 1, "reward.max_steps": 1})
    train_sft(config, [(p.prompt, p.reference) for p in problems], str(root / "sft"))
    train_reward_model(config, [PreferencePair(p.prompt, p.reference, "    raise x\n") for p in problems],
                       str(root / "rm"))
    moved, _ = load_generator(config.model, adapter_dir=str(root / "sft"), trainable=True)
    with torch.no_grad():
        for name, weight in moved.named_parameters():
            if "lora_B" in name:
                weight.add_(0.05 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(1)))
    moved.save_pretrained(root / "gen-k")
    return {name: str(root / name) for name in ("sft", "gen-k", "rm")}


@pytest.mark.integration
@pytest.mark.parametrize("method", ["ppo", "rloo"])
def test_both_methods_hold_the_policy_to_the_sft_reference_and_log_alike(tiny_config, problems, adapters, method,
                                                                        tmp_path):
    """Started from the SFT adapter the first step's KL is 0; started from gen-k it is not (the reference
    stays the SFT generator), nor is it against the base model (no reference adapter). Only the policy's
    adapter is saved, in one layout for both methods."""
    from safetensors.torch import load_file

    train = {"ppo": train_ppo, "rloo": train_rloo}[method]
    config = tiny_config.override(**{"policy.method": method, "policy.steps": 1, "policy.learning_rate": 1e-3})
    first_kl = {}
    for start, reference in (("sft", "sft"), ("gen-k", "sft"), ("gen-k", None)):
        logs, out = [], tmp_path / f"{start}-{reference}"
        metrics = train(config, problems, str(out), policy_adapter=adapters[start],
                        reference_adapter=reference and adapters[reference], reward_adapter=adapters["rm"],
                        on_log=lambda entry, logs=logs: logs.append(entry) if "rm_score" in entry else None)
        first_kl[(start, reference)] = logs[0]["kl"]
        assert sorted(p.name for p in out.iterdir()) == ["README.md", "adapter_config.json",
                                                         "adapter_model.safetensors"]
        assert load_file(out / "adapter_model.safetensors").keys() == load_file(
            f"{adapters['sft']}/adapter_model.safetensors").keys()
        assert set(STEP_METRICS) | {"step", "kl", "entropy", "loss"} <= set(logs[0])
        assert metrics["steps"] == 1 and metrics["completions"] == config.policy.batch_size
    assert first_kl[("sft", "sft")] == pytest.approx(0.0, abs=1e-5)
    assert abs(first_kl[("gen-k", "sft")]) > 1e-3 and abs(first_kl[("gen-k", None)]) > 1e-3, first_kl


def test_a_stage_folder_keeps_what_its_own_settings_saved_and_nothing_else(tmp_path):
    out = resumable_output(str(tmp_path / "generator"), "ppo, these settings")
    (out / "resume").mkdir()
    (out / "resume" / "state.pt").write_text("saved")
    assert (resumable_output(str(out), "ppo, these settings") / "resume" / "state.pt").is_file()
    assert sorted(p.name for p in resumable_output(str(out), "rloo, other settings").iterdir()) == ["resume.key"]
    (out / "checkpoint-3").mkdir()
    (out / "adapter_model.safetensors").write_text("")
    finish_output(out)
    assert [p.name for p in out.iterdir()] == ["adapter_model.safetensors"]


KILLED_RLOO = textwrap.dedent("""
    import os, signal, sys
    from lab.config import make_config
    from lab.problems import load_problems
    from lab.rloo import train_rloo

    config = make_config("tiny", **{"model.cache_dir": sys.argv[1], "policy.method": "rloo", "policy.steps": 3})
    problems = load_problems("mbpp", split="train", purpose="train", data=config.data)[:8]
    die = lambda step, steps: os.kill(os.getpid(), signal.SIGKILL) if step == 2 else None
    train_rloo(config, problems, sys.argv[2], policy_adapter=sys.argv[3], reference_adapter=sys.argv[3],
               reward_adapter=sys.argv[4], on_step=die)
""")


@pytest.mark.integration
def test_a_killed_rloo_stage_resumes_from_its_last_checkpoint(tiny_config, problems, adapters, tmp_path):
    out = tmp_path / "rloo"
    killed = subprocess.run([sys.executable, "-c", KILLED_RLOO, tiny_config.model.cache_dir, str(out), adapters["sft"],
                             adapters["rm"]], env=os.environ, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert list(out.glob("checkpoint-*")) and (out / "resume.key").is_file()
    logs = []
    config = tiny_config.override(**{"policy.method": "rloo", "policy.steps": 3})
    metrics = train_rloo(config, problems, str(out), policy_adapter=adapters["sft"], reference_adapter=adapters["sft"],
                         reward_adapter=adapters["rm"],
                         on_log=lambda entry: logs.append(entry) if "rm_score" in entry else None)
    # step 1 was saved before the kill (step 2 ended, unsaved): it is logged again, then steps 2 and 3 run
    assert [entry["step"] for entry in logs] == [1, 2, 3] and set(STEP_METRICS) <= set(logs[0])
    assert metrics["steps"] == 3 and metrics["steps_run"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "adapter_config.json", "adapter_model.safetensors"]
