"""Batched sampling: KV cache + left padding + continuous batching match plain decoding, seeds make candidates independent
of batching, stop tokens cut, and per-problem callbacks allow resuming."""
from dataclasses import replace

import pytest
import torch

from lab.generation import format_prompt, generate
from lab.models import load_generator
from lab.problems import Problem


def problem(i: int, stops=("\ndef",)) -> Problem:
    return Problem(id=f"t/{i}", language="py", prompt="def f(x):\n" + "    x = x + 1\n" * i, tests="",
                   stop_tokens=stops, entry_point="f", source="test", split="train", training_allowed=True)


def test_batched_greedy_matches_one_by_one_plain_decoding(tiny_config):
    model, tokenizer = load_generator(tiny_config.model)
    # different prompt lengths -> left padding; more problems than the batch, and stops that end some
    # rows early -> rows join a running batch
    stops = ("x", "d")
    problems = [problem(i, stops=stops) for i in (0, 3, 7, 1, 5, 2)]
    sampling = replace(tiny_config.sampling, batch_size=3, max_new_tokens=12)
    batched = generate(model, tokenizer, problems, sampling, greedy=True, progress=False)
    assert len({c.num_tokens for c in batched}) > 1
    for candidate, p in zip(batched, problems):
        ids = tokenizer(p.prompt, return_tensors="pt").input_ids
        for _ in range(candidate.num_tokens):  # no cache, no padding, one token at a time
            ids = torch.cat([ids, model(input_ids=ids).logits[:, -1:].argmax(-1)], dim=1)
        new = ids[0, -candidate.num_tokens:]
        if new[-1].item() == tokenizer.eos_token_id:
            new = new[:-1]
        text = tokenizer.decode(new)
        assert candidate.completion == text[:min([i for i in map(text.find, stops) if i >= 0], default=len(text))]


def test_candidates_do_not_depend_on_batching_and_resume(tiny_config):
    model, tokenizer = load_generator(tiny_config.model)
    problems = [problem(i) for i in range(3)]
    finished = []
    full = generate(model, tokenizer, problems, replace(tiny_config.sampling, batch_size=8), progress=False,
                    on_problem_done=lambda p, cands: finished.append((p.id, [c.sample_index for c in cands])))
    assert finished == [(p.id, [0, 1, 2, 3]) for p in problems]
    resumed = generate(model, tokenizer, problems[1:], replace(tiny_config.sampling, batch_size=3), progress=False)
    assert [(c.problem_id, c.completion, c.seed) for c in full[4:]] == \
           [(c.problem_id, c.completion, c.seed) for c in resumed]
    assert len({c.completion for c in full}) > 6, "samples of one problem differ"


def test_completions_are_cut_at_the_first_stop_token(tiny_config):
    model, tokenizer = load_generator(tiny_config.model)
    stops = ("e", "t", "\n")  # frequent characters: most samples must be cut
    candidates = generate(model, tokenizer, [problem(1, stops=stops)], replace(tiny_config.sampling, num_samples=8),
                          progress=False)
    assert all(not any(s in c.completion for s in stops) for c in candidates)
    assert sum(c.num_tokens < tiny_config.sampling.max_new_tokens for c in candidates) >= 4
    assert all(c.mean_logprob < 0 and c.temperature == tiny_config.sampling.temperature for c in candidates)


def test_chat_prompt_continues_the_problem_prompt(tiny_config):
    _, tokenizer = load_generator(tiny_config.model)
    text = format_prompt(problem(2), tokenizer, "chat")
    assert text.startswith("<|im_start|>user") and text.endswith("```python\n" + problem(2).prompt)


@pytest.mark.slow
def test_sampler_weights_cost_the_real_model_little_loss():
    """The cpu preset's 0.5B model on MBPP reference solutions: float16 sampling weights lose nothing,
    int8 (the CPU default) under 10% (measured +8%)."""
    from lab.config import make_config
    from lab.loop import select_train_problems
    from lab.models import load_sampler
    from lab.sft import completion_loss

    config = make_config("cpu")
    examples = [(p.prompt, p.reference) for p in select_train_problems(config) if p.reference]
    fp32, fp16, int8 = (completion_loss(*load_sampler(config.override(**{"model.sampling_weights": w}).model), examples)
                        for w in ("none", "float16", "int8"))
    assert abs(fp16 - fp32) < 1e-3 * fp32 and int8 < 1.1 * fp32, (fp32, fp16, int8)
