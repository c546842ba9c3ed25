"""The generator must not get worse: the sampler's precision is chosen by the hardware (int8 only when
asked), and the SFT gate (lab/generators.py) keeps an SFT that lowers held-out pass@1 out of the loop."""
import json

import pytest
import torch

from lab import benchmarks, evaluation, generators, loop, run_summary
from lab.config import UsageError, make_config
from lab.measures import paired_difference_ci
from lab.models import load_generator, load_sampler, sampling_weights
from lab.sft_choice import choose_sft_recipe, parse_recipe, recipe_label
from lab.stages import ModelCache
from lab.store import Store


@pytest.mark.parametrize("asked, native_bf16, expected", [
    ("auto", True, "bfloat16"), ("auto", False, "float32"), ("none", False, "float32"),
    ("int8", True, "int8"), ("float32", True, "float32")])
def test_sampling_precision_follows_the_hardware_and_quantizes_only_when_asked(monkeypatch, asked, native_bf16,
                                                                               expected):
    monkeypatch.setattr("lab.models.cpu_has_fast_bf16", lambda: native_bf16)
    config = make_config("cpu", **{"model.device": "cpu", "model.sampling_weights": asked})
    assert sampling_weights(config.model) == expected


def test_sampler_weights_are_in_the_chosen_precision(tiny_config):
    bf16, _ = load_sampler(tiny_config.override(**{"model.sampling_weights": "bfloat16"}).model)
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16}
    with pytest.raises(ValueError, match="choose auto or one of bfloat16, float32, int8, float16"):
        sampling_weights(tiny_config.override(**{"model.sampling_weights": "int4"}).model)


def test_int8_cost_is_quoted_from_the_recorded_benchmark(tmp_path, monkeypatch):
    path = tmp_path / "benchmarks.json"
    monkeypatch.setattr(benchmarks, "BENCHMARKS_PATH", path)
    assert benchmarks.precision_cost("int8") is None
    difference = {"difference": -0.075, "ci_low": -0.12, "ci_high": -0.03, "n_problems": 84}
    figures = {"problems": 84, "num_samples": 4, "baseline": "float32", "precisions": {
        "float32": {"greedy": 0.46, "tokens_per_s": 50.0, "greedy_difference": {**difference, "difference": 0.0},
                    "sampled": 0.368, "sampled_difference": {**difference, "difference": 0.0}},
        "int8": {"greedy": 0.385, "tokens_per_s": 150.0, "greedy_difference": difference,
                 "sampled": 0.304, "sampled_difference": {**difference, "difference": -0.064}}}}
    benchmarks.record("precision", figures, "python scripts/bench_precision.py --record")
    stored = json.loads(path.read_text())["precision"]
    assert stored["figures"] == figures and stored["command"].endswith("--record") and stored["machine"]
    text = benchmarks.precision_cost("int8")
    assert "greedy pass@1 38.5 against float32's 46.0 (-7.5 points, 95% CI -12.0 to -3.0)" in text
    assert "sampled pass@1 30.4 against float32's 36.8 (-6.4 points" in text and "on 84 MBPP validation" in text
    assert "3.00x its speed" in text and "bench_precision.py --record" in text


def comparison(sampled: float, greedy: float) -> generators.GeneratorComparison:
    def per_problem(value: float) -> dict[str, float]:
        return {"p1": value, "p2": value}
    tuned = {"greedy": per_problem(0.5 + greedy), "random": per_problem(0.5 + sampled), "oracle": per_problem(1.0)}
    base = {method: per_problem(0.5) for method in ("greedy", "random")} | {"oracle": per_problem(1.0)}
    return generators.compare(tuned, base)


@pytest.mark.parametrize("sampled, greedy, kept", [(0.1, 0.0, True), (0.1, -0.5, False), (0.0, 0.5, False),
                                                   (-0.1, 0.0, False)])
def test_auto_keeps_sft_only_when_it_samples_better_and_answers_no_worse(sampled, greedy, kept):
    decision = generators.decide("auto", comparison(sampled, greedy))
    assert decision.keep is kept
    assert decision.reason.startswith("SFT kept" if kept else "SFT rejected, gen-0 is the base model")
    assert generators.decide("always", comparison(-0.5, -0.5)).keep
    with pytest.raises(UsageError, match="sft.keep='sometimes'"):
        generators.decide("sometimes", comparison(0.1, 0.0))


@pytest.fixture(scope="module")
def knowing_base(tiny_config, tmp_path_factory):
    """A base model that passes its held-out problems: the tiny model, fully fine-tuned until it writes
    the reference solution of each of the first two MBPP validation problems (then EOS)."""
    config = tiny_config.override(**{"data.max_validation_problems": 2})
    problems = evaluation.heldout_problems(config)
    model, tokenizer = load_generator(config.model)
    model.train()
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    sequences = []
    for problem in problems:
        prompt = tokenizer(problem.prompt).input_ids
        completion = tokenizer(problem.reference + tokenizer.eos_token).input_ids
        sequences.append((torch.tensor([prompt + completion]), len(prompt)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(400):
        optimizer.zero_grad()
        for ids, prompt_length in sequences:
            labels = ids.clone()
            labels[:, :prompt_length] = -100
            model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
    out = tmp_path_factory.mktemp("knowing") / "model"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def gate_config(tmp_path, tiny_config, base_dir, keep: str):
    """A harmful SFT: a learning rate that wrecks what the base model knows."""
    return make_config("tiny", lab_dir=str(tmp_path), **{
        "model.cache_dir": tiny_config.model.cache_dir, "model.generator": f"local:{base_dir}", "sft.keep": keep,
        "sft.learning_rate": 0.05, "sft.max_steps": 12, "data.max_validation_problems": 2,
        "sampling.max_new_tokens": 160})


def sft_stage(summary: dict) -> dict:
    return next(s for s in summary["stages"] if (s["iteration"], s["name"]) == (0, "sft"))


@pytest.mark.integration
def test_sft_gate_rejects_an_sft_that_lowers_heldout_pass_at_1(tmp_path, tiny_config, knowing_base):
    config = gate_config(tmp_path, tiny_config, knowing_base, "auto")
    lines = []
    summary = loop.run_loop(config, until=(0, "validate"), progress=False, log=lines.append)
    info = sft_stage(summary)["info"]
    assert info["base_greedy"] == 1.0 and info["sft_greedy"] < info["base_greedy"] and info["kept"] is False
    assert any(line.startswith("SFT rejected, gen-0 is the base model") for line in lines)
    assert "SFT rejected, gen-0 is the base model" in run_summary.format_summary(summary)
    with Store(config.store_path) as store:
        run_id = store.run_id(config.run_name)
        assert store.checkpoint(run_id, "generator", 0) is None
        heldout_models = {c["model"] for c in store.candidates(run_id, role="validation", origin="sample")}
        pool_rows = store.candidates(run_id, role="validation", model=config.model.generator)
    assert heldout_models == {config.model.generator, f"{config.run_name}/gen-0"}  # the gate sampled both
    assert {c["origin"] for c in pool_rows} == {"greedy", "sample"}
    heldout = {m["name"]: m["value"] for m in summary["measurements"] if m["iteration"] == 0}
    assert heldout["top1/random"] > 0  # rm-0 is measured on the base model's samples, which pass


@pytest.mark.integration
def test_sft_gate_always_keeps_the_sft_and_still_measures_it(tmp_path, tiny_config, knowing_base):
    config = gate_config(tmp_path, tiny_config, knowing_base, "always")
    summary = loop.run_loop(config, until=(0, "sft"), progress=False, log=lambda line: None)
    info = sft_stage(summary)["info"]
    assert info["kept"] is True and info["sft_greedy"] < info["base_greedy"]
    with Store(config.store_path) as store:
        assert store.checkpoint(store.run_id(config.run_name), "generator", 0)["version"] == f"{config.run_name}/gen-0"


def test_generator_comparison_is_paired_over_problems():
    tuned = {"greedy": {"a": 1.0, "b": 0.0}, "random": {"a": 0.5, "b": 0.5}, "oracle": {"a": 1.0, "b": 1.0}}
    base = {"greedy": {"a": 0.0, "b": 0.0, "c": 1.0}, "random": {"a": 0.25, "b": 0.25}, "oracle": {"a": 1.0, "b": 0.0}}
    result = generators.compare(tuned, base)
    assert result.differences["greedy"] == paired_difference_ci(tuned["greedy"], base["greedy"])
    assert result.differences["greedy"]["n_problems"] == 2 and result.baseline["greedy"] == pytest.approx(1 / 3)
    assert result.tuned["random"] == 0.5 and result.differences["random"]["difference"] == pytest.approx(0.25)


@pytest.mark.integration
def test_sft_recipe_choice_measures_each_recipe_against_the_base_model(tmp_path, tiny_config, knowing_base):
    config = gate_config(tmp_path, tiny_config, knowing_base, "auto")
    recipes = [parse_recipe("sft.learning_rate=0.05,sft.max_steps=12"),
               parse_recipe("sft.learning_rate=1e-6,sft.max_steps=1")]
    with Store(config.store_path) as store, ModelCache(config) as models:
        run = loop.open_run(config, store, models, progress=False, log=lambda line: None)
        result = choose_sft_recipe(run, recipes)
        again = choose_sft_recipe(run, recipes[:1])  # resumes: nothing trained or sampled twice
        models_sampled = {c["model"] for c in store.candidates(run.run_id, role="validation")}
    harmful, harmless = (recipe_label(r) for r in recipes)
    assert result["base"]["greedy"] == 1.0 and result["recipes"][harmful].tuned["greedy"] < 1.0
    assert harmful not in result["kept"] and result["chosen"] in (None, harmless)
    assert again["recipes"][harmful] == result["recipes"][harmful]
    assert models_sampled == {config.model.generator, f"{config.run_name}/sft[{harmful}]",
                              f"{config.run_name}/sft[{harmless}]"}
    with pytest.raises(UsageError, match="recipe 'sft.max_steps'"):
        parse_recipe("sft.max_steps")


@pytest.mark.integration
def test_every_evaluation_keeps_the_base_model_and_each_generator_of_the_chain(tmp_path, tiny_config):
    config = make_config("tiny", lab_dir=str(tmp_path), **{
        "model.cache_dir": tiny_config.model.cache_dir, "data.max_train_problems": 2, "data.max_validation_problems": 2,
        "data.max_eval_problems": 2, "sampling.num_samples": 3, "sampling.max_new_tokens": 12, "sft.max_steps": 2,
        "reward.max_steps": 2, "policy.steps": 1})
    summary = loop.run_loop(config, progress=False, log=lambda line: None)
    rows = {(r["generator"], r["method"]) for r in summary["evaluations"] if r["iteration"] == 1}
    assert {("base", m) for m in generators.GENERATOR_METHODS} <= rows
    assert {("gen-0", m) for m in generators.GENERATOR_METHODS} <= rows
    assert {("gen-1", m) for m in ("greedy", "random", "logprob", "reranker", "oracle")} <= rows
    assert not {m for g, m in rows if g in ("base", "gen-0")} - set(generators.GENERATOR_METHODS)  # rankers: gen-1's
    table = summary["table_markdown"].splitlines()
    base_row = next(i for i, line in enumerate(table) if line.startswith("| 1 | base model (no SFT) | greedy"))
    assert base_row < next(i for i, line in enumerate(table) if line.startswith("| 1 | gen-1 | trained reranker"))
    measured = {(m["iteration"], m["eval_set"], m["measure"], m["subject"]) for m in summary["measurements"]}
    for eval_set in ("humaneval-py", "mbpp-validation"):
        assert (1, eval_set, "greedy_difference", "gen-1 - gen-0") in measured
    assert (1, "humaneval-py", "sampled_difference", "gen-0 - base") in measured
    assert (0, "mbpp-validation", "sampled_difference", "sft - base") in measured  # the SFT gate's comparison
