"""The loop survives kill -9: a real process is killed mid-stage and at a stage start, rerun, and
ends with exactly what an uninterrupted run has (tiny models, a couple of problems); `until` stops it after a
named stage; labels from the app win when pairs are built."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from conftest import FINISHED_RUN, execution_result

from lab.config import make_config
from lab.loop import select_train_problems
from lab.stages import RunContext
from lab.store import Store

SMALL = {
    "data.max_train_problems": "2", "data.max_validation_problems": "2", "data.max_eval_problems": "2",
    "sampling.num_samples": "3",
    "sampling.max_new_tokens": "12", "sft.max_steps": "2", "reward.max_steps": "2", "policy.steps": "1",
    "execution.use_cache": "false",
}
CHILD = textwrap.dedent("""
    import os, signal, sys
    from lab import loop
    from lab.config import make_config
    from lab.store import Store

    # 'iteration:stage' (at its start), 'iteration:sample:N' (after N problems) or 'iteration:policy:N' (once
    # step N of the policy stage is logged)
    kill_at = os.environ.get("KILL_AT", "")
    until = os.environ.get("UNTIL")  # 'iteration:stage': stop after it

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    start_stage, add_candidates, log_metrics = Store.start_stage, Store.add_candidates, Store.log_metrics
    written = []

    def start_stage_then_maybe_die(self, run_id, iteration, name):
        start_stage(self, run_id, iteration, name)
        if kill_at == f"{iteration}:{name}":
            die()

    def add_candidates_then_maybe_die(self, run_id, iteration, rows):
        ids = add_candidates(self, run_id, iteration, rows)
        written.append(iteration)
        if kill_at.startswith(f"{iteration}:sample:") and written.count(iteration) == int(kill_at.rsplit(":", 1)[1]):
            die()
        return ids

    def log_metrics_then_maybe_die(self, run_id, iteration, stage, step, values):
        log_metrics(self, run_id, iteration, stage, step, values)
        if kill_at == f"{iteration}:{stage}:{step}":
            die()

    Store.start_stage, Store.add_candidates = start_stage_then_maybe_die, add_candidates_then_maybe_die
    Store.log_metrics = log_metrics_then_maybe_die
    config = make_config("tiny", lab_dir=sys.argv[1], **dict(item.split("=", 1) for item in sys.argv[2:]))
    stop = (int(until.split(":")[0]), until.split(":")[1]) if until else None
    loop.run_loop(config, progress=False, log=lambda line: None, until=stop)
""")


def run_child(lab_dir, kill_at=None, until=None, **overrides):
    settings = {**SMALL, **overrides}
    env = {**os.environ, "KILL_AT": kill_at or "", "UNTIL": until or ""}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(lab_dir)] + [f"{k}={v}" for k, v in settings.items()],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process, expect_killed):
    output, _ = process.communicate(timeout=600)
    if expect_killed:
        assert process.returncode == -signal.SIGKILL, output[-3000:]
    else:
        assert process.returncode == 0, output[-3000:]


def snapshot(lab_dir):
    """What the run wrote, by identity rather than row id or time. Not texts or pass/fail: training the
    tiny models is not bit-reproducible across processes, so an SFT redone after a kill may sample
    different text; which rows exist must match exactly."""
    with Store(lab_dir / "lab.sqlite") as store:
        db = store.db
        key = "c.iteration, c.problem_id, c.origin, c.model, c.sample_index"
        queries = {
            "candidates": f"SELECT {key} FROM candidates c ORDER BY {key}",
            "executions": f"SELECT {key} FROM executions e JOIN candidates c ON c.id = e.candidate_id ORDER BY {key}",
            "scores": f"SELECT s.reward_model, {key} FROM scores s JOIN candidates c ON c.id = s.candidate_id "
                      f"ORDER BY s.reward_model, {key}",
            "pairs": "SELECT p.iteration, p.kind, COUNT(*) FROM pairs p GROUP BY 1, 2 ORDER BY 1, 2",
            "checkpoints": "SELECT iteration, kind, version FROM checkpoints ORDER BY 1, 2",
            "stages": "SELECT iteration, name, status FROM stages ORDER BY 1, 2",
            "evaluations": "SELECT iteration, benchmark, language, method, n_problems FROM evaluations "
                           "ORDER BY 1, 2, 3, 4",
        }
        return {table: [tuple(row) for row in db.execute(sql)] for table, sql in queries.items()}


@pytest.mark.integration
def test_kill_minus_nine_then_rerun_ends_like_an_uninterrupted_run(tmp_path):
    uninterrupted = run_child(tmp_path / "clean")
    killed_mid_sampling = run_child(tmp_path / "killed", kill_at="1:sample:1")
    finish(killed_mid_sampling, expect_killed=True)
    partial = snapshot(tmp_path / "killed")
    assert (1, "sample", "running") in partial["stages"]
    finish(run_child(tmp_path / "killed", kill_at="1:train_rm"), expect_killed=True)
    finish(run_child(tmp_path / "killed"), expect_killed=False)
    finish(uninterrupted, expect_killed=False)

    resumed, clean = snapshot(tmp_path / "killed"), snapshot(tmp_path / "clean")
    assert len(partial["candidates"]) < len(resumed["candidates"])
    # hard negatives are chosen by the reward model's scores, and the tiny random RM scores its candidates
    # almost alike, so which of them rank in its top k is not reproducible across processes: their pairs
    # must exist in both runs, every other row must match exactly
    for snap in (resumed, clean):
        mined = [row for row in snap["pairs"] if row[1] == "hard_negative"]
        assert len(mined) == 1 and mined[0][2] > 0
        snap["pairs"] = [row for row in snap["pairs"] if row[1] != "hard_negative"]
    for table in clean:
        assert resumed[table] == clean[table], table
    assert all(status == "done" for _, _, status in resumed["stages"])
    assert {kind for _, kind, _ in resumed["checkpoints"]} == {"generator", "reward_model"} or \
        {kind for _, kind, _ in resumed["checkpoints"]} == {"reward_model"}
    problems, samples = int(SMALL["data.max_train_problems"]), int(SMALL["sampling.num_samples"])
    with Store(tmp_path / "killed" / "lab.sqlite") as store:
        train_ids = {p.id for p in store.run_problems(store.run_id("default"), "train")}
    train_samples = [c for c in resumed["candidates"] if c[2] == "sample" and c[1] in train_ids]
    assert len(train_samples) == 2 * problems * samples  # iterations 0 and 1, no duplicates
    assert resumed["pairs"] and resumed["evaluations"]


@pytest.mark.integration
def test_a_policy_stage_killed_mid_training_resumes_after_its_last_saved_step(tmp_path):
    """Killed once its second step is logged (before that step's state is saved), the stage continues from
    step 1: its metrics hold each of the 3 steps once, and it trained only steps 2 and 3 again."""
    steps = {"policy.steps": "3"}
    finish(run_child(tmp_path, kill_at="1:policy:2", until="1:policy", **steps), expect_killed=True)
    state = tmp_path / "default" / "iter-1" / "generator" / "resume" / "state.pt"
    assert state.is_file()
    finish(run_child(tmp_path, until="1:policy", **steps), expect_killed=False)
    with Store(tmp_path / "lab.sqlite") as store:
        run_id = store.run_id("default")
        logged = [(row["name"], row["step"]) for row in store.metrics(run_id, stage="policy", iteration=1)]
        checkpoint = store.checkpoint(run_id, "generator", 1)
        assert store.stage_status(run_id, 1, "policy") == "done"
    assert sorted({step for _, step in logged}) == [1, 2, 3] and len(logged) == len(set(logged))
    assert checkpoint["metrics"]["steps"] == 3 and checkpoint["metrics"]["steps_run"] == 2
    assert not state.parent.exists() and (state.parent.parent / "adapter_model.safetensors").is_file()


def test_training_problems_are_seeded_capped_and_never_evaluation_only():
    config = make_config("tiny", **{"data.max_train_problems": "5"})
    first, again = select_train_problems(config), select_train_problems(config)
    assert [p.id for p in first] == [p.id for p in again] and len(first) == 5
    # data.train_splits=auto: every MBPP split neither held out nor evaluated (lab/roles.py)
    assert all(p.training_allowed and p.source == "mbpp" and p.split in ("train", "test", "prompt") for p in first)


def test_labels_from_the_app_win_when_pairs_are_built_and_when_the_reward_model_is_trained(tmp_path, monkeypatch):
    """Pure store data, no models: the pairs stage and the RM training stage of the real loop code."""
    from lab import loop
    from lab.stages import RunContext

    config = make_config("tiny", lab_dir=str(tmp_path), **{"data.max_train_problems": "1"})
    store = Store(config.store_path)
    run_id = store.create_run(config.run_name, "tiny", config.to_json())
    problem = select_train_problems(config)[0]
    store.add_problems([problem], run_id, role="train")
    ids = store.add_candidates(run_id, 0, [
        {"problem_id": problem.id, "origin": "sample", "model": "m", "sample_index": i, "completion": f"c{i}"}
        for i in range(5)])
    passed = [True, False, False, False, False]
    store.add_executions([(i, execution_result(p)) for i, p in zip(ids, passed)])
    store.add_label(ids[1], "positive", author="tester")   # fails its tests, but a human says it is right
    store.add_label(ids[2], "exclude", author="tester")
    run = RunContext(config, store, run_id, log=lambda line: None)

    loop._execution_pairs(run)
    pairs = {(p["chosen_id"], p["rejected_id"], p["kind"]) for p in store.pairs(run_id)}
    assert pairs == {(ids[1], ids[3], "manual"), (ids[1], ids[4], "manual"),
                     (ids[0], ids[3], "execution"), (ids[0], ids[4], "execution")}

    store.add_label(ids[3], "positive", author="tester")  # given after the pairs were built
    trained_on = []

    def fake_train(config, pairs, output_dir, **kwargs):
        trained_on.extend(pairs)
        return {"train_loss": 0.5}

    monkeypatch.setattr(loop, "train_reward_model", fake_train)
    info = loop._train_reward_model(run, 0)
    assert sorted((p.chosen, p.rejected) for p in trained_on) == [("c0", "c4"), ("c1", "c4")]
    assert info["pairs_dropped_by_labels"] == 2
    assert store.checkpoint(run_id, "reward_model", 0)["version"] == f"{config.run_name}/rm-0"


@pytest.mark.integration
def test_until_stops_the_loop_after_the_named_stage(tmp_path):
    from lab import loop

    assert list(loop.stage_work(None, 0)) == list(loop.BOOTSTRAP_STAGES)
    assert list(loop.stage_work(None, 1)) == list(loop.ITERATION_STAGES)
    config = make_config("tiny", lab_dir=str(tmp_path), **{**SMALL, "sft.keep": "never"})
    with pytest.raises(ValueError, match="the stages of iteration 1 are policy"):
        loop.run_loop(config, until=(1, "pairs"))
    summary = loop.run_loop(config, until=(0, "sample"), progress=False, log=lambda line: None)
    stages = [(s["iteration"], s["name"], s["status"]) for s in summary["stages"]]
    assert stages == [(0, "sft", "done"), (0, "sample", "done")]
    assert summary["candidates"] and not summary["pairs"]


def test_executor_failures_are_not_recorded_and_a_rerun_retries_them(tmp_path, monkeypatch):
    from lab.execution import Executor
    from lab.stages import RunContext, execute_candidates

    config = make_config("tiny", lab_dir=str(tmp_path),
                         **{"data.max_train_problems": "1", "execution.use_cache": "false"})
    store = Store(config.store_path)
    run_id = store.create_run(config.run_name, "tiny", config.to_json())
    problem = select_train_problems(config)[0]
    store.add_problems([problem], run_id, role="train")
    ids = store.add_candidates(run_id, 0, [{"problem_id": problem.id, "origin": "sample", "model": "m",
                                            "sample_index": i, "completion": "    pass\n"} for i in range(2)])
    run_many = Executor.run_many

    def first_run_breaks(self, jobs, progress=True):
        results = run_many(self, jobs, progress)
        return [execution_result(False, stderr="[execution] worker died", executor_error=True), *results[1:]]

    monkeypatch.setattr(Executor, "run_many", first_run_breaks)
    run = RunContext(config, store, run_id)
    with pytest.raises(RuntimeError, match="1 of 2 runs failed inside the executor"):
        execute_candidates(run, 0)
    assert [c["id"] for c in store.unexecuted_candidates(run_id, 0)] == [ids[0]]
    monkeypatch.undo()
    assert execute_candidates(run, 0) == {"executed": 1}
    assert store.unexecuted_candidates(run_id, 0) == []


@pytest.mark.integration
def test_pairs_are_on_policy_unless_reference_pairs_is_set(tmp_path):
    from lab import loop

    base = {**SMALL, "data.max_train_problems": "1", "data.max_validation_problems": "1"}
    for reference_pairs in ("false", "true"):
        config = make_config("tiny", lab_dir=str(tmp_path / reference_pairs),
                             **{**base, "reward.reference_pairs": reference_pairs})
        loop.run_loop(config, until=(0, "sample"), progress=False, log=lambda line: None)
        with Store(config.store_path) as store:
            origins = {c["origin"] for c in store.candidates(store.run_id(config.run_name))}
        assert ("reference" in origins) == (reference_pairs == "true")


@pytest.mark.integration
def test_the_reward_model_is_measured_on_validation_problems_it_never_trained_on(finished_tiny_run):
    config = finished_tiny_run
    with Store(config.store_path) as store:
        run_id = store.run_id(config.run_name)
        train = {p.id for p in store.run_problems(run_id, "train")}
        held_out = {p.id for p in store.run_problems(run_id, "validation")}
        measured = {(m["iteration"], m["name"]) for m in store.measurements(run_id, "mbpp-validation")}
        paired = {p["problem_id"] for p in store.pairs(run_id)}
        validation_samples = store.candidates(run_id, role="validation")
    assert held_out and held_out.isdisjoint(train) and paired <= train
    assert all(p.split == "validation" for p in load_problems_by_id(config, held_out))
    for iteration in (0, 1):
        assert {(iteration, "problems"), (iteration, "top1/random"), (iteration, "pair_accuracy/reranker"),
                (iteration, "ranking_accuracy/reranker"), (iteration, "length_correlation/passed")} <= measured
    assert (1, "hard_negative_accuracy/after") in measured and (0, "hard_negative_accuracy/after") not in measured
    # sampled once per generator: PPO made gen-1, so iterations 0 and 1 each hold one pool of samples (and
    # iteration 0 the SFT gate's: the base model's pool and both models' greedy answers)
    pools = {k: sum(c["iteration"] == k and c["origin"] == "sample" and c["model"] == f"{config.run_name}/gen-{k}"
                    for c in validation_samples) for k in (0, 1)}
    assert pools == {k: len(held_out) * int(FINISHED_RUN["sampling.num_samples"]) for k in (0, 1)}
    assert {c["model"] for c in validation_samples if c["iteration"] == 0} == {f"{config.run_name}/gen-0",
                                                                               config.model.generator}
    assert all(c["iteration"] == 0 for c in validation_samples if c["model"] == config.model.generator)


def coin_flip_problems(path, count, training_allowed=False):
    """Problems on which a random tiny model both passes and fails: the completion is the inside of a
    raw string, and the test passes when its length is even."""
    import json

    rows = [{"id": f"coin/{i}", "language": "py", "prompt": f"text_{i} = r\"\"\"", "stop_tokens": ['\"\"\"'],
             "tests": f'\"\"\"\nassert len(text_{i}) % 2 == 0\n', "reference": "abc",
             "training_allowed": training_allowed}
            for i in range(count)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return f"jsonl:{path}"


@pytest.mark.integration
def test_resample_mixed_samples_again_only_where_both_verdicts_were_seen(tmp_path):
    from lab import loop

    coins = coin_flip_problems(tmp_path / "coins.jsonl", 8, training_allowed=True).removeprefix("jsonl:")
    config = make_config("tiny", lab_dir=str(tmp_path / "lab"), **{
        **SMALL, "data.train_splits": "", "data.extra_problems": coins, "data.max_train_problems": "8",
        "sampling.num_samples": "2", "reward.reference_pairs": "false", "policy.enabled": "false",
        "loop.resample": "mixed"})
    loop.run_loop(config, until=(1, "execute"), progress=False, log=lambda line: None)
    with Store(config.store_path) as store:
        samples = [c for c in store.candidates(store.run_id(config.run_name), role="train") if c["origin"] == "sample"]
    verdicts = {}
    for c in samples:
        if c["iteration"] == 0:
            verdicts.setdefault(c["problem_id"], set()).add(c["passed"])
    mixed = {problem for problem, seen in verdicts.items() if seen == {0, 1}}
    assert len(verdicts) == 8 and 0 < len(mixed) < 8, "two coin flips per problem should give both kinds of problem"
    assert {c["problem_id"] for c in samples if c["iteration"] == 1} == mixed


@pytest.mark.integration
def test_an_unchanged_generator_is_evaluated_once_and_each_reward_model_on_its_samples(tmp_path):
    from lab import evaluation, loop

    eval_set = coin_flip_problems(tmp_path / "coin.jsonl", 6)
    config = make_config("tiny", lab_dir=str(tmp_path / "lab"), **{
        **SMALL, "policy.enabled": "false", "loop.iterations": "0", "data.eval_benchmarks": eval_set,
        "data.max_eval_problems": "6", "sampling.num_samples": "4"})
    loop.run_loop(config, progress=False, log=lambda line: None)
    evaluation.evaluate_run(config, progress=False, log=lambda line: None)  # what `python -m lab run` does next
    with Store(config.store_path) as store:
        run_id = store.run_id(config.run_name)
        evaluated_before = sorted(c["id"] for c in store.candidates(run_id, role="eval"))
        generator_pool = {c["id"] for c in store.candidates(run_id, role="eval", model="default/gen-0")}
    loop.run_loop(config, iterations=1, progress=False, log=lambda line: None)
    with Store(config.store_path) as store:
        run_id = store.run_id(config.run_name)
        evaluated = store.candidates(run_id, role="eval")
        scored_by = {version: {c["id"] for c in store.candidates(run_id, role="eval", reward_model=version)
                               if c["reward"] is not None} for version in ("default/rm-0", "default/rm-1")}
        measured = {(m["iteration"], m["name"]): m["value"]
                    for m in store.measurements(run_id, evaluation.eval_set_name(eval_set, "py"))}
        evaluations = {(r["iteration"], r["method"]): r["pass_at_1"] for r in store.evaluations(run_id)
                       if r["generator"] == "gen-0"}
    # PPO off: gen-0 made both iterations' candidates, so iteration 1 draws none and both RMs score the same ones
    assert evaluated_before and sorted(c["id"] for c in evaluated) == evaluated_before
    assert scored_by["default/rm-0"] == scored_by["default/rm-1"] == generator_pool  # not the base model's rows
    assert {k for k, _ in evaluations} == {0, 1}
    assert {0, 1} <= {c["passed"] for c in evaluated}, "the coin-flip set should give both verdicts"
    # rm-1's record of rm-0 is rm-0's own measurement of iteration 0: the very same candidates and scores
    assert measured[(1, "ranking_accuracy/previous_reranker")] == measured[(0, "ranking_accuracy/reranker")] is not None
    assert measured[(1, "top1/previous_reranker")] == pytest.approx(evaluations[(0, "reranker")])
    assert not {name for k, name in measured if k == 0 and "previous" in name}


def test_evaluation_candidates_stored_under_their_own_iteration_stay_there(tmp_path):
    from lab.evaluation import sampled_in
    from lab.problems import Problem

    config = make_config("tiny", lab_dir=str(tmp_path), **SMALL)
    problem = Problem("e/1", "py", "def f():\n", "assert f() == 1\n", ("\ndef",), "f", "humaneval", "test", False)
    with Store(config.store_path) as store:
        run = RunContext.open(config, store, log=lambda line: None)
        store.add_problems([problem], run.run_id, "eval")
        assert sampled_in(run, 1, "eval", {problem.id}) == 0  # no generator checkpoint: the base model's, sampled in 0
        # a store written before samples were shared holds iteration 1's evaluation candidates under 1
        store.ensure_iteration(run.run_id, 1)
        store.add_candidates(run.run_id, 1, [{"problem_id": problem.id, "origin": "sample",
                                              "model": config.model.generator, "sample_index": 0,
                                              "completion": "    return 1\n"}])
        assert sampled_in(run, 1, "eval", {problem.id}) == 1
        assert sampled_in(run, 1, "validation", {problem.id}) == 0


def load_problems_by_id(config, ids):
    from lab.evaluation import heldout_problems

    return [p for p in heldout_problems(config) if p.id in ids]


@pytest.mark.integration
def test_a_user_jsonl_file_is_an_evaluation_set_end_to_end_and_never_trains(tmp_path):
    import json

    from lab import loop, run_summary

    rows = [{"id": f"mine/{i}", "language": "py", "prompt": f"def f{i}(x):\n", "tests": f"assert f{i}(1) == 1\n",
             "stop_tokens": ["\ndef"], "reference": "    return x\n", "training_allowed": False} for i in range(2)]
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = make_config("tiny", lab_dir=str(tmp_path / "lab"), **{**SMALL, "data.eval_benchmarks": f"jsonl:{path}"})
    summary = loop.run_loop(config, progress=False, log=lambda line: None)
    with Store(config.store_path) as store:
        run_id = store.run_id(config.run_name)
        evaluated = {p.id for p in store.run_problems(run_id, "eval")}
        trained = {p.id for p in store.run_problems(run_id, "train")} | {p["problem_id"] for p in store.pairs(run_id)}
    assert evaluated == {"mine/0", "mine/1"} and not evaluated & trained
    methods = {r["method"] for r in summary["evaluations"] if r["benchmark"] == f"jsonl:{path}"}
    assert {"greedy", "random", "logprob", "reranker", "oracle"} <= methods
    assert summary["table_markdown"].startswith("| iteration | generator | method | mine.jsonl Python |")
    # what a run this small cannot show, and what can
    assert "python -m lab study" in run_summary.format_summary(summary)


def test_a_run_continued_with_another_config_records_it_and_says_what_changed(tmp_path):
    first = make_config("tiny", lab_dir=str(tmp_path))
    later = first.override(**{"sampling.temperature": "0.4"})
    said = []
    with Store(first.store_path) as store:
        RunContext.open(first, store, log=said.append)
        assert said == []
        RunContext.open(later, store, log=said.append)
        assert len(said) == 1 and "sampling.temperature: 0.8 -> 0.4" in said[0], said
        assert json.loads(store.run("default")["config_json"])["sampling"]["temperature"] == 0.4
        RunContext.open(later, store, log=said.append)
        assert len(said) == 1


def test_a_ppo_stage_stored_done_by_an_earlier_version_is_the_policy_stage_done(tmp_path):
    from lab import loop

    config = make_config("tiny", lab_dir=str(tmp_path))
    with Store(config.store_path) as store:
        run = RunContext.open(config, store)
        store.ensure_iteration(run.run_id, 1)
        store.start_stage(run.run_id, 1, "ppo")
        store.finish_stage(run.run_id, 1, "ppo", "done")

        def trains_again():
            raise AssertionError("gen-1 was trained again")

        loop.run_stage(run, 1, "policy", trains_again)
        loop.run_stage(run, 2, "policy", lambda: {"skipped": "here it runs"})
        assert store.stage_status(run.run_id, 2, "policy") == "done"


@pytest.mark.integration
def test_every_long_stage_moves_one_console_bar_to_its_end(tmp_path):
    from lab import loop
    from lab.console import JobConsole

    class RecordingConsole(JobConsole):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.bars_by_stage = []

        def stage(self, iteration, name, estimate_s=None):
            self.current = f"{iteration}:{name}"
            return super().stage(iteration, name, estimate_s)

        def progress(self, total, desc, unit="it"):
            bar = super().progress(total, desc, unit)
            self.bars_by_stage.append((self.current, desc, bar))
            return bar

    config = make_config("tiny", lab_dir=str(tmp_path), **SMALL)
    with RecordingConsole(tmp_path / "log.txt") as console:
        loop.run_loop(config, until=(1, "score"), progress=False, log=console.say, console=console)
    shown = {(stage, desc.split(" (")[0]) for stage, desc, _ in console.bars_by_stage}
    # the SFT gate samples and executes the held-out pool that validate then scores
    assert {("0:sft", "sft steps"), ("0:sft", "sample"), ("0:sft", "execute"), ("0:sample", "sample"),
            ("0:execute", "execute"), ("0:train_rm", "reward-model steps"), ("0:validate", "score"),
            ("1:policy", "policy steps"), ("1:sample", "sample"), ("1:execute", "execute"),
            ("1:score", "score")} <= shown
    for stage, desc, bar in console.bars_by_stage:
        assert bar.total and bar.n == bar.total, (stage, desc, bar.n, bar.total)
