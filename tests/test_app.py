"""The app without a browser: its views (ranking and flags, the mining rule, filters and pages,
escaping of hostile content, non-UTF-8 text through the store's reader) and its handlers called
directly (empty store, unknown run, labels on unknown or deleted candidates, paging past the end,
metrics, held-out curves, pairs with reference solutions, comparison, export)."""
import inspect
import json
import random
from pathlib import Path

import pytest
from conftest import execution_result

from lab import app
from lab import app_views as views
from lab.config import MiningConfig
from lab.mining import hard_negatives
from lab.problems import Problem
from lab.records import MeasureKey, Measurement
from lab.store import Store

HOSTILE = ['<script>alert(1)</script>', '</pre><img src=x onerror=alert(2)>']


def fill_store(store: Store, *, problems: int = 6, samples: int = 4, iteration: int = 1, seed: int = 0,
               run_name: str = "demo", mining: dict | None = None) -> int:
    """A run with scored, executed candidates: problem 0 is a reranker mistake, problem 1 all-fail,
    and the rest random. Returns the run id."""
    rng = random.Random(seed)
    config = {"sampling": {"num_samples": samples}, **({"mining": mining} if mining else {})}
    run_id = store.create_run(run_name, "tiny", json.dumps(config))
    store.ensure_iteration(run_id, iteration)
    batch = [Problem(id=f"mbpp/{600 + i}", language="py" if i % 3 else "cpp", prompt=f"def f{i}(x):\n",
                     tests="assert True\n", stop_tokens=("\ndef",), entry_point=f"f{i}", source="test",
                     split="train" if i % 2 else "validation", training_allowed=True) for i in range(problems)]
    store.add_problems(batch, run_id, "train")
    version = f"rm-{run_name}-{iteration}"
    store.add_checkpoint(run_id, iteration, "reward_model", version, "/nowhere", {})
    for index, problem in enumerate(batch):
        ids = store.add_candidates(run_id, iteration, [
            {"problem_id": problem.id, "model": "gen", "sample_index": s, "completion": f"    return x + {s}\n",
             "mean_logprob": -rng.random(), "num_tokens": 5} for s in range(samples)])
        if index == 0:
            passed, rewards = [False, True] + [False] * (samples - 2), [0.9, 0.5] + [0.1] * (samples - 2)
        elif index == 1:
            passed, rewards = [False] * samples, [rng.random() for _ in ids]
        else:
            passed, rewards = [rng.random() < 0.5 for _ in ids], [rng.random() for _ in ids]
        store.add_executions([(cid, execution_result(ok, stderr="" if ok else "Traceback ...\nAssertionError"))
                              for cid, ok in zip(ids, passed)])
        store.add_scores(version, list(zip(ids, rewards)))
    return run_id


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "lab.sqlite") as store:
        yield store


@pytest.fixture
def lab(tmp_path):
    lab = app.Lab.open(tmp_path / "lab")
    yield lab
    lab.store.close()


def scope(store, iteration=1, run_name="demo"):
    return views.scope_of(store, run_name, iteration)


def candidate_of(store, problem_id, sample_index, run_id=1):
    return next(c for c in store.candidates(run_id, problem_id=problem_id, origin="sample")
                if c["sample_index"] == sample_index)


def delete_candidate(store, candidate_id):
    for table in ("executions", "scores", "labels"):
        store.db.execute(f"DELETE FROM {table} WHERE candidate_id = ?", (candidate_id,))
    store.db.execute("DELETE FROM candidates WHERE id = ?", (candidate_id,))


# ------------------------------------------------------------------ views: ranking and flags

def test_ranking_and_mistake_flags(store):
    run_id = fill_store(store, mining={"top_k": 1})
    ranked = views.ranked_candidates(store, scope(store), "mbpp/600")
    assert [c["rank"] for c in ranked] == [1, 2, 3, 4] and [c["reward"] for c in ranked] == [0.9, 0.5, 0.1, 0.1]
    assert ranked[0]["passed"] == 0 and ranked[0]["suspected"]
    assert ranked[1]["passed"] == 1 and not any(c["suspected"] for c in ranked[1:])
    summary = views.problem_summary(store, scope(store), "mbpp/600")
    assert summary["mistake"] and summary["n_suspected"] == 1 and summary["ranked_by"] == "rm-demo-1"
    assert summary["prompt"] == "def f0(x):\n" and run_id == 1
    assert "Reranker mistake" in views.problem_html(summary, "ranked by rm-demo-1", [])


def test_suspected_is_the_mining_rule_with_the_runs_mining_config(store):
    """Default mining (top 3 by reward) also flags the low failing sample ranked third; the app and
    mining.hard_negatives agree on every problem, labels included."""
    fill_store(store, problems=12, samples=6, seed=3)
    some = store.candidates(1, problem_id="mbpp/605")
    store.add_label(some[0]["id"], "hard_negative", "alice")
    store.add_label(some[1]["id"], "positive", "alice")
    for problem in (f"mbpp/{600 + i}" for i in range(12)):
        suspected = {c["id"] for c in views.ranked_candidates(store, scope(store), problem) if c["suspected"]}
        expected = set(hard_negatives(store.candidates(1, problem_id=problem, reward_model="rm-demo-1"), MiningConfig()))
        assert suspected == expected, problem
    flagged = [c["sample_index"] for c in views.ranked_candidates(store, scope(store), "mbpp/600") if c["suspected"]]
    assert flagged == [0, 2]


def test_mining_config_reads_the_stored_section_and_rejects_garbage():
    assert views.mining_config('{"mining": {"top_k": 1, "unknown": 5}}') == MiningConfig(top_k=1)
    assert views.mining_config("{}") == views.mining_config("") == MiningConfig()
    with pytest.raises(ValueError, match="run 'r'.*not a JSON object"):
        views.mining_config("[1, 2]", "r")


def test_each_problem_is_ranked_by_the_reward_model_that_scored_it(store):
    """The loop scores iteration k's training samples with rm-(k-1) and its eval samples with rm-k;
    a few training candidates (manually labelled ones) may also carry a newer score."""
    run_id = fill_store(store, problems=2)
    store.add_checkpoint(run_id, 0, "reward_model", "rm-0", "/nowhere", {})
    train = [c["id"] for c in store.candidates(run_id, problem_id="mbpp/600")]
    store.db.execute("DELETE FROM scores WHERE candidate_id IN (%s) AND candidate_id != ?" % ",".join("?" * len(train)),
                     (*train, train[0]))
    store.add_scores("rm-0", [(cid, -float(i)) for i, cid in enumerate(train)])
    summary = views.problem_summary(store, scope(store), "mbpp/600")
    assert summary["ranked_by"] == "rm-0" and summary["ranked_by_iteration"] == 0
    assert views.problem_summary(store, scope(store), "mbpp/601")["ranked_by"] == "rm-demo-1"
    assert [c["reward"] for c in views.ranked_candidates(store, scope(store), "mbpp/600")] == [0.0, -1.0, -2.0, -3.0]
    assert "mined this iteration's hard negatives" in views.ranking_note(summary, 1)


def test_a_passing_reference_is_no_reranker_mistake_but_still_exposes_hard_negatives(store):
    run_id = fill_store(store, problems=2)
    [reference] = store.add_candidates(run_id, 1, [{"problem_id": "mbpp/601", "origin": "reference", "model": "reference",
                                                    "sample_index": 0, "completion": "    return x\n"}])
    store.add_executions([(reference, execution_result(True))])
    store.add_scores("rm-demo-1", [(reference, 0.0)])
    summary = views.problem_summary(store, scope(store), "mbpp/601")
    assert summary["n_pass"] == 1 and summary["all_fail"] and not summary["mistake"]
    ranked = views.ranked_candidates(store, scope(store), "mbpp/601")
    assert all(c["suspected"] for c in ranked if c["origin"] == "sample")
    page = views.problem_html(summary, "", []) + views.candidates_html(ranked, "py", None)
    assert "All sampled candidates fail" in page and "reference solution" in page


def test_without_scores_candidates_are_ranked_by_logprob_and_none_is_suspected(store):
    run_id = store.create_run("r", "tiny", "{}")
    store.add_problems([Problem("p/1", "py", "def f():\n", "", (), "f", "test", "train", True)], run_id, "train")
    ids = store.add_candidates(run_id, 1, [{"problem_id": "p/1", "model": "g", "sample_index": i, "completion": "x",
                                            "mean_logprob": lp} for i, lp in enumerate([-2.0, -0.5, -1.0])])
    store.add_executions([(ids[0], execution_result(True)), (ids[1], execution_result(False))])
    summary = views.problem_summary(store, scope(store, run_name="r"), "p/1")
    assert summary["ranked_by"] is None and "mean log-prob" in views.ranking_note(summary, 1)
    assert summary["mistake"] and summary["n_suspected"] == 0
    ranked = views.ranked_candidates(store, scope(store, run_name="r"), "p/1")
    assert [c["mean_logprob"] for c in ranked] == [-0.5, -1.0, -2.0]


def test_a_tie_ranks_the_failing_candidate_first_and_unscored_ones_last(store):
    run_id = fill_store(store, problems=1, samples=3)
    ids = [c["id"] for c in store.candidates(run_id)]
    store.add_scores("rm-demo-1", [(ids[0], 0.5), (ids[1], 0.5)])
    store.db.execute("DELETE FROM scores WHERE candidate_id = ?", (ids[2],))
    ranked = views.ranked_candidates(store, scope(store), "mbpp/600")
    assert [(c["id"], c["passed"]) for c in ranked] == [(ids[0], 0), (ids[1], 1), (ids[2], 0)]
    assert views.problem_summary(store, scope(store), "mbpp/600")["mistake"]


def test_mined_hard_negative_pairs_count_as_suspected(store):
    run_id = fill_store(store, mining={"top_k": 1})
    low_failing = candidate_of(store, "mbpp/600", 3)
    passing = candidate_of(store, "mbpp/600", 1)
    store.add_pairs(run_id, 1, [(passing["id"], low_failing["id"], "hard_negative")])
    flagged = {c["id"]: c for c in views.ranked_candidates(store, scope(store), "mbpp/600")}
    assert flagged[low_failing["id"]]["suspected"] and flagged[low_failing["id"]]["mined"]
    assert "mined as a hard negative" in views.candidate_card(flagged[low_failing["id"]], "py", None, False)


# ------------------------------------------------------------------ views: the problem list

@pytest.mark.parametrize("state, expected", [
    ("mistake", {"mbpp/600"}), ("all_fail", {"mbpp/601"}),
])
def test_state_filters(store, state, expected):
    fill_store(store)
    rows, total = views.list_problems(store, scope(store), state=state)
    assert expected <= {r["problem_id"] for r in rows} and total == len(rows)
    for row in rows:
        assert row["mistake"] if state == "mistake" else row["n_pass"] == 0


def test_an_unknown_state_is_refused_by_name(store):
    fill_store(store)
    with pytest.raises(ValueError, match="unknown problem state 'broken'"):
        views.list_problems(store, scope(store), state="broken")


def test_filters_by_language_split_search_and_unlabeled(store):
    run_id = fill_store(store)
    rows, _ = views.list_problems(store, scope(store), language="cpp")
    assert {r["problem_id"] for r in rows} == {"mbpp/600", "mbpp/603"}
    rows, _ = views.list_problems(store, scope(store), split="train")
    assert all(r["split"] == "train" for r in rows) and rows
    rows, _ = views.list_problems(store, scope(store), search="605")
    assert [r["problem_id"] for r in rows] == ["mbpp/605"]
    assert views.list_problems(store, scope(store), search="100%_") == ([], 0)
    for candidate in store.candidates(run_id, problem_id="mbpp/602"):
        store.add_label(candidate["id"], "exclude", "alice")
    rows, total = views.list_problems(store, scope(store), state="unlabeled")
    assert "mbpp/602" not in {r["problem_id"] for r in rows} and total == 5
    assert views.filter_choices(store, scope(store)) == {"language": ["cpp", "py"], "split": ["train", "validation"]}


def test_labels_count_and_undo_restores_the_previous_label(store):
    fill_store(store)
    candidate = candidate_of(store, "mbpp/600", 0)
    store.add_label(candidate["id"], "positive", "alice")
    store.add_label(candidate["id"], "hard_negative", "alice", note="looks right, fails on []")
    assert views.label_counts(store, scope(store)) == {"labeled": 1, "pending": 23, "by_label": {"hard_negative": 1}}
    store.undo_label(candidate["id"], "alice")
    assert views.label_counts(store, scope(store))["by_label"] == {"positive": 1}


def test_the_list_reads_no_code_and_opening_a_problem_reads_only_that_problem(store):
    fill_store(store, problems=500, samples=10)
    statements = []
    store.reader().db.set_trace_callback(statements.append)
    rows, total = views.list_problems(store, scope(store), offset=475)
    assert total == 500 and len(rows) == 25
    assert rows[0]["problem_id"] == sorted(f"mbpp/{600 + i}" for i in range(500))[475]
    assert not any(word in s for s in statements for word in ("completion", "stdout", "stderr", "c.*"))
    statements.clear()
    views.ranked_candidates(store, scope(store), "mbpp/700")
    views.problem_summary(store, scope(store), "mbpp/700")
    candidate_queries = [s for s in statements if "FROM candidates c" in s]
    assert candidate_queries and all("problem_id = " in s for s in candidate_queries)


# ------------------------------------------------------------------ views: safety

def test_hostile_and_non_utf8_content_is_escaped_never_rendered(store):
    fill_store(store, problems=2)
    evil = candidate_of(store, "mbpp/600", 0)
    store.db.execute("UPDATE candidates SET completion = ? WHERE id = ?", ("\n".join(HOSTILE), evil["id"]))
    store.db.execute("UPDATE executions SET stdout = ?, stderr = CAST(? AS TEXT) || ? WHERE candidate_id = ?",
                     (HOSTILE[1] * 5000, b"\xff\xfe bad bytes ", HOSTILE[0], evil["id"]))
    store.db.execute("UPDATE problems SET prompt = CAST(? AS TEXT) WHERE id = 'mbpp/600'", (b"def f(\xc3(:\n",))
    store.add_label(evil["id"], "hard_negative", "alice", note=HOSTILE[0])
    candidates = views.ranked_candidates(store, scope(store), "mbpp/600")
    page = views.candidates_html(candidates, "py", evil["id"])
    for text in HOSTILE:
        assert text not in page
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;" in page and "\ufffd" in page
    assert "earlier characters not shown" in page
    assert "\ufffd" in views.problem_summary(store, scope(store), "mbpp/600")["prompt"]


def test_the_reader_decodes_bad_bytes_refuses_writes_and_leaves_the_store_strict(store):
    import sqlite3

    fill_store(store, problems=1)
    store.db.execute("UPDATE executions SET stderr = CAST(? AS TEXT)", (b"\xff",))
    reader = store.reader()
    assert reader is store.reader() and reader.reader() is reader
    assert {c["stderr"] for c in reader.candidates(1)} == {"\ufffd"}
    with pytest.raises(sqlite3.OperationalError, match="decode"):
        store.candidates(1)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.add_label(1, "positive", "alice")
    reader.close()
    assert reader.candidates(1)[0]["stderr"] == "\ufffd"


# ------------------------------------------------------------------ views: metrics tables

def test_metrics_tables(store):
    run_id = fill_store(store)
    assert views.pass_at_1_table([]).empty and views.heldout_table([]).empty
    store.add_evaluations(run_id, 1, [
        {"benchmark": "humaneval", "language": lang, "method": method, "pass_at_1": p, "n_problems": 4}
        for lang in ("py", "cpp") for method, p in (("reranker", 0.5), ("greedy", 0.25), ("logprob", 0.3))])
    table = views.pass_at_1_table(store.evaluations(run_id))
    assert list(table.columns) == ["benchmark", "language", "generator", "method", "iter 1"] and len(table) == 6
    passing, failing = candidate_of(store, "mbpp/600", 1), candidate_of(store, "mbpp/600", 0)
    store.add_pairs(run_id, 1, [(passing["id"], failing["id"], "hard_negative")])
    store.add_label(candidate_of(store, "mbpp/602", 0)["id"], "hard_negative", "alice")
    store.add_label(candidate_of(store, "mbpp/603", 0)["id"], "hard_negative", "alice")
    store.add_label(candidate_of(store, "mbpp/603", 0)["id"], None, "alice")
    assert views.hard_negatives_per_iteration(store, run_id).to_dict("records") == [
        {"iteration": 1, "mined_pairs": 1, "mined_candidates": 1, "labeled_hard_negatives": 1}]
    store.add_measurements(run_id, 0, "mbpp-validation", {MeasureKey("pair_accuracy", "reranker"): Measurement(0.5, 10),
                                                          MeasureKey("top1", "random"): Measurement(None, 0)})
    store.add_measurements(run_id, 1, "mbpp-validation",
                           {MeasureKey("pair_accuracy", "reranker"): Measurement(0.75, 12)})
    heldout = views.heldout_table(store.measurements(run_id)).to_dict("records")
    assert heldout == [
        {"eval set": "mbpp-validation", "measure": "pair_accuracy/reranker", "iter 0": "0.500 (n=10)", "iter 1": "0.750 (n=12)"},
        {"eval set": "mbpp-validation", "measure": "top1/random", "iter 0": "– (n=0)", "iter 1": ""}]


def test_pairs_with_a_reference_solution_are_marked(store):
    run_id = fill_store(store, problems=2)
    [reference] = store.add_candidates(run_id, 0, [{"problem_id": "mbpp/600", "origin": "reference", "model": "reference",
                                                    "sample_index": 0, "completion": "    return x\n"}])
    failing, passing = candidate_of(store, "mbpp/600", 0), candidate_of(store, "mbpp/600", 1)
    store.add_pairs(run_id, 0, [(reference, failing["id"], "execution"), (passing["id"], failing["id"], "execution")])
    pairs = views.problem_pairs(store, run_id, "mbpp/600")
    assert [views.uses_reference(p) for p in pairs] == [False, True] and views.problem_pairs(store, run_id, "mbpp/601") == []
    page = views.pairs_html(pairs)
    assert "2 preference pairs" in page and "<b>1</b> with a reference solution" in page
    assert page.count('class="with-reference"') == 1
    assert views.pairs_table(store.pairs(run_id)).to_dict("records") == [
        {"iteration": 0, "kind": "execution", "pairs": 2, "with a reference solution": 1}]


# ------------------------------------------------------------------ handlers

def keys_of(*groups):
    return {name for group in groups for name in group}


def test_handlers_on_an_empty_store_explain_how_to_start(lab):
    page = app.open_app(lab, None, 1)
    assert set(page) == keys_of(app.SELECT, app.LIST, app.REVIEW, app.ITERATE_FORM, app.JOB, ["command"])
    assert "No runs yet" in page["problem_view"] and "python -m lab iterate" in page["problem_view"]
    assert page["run"]["choices"] == [] and page["page_ids"] == [] and "--run demo" in page["command"]
    assert "No iteration launched" in page["job_state"] and page["launch"]["interactive"]
    metrics = app.metrics(lab, None, None)
    assert set(metrics) == set(app.METRICS) and "No run selected" in metrics["metrics_note"]
    assert app.export_run(lab, None, "labels") == {"export_file": None, "export_message": "Pick a run first."}
    assert app.compare_view(lab, []) == {"comparison": "Pick two or more runs to compare."}


def test_an_unknown_run_falls_back_to_the_newest_or_says_so(lab):
    fill_store(lab.store, run_name="old")
    fill_store(lab.store, run_name="new", iteration=2)
    page = app.select_run(lab, "deleted-run")
    assert page["run"]["value"] == "new" and page["iteration"]["value"] == 2 and page["problem"] == "mbpp/600"
    assert "no candidates yet" in app.review(lab, "deleted-run", 1, "mbpp/600")["problem_view"]
    assert "No problem matches" in app.review(lab, "old", 1, "not/a-problem")["problem_view"]
    assert "No problem matches" in app.review(lab, "old", 7, "mbpp/600")["problem_view"]
    assert "Cannot compare: no run called 'deleted-run'" in app.compare_view(lab, ["old", "deleted-run"])["comparison"]


def test_paging_past_the_end_shows_the_last_page_and_steps_cross_pages(lab):
    fill_store(lab.store, problems=60)
    last = app.list_and_open(lab, "demo", 1, None, None, "all", "", 10_000)
    assert last["offset"] == 50 and last["page"] == "page 3 / 3 · 60 problems" and len(last["page_ids"]) == 10
    assert app.turn_page(lab, "demo", 1, None, None, "all", "", 0, -views.PAGE_SIZE)["offset"] == 0
    first = app.listing(lab, "demo", 1, None, None, "all", "", 0)
    ids = first["page_ids"]
    onward = app.step_problem(lab, "demo", 1, None, None, "all", "", 0, ids, ids[-1], 1)
    assert onward["offset"] == 25 and onward["problem"] == onward["page_ids"][0] != ids[-1]
    back = app.step_problem(lab, "demo", 1, None, None, "all", "", 25, onward["page_ids"], onward["page_ids"][0], -1)
    assert back["offset"] == 0 and back["problem"] == ids[-1]
    assert app.step_problem(lab, "demo", 1, None, None, "all", "", 0, ids, ids[0], -1)["problem"] == ids[0]
    end = app.step_problem(lab, "demo", 1, None, None, "all", "", 50, last["page_ids"], last["page_ids"][-1], 1)
    assert end["problem"] == last["page_ids"][-1] and end["offset"] == 50
    assert app.pick_problem(lab, "demo", 1, ids, 99)["problem"] is None
    assert app.pick_problem(lab, "demo", 1, ids, 3)["problem"] == ids[3]


def test_stepping_through_candidates_stops_at_either_end(lab):
    fill_store(lab.store)
    page = app.review(lab, "demo", 1, "mbpp/600")
    ids = page["candidate_ids"]
    assert page["candidate"]["value"] == ids[0] and set(page) == set(app.REVIEW)
    assert app.step_candidate(lab, "demo", 1, "mbpp/600", ids[0], ids, -1)["candidate"]["value"] == ids[0]
    assert app.step_candidate(lab, "demo", 1, "mbpp/600", ids[-1], ids, 1)["candidate"]["value"] == ids[-1]
    assert app.step_candidate(lab, "demo", 1, "mbpp/600", ids[1], ids, 1)["candidate"]["value"] == ids[2]


def label(lab, selected_id, candidate_ids, action="hard_negative", author="alice", note=""):
    return app.apply_label(lab, "demo", 1, "mbpp/600", selected_id, candidate_ids, note, author, None, None, "all", "",
                           0, action)


def test_labels_are_written_undone_and_refused_with_a_reason(lab):
    fill_store(lab.store)
    ids = app.review(lab, "demo", 1, "mbpp/600")["candidate_ids"]
    saved = label(lab, ids[1], ids, note="passes by luck")
    assert set(saved) == keys_of(app.LIST, app.REVIEW, ["note", "message"])
    assert "Saved" in saved["message"] and saved["note"] == "" and "**1** labeled" in saved["counter"]
    assert lab.store.label_history(ids[1])[-1]["note"] == "passes by luck"
    assert "Undone" in label(lab, ids[1], ids, "undo")["message"] and lab.store.current_labels(1) == {}
    assert "no label to undo" in label(lab, ids[2], ids, "undo")["message"]
    assert "Type your name" in label(lab, ids[1], ids, author="  ")["message"]
    assert "Select a candidate" in label(lab, None, ids)["message"]
    refused = label(lab, 999_999, ids, note="kept")
    assert "not shown on this page" in refused["message"] and refused["note"] == "kept"
    delete_candidate(lab.store, ids[3])
    gone = label(lab, ids[3], ids)
    assert gone["message"] == f"Not saved: no candidate {ids[3]}" and ids[3] not in gone["candidate_ids"]
    assert len(lab.store.label_history(ids[1])) == 2


def test_handlers_show_non_utf8_text_and_keep_the_store_strict(lab):
    fill_store(lab.store, problems=1)
    lab.store.db.execute("UPDATE executions SET stderr = CAST(? AS TEXT)", (b"bad \xff byte",))
    page = app.review(lab, "demo", 1, "mbpp/600")
    assert "bad \ufffd byte" in page["candidates_view"]
    assert lab.store.db.text_factory is str


def test_metrics_show_heldout_curves_pairs_and_plots(lab):
    run_id = fill_store(lab.store)
    lab.store.add_evaluations(run_id, 1, [{"benchmark": "humaneval", "language": "py", "method": m, "pass_at_1": 0.5,
                                           "ci_low": 0.25, "ci_high": 0.75, "n_problems": 4}
                                          for m in ("greedy", "reranker", "reranker+logprob")])
    lab.store.add_measurements(run_id, 1, "mbpp-validation", {
        MeasureKey("pair_accuracy", "reranker"): Measurement(0.7, 20),
        MeasureKey("length_correlation", "passed"): Measurement(-0.2, 20)})
    values = app.metrics(lab, "demo", 1)
    assert set(values) == set(app.METRICS) and values["metrics_note"] == "No hard negatives mined or labeled yet."
    assert all(values[name] is not None for name in ("pass_plot", "heldout_plot", "reward_plot"))
    assert values["hard_plot"] is None and values["compare_runs"]["choices"] == ["demo"]
    assert len(values["heldout_table"]) == 2 and len(values["pass_table"]) == 3
    without_iteration = app.metrics(lab, "demo", None)
    assert without_iteration["reward_plot"] is None and without_iteration["pass_plot"] is not None
    assert "No iteration with candidates yet" in without_iteration["metrics_note"]


def test_the_comparison_view_puts_two_runs_side_by_side(lab):
    fill_store(lab.store, run_name="a")
    fill_store(lab.store, run_name="b", mining={"top_k": 1})
    markdown = app.compare_view(lab, ["a", "b"])["comparison"]
    assert "**a** (not evaluated), **b** (not evaluated)" in markdown
    assert "| mining.top_k | (not set) | 1 |" in markdown


def test_export_writes_labels_pairs_and_a_datasets_folder(lab):
    import datasets

    run_id = fill_store(lab.store)
    passing, failing = candidate_of(lab.store, "mbpp/600", 1), candidate_of(lab.store, "mbpp/600", 0)
    lab.store.add_pairs(run_id, 1, [(passing["id"], failing["id"], "hard_negative")])
    lab.store.add_label(failing["id"], "hard_negative", "alice", note=HOSTILE[0])
    written = app.export_run(lab, "demo", "labels")
    rows = [json.loads(line) for line in Path(written["export_file"]).read_text().splitlines()]
    assert [(r["candidate_id"], r["label"], r["note"], r["author"]) for r in rows] == \
        [(failing["id"], "hard_negative", HOSTILE[0], "alice")] and "1 labels rows" in written["export_message"]
    written = app.export_run(lab, "demo", "pairs")
    assert json.loads(Path(written["export_file"]).read_text())["rejected"] == failing["completion"]
    written = app.export_run(lab, "demo", "dataset")
    folder = written["export_message"].split("`")[3]
    assert written["export_file"] is None
    assert datasets.load_from_disk(folder).column_names[:3] == ["prompt", "chosen", "rejected"]


def test_the_job_handlers_without_a_job(lab):
    fill_store(lab.store)
    assert set(app.watch_job(lab, None, None, 1)) == keys_of(app.JOB, app.SELECT, app.LIST, app.REVIEW,
                                                             app.ITERATE_FORM, ["command"])
    assert set(app.watch_job(lab, "demo", "mbpp/600", 1)) == keys_of(app.JOB, ["run", "iteration"])
    assert app.launch_job(lab, "  ", "tiny", "", 1)["job_message"] == "Give the run a name first."
    form = app.iterate_form(lab, "demo")
    assert form["run_name"]["value"] == "demo" and form["preset"]["value"] == "tiny"
    command = app.preview(lab, "demo", "tiny", "sampling.num_samples=2\n\n", 2)["command"]
    assert "--set sampling.num_samples=2" in command and "--iterations 2" in command
    assert app.preview(lab, " ", "tiny", "", 1) == {"command": "Give the run a name."}


# ------------------------------------------------------------------ the Gradio app itself

def test_build_app_holds_layout_and_wiring_only(tmp_path):
    lines = inspect.getsource(app.build_app).splitlines()
    assert len(lines) < 80
    assert app.build_app(tmp_path / "empty", "me") is not None
    assert (tmp_path / "empty" / "lab.sqlite").exists()


def test_the_app_listens_on_localhost_by_default_and_takes_user_password(monkeypatch, tmp_path):
    from lab import __main__ as cli

    calls = []
    monkeypatch.setattr(app, "launch", lambda *args: calls.append(args))
    monkeypatch.delenv("RR_APP_AUTH", raising=False)
    app.main(["--lab-dir", str(tmp_path), "--author", "bob"])
    assert calls[-1] == (str(tmp_path), "127.0.0.1", 7860, None, "bob")
    cli.main(["app", "--lab-dir", str(tmp_path), "--auth", "ann:s3cret"])
    assert calls[-1][1:4] == ("127.0.0.1", 7860, ("ann", "s3cret"))
    with pytest.raises(SystemExit):
        app.main(["--auth", "no-colon"])


def test_a_shared_app_refuses_requests_without_the_password(tmp_path):
    import socket
    import urllib.error
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    served = app.launch(tmp_path, port=port, auth=("ann", "s3cret"), block=False)
    try:
        assert served.server_name == "127.0.0.1"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=10)
        assert refused.value.code == 401
    finally:
        served.close()
