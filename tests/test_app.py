"""The app's views and handlers without a browser: ranking and flags, paging in SQL, escaping of
hostile content, non-UTF-8 text, empty stores, labels with undo, metrics and export."""
import json
import random
from pathlib import Path

import pytest
from conftest import execution_result

from lab import app_views as views
from lab.problems import Problem
from lab.store import Store

HOSTILE = ['<script>alert(1)</script>', '</pre><img src=x onerror=alert(2)>']


def fill_store(store: Store, *, problems: int = 6, samples: int = 4, iteration: int = 1, seed: int = 0,
               run_name: str = "demo") -> int:
    """A run with scored, executed candidates: problem 0 is a reranker mistake, problem 1 all-fail,
    and the rest random. Returns the run id."""
    rng = random.Random(seed)
    run_id = store.create_run(run_name, "tiny", json.dumps({"sampling": {"num_samples": samples}}))
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


def candidate_of(store, problem_id, sample_index):
    return next(c for c in store.candidates(1, problem_id=problem_id) if c["sample_index"] == sample_index)


def test_ranking_and_mistake_flags(store):
    run_id = fill_store(store)
    ranked = views.ranked_candidates(store, run_id, 1, "mbpp/600")
    assert [c["rank"] for c in ranked] == [1, 2, 3, 4] and [c["reward"] for c in ranked] == [0.9, 0.5, 0.1, 0.1]
    assert ranked[0]["passed"] == 0 and ranked[0]["suspected"]
    assert ranked[1]["passed"] == 1 and not any(c["suspected"] for c in ranked[1:])
    summary = views.problem_summary(store, run_id, 1, "mbpp/600")
    assert summary["mistake"] == 1 and summary["n_suspected"] == 1 and summary["ranked_by"] == "rm-demo-1"
    assert "Reranker mistake" in views.problem_html(summary, "ranked by rm-demo-1")


def test_each_problem_is_ranked_by_the_reward_model_that_scored_it(store):
    """The loop scores iteration k's training samples with rm-(k-1) and its eval samples with rm-k;
    a few training candidates (manually labelled ones) may also carry a newer score."""
    run_id = fill_store(store, problems=2)
    store.add_checkpoint(run_id, 0, "reward_model", "rm-0", "/nowhere", {})
    train = [c["id"] for c in store.candidates(run_id, problem_id="mbpp/600")]
    store.db.execute("DELETE FROM scores WHERE candidate_id IN (%s) AND candidate_id != ?" % ",".join("?" * len(train)),
                     (*train, train[0]))
    store.add_scores("rm-0", [(cid, -float(i)) for i, cid in enumerate(train)])
    assert views.problem_summary(store, run_id, 1, "mbpp/600")["ranked_by"] == "rm-0"
    assert views.problem_summary(store, run_id, 1, "mbpp/601")["ranked_by"] == "rm-demo-1"
    assert [c["reward"] for c in views.ranked_candidates(store, run_id, 1, "mbpp/600")] == [0.0, -1.0, -2.0, -3.0]
    assert "mined this iteration's hard negatives" in views.ranking_note(store, run_id, 1, "rm-0")


def test_a_passing_reference_is_no_reranker_mistake_but_still_exposes_hard_negatives(store):
    run_id = fill_store(store, problems=2)
    [reference] = store.add_candidates(run_id, 1, [{"problem_id": "mbpp/601", "origin": "reference", "model": "reference",
                                                    "sample_index": 0, "completion": "    return x\n"}])
    store.add_executions([(reference, execution_result(True))])
    store.add_scores("rm-demo-1", [(reference, 0.0)])
    summary = views.problem_summary(store, run_id, 1, "mbpp/601")
    assert summary["n_pass"] == 1 and summary["all_fail"] and not summary["mistake"]
    ranked = views.ranked_candidates(store, run_id, 1, "mbpp/601")
    assert all(c["suspected"] for c in ranked if c["origin"] == "sample")
    assert "All sampled candidates fail" in views.problem_html(summary, "")


def test_without_scores_candidates_are_ranked_by_logprob_and_the_page_says_so(store):
    run_id = store.create_run("r", "tiny", "{}")
    store.add_problems([Problem("p/1", "py", "def f():\n", "", (), "f", "test", "train", True)], run_id, "train")
    store.add_candidates(run_id, 1, [{"problem_id": "p/1", "model": "g", "sample_index": i, "completion": "x",
                                      "mean_logprob": lp} for i, lp in enumerate([-2.0, -0.5, -1.0])])
    summary = views.problem_summary(store, run_id, 1, "p/1")
    assert summary["ranked_by"] is None and "mean log-prob" in views.ranking_note(store, run_id, 1, None)
    ranked = views.ranked_candidates(store, run_id, 1, "p/1")
    assert [c["mean_logprob"] for c in ranked] == [-0.5, -1.0, -2.0]


def test_mined_hard_negative_pairs_count_as_suspected(store):
    run_id = fill_store(store)
    low_failing = candidate_of(store, "mbpp/600", 3)
    passing = candidate_of(store, "mbpp/600", 1)
    store.add_pairs(run_id, 1, [(passing["id"], low_failing["id"], "hard_negative")])
    flagged = {c["id"]: c for c in views.ranked_candidates(store, run_id, 1, "mbpp/600")}
    assert flagged[low_failing["id"]]["suspected"] and flagged[low_failing["id"]]["mined"]


@pytest.mark.parametrize("state, expected", [
    ("mistake", {"mbpp/600"}), ("all_fail", {"mbpp/601"}),
])
def test_state_filters(store, state, expected):
    run_id = fill_store(store)
    rows, total = views.list_problems(store, run_id, 1, state=state)
    assert expected <= {r["problem_id"] for r in rows} and total == len(rows)
    for row in rows:
        assert row["mistake"] if state == "mistake" else row["n_pass"] == 0


def test_filters_by_language_split_search_and_unlabeled(store):
    run_id = fill_store(store)
    rows, _ = views.list_problems(store, run_id, 1, language="cpp")
    assert {r["problem_id"] for r in rows} == {"mbpp/600", "mbpp/603"}
    rows, _ = views.list_problems(store, run_id, 1, split="train")
    assert all(r["split"] == "train" for r in rows) and rows
    rows, _ = views.list_problems(store, run_id, 1, search="605")
    assert [r["problem_id"] for r in rows] == ["mbpp/605"]
    rows, _ = views.list_problems(store, run_id, 1, search="100%_")
    assert rows == []
    for candidate in store.candidates(run_id, problem_id="mbpp/602"):
        store.add_label(candidate["id"], "exclude", "alice")
    rows, total = views.list_problems(store, run_id, 1, state="unlabeled")
    assert "mbpp/602" not in {r["problem_id"] for r in rows} and total == 5


def test_labels_count_and_undo_restores_the_previous_label(store):
    run_id = fill_store(store)
    candidate = candidate_of(store, "mbpp/600", 0)
    store.add_label(candidate["id"], "positive", "alice")
    store.add_label(candidate["id"], "hard_negative", "alice", note="looks right, fails on []")
    assert views.label_counts(store, run_id, 1) == {"labeled": 1, "pending": 23, "by_label": {"hard_negative": 1}}
    store.undo_label(candidate["id"], "alice")
    assert views.label_counts(store, run_id, 1)["by_label"] == {"positive": 1}


def test_hostile_and_non_utf8_content_is_escaped_never_rendered(store):
    run_id = fill_store(store, problems=2)
    evil = candidate_of(store, "mbpp/600", 0)
    store.db.execute("UPDATE candidates SET completion = ? WHERE id = ?", ("\n".join(HOSTILE), evil["id"]))
    store.db.execute("UPDATE executions SET stdout = ?, stderr = CAST(? AS TEXT) || ? WHERE candidate_id = ?",
                     (HOSTILE[1] * 5000, b"\xff\xfe bad bytes ", HOSTILE[0], evil["id"]))
    store.add_label(evil["id"], "hard_negative", "alice", note=HOSTILE[0])
    candidates = views.ranked_candidates(store, run_id, 1, "mbpp/600")
    page = views.candidates_html(candidates, "py", evil["id"])
    for text in HOSTILE:
        assert text not in page
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;" in page and "\ufffd" in page
    assert "earlier characters not shown" in page


def test_problem_list_is_paged_in_sql_and_opening_a_problem_reads_only_that_problem(store):
    run_id = fill_store(store, problems=500, samples=10)
    statements = []
    store.db.set_trace_callback(statements.append)
    rows, total = views.list_problems(store, run_id, 1, offset=475)
    assert total == 500 and len(rows) == 25
    assert rows[0]["problem_id"] == sorted(f"mbpp/{600 + i}" for i in range(500))[475]
    assert any("LIMIT" in s and "OFFSET" in s for s in statements)
    statements.clear()
    views.ranked_candidates(store, run_id, 1, "mbpp/700")
    views.problem_summary(store, run_id, 1, "mbpp/700")
    candidate_queries = [s for s in statements if "FROM candidates c" in s]
    assert candidate_queries and all("problem_id = " in s for s in candidate_queries)


def test_metrics_tables_and_figures(store):
    run_id = fill_store(store)
    assert views.pass_at_1_figure([]) is None and views.pass_at_1_table([]).empty
    store.add_evaluations(run_id, 1, [
        {"benchmark": "humaneval", "language": lang, "method": method, "pass_at_1": p, "n_problems": 4}
        for lang in ("py", "cpp") for method, p in (("reranker", 0.5), ("greedy", 0.25), ("logprob", 0.3))])
    table = views.pass_at_1_table(store.evaluations(run_id))
    assert list(table.columns) == ["benchmark", "language", "method", "iter 1"] and len(table) == 6
    assert views.pass_at_1_figure(store.evaluations(run_id)) is not None
    passing, failing = candidate_of(store, "mbpp/600", 1), candidate_of(store, "mbpp/600", 0)
    store.add_pairs(run_id, 1, [(passing["id"], failing["id"], "hard_negative")])
    per_iteration = views.hard_negatives_per_iteration(store, run_id)
    assert per_iteration.to_dict("records") == [
        {"iteration": 1, "mined_pairs": 1, "mined_candidates": 1, "labeled_hard_negatives": 0}]
    assert views.reward_histogram_figure(views.reward_values(store, run_id, 1), 1) is not None


def test_empty_store_explains_how_to_create_a_run(tmp_path):
    page = views.empty_store_html(str(tmp_path / "lab.sqlite"))
    assert "No runs yet" in page and "python -m lab iterate" in page


def test_export_writes_labels_pairs_and_a_datasets_folder(store, tmp_path):
    import datasets

    from lab.app import export_run

    run_id = fill_store(store)
    passing, failing = candidate_of(store, "mbpp/600", 1), candidate_of(store, "mbpp/600", 0)
    store.add_pairs(run_id, 1, [(passing["id"], failing["id"], "hard_negative")])
    store.add_label(failing["id"], "hard_negative", "alice", note=HOSTILE[0])
    path, message = export_run(store, tmp_path, "demo", "labels")
    rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
    assert [(r["candidate_id"], r["label"], r["note"], r["author"]) for r in rows] == \
        [(failing["id"], "hard_negative", HOSTILE[0], "alice")] and "1 labels rows" in message
    path, _ = export_run(store, tmp_path, "demo", "pairs")
    assert json.loads(Path(path).read_text())["rejected"] == failing["completion"]
    path, message = export_run(store, tmp_path, "demo", "dataset")
    folder = message.split("`")[3]
    assert path is None and datasets.load_from_disk(folder).column_names[:3] == ["prompt", "chosen", "rejected"]
    assert export_run(store, tmp_path, None, "labels") == (None, "Pick a run first.")


def test_the_app_listens_on_localhost_by_default_and_takes_user_password(monkeypatch, tmp_path):
    from lab import __main__ as cli
    from lab import app

    calls = []
    monkeypatch.setattr(app, "launch", lambda *args: calls.append(args))
    monkeypatch.delenv("RR_APP_AUTH", raising=False)
    app.main(["--lab-dir", str(tmp_path), "--author", "bob"])
    assert calls[-1] == (str(tmp_path), "127.0.0.1", 7860, None, "bob")
    cli.main(["app", "--lab-dir", str(tmp_path), "--auth", "ann:s3cret"])
    assert calls[-1][1:4] == ("127.0.0.1", 7860, ("ann", "s3cret"))
    with pytest.raises(SystemExit):
        app.main(["--auth", "no-colon"])


def test_the_app_builds_on_an_empty_lab_directory(tmp_path):
    from lab.app import build_app

    assert build_app(tmp_path / "empty", "me") is not None
    assert (tmp_path / "empty" / "lab.sqlite").exists()


def test_a_shared_app_refuses_requests_without_the_password(tmp_path):
    import socket
    import urllib.error
    import urllib.request

    from lab.app import launch

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = launch(tmp_path, port=port, auth=("ann", "s3cret"), block=False)
    try:
        assert app.server_name == "127.0.0.1"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=10)
        assert refused.value.code == 401
    finally:
        app.close()
