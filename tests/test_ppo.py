"""PPO raises the reward of a toy reward model, rollouts end where the executor cuts a completion,
and the rollout guards read the reward at EOS and penalise empty completions."""
from types import SimpleNamespace

import torch
from torch import nn

from lab.models import load_generator
from lab.ppo import RolloutGuard, StopStringRollout, train_ppo

PROMPTS = [f"def f{i}(x):\n" for i in range(8)]


class ToyReward(nn.Module):
    """Reward at position t = how many of the `window` tokens up to t are `good` (pads count as not
    good); shaped like what TRL's get_reward expects (a backbone under base_model_prefix, and `score`)."""
    base_model_prefix = "backbone"

    def __init__(self, good: torch.Tensor, window: int):
        super().__init__()
        self.register_buffer("good", good)
        self.window = window
        self.backbone = self._features
        self.score = nn.Identity()

    def _features(self, input_ids, attention_mask, **kwargs):
        hits = (self.good[input_ids] & attention_mask.bool()).float().cumsum(1)
        windowed = hits - torch.nn.functional.pad(hits, (self.window, 0))[:, : hits.shape[1]]
        return SimpleNamespace(hidden_states=[windowed[..., None]])


def good_mass(model, tokenizer, good: torch.Tensor) -> float:
    """Mean probability the policy gives to `good` tokens as the first completion token."""
    with torch.no_grad():
        encoded = tokenizer(PROMPTS, return_tensors="pt", padding=True)
        probs = model(**encoded).logits[:, -1].softmax(-1)
    return probs[:, good].sum(-1).mean().item()


def test_ppo_raises_toy_reward(tiny_config, tmp_path):
    config = tiny_config.override(**{"ppo.total_episodes": 128, "ppo.batch_size": 8, "ppo.mini_batch_size": 4,
                                     "ppo.num_ppo_epochs": 4, "ppo.learning_rate": 1e-2, "ppo.response_length": 8,
                                     "ppo.kl_coef": 0.01, "ppo.missing_eos_penalty": 0.0})
    model, tokenizer = load_generator(config.model)
    # "good" tokens: one side of a random hyperplane through the token embeddings, so that raising
    # them all together is something the LoRA-adapted policy can express
    embeddings = model.get_input_embeddings().weight.detach()
    good = embeddings @ torch.randn(embeddings.shape[1], generator=torch.Generator().manual_seed(0)) > 0
    before = good_mass(model, tokenizer, good)
    logs = []
    metrics = train_ppo(config, PROMPTS, str(tmp_path / "ppo"), policy_adapter=None, reward_adapter=None,
                        reward_model=ToyReward(good, window=8), on_log=logs.append)
    tuned, tokenizer = load_generator(config.model, adapter_dir=str(tmp_path / "ppo"))
    after = good_mass(tuned, tokenizer, good)
    assert after > before + 0.1, (before, after)
    rewards = [entry["reward"] for entry in logs]
    assert sum(rewards[-4:]) > sum(rewards[:4]) + 4, rewards
    assert metrics["steps"] == 16 and all(k in logs[-1] for k in ("step", "reward", "kl", "entropy", "length"))
    assert logs[-1]["kl"] > 0


def test_rollout_end_is_cut_before_the_first_stop_string_or_end_token(tiny_config):
    _, tokenizer = load_generator(tiny_config.model)
    pad, other_end = tokenizer.pad_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert other_end != tokenizer.eos_token_id
    rollout = StopStringRollout(tokenizer, {})

    def end(*parts, stops=("\ndef",)):
        ids = [i for part in parts for i in (tokenizer(part).input_ids if isinstance(part, str) else [part])]
        return rollout.end_position(torch.tensor(ids + [pad, pad]), stops)

    assert end("    return x\ndef g") == 3  # '   ', ' return', ' x' | '\n', 'def', ...
    assert end("    return x\n\ndef g") == 3  # the token '\n\n' straddles the stop string: dropped
    assert end(" x", other_end, "\ndef") == 1  # an end token that is not EOS ends it too
    assert end("\ndef g") == 0  # empty completion
    assert end("    return x") is None  # runaway: left to ppo.missing_eos_penalty
    assert end("    return x\ndef g", stops=()) is None


def test_rollout_samples_as_trl_and_stops_every_row_early(tiny_config):
    """Same seed, same tokens as TRL's own rollout up to the cut; then EOS and pads; and decoding
    ends once every row has stopped instead of running to the length limit."""
    from transformers import GenerationConfig
    from trl.experimental.ppo import ppo_trainer as trl_ppo

    model, tokenizer = load_generator(tiny_config.model)
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    queries = tokenizer(PROMPTS, return_tensors="pt", padding=True).input_ids
    stops = tuple("abcdefghij")
    rollout = StopStringRollout(tokenizer, {tuple(q[q != pad].tolist()): stops for q in queries})
    config = GenerationConfig(max_new_tokens=48, temperature=1.0, top_k=0, top_p=1.0, do_sample=True,
                              eos_token_id=eos, pad_token_id=pad)
    torch.manual_seed(0)
    ours, our_logits = rollout(model, queries, pad, config)
    torch.manual_seed(0)
    theirs, their_logits = trl_ppo.generate(model, queries, pad, config)
    context = queries.shape[1]
    responses, width = ours[:, context:], ours.shape[1] - context
    assert width < 48 and our_logits.shape[1] == width
    for row, (response, their_response) in enumerate(zip(responses.tolist(), theirs[:, context:].tolist())):
        end = response.index(eos)
        assert response[end + 1:] == [pad] * (width - end - 1)
        assert response[:end] == their_response[:end]
        assert torch.allclose(our_logits[row, :end + 1], their_logits[row, :end + 1])  # the EOS's log-prob too
        text = tokenizer.decode(response[:end])
        assert not any(stop in text for stop in stops) and "<|" not in text, text


def test_rollout_guard_reads_reward_at_eos_and_penalises_empty(tiny_config):
    _, tokenizer = load_generator(tiny_config.model)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    word, space = tokenizer(" total").input_ids[0], tokenizer(" ").input_ids[0]
    prompt = [pad] + tokenizer("def f():").input_ids  # left-padded query
    rows = [prompt + [word, word, eos, pad], prompt + [eos, pad, pad, pad], prompt + [space, eos, pad, pad],
            prompt + [word, word, word, word]]
    query_responses = torch.tensor(rows)
    context = len(prompt)

    def position_reward(model, query_responses, pad_token_id, context_length):
        ends = (query_responses[:, context_length:] == pad_token_id).int().argmax(-1) - 1 + context_length
        ends = torch.where((query_responses[:, context_length:] == pad_token_id).any(-1), ends,
                           torch.full_like(ends, query_responses.shape[1] - 1))
        return None, ends.float(), ends

    reward_model = object()
    guard = RolloutGuard(position_reward, reward_model, tokenizer, empty_penalty=10.0)
    _, scores, ends = guard(reward_model, query_responses, pad, context)
    assert [query_responses[i, e].item() for i, e in enumerate(ends)] == [eos, eos, eos, word]
    assert scores.tolist() == [context + 2, context - 10, context + 1 - 10, context + 3]
    assert guard.last_stats == {"length": 2.5, "empty_fraction": 0.5, "eos_fraction": 0.75}

    tokenizer.pad_token = tokenizer.eos_token  # the TRL #3750 configuration is refused
    try:
        RolloutGuard(position_reward, reward_model, tokenizer, empty_penalty=1.0)
        raise AssertionError("pad == eos accepted")
    except ValueError as error:
        assert "3750" in str(error)


def test_ppo_starts_from_sft_and_reward_adapters(tiny_config, tmp_path):
    """The loop's configuration: policy = SFT adapter (also the frozen reference), reward and value
    from the reward adapter; only the trained policy adapter is saved."""
    from safetensors.torch import load_file

    from lab.reward import PreferencePair, train_reward_model
    from lab.sft import train_sft

    config = tiny_config.override(**{"sft.max_steps": 1, "reward.max_steps": 1, "ppo.total_episodes": 2,
                                     "ppo.learning_rate": 1e-3})
    train_sft(config, [(p, "    return x\n") for p in PROMPTS], str(tmp_path / "sft"))
    train_reward_model(config, [PreferencePair(p, "    return x\n", "    raise x\n") for p in PROMPTS],
                       str(tmp_path / "rm"))
    logs = []
    train_ppo(config, PROMPTS, str(tmp_path / "ppo"), policy_adapter=str(tmp_path / "sft"),
              reward_adapter=str(tmp_path / "rm"), stops=[tuple("abcdefghij")] * len(PROMPTS), on_log=logs.append)
    assert not (tmp_path / "ppo" / "reference").exists()
    sft, ppo = (load_file(tmp_path / name / "adapter_model.safetensors") for name in ("sft", "ppo"))
    assert sft.keys() == ppo.keys() and any(not torch.equal(sft[k], ppo[k]) for k in sft)
    assert logs and logs[0]["kl"] == 0.0  # first rollout: policy == reference
    assert logs[0]["eos_fraction"] == 1.0 and logs[0]["length"] < config.ppo.response_length  # cut at stop strings
