"""Batched sampling of N candidate completions per problem, with the mean log-prob of each.

A hand-written decoding loop (not `model.generate`) because it needs, per sequence: a stop-string
check against the problem's language (MultiPL-E stop tokens), its own seed (so a candidate does not
depend on what else shared its batch, and resuming gives the same samples), the log-prob of each
sampled token under the untempered model (the mean is the classic reranking baseline), one prefill
per distinct prompt (a problem's N samples share it), and continuous batching: a finished row
leaves the KV cache at once and a waiting sample takes its place, so the batch stays full instead
of waiting for its longest sequence (a runaway sample runs to max_new_tokens).

With int8 weights (models.load_sampler) the activations are quantized per batch, so a sample can
differ slightly with what shared its batch (fp32 keeps them independent up to rounding;
`model.sampling_weights=float16` keeps that and loses nothing, but is slower than int8). Throughput,
measured with its command: docs/benchmarks.md.

On CUDA, `model` may instead be a vLLM engine (lab/vllm_backend.py, sampling.backend 'vllm' or
'auto'): each candidate is then one request with its seed and stop strings, and `candidate_fields`
computes its completion, mean log-prob and token count from the engine's tokens and log-probs as
this decoder computes them; callbacks and candidate rows are the same.

Not covered here: executing candidates, storing them (the caller persists each problem's
candidates from `on_problem_done`), or ranking them (reward.py).
"""
from __future__ import annotations

import hashlib
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch
from tqdm.auto import tqdm

from lab.config import SamplingConfig
from lab.languages import lexer_name
from lab.models import end_token_ids
from lab.problems import Problem, completion_stops, first_stop
from lab.vllm_backend import REQUESTS_PER_CALL, VLLMSampler

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
    token_ids: tuple[int, ...] = ()
    """The sampled tokens, the one that stopped it included (PPO trains on them: lab/ppo.py)."""


def format_prompt(problem: Problem, tokenizer, style: str) -> str:
    """The text the model continues. 'completion': the problem's prompt as is. 'chat': a user turn
    asking to complete the code, and an assistant turn pre-filled with a code fence and the prompt,
    so that the output is still a continuation of `problem.prompt`."""
    if style == "completion":
        return problem.prompt
    if style == "chat":
        chat = tokenizer.apply_chat_template([{"role": "user", "content": chat_request(problem)}], tokenize=False,
                                             add_generation_prompt=True)
        return f"{chat}```{lexer_name(problem.language)}\n{problem.prompt}"
    raise ValueError(f"prompt style {style!r}: use 'completion' or 'chat'")


def chat_request(problem: Problem) -> str:
    """The user turn of the 'chat' prompt style: complete this code, reply with the code only."""
    language = lexer_name(problem.language)
    return (f"Complete the following {language} code. Reply with the completed code only.\n\n"
            f"```{language}\n{problem.prompt.rstrip()}\n```")


def stop_strings(problem: Problem, style: str) -> tuple[str, ...]:
    return problem.stop_tokens + (("\n```",) if style == "chat" else ())


def candidate_seed(seed: int, problem_id: str, sample_index: int) -> int:
    """A seed per candidate, stable across runs, batchings and resumptions."""
    digest = hashlib.sha256(f"{seed}/{problem_id}/{sample_index}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


def generate(model, tokenizer, problems: list[Problem], sampling: SamplingConfig, *, num_samples: int | None = None,
             greedy: bool = False, on_problem_done: Callable[[Problem, list[Candidate]], None] | None = None,
             progress: bool = True) -> list[Candidate]:
    """Sample `num_samples` (default sampling.num_samples; 1 when greedy) candidates per problem;
    returns them problem by problem, in sample order.

    Up to sampling.batch_size sequences decode together, and a finished one's place goes to the next
    waiting job (problems are started in order), so a long straggler does not hold up a batch.
    `on_problem_done(problem, candidates)` fires as soon as a problem's last candidate is finished.
    """
    count = num_samples or (1 if greedy else sampling.num_samples)
    temperature, top_p = (0.0, 1.0) if greedy else (sampling.temperature, sampling.top_p)
    prompts = {p.id: format_prompt(p, tokenizer, sampling.prompt_style) for p in problems}
    jobs = [_Job(problem, index, prompts[problem.id], stop_strings(problem, sampling.prompt_style),
                 candidate_seed(sampling.seed, problem.id, index))
            for problem in problems for index in range(count)]
    done: dict[str, list[Candidate]] = {p.id: [] for p in problems}
    bar = tqdm(total=len(jobs), desc="sampling", unit="cand", disable=not progress)
    started, generated_tokens = time.perf_counter(), 0
    decoder: _Decoder | _VLLMDecoder
    if isinstance(model, VLLMSampler):  # vllm_backend.load_backend_sampler with sampling.backend resolving to vllm
        decoder = _VLLMDecoder(model, tokenizer, temperature, top_p, sampling.max_new_tokens)
    else:
        decoder = _Decoder(model, tokenizer, sampling.batch_size, temperature, top_p, sampling.max_new_tokens)
    for job, (text, mean_logprob, num_tokens, token_ids) in decoder.run(jobs):
        problem = job.problem
        done[problem.id].append(Candidate(problem.id, job.index, text, mean_logprob, num_tokens, temperature, top_p,
                                          job.seed, token_ids))
        generated_tokens += num_tokens
        if len(done[problem.id]) == count:
            done[problem.id].sort(key=lambda c: c.sample_index)
            if on_problem_done is not None:
                on_problem_done(problem, done[problem.id])
        bar.update(1)
        bar.set_postfix(tok_s=f"{generated_tokens / (time.perf_counter() - started):.0f}")
    bar.close()
    return [candidate for p in problems for candidate in done[p.id]]


def eos_token_ids(model, tokenizer) -> set[int]:
    ids = end_token_ids(tokenizer)
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    return ids | {i for i in (configured if isinstance(configured, list) else [configured]) if i is not None}


@dataclass
class _Job:
    problem: Problem
    index: int
    prompt: str
    stops: tuple[str, ...]
    seed: int


@dataclass
class _Row:
    """A sequence being decoded."""
    job: _Job
    generator: torch.Generator
    tokens: list[int]
    logprob_sum: float = 0.0


class _Decoder:
    """Continuous batching over a KV cache with left padding and explicit position ids.

    Each distinct prompt is prefilled once (its samples share the prefill, kept until its last job
    is admitted); finished rows leave the batch and cache at once, and waiting jobs take their places
    once a quarter of the batch is free (admitting costs a copy of the cache, so not for every row).
    """

    def __init__(self, model, tokenizer, batch_size: int, temperature: float, top_p: float, max_new_tokens: int):
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.temperature, self.top_p = batch_size, temperature, top_p
        self.max_new_tokens = max_new_tokens
        self.refill_at = max(1, batch_size // 4)
        self.eos_ids = eos_token_ids(model, tokenizer)
        self.prefilled: dict[str, tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]] = {}
        """prompt -> (per layer (keys, values) of shape [1, heads, prompt length, head dim], last logits)"""
        self.rows: list[_Row] = []
        # the batch's state, None until the first jobs are admitted
        self.cache: Any = None
        self.attention_mask: Any = None
        self.positions: Any = None
        self.logits: Any = None

    @torch.no_grad()
    def run(self, jobs: list[_Job]):
        """Yield (job, (completion, mean log-prob, tokens generated, their ids)) as each job finishes."""
        pending = deque(jobs)
        waiting = Counter(job.prompt for job in jobs)
        while pending or self.rows:
            free = self.batch_size - len(self.rows)
            if pending and (not self.rows or free >= min(self.refill_at, len(pending))):
                admitted = [pending.popleft() for _ in range(min(free, len(pending)))]
                self._admit(admitted)
                waiting.subtract(job.prompt for job in admitted)
                self.prefilled = {prompt: kv for prompt, kv in self.prefilled.items() if waiting[prompt] > 0}
            yield from self._step()

    def _prefill(self, prompts: list[str]) -> None:
        if not prompts:
            return
        encoded = self.tokenizer(prompts, return_tensors="pt", padding=True).to(self.model.device)
        mask = encoded.attention_mask
        output = self.model(input_ids=encoded.input_ids, attention_mask=mask,
                            position_ids=(mask.cumsum(-1) - 1).clamp(min=0), use_cache=True, logits_to_keep=1)
        lengths = mask.sum(-1).tolist()
        for i, (prompt, length) in enumerate(zip(prompts, lengths)):
            kv = [(layer.keys[i:i + 1, :, -length:],
                   layer.values[i:i + 1, :, -length:]) for layer in output.cache.layers]
            self.prefilled[prompt] = (kv, output.logits[i, -1].float())
        if self.cache is None:  # a cache object to hold the batch (_admit replaces its tensors)
            self.cache = output.cache

    def _admit(self, jobs: list[_Job]) -> None:
        """Add rows for `jobs`: prefill their new prompts, then rebuild the cache with every row left-padded
        to the longest."""
        self._prefill([p for p in dict.fromkeys(job.prompt for job in jobs) if p not in self.prefilled])
        device = self.model.device
        old_length = self.attention_mask.shape[1] if self.rows else 0
        new_lengths = [self.prefilled[job.prompt][0][0][0].shape[-2] for job in jobs]
        length = max([old_length] + new_lengths)
        for index, layer in enumerate(self.cache.layers):
            keys, values = [], []
            if self.rows:
                keys.append(_pad_left(layer.keys, length))
                values.append(_pad_left(layer.values, length))
            for job in jobs:
                job_keys, job_values = self.prefilled[job.prompt][0][index]
                keys.append(_pad_left(job_keys, length))
                values.append(_pad_left(job_values, length))
            layer.keys, layer.values = torch.cat(keys), torch.cat(values)
        masks = [_pad_left(self.attention_mask, length)] if self.rows else []
        masks += [_pad_left(torch.ones(1, n, dtype=torch.long, device=device), length) for n in new_lengths]
        self.attention_mask = torch.cat(masks)
        positions = torch.tensor([[n - 1] for n in new_lengths], device=device)
        logits = torch.stack([self.prefilled[job.prompt][1] for job in jobs])
        self.positions = torch.cat([self.positions, positions]) if self.rows else positions
        self.logits = torch.cat([self.logits, logits]) if self.rows else logits
        self.rows += [_Row(job, torch.Generator().manual_seed(job.seed), []) for job in jobs]

    def _step(self):
        """Pick each row's next token, yield the rows that finish, drop them, and run the model once."""
        chosen = pick_tokens(self.logits, self.temperature, self.top_p, [row.generator for row in self.rows])
        chosen_logprobs = (self.logits.gather(-1, chosen[:, None])[:, 0] - self.logits.logsumexp(-1)).tolist()
        keep = []
        for k, (row, token) in enumerate(zip(self.rows, chosen.tolist())):
            row.tokens.append(token)
            row.logprob_sum += chosen_logprobs[k]
            last_step = len(row.tokens) == self.max_new_tokens
            finished = finish(self.tokenizer, row.tokens, row.job.stops, self.eos_ids, last_step=last_step)
            if finished is None:
                keep.append(k)
            else:
                yield row.job, (finished, row.logprob_sum / len(row.tokens), len(row.tokens), tuple(row.tokens))
        if len(keep) < len(self.rows):
            self.rows = [self.rows[k] for k in keep]
            if not keep:
                return
            index = torch.tensor(keep, device=self.model.device)
            self.cache.batch_select_indices(index)
            chosen = chosen[index]
            self.attention_mask, self.positions = self.attention_mask[index], self.positions[index]
            self._trim_padding()
        self.attention_mask = torch.cat([self.attention_mask, self.attention_mask.new_ones(len(self.rows), 1)], dim=-1)
        self.positions = self.positions + 1
        output = self.model(input_ids=chosen[:, None], attention_mask=self.attention_mask, position_ids=self.positions,
                            cache=self.cache, use_cache=True)
        self.logits, self.cache = output.logits[:, -1, :].float(), output.cache

    def _trim_padding(self) -> None:
        """Drop the leading cache columns that are padding in every remaining row."""
        used = self.attention_mask.any(0).nonzero()
        first = int(used[0]) if len(used) else 0
        if first:
            self.attention_mask = self.attention_mask[:, first:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]


class _VLLMDecoder:
    """_Decoder's counterpart on a vLLM engine: `run(jobs)` yields the same (job, (completion, mean
    log-prob, tokens, token ids)), vllm_backend.REQUESTS_PER_CALL jobs at a time (the engine batches them)."""

    def __init__(self, sampler: VLLMSampler, tokenizer, temperature: float, top_p: float, max_new_tokens: int):
        self.sampler, self.tokenizer = sampler, tokenizer
        self.temperature, self.top_p, self.max_new_tokens = temperature, top_p, max_new_tokens
        self.end_ids = end_token_ids(tokenizer)

    def run(self, jobs: list[_Job]):
        for start in range(0, len(jobs), REQUESTS_PER_CALL):
            chunk = jobs[start:start + REQUESTS_PER_CALL]
            records = self.sampler.sample([self.request(job) for job in chunk])
            if len(records) != len(chunk):
                raise RuntimeError(f"the vLLM worker answered {len(records)} outputs for {len(chunk)} requests")
            for job, record in zip(chunk, records):
                yield job, candidate_fields(self.tokenizer, record, job.stops, self.end_ids)

    def request(self, job: _Job) -> dict:
        return {"prompt": job.prompt, "seed": job.seed, "temperature": self.temperature, "top_p": self.top_p,
                "max_tokens": self.max_new_tokens, "stop": list(completion_stops(job.stops)),
                "stop_token_ids": sorted(self.end_ids)}


def candidate_fields(tokenizer, record: dict, stops: tuple[str, ...],
                     end_ids: set[int]) -> tuple[str, float, int, tuple]:
    """(completion, mean log-prob, tokens, token ids) of one vLLM output record (vllm_worker.output_record) as
    _Decoder computes them: every token up to and including the one that stopped it (an end token, the
    one completing a stop string, or the last allowed) counts, and the text is their decoding without
    a final end token, cut before the first stop string (`finish`)."""
    tokens, logprobs = record["token_ids"], record["logprobs"]
    if not tokens or len(logprobs) != len(tokens):
        raise ValueError(f"vLLM output with {len(tokens)} tokens and {len(logprobs)} log-probs: expected one "
                         "log-prob per generated token")
    text = cast(str, finish(tokenizer, tokens, stops, end_ids, last_step=True))  # last_step: always finished
    return text, sum(logprobs) / len(tokens), len(tokens), tuple(tokens)


def _pad_left(tensor: torch.Tensor, length: int) -> torch.Tensor:
    """Zero-pad the sequence dimension (dim -1 of a mask, dim -2 of keys/values) on the left to `length`."""
    dim = -1 if tensor.dim() == 2 else -2
    missing = length - tensor.shape[dim]
    if not missing:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def finish(tokenizer, tokens: list[int], stops: tuple[str, ...], eos_ids: set[int], last_step: bool) -> str | None:
    """The completion if this sequence is finished (EOS, a stop string, or out of budget), else None."""
    hit_eos = tokens[-1] in eos_ids
    text = tokenizer.decode(tokens[:-1] if hit_eos else tokens, skip_special_tokens=False)
    cut = first_stop(text, stops)
    if cut >= 0:
        return text[:cut]
    return text if hit_eos or last_step else None


def pick_tokens(logits: torch.Tensor, temperature: float, top_p: float, generators: list) -> torch.Tensor:
    """Greedy (temperature 0) or temperature + top-p sampling, one generator per row.

    Top-p works on the NUCLEUS_CANDIDATES most likely tokens (a full-vocabulary sort is slow on CPU);
    rows whose nucleus is larger fall back to the full sort.
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
