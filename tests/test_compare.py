"""compare.py and `python -m lab eval --compare`: runs side by side from what the store holds (pass@1
and ranking accuracy of the latest evaluated iteration, held-out measurements per iteration, the
config difference), and clear refusals."""
import json

import pytest

from lab import compare
from lab.__main__ import main
from lab.config import make_config
from lab.records import MeasureKey, Measurement
from lab.store import Store, StoreError


def add_run(store: Store, name: str, *, config: dict, iterations=(1,), reranker_ranking=1.0) -> int:
    """A run evaluated in each iteration, with the measurements the evaluation and the RM training store."""
    run_id = store.create_run(name, "tiny", json.dumps(config))
    for k in iterations:
        store.add_evaluations(run_id, k, [
            {"benchmark": "humaneval", "language": "py", "generator": generator, "method": method, "pass_at_1": value,
             "ci_low": 0.0, "ci_high": 1.0, "n_problems": 1}
            for generator, method, value in ((f"gen-{k}", "reranker", 0.1 * k), (f"gen-{k}", "greedy", 1.0),
                                             ("base", "greedy", 0.5))])
        store.add_measurements(run_id, k, "humaneval-py", {
            MeasureKey("ranking_accuracy", "logprob"): Measurement(0.5, 2),
            MeasureKey("ranking_accuracy", "reranker"): Measurement(reranker_ranking / k, 2),
            MeasureKey("ranking_accuracy", "reranker+logprob"): Measurement(None, 0),
            MeasureKey("length_correlation", "passed"): Measurement(0.1, 3)})
        store.add_measurements(run_id, k, "mbpp-validation",
                               {MeasureKey("pair_accuracy", "reranker"): Measurement(0.5 + 0.1 * k, 20)})
    return run_id


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "lab.sqlite") as store:
        base = json.loads(make_config("tiny", **{"lab_dir": "/a"}).to_json())
        add_run(store, "base", config={**base, "run_name": "base"}, iterations=(1, 2))
        ablation = json.loads(make_config("tiny", **{"lab_dir": "/b", "sampling.temperature": 0.4,
                                                     "data.eval_languages": "py,cpp"}).to_json())
        add_run(store, "ablation", config={**ablation, "run_name": "ablation"}, reranker_ranking=0.0)
        yield store


def test_pass_at_1_is_each_runs_latest_evaluated_iteration(store):
    comparison = compare.compare_runs(store, ["base", "ablation"])
    assert comparison.evaluated_iteration == {"base": 2, "ablation": 1}
    cells = {(row["generator"], row["method"]): {run: cell["pass_at_1"] for run, cell in row["by_run"].items()}
             for row in comparison.pass_at_1}
    # each run's own generator (gen-2 and gen-1) side by side, the base model's rows apart and after
    assert list(cells) == [("", "greedy"), ("", "reranker"), ("base", "greedy")]
    assert cells[("", "reranker")] == {"base": 0.2, "ablation": 0.1}
    assert cells[("base", "greedy")] == {"base": 0.5, "ablation": 0.5}


def test_ranking_accuracy_is_the_stored_measure_of_the_latest_evaluated_iteration(store):
    comparison = compare.compare_runs(store, ["base", "ablation"])
    rows = {(r["eval_set"], r["ranker"]): {run: cell["value"] for run, cell in r["by_run"].items()}
            for r in comparison.ranking}
    assert rows == {("humaneval-py", "logprob"): {"base": 0.5, "ablation": 0.5},
                    ("humaneval-py", "reranker"): {"base": 0.5, "ablation": 0.0}}  # base: iteration 2, 1.0 / 2


def test_heldout_rows_cover_every_iteration_of_every_run(store):
    comparison = compare.compare_runs(store, ["base", "ablation"])
    table = {(r["name"], r["iteration"]): {run: cell["value"] for run, cell in r["by_run"].items()}
             for r in comparison.heldout}
    assert comparison.heldout_set == "mbpp-validation"
    assert table == {("pair_accuracy/reranker", 1): {"base": 0.6, "ablation": 0.6},
                     ("pair_accuracy/reranker", 2): {"base": 0.7}}


def test_the_config_difference_lists_only_fields_that_differ(store):
    diff = {row["field"]: row["by_run"] for row in compare.compare_runs(store, ["base", "ablation"]).config_diff}
    assert set(diff) == {"sampling.temperature", "data.eval_languages"}
    assert diff["data.eval_languages"] == {"base": ["py"], "ablation": ["py", "cpp"]}
    assert compare.config_difference({"a": '{"x": {"y": 1}}', "b": "{}"}) == [
        {"field": "x.y", "by_run": {"a": 1, "b": "(not set)"}}]
    with pytest.raises(ValueError, match="run 'b'.*not JSON"):
        compare.config_difference({"a": "{}", "b": "{oops"})


def test_the_markdown_has_the_four_sections_and_escapes_cells(store):
    store.create_run("never-evaluated", "tiny", json.dumps({"note": "a|b"}))
    markdown = compare.comparison_markdown(compare.compare_runs(store, ["base", "never-evaluated"]))
    assert "**base** (iteration 2), **never-evaluated** (not evaluated)" in markdown
    for heading in ("pass@1", "Ranking accuracy", "Reward model on held-out problems", "Config differences"):
        assert f"#### {heading}" in markdown
    assert "| humaneval | py | trained reranker top-1 | 20.0 (0–100) | – |" in markdown
    assert "| note | (not set) | a\\|b |" in markdown
    assert "| pair_accuracy/reranker | 2 | 0.700 (n=20) | – |" in markdown
    assert "| humaneval-py | trained reranker top-1 | 50.0 (n=2) | – |" in markdown


def test_comparing_refuses_unknown_runs_and_fewer_than_two(store):
    with pytest.raises(StoreError, match="no run called 'missing'.*base"):
        compare.compare_runs(store, ["base", "missing"])
    with pytest.raises(ValueError, match="two or more different runs"):
        compare.compare_runs(store, ["base", "base"])


def test_the_command_line_prints_the_comparison(store, capsys):
    lab_dir = str(store.path.parent)
    assert main(["eval", "--lab-dir", lab_dir, "--compare", "base", "ablation"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Runs compared: **base**") and "| sampling.temperature |" in out
    assert main(["eval", "--lab-dir", lab_dir, "--compare", "base"]) == 2
    assert "two or more different runs" in capsys.readouterr().err
