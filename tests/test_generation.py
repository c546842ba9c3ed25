"""Batched sampling: KV cache + left padding + continuous batching match plain decoding, seeds make
candidates independent of batching, stop tokens cut, and per-problem callbacks allow resuming. The vLLM
backend: which one is chosen, and (with a stand-in vllm package, since vllm runs on CUDA only) that its
outputs become the same candidates."""
import json
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from lab.generation import format_prompt, generate
from lab.models import load_generator
from lab.problems import Problem, completion_stops


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
    int8 (the CPU default) under 10%."""
    from conftest import completion_loss

    from lab.config import make_config
    from lab.loop import select_train_problems
    from lab.models import load_sampler

    config = make_config("cpu")
    examples = [(p.prompt, p.reference) for p in select_train_problems(config) if p.reference]
    fp32, fp16, int8 = (completion_loss(*load_sampler(config.override(**{"model.sampling_weights": w}).model), examples)
                        for w in ("none", "float16", "int8"))
    assert abs(fp16 - fp32) < 1e-3 * fp32 and int8 < 1.1 * fp32, (fp32, fp16, int8)


FAKE_VLLM = textwrap.dedent("""
    # A stand-in for vllm's LLM API: a seed-determined completion of " x" tokens ending at an end token,
    # log-prob -0.5 per token; every request's parameters are appended to $FAKE_VLLM_LOG.
    import json, os, random
    __version__ = "fake"

    class SamplingParams:
        def __init__(self, **fields):
            self.__dict__.update(fields)

    class Logprob:
        def __init__(self, logprob):
            self.logprob = logprob

    class LLM:
        def __init__(self, **fields):
            self.token = int(os.environ["FAKE_VLLM_TOKEN"])
            with open(os.environ["FAKE_VLLM_LOG"], "a") as log:
                log.write(json.dumps({"engine": {k: v for k, v in fields.items()}}) + "\\n")

        def generate(self, prompts, params, lora_request=None, use_tqdm=True):
            outputs = []
            for prompt, p in zip(prompts, params):
                length = random.Random(p.seed).randrange(1, p.max_tokens)
                tokens = [self.token] * length + [p.stop_token_ids[0]]
                completion = type("C", (), {"token_ids": tokens, "logprobs": [{t: Logprob(-0.5)} for t in tokens],
                                            "finish_reason": "stop", "stop_reason": tokens[-1]})
                outputs.append(type("R", (), {"outputs": [completion]}))
                with open(os.environ["FAKE_VLLM_LOG"], "a") as log:
                    log.write(json.dumps({"prompt": prompt, "lora": lora_request and lora_request.lora_path,
                                          **{k: v for k, v in p.__dict__.items()}}) + "\\n")
            return outputs
""")


def test_auto_backend_is_hf_on_cpu_and_vllm_asked_for_says_what_is_missing(tiny_config, monkeypatch, tmp_path):
    from lab import vllm_backend
    from lab.config import UsageError

    model, _ = vllm_backend.load_backend_sampler(tiny_config.model, tiny_config.sampling)
    assert tiny_config.sampling.backend == "auto" and isinstance(model, torch.nn.Module)

    monkeypatch.setenv(vllm_backend.VLLM_PYTHON_VARIABLE, str(tmp_path / "no-such-python"))
    assert vllm_backend.resolve_backend("auto", "cpu") == "hf" == vllm_backend.resolve_backend("auto", "cuda")
    assert vllm_backend.resolve_backend("hf", "cuda") == "hf"
    with pytest.raises(UsageError, match="requirements-vllm.txt"):
        vllm_backend.resolve_backend("vllm", "cuda")
    with pytest.raises(UsageError, match="CUDA only"):
        vllm_backend.resolve_backend("vllm", "cpu")
    with pytest.raises(UsageError, match="auto, hf, vllm"):
        vllm_backend.resolve_backend("vLLM", "cuda")
    monkeypatch.setenv(vllm_backend.VLLM_PYTHON_VARIABLE, sys.executable)  # this venv has no vllm
    assert vllm_backend.vllm_python() is None and vllm_backend.resolve_backend("auto", "cuda") == "hf"


def test_vllm_request_output_becomes_a_record_with_one_logprob_per_token():
    from lab.vllm_worker import lora_rank, output_record, sampling_params

    tokens = [11, 12, 0]
    output = SimpleNamespace(outputs=[SimpleNamespace(
        token_ids=tokens, logprobs=[{t: SimpleNamespace(logprob=-1.0 * i), 99: SimpleNamespace(logprob=0.0)}
                                    for i, t in enumerate(tokens)], finish_reason="stop", stop_reason=0)])
    assert output_record(output) == {"token_ids": tokens, "logprobs": [0.0, -1.0, -2.0], "finish_reason": "stop",
                                     "stop_reason": 0}
    params = sampling_params(SimpleNamespace(SamplingParams=dict), {
        "temperature": 0, "top_p": 0.95, "seed": 7, "max_tokens": 5, "stop": ["\ndef"], "stop_token_ids": [0]})
    assert params["top_p"] == 1.0 and params["logprobs"] == 0 and not params["skip_special_tokens"]
    assert (lora_rank(4), lora_rank(16), lora_rank(17)) == (8, 16, 32)
    with pytest.raises(ValueError, match="logprobs=0"):
        output_record(SimpleNamespace(outputs=[SimpleNamespace(token_ids=tokens, logprobs=None)]))


def test_vllm_backend_samples_the_same_candidates_through_its_worker_process(tiny_config, tmp_path, monkeypatch):
    """generate() through a real worker process (lab/vllm_worker.py) with a stand-in vllm: each
    candidate is one request with its own seed, its problem's stop strings and the end tokens; the
    completion is cut at the first stop string, the mean log-prob counts the stopping token, and
    each problem reaches on_problem_done."""
    from lab.generation import candidate_seed
    from lab.models import end_token_ids, load_tokenizer, resolve_model_dir
    from lab.vllm_backend import VLLMSampler

    (tmp_path / "fake" / "vllm" / "lora").mkdir(parents=True)
    (tmp_path / "fake" / "vllm" / "__init__.py").write_text(FAKE_VLLM)
    (tmp_path / "fake" / "vllm" / "lora" / "request.py").write_text(
        "class LoRARequest:\n    def __init__(self, name, id, path):\n        self.lora_path = path\n")
    model_dir = resolve_model_dir("tiny", tiny_config.model)
    tokenizer = load_tokenizer(model_dir)
    token = tokenizer(" x").input_ids[0]
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "fake"))
    monkeypatch.setenv("FAKE_VLLM_LOG", str(tmp_path / "log.jsonl"))
    monkeypatch.setenv("FAKE_VLLM_TOKEN", str(token))
    sampler = VLLMSampler(model_dir, "/adapters/gen-1", tiny_config.model, tiny_config.sampling,
                          python=Path(sys.executable))
    problems = [problem(1), problem(2, stops=(" x x",))]
    done = []
    candidates = generate(sampler, tokenizer, problems, tiny_config.sampling, progress=False,
                          on_problem_done=lambda p, cands: done.append((p.id, len(cands))))
    sampler.close()
    assert sampler.process.returncode == 0 and sampler.version == "fake"

    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    engine, requests = log[0]["engine"], log[1:]
    assert engine["model"] == str(model_dir) and engine["max_lora_rank"] == 8
    assert engine["logprobs_mode"] == "raw_logprobs"
    count = tiny_config.sampling.num_samples
    assert done == [(p.id, count) for p in problems] and len(candidates) == len(requests) == 2 * count
    for candidate, request in zip(candidates, requests):
        p = problems[0] if candidate.problem_id == problems[0].id else problems[1]
        assert request["seed"] == candidate.seed == candidate_seed(tiny_config.sampling.seed, p.id,
                                                                   candidate.sample_index)
        assert request["prompt"] == p.prompt and request["stop"] == list(completion_stops(p.stop_tokens))
        assert request["lora"] == "/adapters/gen-1"
        assert set(request["stop_token_ids"]) == end_token_ids(tokenizer)
        assert candidate.mean_logprob == -0.5 and candidate.temperature == tiny_config.sampling.temperature
        text = tokenizer.decode([token] * (candidate.num_tokens - 1))  # the final end token is no text
        cut = text.find(" x x") if p is problems[1] else -1
        assert candidate.completion == (text[:cut] if cut >= 0 else text)
    assert len({c.seed for c in candidates}) == len(candidates)
