"""The app without a browser: its views (ranking and flags, the mining rule, filters and pages,
escaping of hostile content, non-UTF-8 text through the store's reader) and its handlers called
directly with named inputs (empty store, unknown run, labels on unknown or deleted candidates,
conflicts, undo across problems, bulk labels, paging past the end, deep links, next suspected,
metrics, held-out curves, pairs with reference solutions, annotators and kappa, comparison, export,
the job view)."""
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import execution_result, fill_store

from lab import curation
from lab.app import export, jobs, labels, layout, metrics, review, server, views
from lab.app import render as html
from lab.app.state import Lab, View
from lab.config import MiningConfig, UsageError
from lab.mining import hard_negatives
from lab.problems import Problem
from lab.records import MeasureKey, Measurement
from lab.store import Store, StoreError

REPO = Path(__file__).resolve().parent.parent
HOSTILE = ['<script>alert(1)</script>', '</pre><img src=x onerror=alert(2)>']


@pytest.fixture
def lab(tmp_path):
    lab = Lab.open(tmp_path / "lab", create=True)
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
    assert "Reranker mistake" in html.problem_html(summary, "ranked by rm-demo-1", [], [], None,
                                                   {"run": "demo", "iteration": 1})


def test_suspected_is_the_mining_rule_with_the_runs_mining_config(store):
    """Default mining (top 3 by reward) also flags the low failing sample ranked third; the app and
    mining.hard_negatives agree on every problem, labels included."""
    fill_store(store, problems=12, samples=6, seed=3)
    some = store.candidates(1, problem_id="mbpp/605")
    store.add_label(some[0]["id"], "hard_negative", "alice")
    store.add_label(some[1]["id"], "positive", "alice")
    for problem in (f"mbpp/{600 + i}" for i in range(12)):
        suspected = {c["id"] for c in views.ranked_candidates(store, scope(store), problem) if c["suspected"]}
        expected = set(hard_negatives(store.candidates(1, problem_id=problem, reward_model="rm-demo-1"),
                                      MiningConfig()))
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
    store.db.execute(f"DELETE FROM scores WHERE candidate_id IN ({','.join('?' * len(train))}) AND candidate_id != ?",
                     (*train, train[0]))
    store.add_scores("rm-0", [(cid, -float(i)) for i, cid in enumerate(train)])
    summary = views.problem_summary(store, scope(store), "mbpp/600")
    assert summary["ranked_by"] == "rm-0" and summary["ranked_by_iteration"] == 0
    assert views.problem_summary(store, scope(store), "mbpp/601")["ranked_by"] == "rm-demo-1"
    assert [c["reward"] for c in views.ranked_candidates(store, scope(store), "mbpp/600")] == [0.0, -1.0, -2.0, -3.0]
    assert "mined this iteration's hard negatives" in views.ranking_note(summary, 1)


def test_a_passing_reference_is_no_reranker_mistake_but_still_exposes_hard_negatives(store):
    run_id = fill_store(store, problems=2)
    [reference] = store.add_candidates(run_id, 1, [{"problem_id": "mbpp/601", "origin": "reference",
                                                    "model": "reference", "sample_index": 0,
                                                    "completion": "    return x\n"}])
    store.add_executions([(reference, execution_result(True))])
    store.add_scores("rm-demo-1", [(reference, 0.0)])
    summary = views.problem_summary(store, scope(store), "mbpp/601")
    assert summary["n_pass"] == 1 and summary["all_fail"] and not summary["mistake"]
    ranked = views.ranked_candidates(store, scope(store), "mbpp/601")
    assert all(c["suspected"] for c in ranked if c["origin"] == "sample")
    page = (html.problem_html(summary, "", [], ranked, None, {"run": "r", "iteration": 1})
            + html.candidates_html(ranked, "py", None))
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
    assert "mined as a hard negative" in html.candidate_card(flagged[low_failing["id"]], "py", None, False)


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
    store.undo_last(1, "alice")
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
    page = html.candidates_html(candidates, "py", evil["id"], HOSTILE[1])
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
        {"eval set": "mbpp-validation", "measure": "pair_accuracy/reranker", "iter 0": "0.500 (n=10)",
         "iter 1": "0.750 (n=12)"},
        {"eval set": "mbpp-validation", "measure": "top1/random", "iter 0": "– (n=0)", "iter 1": ""}]


def test_pairs_with_a_reference_solution_are_marked(store):
    run_id = fill_store(store, problems=2)
    [reference] = store.add_candidates(run_id, 0, [{"problem_id": "mbpp/600", "origin": "reference",
                                                    "model": "reference", "sample_index": 0,
                                                    "completion": "    return x\n"}])
    failing, passing = candidate_of(store, "mbpp/600", 0), candidate_of(store, "mbpp/600", 1)
    store.add_pairs(run_id, 0, [(reference, failing["id"], "execution"), (passing["id"], failing["id"], "execution")])
    pairs = views.problem_pairs(store, run_id, "mbpp/600")
    assert [views.uses_reference(p) for p in pairs] == [False, True]
    assert views.problem_pairs(store, run_id, "mbpp/601") == []
    page = html.pairs_html(pairs)
    assert "2 preference pairs" in page and "<b>1</b> with a reference solution" in page
    assert page.count('class="with-reference"') == 1
    assert views.pairs_table(store.pairs(run_id)).to_dict("records") == [
        {"iteration": 0, "kind": "execution", "pairs": 2, "with a reference solution": 1}]


# ------------------------------------------------------------------ handlers: choosing what to show

def keys_of(*groups):
    return {name for group in groups for name in group}


def opened(lab, run=None, author="alice", **query):
    """The Review screen of a fresh page (`query`: a deep link's parameters)."""
    return review.open_link(lab, View(), {**({"run": run} if run else {}), **query}, author)


def test_handlers_on_an_empty_store_explain_how_to_start(lab):
    page = opened(lab)
    assert keys_of(review.REVIEW, ["run", "iteration", *review.FILTERS]) <= set(page)
    assert "No runs yet" in page["problem_view"] and "python -m lab iterate" in page["problem_view"]
    assert page["run"]["choices"] == [] and page["view"].page_ids == ()
    assert "--run demo" in layout._select_run(lab, View(), None, "alice")["command"]
    job = jobs.job_view(lab)
    assert "No iteration launched" in job["job_state"] and job["launch"]["interactive"]
    assert "No run selected" in metrics.overview(lab, View(), None)["metrics_note"]
    assert metrics.scores(lab, View())["reward_plot"] is None and metrics.team(lab, View())["agreement_table"].empty
    assert export.export_run(lab, View()) == {"export_files": None, "export_message": "Pick a run first."}
    assert metrics.compare_view(lab, []) == {"comparison": "Pick two or more runs to compare."}


def test_an_unknown_run_falls_back_to_the_newest_or_says_so(lab):
    fill_store(lab.store, run_name="old")
    fill_store(lab.store, run_name="new", iteration=2)
    page = review.select_run(lab, View(), "deleted-run")
    assert page["run"]["value"] == "new" and page["iteration"]["value"] == 2 and page["view"].problem == "mbpp/600"
    gone = review.render(lab, View(run="deleted-run", iteration=1, problem="mbpp/600"))
    assert "no candidates yet" in gone["problem_view"]
    unknown = review.render(lab, View(run="old", iteration=1, problem="not/a-problem"))
    assert "No problem matches" in unknown["problem_view"]
    assert "No problem matches" in review.render(lab, View(run="old", iteration=7, problem="mbpp/600"))["problem_view"]
    comparison = metrics.compare_view(lab, ["old", "deleted-run"])["comparison"]
    assert "Cannot compare: no run called 'deleted-run'" in comparison
    assert "No run called 'deleted-run' here" in opened(lab, "deleted-run")["message"]


def test_paging_past_the_end_shows_the_last_page_and_steps_cross_pages(lab):
    fill_store(lab.store, problems=60)
    start = View(run="demo", iteration=1)
    last = review.render(lab, start.with_(offset=10_000))
    assert last["view"].offset == 50 and last["page"] == "page 3 / 3 · 60 problems" and len(last["view"].page_ids) == 10
    assert review.turn_page(lab, start, -views.PAGE_SIZE)["view"].offset == 0
    first = review.render(lab, start)["view"]
    ids = first.page_ids
    onward = review.step_problem(lab, first.with_(problem=ids[-1]), 1)["view"]
    assert onward.offset == 25 and onward.problem == onward.page_ids[0] != ids[-1]
    back = review.step_problem(lab, onward, -1)["view"]
    assert back.offset == 0 and back.problem == ids[-1]
    assert review.step_problem(lab, first, -1)["view"].problem == ids[0]
    end = review.step_problem(lab, last["view"].with_(problem=last["view"].page_ids[-1]), 1)["view"]
    assert end.problem == last["view"].page_ids[-1] and end.offset == 50
    assert review.pick_problem(lab, first, 99)["view"].problem is None
    assert review.pick_problem(lab, first, 3)["view"].problem == ids[3]


def test_filters_change_by_name_and_a_reset_to_the_shown_value_does_nothing(lab):
    fill_store(lab.store)
    shown = review.render(lab, View(run="demo", iteration=1))["view"]
    searched = review.set_filter(lab, shown, "alice", search="605")
    assert searched["view"].page_ids == ("mbpp/605",) and searched["view"].problem == "mbpp/605"
    cleared = review.set_filter(lab, searched["view"], "alice", search="")
    assert len(cleared["view"].page_ids) == 6, "clearing the search shows every problem again"
    assert review.set_filter(lab, cleared["view"], "alice", search=None) == {}
    assert review.set_filter(lab, shown, "alice", language="cpp")["view"].page_ids == ("mbpp/600", "mbpp/603")


def test_stepping_through_candidates_stops_at_either_end(lab):
    fill_store(lab.store)
    page = review.render(lab, View(run="demo", iteration=1, problem="mbpp/600"))
    shown = page["view"]
    ids = shown.candidate_ids
    assert shown.candidate == ids[0] and page["candidate"]["value"] == ids[0] and set(page) == set(review.REVIEW)
    assert review.step_candidate(lab, shown, -1)["view"].candidate == ids[0]
    assert review.step_candidate(lab, shown.with_(candidate=ids[-1]), 1)["view"].candidate == ids[-1]
    assert review.step_candidate(lab, shown.with_(candidate=ids[1]), 1)["view"].candidate == ids[2]
    side = review.set_compare(lab, shown, ids[2])
    assert side["view"].compare_with == ids[2] and 'class="side-by-side"' in side["candidates_view"]
    assert review.set_compare(lab, side["view"], -1)["view"].compare_with is None


def test_a_deep_link_opens_its_run_problem_and_candidate(lab):
    fill_store(lab.store, run_name="old")
    fill_store(lab.store, run_name="new", iteration=2)
    candidate = candidate_of(lab.store, "mbpp/604", 2, run_id=1)
    page = opened(lab, "old", candidate=str(candidate["id"]))
    assert (page["view"].run, page["view"].problem, page["view"].candidate) == ("old", "mbpp/604", candidate["id"])
    assert f'data-candidate="{candidate["id"]}"' in page["candidates_view"]
    assert 'data-problem="mbpp/604"' in page["problem_view"]
    assert opened(lab, "new", problem="mbpp/603")["view"].problem == "mbpp/603"
    assert "not in run 'new'" in opened(lab, "new", candidate=str(candidate["id"]))["message"]


def test_next_suspected_walks_the_filtered_list_and_wraps(lab):
    fill_store(lab.store, problems=12, samples=6, seed=3)
    shown = review.render(lab, View(run="demo", iteration=1))["view"]
    scope_ = views.scope_of(lab.store, "demo", 1)
    suspected = [(c["problem_id"], c["id"]) for problem in shown.page_ids
                 for c in views.ranked_candidates(lab.store, scope_, problem) if c["suspected"]]
    first = review.next_suspected(lab, shown.with_(candidate=-1))
    assert (first["view"].problem, first["view"].candidate) == suspected[0]
    second = review.next_suspected(lab, first["view"])
    assert (second["view"].problem, second["view"].candidate) == suspected[1]
    lab.store.add_labels({cid: None for _, cid in suspected[1:]}, "hard_negative", "bob")
    assert review.next_suspected(lab, second["view"])["view"].candidate == suspected[0][1], "wraps around"
    lab.store.add_label(suspected[0][1], "hard_negative", "bob")
    assert "No unlabeled suspected" in review.next_suspected(lab, second["view"])["message"]


# ------------------------------------------------------------------ handlers: labels

def label(lab, view, action="hard_negative", author="alice", note="", advance=False):
    return labels.label(lab, view, author, note, advance, action)


def test_labels_are_written_advanced_refused_with_a_reason(lab):
    fill_store(lab.store)
    shown = review.render(lab, View(run="demo", iteration=1, problem="mbpp/600"))["view"]
    ids = shown.candidate_ids
    saved = label(lab, shown.with_(candidate=ids[1]), note="passes by luck", advance=True)
    assert "Saved" in saved["message"] and saved["note"] == "" and "**1** labeled" in saved["counter"]
    assert saved["view"].candidate == ids[2], "auto-advance moves on to the next candidate"
    assert lab.store.label_history(ids[1])[-1]["note"] == "passes by luck"
    assert "u** undoes your hard negative on candidate" in saved["counter"]
    assert "Type your name" in label(lab, shown, author="  ")["message"]
    assert "Select a candidate" in label(lab, shown.with_(candidate=None))["message"]
    refused = label(lab, shown.with_(candidate=999_999), note="kept")
    assert "not shown on this page" in refused["message"] and "note" not in refused
    delete_candidate(lab.store, ids[3])
    gone = label(lab, shown.with_(candidate=ids[3]))
    assert gone["message"] == f"Not saved: no candidate {ids[3]}" and ids[3] not in gone["view"].candidate_ids
    assert len(lab.store.label_history(ids[1])) == 1


def test_a_stale_tab_is_told_who_changed_the_label_and_may_keep_it_or_overwrite(lab):
    fill_store(lab.store)
    tab_a = review.render(lab, View(run="demo", iteration=1, problem="mbpp/600"))["view"]
    tab_b = tab_a  # a second tab, opened at the same time
    label(lab, tab_a, "positive", author="ann")
    raced = label(lab, tab_b, "hard_negative", author="bob", note="fails on []")
    assert "annotator **ann** changed this to **positive**" in raced["conflict"] and "s ago" in raced["conflict"]
    assert "keep that, or overwrite?" in raced["conflict"] and raced["conflict_row"]["visible"]
    assert lab.store.current_labels(1)[tab_a.candidate]["author"] == "ann", "nothing lost, nothing written over"
    assert "positive" in raced["candidates_view"], "the stale tab now shows the label it missed"
    kept = labels.keep_theirs(lab, raced["view"], "bob", raced["pending"])
    assert "Kept the other label" in kept["message"] and not kept["conflict_row"]["visible"]
    written = labels.overwrite(lab, raced["view"], "bob", "fails on []", False, raced["pending"])
    assert "Saved" in written["message"] and lab.store.current_labels(1)[tab_a.candidate]["label"] == "hard_negative"
    assert [h["author"] for h in lab.store.label_history(tab_a.candidate)] == ["ann", "bob"]


def test_undo_takes_back_the_authors_own_last_label_after_moving_on(lab):
    fill_store(lab.store)
    first = review.render(lab, View(run="demo", iteration=1, problem="mbpp/600"))["view"]
    label(lab, first, "hard_negative", author="ann")
    moved = review.step_problem(lab, first, 1)["view"]
    other = label(lab, moved, "positive", author="bob")["view"]
    undone = labels.undo(lab, other, "ann")
    assert f"candidate {first.candidate} is **unlabeled** again" in undone["message"]
    assert (undone["view"].problem, undone["view"].candidate) == ("mbpp/600", first.candidate), "shows what it undid"
    assert lab.store.current_labels(1).keys() == {moved.candidate}, "bob's label stays"
    assert "Nothing of yours (ann)" in labels.undo(lab, other, "ann")["message"]


def test_an_undo_over_another_annotators_later_label_asks_first(lab):
    fill_store(lab.store)
    shown = review.render(lab, View(run="demo", iteration=1, problem="mbpp/600"))["view"]
    label(lab, shown, "hard_negative", author="ann")
    label(lab, review.render(lab, shown)["view"], "positive", author="bob")
    asked = labels.undo(lab, shown, "ann")
    assert "annotator **bob** changed candidate" in asked["conflict"] and asked["pending"] == {"undo": True}
    forced = labels.overwrite(lab, shown, "ann", "", False, asked["pending"])
    assert "Undone" in forced["message"] and shown.candidate not in lab.store.current_labels(1)


def test_a_bulk_label_writes_the_filtered_unlabeled_candidates_as_one_undoable_action(lab):
    fill_store(lab.store)
    shown = review.set_filter(lab, review.render(lab, View(run="demo", iteration=1))["view"], "ann", search="601")
    lab.store.add_label(candidate_of(lab.store, "mbpp/601", 0)["id"], "positive", "bob")
    done = labels.bulk_label(lab, shown["view"], "ann", "duplicates", "failing", "exclude")
    assert "Labelled 3 unlabeled failing candidates **exclude**" in done["bulk_message"]
    current = lab.store.current_labels(1)
    assert sorted(r["label"] for r in current.values()) == ["exclude"] * 3 + ["positive"]
    bulk = labels.bulk_label(lab, shown["view"], "ann", "", "failing", "exclude")
    assert "No unlabeled failing" in bulk["bulk_message"]
    assert "bulk label of 3" in labels.undo(lab, shown["view"], "ann")["message"]
    assert [r["author"] for r in lab.store.current_labels(1).values()] == ["bob"]


def test_the_label_api_reports_saves_conflicts_and_refusals(lab):
    fill_store(lab.store, problems=1)
    [first, *_] = labels.api_candidates(lab, "demo", 1)
    assert first["label_version"] == 0 and first["label"] is None
    assert labels.api_label(lab, first["id"], "positive", "ann", 0)["status"] == "saved"
    conflict = labels.api_label(lab, first["id"], "exclude", "bob", 0)
    assert conflict["status"] == "conflict" and conflict["current"]["author"] == "ann"
    assert labels.api_label(lab, first["id"], "great", "bob", 1)["status"] == "refused"
    assert labels.api_undo(lab, "demo", "ann")["status"] == "undone"
    assert labels.api_undo(lab, "demo", "ann") == {"status": "nothing"}


def test_handlers_show_non_utf8_text_and_keep_the_store_strict(lab):
    fill_store(lab.store, problems=1)
    lab.store.db.execute("UPDATE executions SET stderr = CAST(? AS TEXT)", (b"bad \xff byte",))
    page = review.render(lab, View(run="demo", iteration=1, problem="mbpp/600"))
    assert "bad \ufffd byte" in page["candidates_view"]
    assert lab.store.db.text_factory is str


def test_cards_show_the_full_error_the_failing_test_and_the_label_history(lab):
    fill_store(lab.store, problems=1)
    failing = candidate_of(lab.store, "mbpp/600", 0)
    long_error = "Traceback (most recent call last):\n" + "  frame\n" * 200 + "AssertionError: f(2) == 3"
    lab.store.db.execute("UPDATE executions SET stderr = ? WHERE candidate_id = ?", (long_error, failing["id"]))
    lab.store.add_label(failing["id"], "positive", "ann", note="flaky test")
    lab.store.add_label(failing["id"], "hard_negative", "bob")
    page = review.render(lab, View(run="demo", iteration=1, problem="mbpp/600", candidate=failing["id"]))
    card = next(piece for piece in page["candidates_view"].split('id="candidate-')
                if piece.startswith(f'{failing["id"]}"'))
    assert long_error.count("frame") == card.count("frame") and "AssertionError: f(2) == 3" in card
    assert "the unit tests it ran" in card and "assert" in card
    assert "label history (2)" in card and card.index("bob") < card.index("ann") and "flaky test" in card
    assert '<svg' in page["problem_view"] and "reward" in page["problem_view"], "the problem's score strip"


# ------------------------------------------------------------------ handlers: metrics, team, export, jobs

def test_metrics_show_pass_at_1_a_chosen_measure_scores_and_plots(lab):
    run_id = fill_store(lab.store)
    lab.store.add_evaluations(run_id, 1, [{"benchmark": "humaneval", "language": "py", "method": m, "pass_at_1": 0.5,
                                           "ci_low": 0.25, "ci_high": 0.75, "n_problems": 4}
                                          for m in ("greedy", "reranker", "reranker+logprob")])
    lab.store.add_measurements(run_id, 1, "mbpp-validation", {
        MeasureKey("pair_accuracy", "reranker"): Measurement(0.7, 20),
        MeasureKey("length_correlation", "passed"): Measurement(-0.2, 20)})
    view = review.render(lab, View(run="demo", iteration=1))["view"]
    first = metrics.overview(lab, view, None)
    assert set(first) == set(metrics.OVERVIEW) and first["metrics_note"] == ""
    assert first["pass_plot"] is not None and len(first["pass_table"]) == 3
    assert first["measure"]["value"] == "mbpp-validation: pair_accuracy"
    chosen = metrics.measurement(lab, view, "mbpp-validation: length_correlation")
    assert chosen["measure_plot"] is not None and len(chosen["heldout_table"]) == 2
    assert chosen["measure_plot"] != metrics.measurement(lab, view, "mbpp-validation: pair_accuracy")["measure_plot"]
    assert metrics.measurement(lab, view, "mbpp-validation: length_correlation")["measure_plot"] is \
        chosen["measure_plot"], "a plot is drawn once per content"
    lab.store.add_measurements(run_id, 2, "mbpp-validation",
                               {MeasureKey("length_correlation", "passed"): Measurement(0.1, 9)})
    other = metrics.measurement(lab, view, "mbpp-validation: length_correlation")
    assert other["measure_plot"] != chosen["measure_plot"]
    values = metrics.scores(lab, view)
    assert values["reward_plot"] is not None and values["hard_plot"] is None
    assert metrics.follow(lab, view, "demo", 1, None, "review") == {}
    followed = metrics.follow(lab, view.with_(iteration=None), "demo", 1, None, "metrics")
    assert followed["reward_plot"] is values["reward_plot"], "the new iteration's, not the view's"
    without_iteration = metrics.overview(lab, view.with_(iteration=None), None)
    assert "No iteration with candidates yet" in without_iteration["metrics_note"]
    assert metrics.scores(lab, view.with_(iteration=None))["reward_plot"] is None


def test_kappa_between_two_annotators_on_a_fixture_with_known_agreement(lab):
    """50 candidates labelled by both: 20 both positive, 15 both hard negative, 5 positive/hard
    negative, 10 hard negative/positive: p_o = 0.7, p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5, kappa = 0.4."""
    fill_store(lab.store, problems=13, samples=4)
    ids = [c["id"] for c in lab.store.candidates(1)][:50]
    plan = [("positive", "positive")] * 20 + [("hard_negative", "hard_negative")] * 15 + \
        [("positive", "hard_negative")] * 5 + [("hard_negative", "positive")] * 10
    for candidate_id, (ann, bob) in zip(ids, plan):
        lab.store.add_label(candidate_id, ann, "ann")
        lab.store.add_label(candidate_id, bob, "bob")
    lab.store.add_label(ids[0], "exclude", "cat")
    table = metrics.team(lab, View(run="demo", iteration=1))["agreement_table"].to_dict("records")
    assert table[0] == {"annotators": "ann · bob", "shared candidates": 50, "agreement": 0.7, "Cohen's kappa": 0.4}
    assert {row["annotators"] for row in table} == {"ann · bob", "ann · cat", "bob · cat"}


def test_an_overlap_assignment_gives_each_annotator_a_queue(lab):
    fill_store(lab.store, problems=40, samples=2)
    view = View(run="demo", iteration=1)
    assert "Not assigned: name at least one" in metrics.assign(lab, view, " , ", 20)["assign_message"]
    shown = metrics.assign(lab, view, "ann, bob, cat", 50)
    assert "ann, bob, cat" in shown["assign_message"] and "queue" in shown["progress_table"].columns
    queues = views.queues(lab.store, lab.lab_dir, "demo", 1)
    assert set().union(*queues.values()) == {f"mbpp/{600 + i}" for i in range(40)}
    assert 10 <= sum(map(len, queues.values())) - 40 <= 30, "about half the problems go to two annotators"
    mine = review.set_filter(lab, review.render(lab, view, "bob")["view"], "bob", state="mine")
    assert set(mine["view"].page_ids) == set(queues["bob"][:25]) and "in your queue" in mine["page"]


def test_the_export_is_the_curated_dataset_as_training_uses_it(lab):
    import datasets
    import pandas as pd

    run_id = fill_store(lab.store)
    passing, failing = candidate_of(lab.store, "mbpp/600", 1), candidate_of(lab.store, "mbpp/600", 0)
    other = candidate_of(lab.store, "mbpp/600", 2)
    lab.store.add_pairs(run_id, 1, [(passing["id"], failing["id"], "hard_negative"),
                                    (passing["id"], other["id"], "execution")])
    lab.store.add_label(failing["id"], "exclude", "alice", note=HOSTILE[0])
    lab.store.add_label(other["id"], "positive", "alice")
    lab.store.add_label(other["id"], None, "alice")
    written = export.export_run(lab, View(run="demo"))
    assert "1 pairs as the next reward-model training would use them (1 more left out" in written["export_message"]
    files = {Path(path).name: Path(path) for path in written["export_files"]}
    assert next(iter(files)).endswith(".zip") and Path(written["export_files"][0]).stat().st_size > 0
    pairs = [json.loads(line) for line in files["pairs.jsonl"].read_text().splitlines()]
    assert [(p["chosen_id"], p["rejected_id"]) for p in pairs] == [(passing["id"], other["id"])]
    assert pairs == [{k: v for k, v in pair.items()} for pair in
                     [curation.pair_record(row) for row in curation.training_pairs(lab.store, run_id).kept]]
    assert pd.read_parquet(files["pairs.parquet"])["rejected_id"].tolist() == [other["id"]]
    folder = Path(written["export_files"][1]).parent
    assert datasets.load_from_disk(str(folder / "pairs-dataset"))["rejected_id"] == [other["id"]]
    dropped = json.loads(files["pairs-dropped.jsonl"].read_text())
    assert dropped["rejected_id"] == failing["id"] and dropped["reason"] == f"rejected side {failing['id']} excluded"
    current = [json.loads(line) for line in files["labels-current.jsonl"].read_text().splitlines()]
    assert [(r["candidate_id"], r["label"], r["note"]) for r in current] == [(failing["id"], "exclude", HOSTILE[0])]
    history = [json.loads(line) for line in files["labels-history.jsonl"].read_text().splitlines()]
    assert [r["label"] for r in history] == ["exclude", "positive", None]


def test_an_export_that_cannot_be_written_is_a_message(lab, tmp_path):
    fill_store(lab.store)
    (lab.lab_dir / export.EXPORTS).write_text("a file where the exports folder goes")
    failed = export.export_run(lab, View(run="demo"))
    assert failed["export_files"] is None and failed["export_message"].startswith("Export failed: ")


def test_the_form_is_checked_before_launch_and_names_the_field(lab):
    fill_store(lab.store)
    form = jobs.iterate_form(lab, "demo")
    assert form["run_name"]["value"] == "demo" and form["preset"]["value"] == "tiny"
    command = jobs.preview(lab, "demo", "tiny", "sampling.num_samples=2\n\n", 2)
    assert "--set sampling.num_samples=2" in command["command"] and "--iterations 2" in command["command"]
    assert command["launch_check"] == "✓ ready to launch"
    typo = jobs.preview(lab, "demo", "tiny", "sampling.temprature=0.5", 1)
    assert "--set sampling.temprature=0.5" in typo["command"]
    assert typo["launch_check"] == ("✗ `sampling.temprature` is not a configuration field. "
                                    "Did you mean `sampling.temperature`?")
    refused = jobs.launch_job(lab, "demo", "tiny", "sampling.temprature=0.5", 1)
    assert "Not launched. `sampling.temprature`" in refused["job_message"]
    assert "Not launched" in jobs.launch_job(lab, "demo", "tiny", "sampling.num_samples=lots", 1)["job_message"]
    assert jobs.preview(lab, " ", "tiny", "", 1)["command"] == "Give the run a name."
    assert jobs.launch_job(lab, "  ", "tiny", "", 1)["job_message"] == "Not launched. Give the run a name."


def test_the_job_view_shows_stage_progress_the_iterations_time_left_and_exit_status_in_words(lab, monkeypatch):
    from lab.launcher import JobStatus

    run_id = fill_store(lab.store)
    (lab.lab_dir / "demo").mkdir(exist_ok=True)
    (lab.lab_dir / "demo" / "estimate.json").write_text(json.dumps({"stages": [
        {"iteration": 1, "name": name, "seconds": seconds, "work": ""}
        for name, seconds in (("ppo", 80.0), ("sample", 40.0), ("execute", 40.0))]}))
    lab.store.start_stage(run_id, 1, "ppo")
    lab.store.db.execute("UPDATE stages SET started_at = datetime('now', '-25 seconds') || '+00:00'")
    job = JobStatus("running", command=["python", "-m", "lab", "iterate", "--run", "demo"], pid=1, started_at=0)
    shown = jobs.job_html(lab, job)
    assert "stage ppo 3" in shown and "of ~80 s estimated" in shown
    assert "iteration 1: ~" in shown and "left of ~2.7 min estimated (0 of 3 stages done)" in shown
    barred = jobs.job_html(lab, JobStatus("running", command=job.command, pid=1, progress_label="ppo steps",
                                          progress_percent=40, progress_remaining="01:30"))
    assert "stage ppo 40% · 01:30 left (ppo steps, its progress bar)" in barred
    monkeypatch.setattr(lab.launcher, "cancel", lambda: JobStatus("cancelled", command=job.command, returncode=-15))
    cancelled = jobs.cancel_job(lab)
    assert "records 1 stage(s) it left running as cancelled" in cancelled["job_message"]
    assert lab.store.stage_status(run_id, 1, "ppo") == "cancelled"
    assert "stopped by SIGTERM (a cancel)" in cancelled["job_state"] and "⊘ ppo" in cancelled["job_state"]


def test_the_job_handlers_without_a_job(lab):
    fill_store(lab.store)
    assert keys_of(jobs.JOB) <= set(jobs.watch_job(lab, View(), "", 1))
    watched = jobs.watch_job(lab, View(run="demo", iteration=1, problem="mbpp/600"), "", 1)
    assert set(watched) == keys_of(jobs.JOB, ["run", "iteration"])


# ------------------------------------------------------------------ the Gradio app itself

def test_handlers_take_named_inputs_and_build_app_holds_layout_and_wiring_only(tmp_path):
    for module in (review, labels, jobs, metrics, export):
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ == module.__name__ and not name.startswith("_"):
                assert len(inspect.signature(function).parameters) <= 7, f"{module.__name__}.{name}"
    assert len(inspect.getsource(layout.build_app).splitlines()) < 80
    assert layout.build_app(tmp_path / "empty", "me", create=True) is not None
    assert (tmp_path / "empty" / "lab.sqlite").exists()


def test_a_missing_lab_directory_or_a_damaged_store_is_refused_with_what_to_do(tmp_path, capsys):
    with pytest.raises(UsageError, match="no directory at .*typo.*pass --create"):
        Lab.open(tmp_path / "typo")
    assert not (tmp_path / "typo").exists(), "a mistyped --lab-dir creates nothing"
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no lab store"):
        Lab.open(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "lab.sqlite").write_bytes(b"x" * 5000)
    with pytest.raises(StoreError, match="integrity_check"):
        Lab.open(tmp_path / "junk")
    assert server.main(["--lab-dir", str(tmp_path / "typo")]) == 2
    assert "pass --create" in capsys.readouterr().err


def test_a_truncated_store_stops_the_app_with_a_message_not_a_traceback(tmp_path):
    with Store(tmp_path / "lab.sqlite") as store:
        fill_store(store, problems=30, samples=10)
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = (tmp_path / "lab.sqlite").read_bytes()
    (tmp_path / "lab.sqlite").write_bytes(data[: len(data) // 2])
    result = subprocess.run([sys.executable, "app.py", "--lab-dir", str(tmp_path)], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cannot be read as the lab's store" in result.stderr and "integrity_check" in result.stderr
    assert ".backup-" in result.stderr and len(result.stderr.splitlines()) == 1


def test_the_app_listens_on_localhost_by_default_and_takes_user_password(monkeypatch, tmp_path):
    from lab import __main__ as cli

    calls = []
    monkeypatch.setattr(server, "launch", lambda *args, **kwargs: calls.append((args, kwargs)))
    monkeypatch.delenv("RR_APP_AUTH", raising=False)
    server.main(["--lab-dir", str(tmp_path), "--author", "bob"])
    assert calls[-1] == ((str(tmp_path), "127.0.0.1", 7860, None, "bob"), {"create": False})
    cli.main(["app", "--lab-dir", str(tmp_path), "--auth", "ann:s3cret", "--create"])
    assert calls[-1][0][1:4] == ("127.0.0.1", 7860, ("ann", "s3cret")) and calls[-1][1] == {"create": True}
    with pytest.raises(SystemExit):
        server.main(["--auth", "no-colon"])


def test_the_http_api_labels_over_the_version_seen(tmp_path):
    import urllib.request

    with Store(tmp_path / "lab.sqlite") as store:
        fill_store(store, problems=1)
    port = server.free_port()
    served = server.launch(tmp_path, port=port, block=False)

    def call(name, *arguments):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/gradio_api/run/{name}", method="POST",
                                         data=json.dumps({"data": list(arguments)}).encode(),
                                         headers={"Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(request, timeout=30).read())["data"][0]
    try:
        [first, *_] = call("candidates", "demo", 1)
        assert call("label", first["id"], "positive", "ann", 0, "")["status"] == "saved"
        assert call("label", first["id"], "exclude", "bob", 0, "")["current"]["author"] == "ann"
        assert call("undo", "demo", "ann")["status"] == "undone"
    finally:
        served.close()


def test_a_shared_app_refuses_requests_without_the_password(tmp_path):
    import urllib.error
    import urllib.request

    port = server.free_port()
    served = server.launch(tmp_path, port=port, auth=("ann", "s3cret"), block=False, create=True)
    try:
        assert served.server_name == "127.0.0.1"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=10)
        assert refused.value.code == 401
    finally:
        served.close()
