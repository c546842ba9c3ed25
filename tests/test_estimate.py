"""The main job's time estimate: one entry per stage the loop runs, small for the tiny preset, in the
range measured for the cpu preset, no time claimed on a GPU, and sizes that move it as they should."""
import json
from pathlib import Path

import pytest

from lab import benchmarks, loop
from lab.config import make_config
from lab.estimate import CPU_0_5B, IMPORTS_S, estimate_job, estimate_study, format_estimate, sampling_rate
from lab.protocol import load_protocol


@pytest.fixture
def converted_cache(tmp_path):
    """A model cache holding the converted 0.5B model, so no one-time conversion is estimated."""
    (tmp_path / "models" / "qwen2.5-coder-0.5b-instruct-abc").mkdir(parents=True)
    (tmp_path / "models" / "qwen2.5-coder-0.5b-instruct-abc" / "converted.json").write_text("{}")
    return str(tmp_path)


def test_the_estimate_has_the_loops_stages_in_order():
    estimate = estimate_job(make_config("tiny", **{"loop.iterations": 2}))
    names = [(s.iteration, s.name) for s in estimate.stages]
    assert names == ([(0, name) for name in loop.BOOTSTRAP_STAGES] + [(1, name) for name in loop.ITERATION_STAGES]
                     + [(2, name) for name in loop.ITERATION_STAGES])


def test_the_tiny_preset_takes_seconds():
    estimate = estimate_job(make_config("tiny"))
    assert estimate.calibrated and estimate.total_s < 60
    assert "estimated ~" in format_estimate(make_config("tiny"), estimate)


def test_the_cpu_preset_is_estimated_near_its_measured_job_time(converted_cache, tmp_path, monkeypatch):
    # the job as it was measured (docs/results.md, 2026-12-02): int8 sampling, SFT kept without a gate, and
    # the unit costs alone (no precision or policy-step benchmark recorded since)
    unit_costs = {name: section for name, section in json.loads(benchmarks.BENCHMARKS_PATH.read_text()).items()
                  if name.startswith("unit_costs")}
    monkeypatch.setattr(benchmarks, "BENCHMARKS_PATH", tmp_path / "benchmarks.json")
    benchmarks.BENCHMARKS_PATH.write_text(json.dumps(unit_costs))
    config = make_config("cpu", **{"model.cache_dir": converted_cache, "model.sampling_weights": "int8",
                                   "sft.keep": "always"})
    estimate = estimate_job(config)
    assert estimate.calibrated and estimate.startup_s == IMPORTS_S
    assert 12 * 60 <= estimate.total_s <= 25 * 60  # the job's measured time and its command: docs/results.md
    text = format_estimate(config, estimate)
    assert text.startswith("this job will: bootstrap (iteration 0) and 1 self-training iteration(s) on 12 training "
                           "problems x 6 samples")
    assert "policy ppo 2 steps ~10.5 min" in text and text.splitlines()[-1].startswith("estimated ~")


def test_a_first_run_adds_the_model_conversion(tmp_path):
    config = make_config("cpu", **{"model.cache_dir": str(tmp_path)})
    estimate = estimate_job(config)
    assert estimate.startup_s > IMPORTS_S
    assert "convert the model to safetensors, once" in format_estimate(config, estimate)


def test_the_gpu_preset_claims_no_time():
    config = make_config("gpu")
    estimate = estimate_job(config)
    assert not estimate.calibrated
    text = format_estimate(config, estimate)
    assert text.splitlines()[-1].startswith("no time estimate: ") and "~" not in text


def test_sizes_move_the_estimate_as_the_unit_costs_say(converted_cache):
    base = make_config("cpu", **{"model.cache_dir": converted_cache, "sft.max_epochs": 100})
    longer = base.override(**{"sft.max_steps": 18})
    sft = lambda config: estimate_job(config).seconds(0, "sft")  # noqa: E731
    assert sft(longer) - sft(base) == pytest.approx(10 * CPU_0_5B.sft_step_s)
    bigger = base.override(**{"model.generator": "package:qwen2.5-coder-1.5b-instruct"})
    assert estimate_job(bigger).seconds(1, "policy") == pytest.approx(3 * estimate_job(base).seconds(1, "policy"))
    no_ppo = estimate_job(base.override(**{"policy.enabled": False}))
    assert no_ppo.seconds(1, "policy") == 0
    assert no_ppo.seconds(1, "validate") < estimate_job(base).seconds(1, "validate")
    more_languages = base.override(**{"data.eval_languages": "py,cpp"})
    assert estimate_job(more_languages).seconds(1, "evaluate") > 1.9 * estimate_job(base).seconds(1, "evaluate")
    # PPO off: iteration 2 evaluates the samples iteration 1 drew from the same generator, so it only scores
    two = base.override(**{"policy.enabled": False, "loop.iterations": 2})
    assert estimate_job(two).seconds(2, "evaluate") < 0.5 * estimate_job(two).seconds(1, "evaluate")
    assert estimate_job(base.override(**{"loop.iterations": 2})).seconds(2, "evaluate") == pytest.approx(
        estimate_job(base).seconds(1, "evaluate"))


def test_a_user_evaluation_file_counts_its_rows(tmp_path, converted_cache):
    rows = tmp_path / "mine.jsonl"
    rows.write_text("".join(json.dumps({"id": f"p{i}"}) + "\n" for i in range(3)))
    config = make_config("cpu", **{"model.cache_dir": converted_cache, "data.eval_benchmarks": f"jsonl:{rows}"})
    assert "jsonl:" + str(rows) + "-py 3 problems" in estimate_job(config).stages[-1].work


def test_a_recorded_policy_step_sizes_the_policy_stage_in_proportion(converted_cache, tmp_path, monkeypatch):
    monkeypatch.setattr(benchmarks, "BENCHMARKS_PATH", tmp_path / "benchmarks.json")
    config = make_config("cpu", **{"model.cache_dir": converted_cache})
    unrecorded = estimate_job(config).seconds(1, "policy")
    benchmarks.record("policy_steps", {"generator": config.model.generator, "methods": {
        "ppo": {"seconds_per_step": 40.0, "batch_size": 4, "response_length": 96, "epochs": 2},
        "rloo": {"seconds_per_step": 10.0, "batch_size": 8, "response_length": 48, "epochs": 1}}},
        "python scripts/bench_ppo.py --record")
    load = estimate_job(config.override(**{"policy.steps": 0})).seconds(1, "policy")
    ppo, rloo = (estimate_job(config.override(**{"policy.method": method})).seconds(1, "policy") - load
                 for method in ("ppo", "rloo"))
    assert ppo == pytest.approx(config.policy.steps * 40.0 * 4 / 2)  # the cpu preset's 4 epochs, measured at 2
    assert rloo == pytest.approx(config.policy.steps * 10.0 * 4 / 8 * 96 / 48)
    assert unrecorded == pytest.approx(load + config.policy.steps * CPU_0_5B.ppo_step_s * 4)



def test_a_recorded_precision_scales_the_unit_cost_by_its_speed_ratio_to_int8(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmarks, "BENCHMARKS_PATH", tmp_path / "benchmarks.json")
    config = make_config("cpu", **{"model.sampling_weights": "float32"})
    assert sampling_rate(config, CPU_0_5B) == CPU_0_5B.sampled_tokens_per_s  # nothing recorded
    figures = {"problems": 84, "num_samples": 4, "baseline": "float32",
               "precisions": {"float32": {"tokens_per_s": 13.0}, "int8": {"tokens_per_s": 26.0}}}
    benchmarks.record("precision", figures, "python scripts/bench_precision.py --record")
    assert sampling_rate(config, CPU_0_5B) == pytest.approx(CPU_0_5B.sampled_tokens_per_s / 2)
    assert sampling_rate(config.override(**{"model.sampling_weights": "int8"}), CPU_0_5B) == pytest.approx(
        CPU_0_5B.sampled_tokens_per_s)


def test_a_study_without_sft_samples_only_the_base_models_held_out_pool():
    protocol = load_protocol(Path(__file__).parent.parent / "studies" / "reranker-v1.toml")
    names = {stage.name for _, _, stages in estimate_study(protocol).parts for stage in stages}
    assert protocol.config().sft.keep == "never" and "held-out pool" in names and "sft + gate" not in names
