"""Sampling with vLLM on CUDA (sampling.backend): the same candidates as lab/generation.py's decoder
(fields, a seed per candidate, stop strings, the mean log-prob), from another engine.

vLLM pins its own torch and transformers (vllm 0.32.0 wants transformers<5.20; this project pins
5.24), so it lives in its own environment (.venv-vllm, from requirements-vllm.txt, or the interpreter
named by $RR_VLLM_PYTHON) and runs as a child process (lab/vllm_worker.py) that holds the engine.
Closing the sampler ends that process, which gives all its GPU memory back before a training stage.

Each candidate is one request: its prompt, its own seed (generation.candidate_seed), temperature
and top_p (0 and 1 when greedy), sampling.max_new_tokens, its problem's stop strings and the end
tokens (models.end_token_ids) as stop tokens. The engine serves the unquantized base in bf16 with
the LoRA adapter unmerged (a LoRARequest), so small PPO updates are not rounded into the weights.
From each output's token ids and raw (temperature 1) log-probs, the completion, mean log-prob and
token count are computed as the hand-written decoder computes them (generation.candidate_fields): a
candidate row does not depend on the engine, except that the same seed draws other samples.

Not covered here: turning outputs into candidates and the hand-written decoder (generation.py), the
engine's side (vllm_worker.py).
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
import weakref
from pathlib import Path

import torch

from lab.config import ModelConfig, SamplingConfig, UsageError, repo_root
from lab.models import load_sampler, load_tokenizer, resolve_device, resolve_dtype, resolve_model_dir

BACKENDS = ("auto", "hf", "vllm")
VLLM_PYTHON_VARIABLE = "RR_VLLM_PYTHON"
REQUESTS_PER_CALL = 512
"""Candidates sent to the engine at once: enough to keep its continuous batching full; a problem's
candidates reach generate's on_problem_done when the call holding its last one returns."""
MAX_MODEL_LEN = 4096
"""Prompt + completion tokens the engine reserves KV cache for (HumanEval/MBPP prompts: < 1,000)."""
SETUP_HINT = ("python3 -m venv .venv-vllm && .venv-vllm/bin/pip install -r requirements-vllm.txt "
              f"(or point ${VLLM_PYTHON_VARIABLE} at a Python that has vllm)")


def load_backend_sampler(model_config: ModelConfig, sampling: SamplingConfig, adapter_dir: str | None = None):
    """(sampler, tokenizer) for lab.generation.generate by sampling.backend: a VLLMSampler (the base
    unquantized, in bf16, the adapter unmerged, in its own process) or models.load_sampler's model."""
    if resolve_backend(sampling.backend, resolve_device(model_config)) == "vllm":
        model_dir = resolve_model_dir(model_config.generator, model_config)
        return VLLMSampler(model_dir, adapter_dir, model_config, sampling), load_tokenizer(model_dir)
    return load_sampler(model_config, adapter_dir=adapter_dir)


def vllm_python() -> Path | None:
    """The interpreter of vLLM's environment: $RR_VLLM_PYTHON, else .venv-vllm/bin/python in the
    repository, when it exists and has vllm; else None."""
    named = os.environ.get(VLLM_PYTHON_VARIABLE)
    python = Path(named) if named else repo_root() / ".venv-vllm" / "bin" / "python"
    return python if python.is_file() and _has_vllm(str(python)) else None


@functools.cache
def _has_vllm(python: str) -> bool:
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"
    return subprocess.run([python, "-c", probe], capture_output=True).returncode == 0


def resolve_backend(backend: str, device: str) -> str:
    """'hf' or 'vllm' for sampling.backend on `device`: 'auto' is vllm on CUDA where its environment
    exists, else hf; 'vllm' on CPU or without that environment is an error saying what to do."""
    if backend not in BACKENDS:
        raise UsageError(f"sampling.backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend == "hf":
        return "hf"
    if backend == "auto":
        return "vllm" if device == "cuda" and vllm_python() is not None else "hf"
    if device != "cuda":
        raise UsageError(f"sampling.backend=vllm samples on CUDA only and this run is on {device}; "
                           "use sampling.backend=hf (or auto)")
    if vllm_python() is None:
        raise UsageError(f"sampling.backend=vllm but vllm is not installed: it needs its own environment "
                           f"(its torch/transformers pins differ from this venv's). Create it with: {SETUP_HINT}; "
                           "or use sampling.backend=hf")
    return "vllm"


class VLLMSampler:
    """A vLLM engine in a child process, serving the base model in `model_dir` with the LoRA adapter
    `adapter_dir` (or none); lab.generation.generate turns its outputs into candidates."""

    def __init__(self, model_dir: Path, adapter_dir: str | None, model_config: ModelConfig, sampling: SamplingConfig,
                 python: Path | None = None):
        python = python or vllm_python()
        if python is None:
            raise RuntimeError(f"vllm is not installed: {SETUP_HINT}")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # the engine takes a fraction of the memory it finds free
        self.adapter_dir, self.command = adapter_dir, f"{python} -m lab.vllm_worker"
        self.process = subprocess.Popen([str(python), "-m", "lab.vllm_worker"], cwd=repo_root(), text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._finalizer = weakref.finalize(self, _stop, self.process)
        ready = self._call({"model": str(model_dir), "dtype": str(resolve_dtype(model_config)).removeprefix("torch."),
                            "max_lora_rank": model_config.lora_r, "gpu_memory_utilization": sampling.vllm_gpu_memory,
                            "max_model_len": MAX_MODEL_LEN, "seed": sampling.seed})
        self.version = ready["vllm"]

    def sample(self, requests: list[dict]) -> list[dict]:
        """vllm_worker.output_record of each request (see vllm_worker for the fields), in order."""
        return self._call({"adapter": self.adapter_dir, "requests": requests})["outputs"]

    def close(self) -> None:
        self._finalizer()

    def _call(self, message: dict) -> dict:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None  # started with both as pipes
        try:
            stdin.write(json.dumps(message) + "\n")
            stdin.flush()
            line = stdout.readline()
        except OSError:
            line = ""
        if not line:
            raise RuntimeError(f"the vLLM worker ({self.command}) exited with code {self.process.wait()}; "
                               "its log is above")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the vLLM worker ({self.command}) failed:\n{answer['error']}")
        return answer


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        if process.stdin is not None:
            process.stdin.close()  # the worker's end of input: it returns
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
