"""Configuration: presets, dotted overrides with type parsing, and clear errors."""
import pytest

from lab.config import LabConfig, make_config, parse_assignments


def test_presets_differ_where_they_should():
    tiny, cpu, gpu = (make_config(p) for p in ("tiny", "cpu", "gpu"))
    assert tiny.model.generator == "tiny"
    assert cpu.model.generator == "package:qwen2.5-coder-0.5b-instruct"
    assert gpu.model.load_in_4bit is True and gpu.model.generator == "package:qwen2.5-coder-1.5b-instruct"
    assert tiny.sampling.num_samples < cpu.sampling.num_samples


def test_overrides_parse_strings_to_the_field_type():
    config = make_config("tiny", **parse_assignments([
        "sampling.num_samples=7", "sampling.temperature=0.5", "model.load_in_4bit=true",
        "data.max_train_problems=none", "data.eval_languages=py,cpp", "run_name=exp1",
    ]))
    assert config.sampling.num_samples == 7 and config.sampling.temperature == 0.5
    assert config.model.load_in_4bit is True and config.data.max_train_problems is None
    assert config.data.eval_languages == ("py", "cpp") and config.run_name == "exp1"


def test_override_returns_a_copy_and_leaves_the_original_alone():
    base = make_config("tiny")
    changed = base.override(**{"sampling.num_samples": 2})
    assert base.sampling.num_samples == 4 and changed.sampling.num_samples == 2


@pytest.mark.parametrize("assignment, message", [
    ({"sampling.num_sample": 3}, "unknown config field 'sampling.num_sample'"),
    ({"nosuch.field": 3}, "unknown config field 'nosuch.field'"),
    ({"sampling": 3}, "unknown config field 'sampling'"),
    ({"sampling.num_samples": "many"}, "sampling.num_samples: cannot read 'many' as int"),
    ({"model.load_in_4bit": "perhaps"}, "model.load_in_4bit: cannot read 'perhaps'"),
])
def test_bad_overrides_name_the_field(assignment, message):
    with pytest.raises((KeyError, ValueError), match=message):
        make_config("tiny", **assignment)


def test_malformed_cli_assignment_and_unknown_preset():
    with pytest.raises(ValueError, match="expected SECTION.FIELD=VALUE"):
        parse_assignments(["sampling.num_samples"])
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        make_config("huge")


def test_paths_derive_from_lab_dir_and_run_name(tmp_path):
    config = LabConfig(lab_dir=str(tmp_path), run_name="exp")
    assert config.store_path == tmp_path / "lab.sqlite" and config.run_dir == tmp_path / "exp"


def test_a_renamed_field_sets_the_field_now_and_a_reshaped_one_says_what_it_became():
    assert make_config("tiny", **{"ppo.enabled": "false", "ppo.num_ppo_epochs": "2"}).policy.ppo_epochs == 2
    assert make_config("tiny", **{"ppo.enabled": "false"}).policy.enabled is False
    with pytest.raises(ValueError, match="'ppo.total_episodes' is now policy.steps"):
        make_config("tiny", **{"ppo.total_episodes": "8"})


def test_a_run_stored_before_the_policy_stage_continues_and_compares_with_its_settings():
    """Its `ppo` section is read as `policy` (total_episodes / batch_size = steps): continued, it keeps PPO
    off and its one epoch; compared with a run now, ppo.* fields are not reported as dropped."""
    import json

    from lab.launcher import run_overrides
    from lab.stored_config import config_difference

    stored = make_config("cpu").to_dict()
    del stored["policy"]
    stored["ppo"] = {"enabled": False, "total_episodes": 8, "batch_size": 4, "mini_batch_size": 2, "num_ppo_epochs": 1,
                     "learning_rate": 1e-5, "kl_coef": 0.05, "response_length": 96, "missing_eos_penalty": 1.0,
                     "empty_completion_penalty": 1.0}
    assert run_overrides(json.dumps(stored), "cpu") == ["policy.enabled=False", "policy.ppo_epochs=1"]
    differing = {row["field"]: row["by_run"] for row in config_difference({"old": json.dumps(stored),
                                                                           "now": make_config("cpu").to_json()})}
    assert differing["policy.enabled"] == {"old": False, "now": True}
    assert differing["policy.method"] == {"old": "(not set)", "now": "ppo"}
    assert not any(field.startswith("ppo.") for field in differing) and "policy.steps" not in differing
