"""The 4-bit (QLoRA) path, which the gpu preset takes, on CPU with the tiny model: the whole loop runs
on it, trainers (RLOO's too) keep fp32 adapters, and sampling never runs on nf4 weights (so a
policy-sized update reaches the samples)."""
import contextlib
import re

import pytest
import torch
from safetensors.torch import load_file

from lab.config import make_config
from lab.models import load_generator, load_sampler

QLORA = {"model.load_in_4bit": True, "model.dtype": "bfloat16", "reward.trainable_layers": None}
"""As the gpu preset: nf4 weights, bf16 compute, LoRA on every layer of the reward model."""


def is_4bit(module) -> bool:
    return type(module).__name__ == "Linear4bit"


@pytest.mark.integration
def test_the_whole_loop_runs_on_4bit_weights_and_samples_from_unquantized_ones(tmp_path, monkeypatch):
    """SFT, RM, PPO, sampling, scoring and evaluation with model.load_in_4bit=true: every trainer and the
    scorer run nf4 layers, sampling from the sampler runs none, and every saved adapter is fp32."""
    import bitsandbytes as bnb

    from lab import loop

    stage, calls = ["setup"], {}
    forward = bnb.nn.Linear4bit.forward

    def counted_forward(self, *args, **kwargs):
        calls[stage[0]] = calls.get(stage[0], 0) + 1
        return forward(self, *args, **kwargs)

    def log(line: str) -> None:
        started = re.match(r"\[iteration (\d+)\] (\w+) \.\.\.", line)
        if started:
            stage[0] = f"{started[1]}:{started[2]}"

    monkeypatch.setattr(bnb.nn.Linear4bit, "forward", counted_forward)
    config = make_config("tiny", lab_dir=str(tmp_path), **QLORA, **{
        "data.max_train_problems": 2, "data.max_validation_problems": 2, "data.max_eval_problems": 2,
        "sampling.num_samples": 3, "sampling.max_new_tokens": 12, "sft.max_steps": 2, "reward.max_steps": 2,
        "policy.steps": 1})
    summary = loop.run_loop(config, progress=False, log=log)

    assert summary["evaluations"]
    for trained in ("0:sft", "0:train_rm", "1:policy", "1:score", "1:train_rm", "1:evaluate"):
        assert calls.get(trained, 0) > 0, (trained, calls)
    assert calls.get("0:sample", 0) == calls.get("1:sample", 0) == 0, calls
    adapters = sorted(config.run_dir.glob("iter-*/*/adapter_model.safetensors"))
    assert {path.parent.parent.name for path in adapters} == {"iter-0", "iter-1"}
    for path in adapters:
        assert {tensor.dtype for tensor in load_file(path).values()} == {torch.float32}, path


def test_a_ppo_sized_update_survives_into_the_4bit_sampler(tiny_config, tmp_path):
    """An SFT-like adapter, then one Adam step at PPO's learning rate (every LoRA weight moves by 1e-5):
    the sampler's logits move as the exact (fp32, unquantized, unmerged) model's do. Merged into nf4
    weights the update was rounded away: what moved was rounding noise (cosine ~0.03)."""
    config = tiny_config.override(**{"model.load_in_4bit": True})
    policy, tokenizer = load_generator(config.model, trainable=True)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, weight in policy.named_parameters():
            if "lora_B" in name:
                weight.copy_(0.02 * torch.randn(weight.shape, generator=generator))
        policy.save_pretrained(tmp_path / "sft")
        for name, weight in policy.named_parameters():
            if "lora_" in name:
                weight.add_(1e-5 * torch.sign(torch.randn(weight.shape, generator=generator)))
        policy.save_pretrained(tmp_path / "ppo")
    ids = tokenizer(["def f(x):\n    return x + 1\n", "class Stack:\n    def push(self, item):"],
                    return_tensors="pt", padding=True)
    real = ids.attention_mask.bool()

    def change(load, model_config):
        logits = []
        for name in ("sft", "ppo"):
            model, _ = load(model_config, adapter_dir=str(tmp_path / name))
            with torch.no_grad():
                logits.append(model(**ids).logits[real])
        return logits[1] - logits[0]

    sampled = change(load_sampler, config.model)
    assert not any(is_4bit(m) for m in load_sampler(config.model, adapter_dir=str(tmp_path / "ppo"))[0].modules())
    exact = change(load_generator, config.override(**{"model.load_in_4bit": False}).model)
    cosine = torch.nn.functional.cosine_similarity(sampled.flatten(), exact.flatten(), dim=0).item()
    assert exact.abs().max() > 0 and cosine > 0.99, cosine
    assert 0.9 < (sampled.norm() / exact.norm()).item() < 1.1


def test_rloo_on_4bit_weights_trains_fp32_adapters(tiny_config, tmp_path):
    """TRL's RLOOTrainer casts a quantized model's adapters to bf16 (as its SFT trainer does, below);
    lab/rloo.py keeps them fp32, and one step moves them."""
    from lab.problems import load_problems
    from lab.rloo import train_rloo

    config = tiny_config.override(**QLORA, **{"policy.method": "rloo", "policy.steps": 1, "policy.learning_rate": 1e-2})
    problems = load_problems("mbpp", split="train", purpose="train", data=config.data)[:2]
    train_rloo(config, problems, str(tmp_path / "rloo"), policy_adapter=None, reference_adapter=None,
               reward_adapter=None,
               score=lambda completions: [float(c.token_ids[0]) if c.token_ids else 0.0 for c in completions])
    weights = load_file(tmp_path / "rloo" / "adapter_model.safetensors")
    assert {tensor.dtype for tensor in weights.values()} == {torch.float32}
    assert any(tensor.abs().max() > 0 for name, tensor in weights.items() if "lora_B" in name)


def test_trl_sft_trainer_casts_4bit_adapters_to_bf16_unless_kept(tiny_config, tmp_path):
    """TRL casts a quantized model's trainable weights to bf16 when its SFT or reward trainer is built
    (lab/ppo.py casts nothing); models.trainable_weights_kept, around them in sft.py, reward.py and rloo.py,
    undoes that. The loop test checks the saved adapters of SFT, RM and PPO."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from lab.models import trainable_weights_kept

    def trainable_dtypes(keep: bool) -> set:
        model, tokenizer = load_generator(tiny_config.override(**QLORA).model, trainable=True)
        with trainable_weights_kept(model) if keep else contextlib.nullcontext():
            SFTTrainer(model=model, processing_class=tokenizer, args=SFTConfig(
                output_dir=str(tmp_path), use_cpu=True, report_to="none"),
                train_dataset=Dataset.from_list([{"prompt": "def f():", "completion": " pass"}]))
        return {p.dtype for p in model.parameters() if p.requires_grad}

    assert trainable_dtypes(keep=False) == {torch.bfloat16}
    assert trainable_dtypes(keep=True) == {torch.float32}


@pytest.mark.integration
def test_gpu_smoke_script_runs_dry_on_cpu(tmp_path):
    """scripts/gpu_smoke.sh --dry-run: the GPU smoke's every step on CPU with the tiny model on the
    4-bit path; the figures it would report come back, vLLM is skipped saying why."""
    import json
    import os
    import subprocess
    import sys

    from lab.config import repo_root

    env = {**os.environ, "PYTHON": sys.executable, "RR_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(["scripts/gpu_smoke.sh", "--dry-run", "--json", str(tmp_path / "figures.json")],
                          cwd=repo_root(), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert list(figures["steps"]) == ["sft", "reward model", "ppo", "rloo"]
    assert all(step["seconds_per_step"] > 0 and step["steps"] > 0 for step in figures["steps"].values())
    hf = figures["samplers"]["hf"]
    assert hf["tokens_per_second"] > 0 and hf["candidates"] == 4 * hf["problems"] and 0 <= hf["pass_at_1"] <= 1
    assert figures["samplers"]["vllm"] == {"skipped": "no CUDA"}
    assert "s/step" in done.stdout and "tok/s" in done.stdout and "pass@1" in done.stdout
