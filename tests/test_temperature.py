"""The temperature is chosen on MBPP validation only (lab/temperature.py): each temperature's samples are
kept under their own model name apart from the run's, a rerun adds nothing and loads no model, evaluation
problems are never sampled (MBPP test, the 'mbpp' benchmark, is refused when linked as validation; the
store itself refuses MultiPL-E there), and the choice follows log-prob top-1."""
import pytest

from lab.config import UsageError
from lab.evaluation import eval_problems
from lab.loop import run_loop
from lab.problems import load_problems
from lab.stages import ModelCache, RunContext
from lab.store import Store
from lab.temperature import TEMPERATURE_SET, choose_temperature, pick_temperature, temperature_model_name

SMALL = {"data.max_train_problems": "2", "data.max_validation_problems": "2", "sampling.num_samples": "3",
         "sampling.max_new_tokens": "12", "sft.max_steps": "2", "reward.max_steps": "2"}
GRID = (0.5, 1.0)


@pytest.fixture(scope="module")
def bootstrapped(tiny_config, tmp_path_factory):
    """A tiny run up to the end of iteration 0 (gen-0 and its own validation samples), with the
    evaluation problems linked too, as a later 'evaluate' stage would."""
    config = tiny_config.override(lab_dir=str(tmp_path_factory.mktemp("temperature")), **SMALL)
    run_loop(config, until=(0, "validate"), progress=False, log=lambda line: None)
    with Store(config.store_path) as store:
        run_id = store.run_id(config.run_name)
        for problems in eval_problems(config).values():
            store.add_problems(problems, run_id, role="eval")
    return config


def candidate_keys(store, run_id):
    return sorted((c["problem_id"], c["model"], c["sample_index"], c["passed"]) for c in store.candidates(run_id))


@pytest.mark.integration
def test_each_temperature_is_stored_under_its_own_name_and_a_rerun_adds_nothing(bootstrapped, monkeypatch):
    config = bootstrapped
    with Store(config.store_path) as store:
        run = RunContext.existing(config, store, log=lambda line: None)
        generator, _ = run.generator_at(0)
        before = store.candidates(run.run_id)
        result = choose_temperature(run, 0, GRID)
        after = candidate_keys(store, run.run_id)
        monkeypatch.setattr(ModelCache, "generator",
                            lambda self, adapter_dir: pytest.fail("a rerun loaded the generator"))
        choose_temperature(run, 0, GRID)
        again = candidate_keys(store, run.run_id)
        validation = {p.id for p in run.problems("validation")}
        added = [c for c in store.candidates(run.run_id) if c["id"] not in {b["id"] for b in before}]
        recorded = {m["name"]: m["value"] for m in store.measurements(run.run_id, TEMPERATURE_SET)}

    assert generator == f"{config.run_name}/gen-0"
    assert {c["model"] for c in added} == {temperature_model_name(generator, t) for t in GRID}
    for t in GRID:
        rows = [c for c in added if c["model"] == temperature_model_name(generator, t)]
        assert {c["temperature"] for c in rows} == {t} and {c["problem_id"] for c in rows} == validation
        assert len(rows) == len(validation) * config.sampling.num_samples
        assert all(c["passed"] is not None for c in rows)
    assert again == after
    assert result["chosen"] in GRID and recorded["chosen_temperature"] == result["chosen"]
    assert {f"top1/{m}@t={t:g}" for m in ("random", "logprob", "oracle") for t in GRID} <= set(recorded)


@pytest.mark.integration
def test_evaluation_problems_are_never_sampled_and_refused_as_validation(bootstrapped):
    config = bootstrapped
    with Store(config.store_path) as store:
        run = RunContext.existing(config, store, log=lambda line: None)
        choose_temperature(run, 0, GRID)
        evaluation = run.problems("eval")
        assert evaluation and not any(store.candidates(run.run_id, problem_id=p.id) for p in evaluation)

        leaky = config.override(run_name="leaky")
        leaky_id = store.create_run(leaky.run_name, leaky.preset, leaky.to_json())
        store.ensure_iteration(leaky_id, 0)
        mbpp_test = load_problems("mbpp", split="test", data=config.data)[:1]  # the 'mbpp' evaluation benchmark
        store.add_problems(mbpp_test, leaky_id, role="validation")
        with pytest.raises(UsageError, match="not held-out MBPP"):
            choose_temperature(RunContext.existing(leaky, store, log=lambda line: None), 0, GRID)
        assert not store.candidates(leaky_id)


def test_the_choice_follows_log_prob_top1_then_oracle_then_the_current_temperature():
    def rows(random, logprob, oracle):
        return {"random": {"pass_at_1": random}, "logprob": {"pass_at_1": logprob}, "oracle": {"pass_at_1": oracle}}

    # the best random pick and the best oracle lose to the best log-prob top-1
    assert pick_temperature({0.2: rows(0.6, 0.5, 0.6), 0.6: rows(0.4, 0.6, 0.7), 1.0: rows(0.2, 0.4, 0.9)}, 0.2) == 0.6
    assert pick_temperature({0.2: rows(0.6, 0.5, 0.6), 1.0: rows(0.2, 0.5, 0.9)}, 0.2) == 1.0
    assert pick_temperature({0.2: rows(0.6, 0.5, 0.9), 0.8: rows(0.2, 0.5, 0.9)}, 0.8) == 0.8
    assert pick_temperature({0.6: rows(0, 0, 0), 0.2: rows(0, 0, 0)}, 0.8) == 0.2
