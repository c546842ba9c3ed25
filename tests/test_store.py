"""The store: transactions, append-only labels, licence guard, migrations, and real-process
concurrency and kill -9 crash safety."""
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import execution_result

from lab.problems import LicenceError, Problem
from lab.records import MeasureKey, Measurement
from lab.store import MIGRATIONS, LabelConflict, Store, StoreError

REPO = Path(__file__).resolve().parent.parent


def make_problem(problem_id="mbpp/601", training_allowed=True, prompt="def f():\n"):
    return Problem(id=problem_id, language="py", prompt=prompt, tests="assert f() == 1\n", stop_tokens=("\ndef",),
                   entry_point="f", source="test", split="train", training_allowed=training_allowed)


@pytest.fixture
def run(store):
    run_id = store.create_run("r", "tiny", "{}")
    store.add_problems([make_problem()], run_id, "train")
    return run_id


def add(store, run_id, n, problem_id="mbpp/601", model="m"):
    return store.add_candidates(run_id, 1, [
        {"problem_id": problem_id, "model": model, "sample_index": i,
         "completion": f"    return {i}\n"} for i in range(n)
    ])


def test_reinserting_candidates_is_a_no_op_that_returns_the_same_ids(store, run):
    first = add(store, run, 3)
    again = store.add_candidates(run, 1,
                                 [{"problem_id": "mbpp/601", "model": "m", "sample_index": 1, "completion": "other"}])
    assert again == [first[1]]
    assert [c["completion"] for c in store.candidates(run)] == ["    return 0\n", "    return 1\n", "    return 2\n"]


def test_a_failing_multi_row_write_leaves_nothing_behind(store, run):
    rows = [{"problem_id": "mbpp/601", "model": "m", "sample_index": 0, "completion": "ok"},
            {"problem_id": "no/such-problem", "model": "m", "sample_index": 1, "completion": "bad"}]
    with pytest.raises(sqlite3.IntegrityError):
        store.add_candidates(run, 1, rows)
    assert store.candidates(run) == []


def test_labels_are_append_only_and_versioned(store, run):
    candidate = add(store, run, 1)[0]
    first = store.add_label(candidate, "hard_negative", "ann", note="looks right, fails on []", seen_version=0)
    assert (first["version"], first["label"], first["undoes"]) == (1, "hard_negative", None)
    second = store.add_label(candidate, "exclude", "bob", seen_version=1)
    assert second["version"] == 2 and second["action"] > first["action"]
    assert store.add_label(candidate, "exclude", "bob") == second, "the same label again writes nothing"
    history = store.label_history(candidate)
    assert ([(h["label"], h["author"], h["version"]) for h in history]
            == [("hard_negative", "ann", 1), ("exclude", "bob", 2)])
    assert store.candidates(run)[0]["label"] == "exclude" and store.candidates(run)[0]["label_version"] == 2
    with pytest.raises(ValueError, match="label must be one of"):
        store.add_label(candidate, "great", "ann")


def test_a_label_written_over_a_version_its_author_did_not_see_is_refused(store, run):
    candidate = add(store, run, 1)[0]
    store.add_label(candidate, "positive", "bob", seen_version=0)
    with pytest.raises(LabelConflict) as conflict:
        store.add_label(candidate, "hard_negative", "ann", seen_version=0)
    assert conflict.value.current["author"] == "bob" and conflict.value.current["label"] == "positive"
    assert "changed to positive by bob" in str(conflict.value)
    assert [h["label"] for h in store.label_history(candidate)] == ["positive"]
    store.add_label(candidate, "hard_negative", "ann", seen_version=conflict.value.current["version"])
    assert store.current_labels(run)[candidate]["label"] == "hard_negative"


def test_undo_is_a_stack_of_each_authors_own_actions_across_problems(store, run):
    store.add_problems([make_problem("mbpp/602")], run, "train")
    a, b = add(store, run, 2)
    c = add(store, run, 1, problem_id="mbpp/602")[0]
    store.add_label(a, "hard_negative", "ann")
    store.add_label(b, "positive", "bob")
    store.add_label(c, "exclude", "ann")
    [undone] = store.undo_last(run, "ann")
    assert (undone["candidate_id"], undone["label"], undone["undoes"]) == (c, None, store.label_history(c)[0]["action"])
    [undone] = store.undo_last(run, "ann")
    assert undone["candidate_id"] == a and store.current_labels(run) == {b: store.label_history(b)[0]}
    assert store.undo_last(run, "ann") == [], "undos are not undone again: ann's stack is empty"
    assert store.last_action(run, "bob")[0]["candidate_id"] == b


def test_an_undo_over_another_authors_later_label_is_refused_unless_forced(store, run):
    candidate = add(store, run, 1)[0]
    store.add_label(candidate, "positive", "ann")
    store.add_label(candidate, "hard_negative", "ann", note="fails on []")
    store.add_label(candidate, "exclude", "bob")
    with pytest.raises(LabelConflict, match="changed to exclude by bob"):
        store.undo_last(run, "ann")
    assert store.current_labels(run)[candidate]["label"] == "exclude"
    [forced] = store.undo_last(run, "ann", force=True)
    assert (forced["label"], forced["author"]) == ("positive", "ann")
    assert [h["label"] for h in store.label_history(candidate)] == ["positive", "hard_negative", "exclude", "positive"]


def test_a_bulk_label_is_one_action_written_whole_or_not_at_all(store, run):
    ids = add(store, run, 3)
    store.add_label(ids[2], "positive", "bob")
    with pytest.raises(LabelConflict):
        store.add_labels({ids[0]: 0, ids[1]: 0, ids[2]: 0}, "exclude", "ann")
    assert store.current_labels(run).keys() == {ids[2]}
    rows = store.add_labels({ids[0]: 0, ids[1]: 0}, "exclude", "ann", note="duplicates")
    assert len({r["action"] for r in rows}) == 1 and {r["label"] for r in rows} == {"exclude"}
    assert len(store.undo_last(run, "ann")) == 2 and store.current_labels(run).keys() == {ids[2]}


def test_each_annotators_own_label_is_kept_for_agreement(store, run):
    a, b = add(store, run, 2)
    store.add_label(a, "positive", "ann")
    store.add_label(a, "hard_negative", "bob")
    store.add_label(b, "exclude", "ann")
    store.undo_last(run, "ann")
    assert [(r["candidate_id"], r["author"], r["label"]) for r in store.annotator_labels(run)] == [
        (a, "ann", "positive"), (a, "bob", "hard_negative")]


def test_pairs_on_evaluation_only_problems_are_refused(store):
    run_id = store.create_run("r", "tiny", "{}")
    store.add_problems([make_problem("multipl-e/humaneval-py/x", training_allowed=False)], run_id, "eval")
    ids = add(store, run_id, 2, problem_id="multipl-e/humaneval-py/x")
    with pytest.raises(LicenceError, match="evaluation-only"):
        store.add_pairs(run_id, 1, [(ids[0], ids[1], "execution")])
    with pytest.raises(LicenceError):
        store.add_problems([make_problem("multipl-e/humaneval-py/x", training_allowed=False)], run_id, "train")
    assert store.pairs(run_id) == []


def test_pairs_are_deduplicated_and_cannot_mix_problems(store, run):
    store.add_problems([make_problem("mbpp/602")], run, "train")
    a, b = add(store, run, 2)
    c = add(store, run, 1, problem_id="mbpp/602")[0]
    assert store.add_pairs(run, 1, [(a, b, "execution"), (a, b, "execution")]) == 1
    assert store.add_pairs(run, 2, [(a, b, "hard_negative")]) == 0
    with pytest.raises(StoreError, match="mixes problems"):
        store.add_pairs(run, 1, [(a, c, "manual")])
    pair = store.pairs(run)[0]
    assert (pair["prompt"], pair["chosen"], pair["rejected"]) == ("def f():\n", "    return 0\n", "    return 1\n")


def test_changed_problem_content_under_a_stored_id_is_refused(store, run):
    with pytest.raises(StoreError, match="already stored with different content"):
        store.add_problems([make_problem(prompt="def g():\n")])


def test_execution_output_is_capped_and_first_result_kept(store, run):
    candidate = add(store, run, 1)[0]
    store.add_executions([(candidate, execution_result(False, stderr="x" * 100_000))])
    store.add_executions([(candidate, execution_result(True))])
    row = store.candidates(run)[0]
    assert row["passed"] == 0 and row["status"] == "Exception"
    assert len(row["stderr"]) < 17_000 and "more characters dropped" in row["stderr"]


def test_scores_are_kept_per_reward_model_version(store, run):
    a, b = add(store, run, 2)
    store.add_scores("r/rm-1", [(a, 0.5), (b, -1.0)])
    store.add_scores("r/rm-2", [(a, -2.0)])
    assert [c["reward"] for c in store.candidates(run, reward_model="r/rm-1")] == [0.5, -1.0]
    assert [c["reward"] for c in store.candidates(run, reward_model="r/rm-2")] == [-2.0, None]


def test_restarting_a_stage_drops_its_partial_metrics(store, run):
    store.start_stage(run, 1, "reward_model")
    store.log_metrics(run, 1, "reward_model", 1, {"loss": 0.7})
    store.start_stage(run, 1, "reward_model")
    store.log_metrics(run, 1, "reward_model", 1, {"loss": 0.6})
    store.finish_stage(run, 1, "reward_model", info={"pairs": 3})
    assert [m["value"] for m in store.metrics(run, stage="reward_model")] == [0.6]
    assert store.stage_status(run, 1, "reward_model") == "done"


def test_a_newer_schema_is_refused_and_an_old_one_upgraded(tmp_path):
    path = tmp_path / "lab.sqlite"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="newer than this code knows"):
        Store(path)
    fresh = tmp_path / "fresh.sqlite"
    sqlite3.connect(fresh).close()
    assert Store(fresh).schema_version == len(MIGRATIONS)


def old_store(path: Path, version: int) -> sqlite3.Connection:
    """A store with the schema as version `version` left it, written by older code."""
    db = sqlite3.connect(path)
    for script in MIGRATIONS[:version]:
        db.executescript(script)
    db.execute(f"PRAGMA user_version = {version}")
    return db


def test_measurements_stored_before_intervals_existed_keep_their_values_and_gain_empty_intervals(tmp_path):
    path = tmp_path / "lab.sqlite"
    with old_store(path, 3) as db:  # with a measurement in it
        db.execute("INSERT INTO runs (name, preset, config_json, created_at) VALUES ('old', 'cpu', '{}', 'then')")
        db.execute("INSERT INTO measurements VALUES "
                   "(1, 0, 'mbpp-validation', 'pair_accuracy/reranker', 0.7, 20, 'then')")
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        (old,) = store.measurements(1)
        assert (old["value"], old["count"], old["ci_low"], old["ci_high"]) == (0.7, 20, None, None)
        store.add_measurements(1, 1, "mbpp-validation", {
            MeasureKey("pair_accuracy", "reranker"): Measurement(0.8, 30, 0.7, 0.9),
            MeasureKey("lambda"): Measurement(4.0, None)})
        new = {m["name"]: m for m in store.measurements(1) if m["iteration"] == 1}
        assert (new["pair_accuracy/reranker"]["ci_low"], new["pair_accuracy/reranker"]["ci_high"]) == (0.7, 0.9)
        assert new["lambda"]["ci_low"] is None and new["lambda"]["count"] is None


def test_measurement_names_of_an_old_store_become_measure_and_subject(tmp_path):
    path = tmp_path / "lab.sqlite"
    with old_store(path, 4) as db:  # version 4 keyed a measurement by one name, 'measure/subject'
        db.execute("INSERT INTO runs (name, preset, config_json, created_at) VALUES ('old', 'cpu', '{}', 'then')")
        db.executemany("INSERT INTO measurements VALUES (1, 0, 'mbpp-validation', ?, ?, ?, 'then', ?, ?)", [
            ("pair_accuracy/reranker", 0.7, 20, 0.6, 0.8),
            ("ranking_difference/reranker+logprob-logprob", -0.1, 5, None, None),
            ("top1/random@t=0.5", 0.25, 4, None, None), ("lambda", 4.0, None, None, None)])
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        rows = {(m["measure"], m["subject"]): m for m in store.measurements(1)}
        assert set(rows) == {("pair_accuracy", "reranker"), ("ranking_difference", "reranker+logprob-logprob"),
                             ("top1", "random@t=0.5"), ("lambda", "")}
        pair = rows[("pair_accuracy", "reranker")]
        assert (pair["name"], pair["value"], pair["count"], pair["ci_low"], pair["ci_high"], pair["created_at"]) == (
            "pair_accuracy/reranker", 0.7, 20, 0.6, 0.8, "then")
        assert rows[("lambda", "")]["name"] == "lambda" and rows[("lambda", "")]["count"] is None
        store.add_measurements(1, 0, "mbpp-validation",
                               {MeasureKey("pair_accuracy", "reranker"): Measurement(0.75, 21)})
        again = [m for m in store.measurements(1) if m["measure"] == "pair_accuracy"]
        assert [(m["value"], m["count"], m["ci_low"]) for m in again] == [(0.75, 21, None)]  # replaced, not added


def test_labels_and_stages_of_an_old_store_gain_versions_actions_and_cancelled(tmp_path):
    path = tmp_path / "lab.sqlite"
    with old_store(path, 6) as db:  # version 6 labels had no version, action nor undoes
        db.execute("INSERT INTO runs (name, preset, config_json, created_at) VALUES ('old', 'cpu', '{}', 'then')")
        db.execute("INSERT INTO problems VALUES ('p/1', 'py', 'def f():', '', '[]', 'f', 'test', 'train', 1, NULL)")
        db.executemany("INSERT INTO candidates (id, run_id, iteration, problem_id, origin, model, sample_index, "
                       "completion, created_at) VALUES (?, 1, 0, 'p/1', 'sample', 'm', ?, 'x', 'then')",
                       [(1, 0), (2, 1)])
        db.executemany("INSERT INTO labels (candidate_id, label, note, author, created_at) "
                       "VALUES (?, ?, '', ?, 'then')",
                       [(1, "positive", "ann"), (2, "exclude", "ann"), (1, "hard_negative", "bob")])
        db.execute("INSERT INTO stages VALUES (1, 0, 'sft', 'running', 'then', NULL, NULL)")
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        history = [(h["version"], h["action"], h["undoes"]) for h in store.label_history(1)]
        assert history == [(1, 1, None), (2, 3, None)]
        assert store.add_label(2, "positive", "bob", seen_version=1)["version"] == 2
        assert store.undo_last(1, "bob")[0]["label"] == "exclude"
        assert store.end_running_stages(1, "cancelled", {"error": "killed"}) == 1
        assert store.stage_status(1, 0, "sft") == "cancelled"


def test_a_damaged_or_foreign_file_is_refused_with_what_to_do(tmp_path):
    foreign = tmp_path / "foreign.sqlite"
    foreign.write_bytes(b"not a database at all, just text" * 200)
    with pytest.raises(StoreError, match=r"cannot be read as the lab's store.*integrity_check.*\.backup-.*\.recover"):
        Store(foreign)
    with pytest.raises(StoreError, match="cannot be read as the lab's store"):
        Store(foreign, readonly=True)
    assert foreign.read_bytes().startswith(b"not a database"), "nothing was changed"
    path = tmp_path / "lab.sqlite"
    with Store(path) as store:
        run_id = store.create_run("r", "tiny", "{}")
        store.add_problems([make_problem()], run_id, "train")
        add(store, run_id, 400)
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.check()
    size = path.stat().st_size
    damaged = tmp_path / "damaged.sqlite"
    damaged.write_bytes(path.read_bytes()[: size // 2] + b"\x5a" * 4096 + path.read_bytes()[size // 2 + 4096:])
    with pytest.raises(StoreError, match="cannot be read as the lab's store"):
        Store(damaged).check()
    truncated = tmp_path / "truncated.sqlite"
    truncated.write_bytes(path.read_bytes()[: size // 3])
    with pytest.raises(StoreError, match="cannot be read as the lab's store"):
        Store(truncated).check()


def test_a_read_only_store_reads_refuses_writes_and_opens_only_a_current_store(tmp_path):
    path = tmp_path / "lab.sqlite"
    with pytest.raises(StoreError, match="no store at"):
        Store(path, readonly=True)
    assert not path.exists()
    with Store(path) as store:
        store.create_run("r", "tiny", "{}")
    reader = Store(path, readonly=True)
    assert reader.reader() is reader and reader.run("r")["preset"] == "tiny"
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.create_run("s", "tiny", "{}")
    reader.close()
    old = tmp_path / "old.sqlite"
    old_store(old, 4).close()
    with pytest.raises(StoreError, match="schema version 4.*open it writable once"):
        Store(old, readonly=True)
    Store(old).close()
    assert Store(old, readonly=True).schema_version == len(MIGRATIONS)

WRITER = r"""
import sys, time
from lab.store import Store
from lab.problems import Problem
store = Store(sys.argv[1])
run_id = store.create_run("r", "tiny", "{}")
store.add_problems([Problem(id="mbpp/601", language="py", prompt="def f():\n", tests="assert f() == 1\n",
                            stop_tokens=("\ndef",), entry_point="f", source="test", split="train",
                            training_allowed=True)],
                   run_id, "train")
writer, batches, batch = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
print("ready", flush=True)
for b in range(batches):
    ids = store.add_candidates(run_id, 1, [{"problem_id": "mbpp/601", "model": writer, "sample_index": b * batch + i,
                                            "completion": "x" * 2000} for i in range(batch)])
    store.add_label(ids[0], "positive", writer)
    print(b, flush=True)
"""


def _writer(path, name, batches, batch):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, str(batches), str(batch)],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "lab.sqlite"
    Store(path).close()
    writers = [_writer(path, name, 40, 10) for name in ("loop", "app")]
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    with Store(path) as store:
        run_id = store.run_id("r")
        rows = store.candidates(run_id)
        assert len(rows) == 800
        assert {(r["model"], r["sample_index"]) for r in rows} == {(m, i) for m in ("loop", "app") for i in range(400)}
        assert len(store.current_labels(run_id)) == 80
        assert store.integrity_check() == "ok"


def test_kill_9_in_the_middle_of_writes_leaves_whole_transactions(tmp_path):
    path = tmp_path / "lab.sqlite"
    writer = _writer(path, "loop", 100_000, 50)
    assert writer.stdout.readline().strip() == "ready"
    for _ in range(5):
        writer.stdout.readline()
    time.sleep(0.05)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    with Store(path) as store:
        assert store.integrity_check() == "ok"
        run_id = store.run_id("r")
        rows = store.candidates(run_id)
        assert len(rows) >= 250 and len(rows) % 50 == 0
        indices = sorted(r["sample_index"] for r in rows)
        assert indices == list(range(len(rows)))
        store.add_candidates(run_id, 1,
                             [{"problem_id": "mbpp/601", "model": "after", "sample_index": 0, "completion": "y"}])
        assert len(store.candidates(run_id)) == len(rows) + 1


def test_checkpoints_of_an_old_store_are_kept_and_a_control_is_stored_beside_its_iterations_own(tmp_path):
    path = tmp_path / "lab.sqlite"
    with old_store(path, 7) as db:  # version 7 kept one checkpoint per (run, iteration, kind)
        db.execute("INSERT INTO runs (name, preset, config_json, created_at) VALUES ('old', 'cpu', '{}', 'then')")
        db.execute("INSERT INTO checkpoints (run_id, iteration, kind, version, path, metrics_json, created_at) "
                   "VALUES (1, 1, 'reward_model', 'old/rm-1', '/rm-1', '{\"steps\": 8}', 'then')")
    with Store(path) as store:
        store.add_checkpoint(1, 1, "reward_model", "old/rm-1-fresh", "/rm-1-fresh", {"steps": 9}, variant="fresh")
        own, fresh = store.checkpoint(1, "reward_model", 1), store.checkpoint(1, "reward_model", 1, "fresh")
        assert (own["version"], own["variant"], own["metrics"]) == ("old/rm-1", "", {"steps": 8})
        assert (fresh["path"], fresh["metrics"]) == ("/rm-1-fresh", {"steps": 9})
        assert store.checkpoint(1, "reward_model")["version"] == "old/rm-1"  # the latest is the iteration's own
