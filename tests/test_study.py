"""The study end to end on the tiny model: a real process is killed inside a replicate, rerun, and finishes
the study without redoing what was done; sampling happens once per sampling seed (the reward runs own no
candidates), each finished piece is a file in results/, and results/study.json has the issue's shape."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from lab.store import Store

CHILD = textwrap.dedent("""
    import os, signal, sys
    from lab import study
    from lab.protocol import load_protocol
    from lab.store import Store

    kill_at = os.environ.get("KILL_AT", "")  # 'run:iteration:stage', at the stage's start
    start_stage = Store.start_stage

    def start_stage_then_maybe_die(self, run_id, iteration, name):
        start_stage(self, run_id, iteration, name)
        run = next(r["name"] for r in self.runs() if r["id"] == run_id)
        if kill_at == f"{run}:{iteration}:{name}":
            os.kill(os.getpid(), signal.SIGKILL)

    Store.start_stage = start_stage_then_maybe_die
    study.run_study(load_protocol(sys.argv[1]), lab_dir=sys.argv[2], results_dir=sys.argv[3], log=lambda line: None)
""")


def coin_flips(path, prefix, count, training_allowed):
    """Problems a random tiny model both passes and fails: the test passes when the completion's length is even."""
    rows = [{"id": f"{prefix}/{i}", "language": "py", "prompt": f"{prefix}_{i} = r\"\"\"", "stop_tokens": ['"""'],
             "tests": f'"""\nassert len({prefix}_{i}) % 2 == 0\n', "reference": "abc",
             "training_allowed": training_allowed} for i in range(count)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def protocol_file(tmp_path):
    train = coin_flips(tmp_path / "train.jsonl", "flip", 6, True)
    evaluated = coin_flips(tmp_path / "eval.jsonl", "toss", 4, False)
    path = tmp_path / "tiny-study.toml"
    path.write_text(textwrap.dedent(f"""
        name = "tiny-study"
        preset = "tiny"
        sampling_seeds = [0]
        reward_seeds = [0, 1]
        n = [2, 4]

        [config]
        "data.train_splits" = ""
        "data.extra_problems" = "{train}"
        "data.max_train_problems" = 6
        "data.max_validation_problems" = 1
        "data.eval_benchmarks" = "jsonl:{evaluated}"
        "sampling.num_samples" = 2
        "sampling.max_new_tokens" = 8
        "sft.keep" = "never"
        "reward.reference_pairs" = false
        "reward.max_steps" = 2
        "execution.use_cache" = false

        [[references]]
        model = "tiny"
        methods = ["greedy", "filter+logprob"]
        n = 2
    """))
    return path


def run_child(protocol, lab_dir, results, kill_at=None):
    env = {**os.environ, "KILL_AT": kill_at or ""}
    done = subprocess.run([sys.executable, "-c", CHILD, str(protocol), str(lab_dir), str(results)], env=env,
                          capture_output=True, text=True, timeout=900)
    return done.returncode, done.stdout[-2000:] + done.stderr[-3000:]


def stages(lab_dir):
    with Store(lab_dir / "study-tiny-study" / "lab.sqlite") as store:
        names = {r["id"]: r["name"] for r in store.runs()}
        return {(names[s["run_id"]], s["iteration"], s["name"]): (s["status"], s["started_at"])
                for run_id in names for s in store.stages(run_id)}


@pytest.mark.integration
def test_a_study_killed_inside_a_replicate_continues_where_it_stopped(tmp_path):
    protocol, lab_dir, results = protocol_file(tmp_path), tmp_path / "lab", tmp_path / "results"
    folder = results / "study" / "tiny-study"
    code, output = run_child(protocol, lab_dir, results, kill_at="s0-r1:1:score_study")
    assert code == -signal.SIGKILL, output
    assert (folder / "replicate-s0-r0.json").is_file() and not (folder / "replicate-s0-r1.json").exists()
    assert json.loads((results / "study.json").read_text())["replicates"] == [[0, 0]]  # aggregated at once
    before = {key: value for key, value in stages(lab_dir).items() if value[0] == "done"}
    assert ("s0-r1", 1, "train_rm_fresh") in before and ("s0", 1, "ensemble") not in before

    code, output = run_child(protocol, lab_dir, results)
    assert code == 0, output
    after = stages(lab_dir)
    assert all(status == "done" for status, _ in after.values()), after
    assert all(after[key] == value for key, value in before.items()), "a stage done before the kill ran again"
    assert {p.name for p in folder.iterdir()} == {"replicate-s0-r0.json", "replicate-s0-r1.json", "sampling-s0.json",
                                                  "references.json"}

    with Store(lab_dir / "study-tiny-study" / "lab.sqlite") as store:
        runs = {r["name"]: r["id"] for r in store.runs()}
        owners = {store.candidates(run_id) != [] for name, run_id in runs.items() if name.startswith("s0-r")}
        pool = [c for c in store.candidates(runs["s0"]) if c["origin"] == "sample"]
        steps = {(name, variant): store.checkpoint(runs[name], "reward_model", 1, variant)["metrics"]["steps"]
                 for name in ("s0-r0", "s0-r1") for variant in ("", "equal_compute")}
    assert owners == {False}, "the reward runs sample nothing: their candidates are the sampling run's"
    keys = [(c["iteration"], c["problem_id"], c["sample_index"]) for c in pool]
    assert len(keys) == len(set(keys)) and len([k for k in keys if k[1].startswith("toss/")]) == 4 * 4
    assert steps[("s0-r1", "")] == steps[("s0-r1", "equal_compute")]  # the control has rm-1's compute

    study = json.loads((results / "study.json").read_text())
    assert study["protocol"].endswith("tiny-study.toml") and study["replicates"] == [[0, 0], [0, 1]]
    assert study["sampling_seeds"] == [0] and study["reward_seeds"] == [0, 1]
    assert study["complete_sampling_seeds"] == [0]
    toss = next(iter(study["sets"].values()))
    assert toss["problems"] == 4 and set(toss["by_n"]) == {"2", "4"}
    methods = {"random", "logprob", "reranker", "ensemble", "filter+logprob", "filter+ensemble", "oracle"}
    assert methods <= set(toss["top1"])
    assert toss["top1"]["reranker"]["units"] == 2 and toss["top1"]["ensemble"]["units"] == 1
    assert {"hard_negative - equal_compute", "hard_negative - fresh"} <= set(study["controls"])
    assert study["base_greedy"] and study["reference_models"] and (results / "study.md").is_file()
    replicate = json.loads((folder / "replicate-s0-r1.json").read_text())
    assert {"rm-0", "rm-1", "equal_compute", "fresh", "hard_negatives"} <= set(replicate["heldout"])
