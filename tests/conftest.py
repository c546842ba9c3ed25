"""Shared test setup: offline hub, no analytics, the tiny config and one finished tiny run shared by
the tests that only read it, and helpers the tests share (real execution results, measurement rows
and a filled store; a model's loss on completions)."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


import json  # noqa: E402
import random  # noqa: E402

import pytest  # noqa: E402


def execution_result(passed: bool, *, stderr: str = "", **fields):
    """A real lab.execution.ExecutionResult for tests that fill a store: a pass is OK with exit
    code 0, a failure an Exception with exit code 1 unless `fields` say otherwise."""
    from lab.execution import ExecutionResult
    values = {"status": "OK" if passed else "Exception", "exit_code": 0 if passed else 1, "stdout": "",
              "duration_s": 0.01, "toolchain": "Python: Python 3.11.2", **fields}
    return ExecutionResult(passed=passed, stderr=stderr, **values)


def measurement_row(measure: str, subject: str, value, *, iteration: int = 0, eval_set: str = "mbpp-validation",
                    count=None, ci_low=None, ci_high=None) -> dict:
    """A Store.measurements row (lab.records.MeasurementRow), for tests of what reads them."""
    from lab.records import MeasureKey
    return {"iteration": iteration, "eval_set": eval_set, "measure": measure, "subject": subject,
            "name": MeasureKey(measure, subject).label, "value": value, "count": count, "ci_low": ci_low,
            "ci_high": ci_high}


def fill_store(store, *, problems: int = 6, samples: int = 4, iteration: int = 1, seed: int = 0,
               run_name: str = "demo", mining: dict | None = None) -> int:
    """A run with scored, executed candidates: problem 0 is a reranker mistake, problem 1 all-fail,
    and the rest random. Returns the run id."""
    from lab.problems import Problem
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


def completion_loss(model, tokenizer, examples: list[tuple[str, str]]) -> float:
    """Mean token NLL of `completion + EOS` given `prompt`, over all examples (the SFT objective)."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for prompt, completion in examples:
            prompt_ids = tokenizer(prompt).input_ids
            ids = torch.tensor([prompt_ids + tokenizer(completion + tokenizer.eos_token).input_ids],
                               device=model.device)
            logprobs = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
            targets = ids[0, 1:]
            token_logprobs = logprobs.gather(-1, targets[:, None])[:, 0][len(prompt_ids) - 1:]
            total -= token_logprobs.sum().item()
            count += len(token_logprobs)
    return total / count


FINISHED_RUN = {"data.max_train_problems": "2", "data.max_validation_problems": "2", "data.max_eval_problems": "3",
                "sampling.num_samples": "3", "sampling.max_new_tokens": "12", "sft.max_steps": "2",
                "reward.max_steps": "2", "policy.steps": "1"}
"""The shared run's size: a couple of problems, a few samples, a couple of steps of each trainer."""


@pytest.fixture(scope="session")
def finished_tiny_run(tmp_path_factory):
    """A whole tiny run (the bootstrap and one iteration, evaluated), made once per session for the
    tests that only read what a run stores. A test that writes to a run's store makes its own run."""
    from lab import loop
    from lab.config import make_config
    config = make_config("tiny", lab_dir=str(tmp_path_factory.mktemp("finished") / "lab"), **FINISHED_RUN)
    loop.run_loop(config, progress=False, log=lambda line: None)
    return config


@pytest.fixture
def store(tmp_path):
    """An empty store in the test's temp dir."""
    from lab.store import Store
    with Store(tmp_path / "lab.sqlite") as store:
        yield store


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory):
    """The `tiny` preset with its model cache in a session temp dir (the tiny model is built once)."""
    from lab.config import make_config
    root = tmp_path_factory.mktemp("tiny")
    return make_config("tiny", **{"model.cache_dir": str(root / "cache"), "lab_dir": str(root / "lab")})
