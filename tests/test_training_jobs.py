"""Training stages as `accelerate launch` jobs (lab/training_jobs.py): the reward model trained on the
tiny model by 2 CPU processes that average their gradients into one model, read back by the lab; the
shipped launch configs are valid accelerate configs."""
import hashlib
import json
import os
from pathlib import Path

import pytest

from lab import reward
from lab.models import load_reward_model
from lab.reward import PreferencePair, score_completions, train_reward_model
from lab.training_jobs import LAUNCH_CONFIGS, train

PAIRS = [PreferencePair(f"def add_{i}(a, b):\n", f"    return a + b + {i}\n", f"    return {i}\n") for i in range(6)]


def reward_model_trained_by_every_process(config, output_dir, **arguments):
    """train_reward_model, and beside its adapter a digest of each process's trained weights (the
    job imports this module by name)."""
    trainers = []
    make_trainer = reward.reward_trainer

    def keep(*args, **kwargs):
        trainers.append(make_trainer(*args, **kwargs))
        return trainers[-1]

    reward.reward_trainer = keep
    metrics = train_reward_model(config, output_dir=output_dir, **arguments)
    weights = b"".join(p.detach().numpy().tobytes() for _, p in sorted(trainers[0].model.named_parameters())
                       if p.requires_grad)
    Path(output_dir, f"weights-{os.environ['RANK']}.sha256").write_text(hashlib.sha256(weights).hexdigest())
    return metrics


@pytest.mark.integration
def test_the_reward_model_trains_as_an_accelerate_job_of_two_cpu_processes(tiny_config, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    config = tiny_config.override(**{"cluster.train_processes": "2", "reward.max_steps": "3", "reward.batch_size": "1"})
    logs, steps = [], []
    out = tmp_path / "rm"
    metrics = train(reward_model_trained_by_every_process, config, str(out), pairs=PAIRS, on_log=logs.append,
                    on_step=lambda step, max_steps: steps.append((step, max_steps)))

    assert metrics["processes"] == 2 and metrics["steps"] == 3 and metrics["train_pairs"] == len(PAIRS)
    assert steps[-1] == (3, 3) and [entry["step"] for entry in logs if "loss" in entry] == [1, 2, 3]
    digests = {path.read_text() for path in out.glob("weights-*.sha256")}
    assert len(list(out.glob("weights-*.sha256"))) == 2 and len(digests) == 1  # gradients averaged: one model
    job = json.loads((tmp_path / "rm-job" / "job.json").read_text())
    assert "--num_processes" in job["command"] and job["function"].endswith(":reward_model_trained_by_every_process")

    trained, tokenizer = load_reward_model(config.model, adapter_dir=str(out))
    untrained, _ = load_reward_model(config.model)
    items = [(p.prompt, p.chosen) for p in PAIRS[:2]]
    assert score_completions(trained, tokenizer, items, progress=False) != \
        score_completions(untrained, tokenizer, items, progress=False)


def test_a_launch_config_that_is_not_there_is_named_with_the_shipped_ones(tiny_config, tmp_path):
    config = tiny_config.override(**{"cluster.train_processes": "2", "cluster.launch_config": "zero9.yaml"})
    with pytest.raises(FileNotFoundError, match=r"zero9\.yaml.*ddp\.yaml, zero2\.yaml, zero3\.yaml"):
        train(train_reward_model, config, str(tmp_path / "rm"), pairs=PAIRS)


@pytest.mark.parametrize("name", ["ddp.yaml", "zero2.yaml", "zero3.yaml"])
def test_the_shipped_launch_configs_are_accelerate_configs(name):
    from accelerate.commands.config.config_args import load_config_from_file

    loaded = load_config_from_file(str(LAUNCH_CONFIGS / name))
    assert loaded.num_machines == 1 and loaded.main_process_port == 0
    assert (loaded.deepspeed_config.get("zero_stage") if name.startswith("zero") else None) == \
        {"zero2.yaml": 2, "zero3.yaml": 3}.get(name)
