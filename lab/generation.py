"""Batched sampling of N candidate completions per problem, with the mean log-prob of each.

A hand-written decoding loop (not `model.generate`) because it needs, per sequence: a stop-string
check against the problem's language (MultiPL-E stop tokens), its own seed (so a candidate does not
depend on what else shared its batch, and resuming gives the same samples), the log-prob of each
sampled token under the untempered model (the mean is the classic reranking baseline), one prefill
per distinct prompt (a problem's N samples share it), and dropping finished rows from the KV cache
so a batch gets faster as it empties.

Not covered here: executing candidates, storing them (the caller persists each problem's
candidates from `on_problem_done`), or ranking them (reward.py).
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from lab.config import SamplingConfig
from lab.problems import Problem

LANGUAGE_NAMES = {"py": "python", "cpp": "cpp", "java": "java", "js": "javascript", "ts": "typescript",
                  "php": "php", "sh": "bash", "cs": "csharp", "rs": "rust", "go": "go", "rb": "ruby",
                  "lua": "lua", "r": "r", "pl": "perl", "scala": "scala", "swift": "swift", "d": "d",
                  "jl": "julia", "rkt": "racket"}
NUCLEUS_CANDIDATES = 512
"""Tokens considered by top-p sampling before falling back to a full sort (which is slow on CPU)."""


@dataclass
class Candidate:
    problem_id: str
    sample_index: int
    completion: str
    """Generated text, cut at the first stop token (or EOS); program = prompt + completion + tests."""
    mean_logprob: float
    """Mean log-prob (temperature 1) of the sampled tokens, up to and including the one that stopped it."""
    num_tokens: int
    temperature: float
    top_p: float
    seed: int


def format_prompt(problem: Problem, tokenizer, style: str) -> str:
    """The text the model continues. 'completion': the problem's prompt as is. 'chat': a user turn
    asking to complete the code, and an assistant turn pre-filled with a code fence and the prompt,
    so that the output is still a continuation of `problem.prompt`."""
    if style == "completion":
        return problem.prompt
    if style == "chat":
        language = LANGUAGE_NAMES.get(problem.language, problem.language)
        request = (f"Complete the following {language} code. Reply with the completed code only.\n\n"
                   f"```{language}\n{problem.prompt.rstrip()}\n```")
        chat = tokenizer.apply_chat_template([{"role": "user", "content": request}], tokenize=False,
                                             add_generation_prompt=True)
        return f"{chat}```{language}\n{problem.prompt}"
    raise ValueError(f"prompt style {style!r}: use 'completion' or 'chat'")


def stop_strings(problem: Problem, style: str) -> tuple[str, ...]:
    return problem.stop_tokens + (("\n```",) if style == "chat" else ())


def candidate_seed(seed: int, problem_id: str, sample_index: int) -> int:
    """A seed per candidate, stable across runs, batchings and resumptions."""
    digest = hashlib.sha256(f"{seed}/{problem_id}/{sample_index}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


def generate(model, tokenizer, problems: list[Problem], sampling: SamplingConfig, *, num_samples: int | None = None,
             greedy: bool = False, on_problem_done: Callable[[Problem, list[Candidate]], None] | None = None,
             progress: bool = True) -> list[Candidate]:
    """Sample `num_samples` (default sampling.num_samples; 1 when greedy) candidates per problem.

    Problems are processed in order, batches may span problems, and `on_problem_done(problem,
    candidates)` fires as soon as a problem's last candidate is finished.
    """
    count = num_samples or (1 if greedy else sampling.num_samples)
    temperature, top_p = (0.0, 1.0) if greedy else (sampling.temperature, sampling.top_p)
    prompts = {p.id: format_prompt(p, tokenizer, sampling.prompt_style) for p in problems}
    jobs = [(problem, index) for problem in problems for index in range(count)]
    done: dict[str, list[Candidate]] = {p.id: [] for p in problems}
    results: list[Candidate] = []
    bar = tqdm(total=len(jobs), desc="sampling", unit="cand", disable=not progress)
    started, generated_tokens = time.perf_counter(), 0
    for start in range(0, len(jobs), sampling.batch_size):
        batch = jobs[start:start + sampling.batch_size]
        seeds = [candidate_seed(sampling.seed, p.id, i) for p, i in batch]
        outputs = sample_batch(model, tokenizer, [prompts[p.id] for p, _ in batch],
                               [stop_strings(p, sampling.prompt_style) for p, _ in batch], seeds,
                               temperature=temperature, top_p=top_p, max_new_tokens=sampling.max_new_tokens)
        for (problem, index), seed, (text, mean_logprob, num_tokens) in zip(batch, seeds, outputs):
            candidate = Candidate(problem.id, index, text, mean_logprob, num_tokens, temperature, top_p, seed)
            done[problem.id].append(candidate)
            results.append(candidate)
            generated_tokens += num_tokens
            if len(done[problem.id]) == count and on_problem_done is not None:
                on_problem_done(problem, done[problem.id])
        bar.update(len(batch))
        bar.set_postfix(tok_s=f"{generated_tokens / (time.perf_counter() - started):.0f}")
    bar.close()
    return results


def eos_token_ids(model, tokenizer) -> set[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return {i for i in ids if i is not None}


@torch.no_grad()
def sample_batch(model, tokenizer, prompts: list[str], stops: list[tuple[str, ...]], seeds: list[int], *,
                 temperature: float, top_p: float, max_new_tokens: int) -> list[tuple[str, float, int]]:
    """(completion cut at its first stop, mean log-prob, tokens generated) for each prompt.

    Left padding with explicit position ids; each distinct prompt is prefilled once and its cache
    shared by its samples; rows that finish are removed from the batch and cache.
    """
    device = model.device
    unique = list(dict.fromkeys(prompts))  # samples of one problem share a prompt: prefill it once
    encoded = tokenizer(unique, return_tensors="pt", padding=True).to(device)
    output = model(input_ids=encoded.input_ids, attention_mask=encoded.attention_mask,
                   position_ids=(encoded.attention_mask.cumsum(-1) - 1).clamp(min=0), use_cache=True,
                   logits_to_keep=1)
    rows = torch.tensor([unique.index(prompt) for prompt in prompts], device=device)
    output.cache.batch_select_indices(rows)
    logits, cache = output.logits[rows, -1, :].float(), output.cache
    attention_mask = encoded.attention_mask[rows]
    positions = attention_mask.sum(-1, keepdim=True) - 1
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    eos_ids = eos_token_ids(model, tokenizer)
    tokens: list[list[int]] = [[] for _ in prompts]
    logprob_sums = [0.0] * len(prompts)
    results: list[tuple[str, float, int] | None] = [None] * len(prompts)
    alive = list(range(len(prompts)))
    for step in range(max_new_tokens):
        chosen = pick_tokens(logits, temperature, top_p, [generators[row] for row in alive])
        chosen_logprobs = (logits.gather(-1, chosen[:, None])[:, 0] - logits.logsumexp(-1)).tolist()
        keep = []
        for k, (row, token) in enumerate(zip(alive, chosen.tolist())):
            tokens[row].append(token)
            logprob_sums[row] += chosen_logprobs[k]
            finished = finish(tokenizer, tokens[row], stops[row], eos_ids, last_step=step == max_new_tokens - 1)
            if finished is None:
                keep.append(k)
            else:
                results[row] = (finished, logprob_sums[row] / len(tokens[row]), len(tokens[row]))
        if not keep:
            break
        if len(keep) < len(alive):
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            chosen, attention_mask, positions = chosen[index], attention_mask[index], positions[index]
            alive = [alive[k] for k in keep]
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(len(alive), 1)], dim=-1)
        positions = positions + 1
        output = model(input_ids=chosen[:, None], attention_mask=attention_mask, position_ids=positions,
                       cache=cache, use_cache=True)
        logits, cache = output.logits[:, -1, :].float(), output.cache
    return results


def finish(tokenizer, tokens: list[int], stops: tuple[str, ...], eos_ids: set[int], last_step: bool) -> str | None:
    """The completion if this sequence is finished (EOS, a stop string, or out of budget), else None."""
    hit_eos = tokens[-1] in eos_ids
    text = tokenizer.decode(tokens[:-1] if hit_eos else tokens, skip_special_tokens=False)
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    if cut >= 0:
        return text[:cut]
    return text if hit_eos or last_step else None


def pick_tokens(logits: torch.Tensor, temperature: float, top_p: float, generators: list) -> torch.Tensor:
    """Greedy (temperature 0) or temperature + top-p sampling, one generator per row.

    Top-p works on the NUCLEUS_CANDIDATES most likely tokens (a full-vocabulary sort costs ~20 ms a
    row on CPU); rows whose nucleus is larger fall back to the full sort.
    """
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    k = min(NUCLEUS_CANDIDATES, probs.shape[-1])
    top_probs, top_ids = probs.topk(k, dim=-1)
    picked = []
    for row, generator in enumerate(generators):
        row_probs, row_ids = top_probs[row], top_ids[row]
        if row_probs.sum() < top_p and k < probs.shape[-1]:
            row_probs, row_ids = probs[row].sort(descending=True)
        cumulative = row_probs.cumsum(0)
        nucleus = int((cumulative - row_probs < top_p).sum())
        threshold = torch.rand(1, generator=generator).item() * cumulative[nucleus - 1].item()
        position = min(int(torch.searchsorted(cumulative[:nucleus], cumulative.new_tensor([threshold]))), nucleus - 1)
        picked.append(row_ids[position])
    return torch.stack(picked).to(logits.device)
