"""scripts/headline.py on a finished tiny run: the issue's keys, fractions in [0, 1], problem counts
that agree with each other, paired differences only over problems both sides cover, and held-out
measures recomputed from the store that equal what the loop's validate stage stored."""
import json
import subprocess
import sys

import pytest

from lab.config import repo_root
from lab.measures import HELDOUT_SET, PREVIOUS_RERANKER
from lab.store import Store


@pytest.mark.integration
def test_headline_of_an_evaluated_run(finished_tiny_run, tmp_path):
    config = finished_tiny_run
    out = tmp_path / "headline.json"
    done = subprocess.run([sys.executable, str(repo_root() / "scripts" / "headline.py"), "--run", config.run_name,
                           "--lab-dir", str(config.lab_dir), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["benchmark"] == "humaneval-py" and result["problems"] == 3 and result["num_samples"] == 3
    # the examples-filter rows come with them: the evaluation checks every candidate against the visible examples
    assert set(result["pass_at_1"]) == {"greedy", "random", "logprob", "reranker", "reranker+logprob", "oracle",
                                        "filter+logprob", "filter+reranker"}
    assert all(0 <= v <= 1 for v in result["pass_at_1"].values() if v is not None)
    assert set(result["ranking_accuracy"]) >= {"logprob", "reranker"}
    assert set(result["length_correlation"]) >= {"passed", "logprob", "reranker"}
    assert result["config"]["sampling"]["num_samples"] == 3 and len(result["commit"]) == 40
    for name, difference in result["ranking_differences"].items():
        assert difference["n_problems"] <= result["ranking_problems"] <= result["problems"], name
        if difference["n_problems"]:
            assert difference["ci_low"] <= difference["difference"] <= difference["ci_high"], name
    for difference in result["paired_differences"].values():
        assert difference["n_problems"] <= result["problems"]
    assert f"{result['problems']} problems" in done.stdout and "ranking accuracy, paired" in done.stdout
    with Store(config.store_path) as store:
        run_id = store.run_id(config.run_name)
        stored = {m["name"]: m for m in store.measurements(run_id, HELDOUT_SET)
                  if m["iteration"] == result["iteration"]}
        evaluated = {m["name"]: m["value"] for m in store.measurements(run_id, "humaneval-py")
                     if m["iteration"] == result["iteration"] and PREVIOUS_RERANKER in m["name"]}
    # rm-(k-1) on the same HumanEval candidates, as the evaluate stage measured it
    assert result["iteration"] == 1 and evaluated
    assert {name: row["value"] for name, row in result["previous_reranker"].items()} == evaluated
    assert stored and set(result["heldout"]) == set(stored)
    for name, value in result["heldout"].items():
        assert value == stored[name]["value"] and result["heldout_counts"][name] == stored[name]["count"], name
        if name in result["heldout_ci"]:
            low, high = result["heldout_ci"][name]
            assert [low, high] == [stored[name]["ci_low"], stored[name]["ci_high"]], name
            assert low is None or low <= value <= high, name
    assert result["heldout_pair_accuracy"] == stored["pair_accuracy/reranker"]["value"]
