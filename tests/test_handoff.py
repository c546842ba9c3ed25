"""Hand-off files for TRL, OpenRLHF and verl (lab/handoff.py) load with datasets / pyarrow with the
expected columns and rows, never hold an evaluation-only (MultiPL-E) problem, and the reward model
loads with AutoModelForSequenceClassification alone and scores as the lab does; a LoRA policy trained
elsewhere comes back as gen-k."""
import json

import pytest
import torch

from lab.__main__ import main
from lab.config import UsageError
from lab.curation import training_pairs
from lab.handoff import check_training_allowed, import_policy
from lab.loop import run_loop
from lab.models import load_reward_model
from lab.problems import LicenceError, load_problems
from lab.reward import score_completions
from lab.stages import RunContext
from lab.store import Store

SMALL = {"data.max_train_problems": "3", "data.max_validation_problems": "2", "loop.train_samples": "2",
         "sampling.max_new_tokens": "12", "sft.max_steps": "1", "reward.max_steps": "2",
         "execution.use_cache": "false"}
VERL_COLUMNS = ["data_source", "prompt", "ability", "reward_model", "extra_info"]


@pytest.fixture(scope="module")
def run_with_pairs(tiny_config, tmp_path_factory):
    """A tiny run through its first reward model, with MultiPL-E problems linked for evaluation."""
    config = tiny_config.override(lab_dir=str(tmp_path_factory.mktemp("handoff")), **SMALL)
    run_loop(config, until=(0, "train_rm"), progress=False, log=lambda line: None)
    with Store(config.store_path) as store:
        store.add_problems(load_problems("multipl-e/humaneval", language="py", data=config.data)[:3],
                           store.run_id(config.run_name), role="eval")
    return config


@pytest.fixture(scope="module")
def exported(run_with_pairs, tmp_path_factory):
    out = tmp_path_factory.mktemp("engines")
    settings = [f"{field}={value}"
                for field, value in {**SMALL, "model.cache_dir": run_with_pairs.model.cache_dir}.items()]
    assert main(["export", "engines", "--out", str(out), "--preset", "tiny", "--lab-dir", run_with_pairs.lab_dir,
                 *[arg for setting in settings for arg in ("--set", setting)]]) == 0
    return out


@pytest.mark.integration
def test_pairs_and_prompts_load_with_the_columns_each_engine_reads(run_with_pairs, exported):
    import datasets
    import pyarrow.parquet

    with Store(run_with_pairs.store_path) as store:
        run = RunContext.existing(run_with_pairs, store)
        pairs = training_pairs(run.store, run.run_id).kept
        train, validation = run.problems("train"), run.problems("validation")
    assert pairs and len(train) == 3 and len(validation) == 2
    for name in ("trl/preference.jsonl", "openrlhf/preference.jsonl"):
        loaded = datasets.load_dataset("json", data_files=str(exported / name), split="train")
        assert loaded.column_names == ["prompt", "chosen", "rejected"] and len(loaded) == len(pairs)
        assert sorted(zip(loaded["prompt"], loaded["chosen"], loaded["rejected"])) == \
            sorted((p["prompt"], p["chosen"], p["rejected"]) for p in pairs)
    prompts = datasets.load_dataset("json", data_files=str(exported / "openrlhf/prompts.jsonl"), split="train")
    assert prompts["prompt"] == [p.prompt for p in train] and "tests" in prompts.column_names

    for split, problems in (("train", train), ("validation", validation)):
        table = pyarrow.parquet.read_table(exported / "verl" / f"{split}.parquet")
        assert table.column_names == VERL_COLUMNS and table.num_rows == len(problems)
        row = datasets.load_dataset("parquet", data_files=str(exported / "verl" / f"{split}.parquet"), split="train")[0]
        assert row["prompt"][0]["role"] == "user" and problems[0].prompt.rstrip() in row["prompt"][0]["content"]
        assert row["ability"] == "code" and row["reward_model"] == {"style": "rule", "ground_truth": problems[0].tests}
        assert row["extra_info"]["problem_id"] == problems[0].id and row["extra_info"]["split"] == split

    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["reward_model"] == "default/rm-0" and manifest["pairs"] == len(pairs)


@pytest.mark.integration
def test_evaluation_only_problems_are_never_exported(exported):
    written = "".join(path.read_text(errors="replace") for path in exported.rglob("*.jsonl"))
    assert "mbpp" in written and "HumanEval" not in written and "multipl-e" not in written
    with pytest.raises(LicenceError, match="evaluation-only"):
        check_training_allowed(load_problems("multipl-e/humaneval", language="py")[0])


@pytest.mark.integration
def test_the_reward_model_loads_with_transformers_alone_and_scores_as_the_lab_does(run_with_pairs, exported):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(exported / "reward_model").eval()
    tokenizer = AutoTokenizer.from_pretrained(exported / "reward_model")
    assert model.config.num_labels == 1 and not (exported / "reward_model" / "adapter_config.json").exists()
    items = [(p.prompt, completion) for p in load_problems("mbpp", split="train", purpose="train")[:2]
             for completion in ("    return 1\n", "    pass\n")]
    with torch.no_grad():
        plain = [model(**tokenizer(prompt + completion + tokenizer.eos_token, return_tensors="pt")).logits[0, 0].item()
                 for prompt, completion in items]
    with Store(run_with_pairs.store_path) as store:
        adapter = RunContext.existing(run_with_pairs, store).reward_model_path(0)
    lab_model, lab_tokenizer = load_reward_model(run_with_pairs.model, adapter_dir=adapter)
    assert plain == pytest.approx(score_completions(lab_model, lab_tokenizer, items, progress=False), abs=2e-3)


@pytest.mark.integration
def test_a_policy_trained_elsewhere_comes_back_as_gen_k(run_with_pairs, tmp_path):
    with Store(run_with_pairs.store_path) as store:
        run = RunContext.existing(run_with_pairs, store)
        elsewhere = run.generator_at(0)[1]  # stands in for an adapter an engine saved
        with pytest.raises(UsageError, match="not a LoRA adapter"):
            import_policy(run, 1, tmp_path)
        assert import_policy(run, 1, elsewhere) == "default/gen-1"
        version, path = run.generator_at(1)
        assert version == "default/gen-1" and path == str(run.checkpoint_dir(1, "generator"))
        assert store.stage_status(run.run_id, 1, "ppo") == "done"
        assert (run.checkpoint_dir(1, "generator") / "adapter_config.json").is_file()
