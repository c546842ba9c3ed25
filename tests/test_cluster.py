"""The sample, execute and score stages through a real Ray cluster of two nodes on this machine
(Ray's own ray.cluster_utils.Cluster, every process on 127.0.0.1): the same candidates, verdicts and
scores as without Ray, also when a node is lost mid-stage; without cluster.address Ray is never
imported."""
import shutil
import subprocess
import sys

import pytest

from lab import stages
from lab.loop import run_loop, stage_work
from lab.stages import RunContext
from lab.store import Store

SMALL = {"data.max_train_problems": "3", "data.max_validation_problems": "2", "loop.train_samples": "3",
         "sampling.max_new_tokens": "12", "sft.max_steps": "1", "reward.max_steps": "1", "ppo.enabled": "false",
         "execution.use_cache": "false",
         # int8 sampler weights quantize activations per batch, so a sample depends on what shared its batch
         # (lab/generation.py), with or without Ray; unquantized weights keep every candidate to its own seed
         "model.sampling_weights": "none"}
SPREAD = {"cluster.sampling_unit_batches": "1"}
"""One decoder batch per sampling unit, so that the tiny run's few problems still make several units."""
UNTIL = (1, "score")


@pytest.fixture(scope="module")
def ray_cluster():
    from lab.cluster import one_machine_cluster

    cluster = one_machine_cluster(nodes=2)  # imports ray, on 127.0.0.1 only: nothing here imports it before
    yield cluster
    import ray

    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def bootstrapped(tmp_path_factory, tiny_config):
    """A tiny run's bootstrap, without Ray: each test continues a copy of its lab directory."""
    config = tiny_config.override(lab_dir=str(tmp_path_factory.mktemp("bootstrap")), **SMALL)
    run_loop(config, until=(0, "validate"), progress=False, log=lambda line: None)
    return config


@pytest.fixture(scope="module")
def without_ray(bootstrapped, tmp_path_factory):
    """What iteration 1 stores up to its scores without Ray."""
    config = continued(bootstrapped, tmp_path_factory.mktemp("local"))
    with pytest.MonkeyPatch.context() as patch:
        small_chunks(patch)
        run_loop(config, until=UNTIL, progress=False, log=lambda line: None)
    return rows(config)


def continued(config, lab_dir, **overrides):
    shutil.copy(config.store_path, lab_dir / "lab.sqlite")  # its checkpoints stay where they are, read only
    return config.override(lab_dir=str(lab_dir), **overrides)


def small_chunks(patch):
    """Execution and scoring chunks of 4 candidates (both paths): several units per stage."""
    patch.setattr(stages, "EXECUTION_CHUNK", 4)
    patch.setattr(stages, "SCORE_CHUNK", 4)


def rows(config):
    """Iteration 1's candidates, verdicts and scores by identity (not row id or time), in a stable order;
    each row's last item holds its floats (the mean log-prob, the score)."""
    key = "c.iteration, c.problem_id, c.origin, c.model, c.sample_index"
    with Store(config.store_path) as store:
        queries = {
            "candidates": f"SELECT {key}, c.completion, c.seed, c.num_tokens, c.mean_logprob FROM candidates c",
            "executions": f"SELECT {key}, e.status, e.exit_code, e.passed FROM executions e "
                          "JOIN candidates c ON c.id = e.candidate_id",
            "scores": f"SELECT s.reward_model, {key}, s.score FROM scores s JOIN candidates c ON c.id = s.candidate_id",
        }
        return {table: [tuple(row) for row in store.db.execute(f"{sql} WHERE c.iteration = 1 ORDER BY {key}")]
                for table, sql in queries.items()}


def assert_same_rows(found, expected, tables=("candidates", "executions", "scores")):
    """Equal rows; floats up to rounding (a batch of other rows sums in another order)."""
    for table in tables:
        assert [row[:-1] for row in found[table]] == [row[:-1] for row in expected[table]], table
        assert [row[-1] for row in found[table]] == pytest.approx([row[-1] for row in expected[table]], rel=1e-6), table


@pytest.mark.integration
def test_two_nodes_store_the_same_candidates_verdicts_and_scores_as_one_process(ray_cluster, bootstrapped,
                                                                                  without_ray, tmp_path, monkeypatch):
    import ray

    small_chunks(monkeypatch)
    config = continued(bootstrapped, tmp_path, **{"cluster.address": ray_cluster.address, **SPREAD})
    run_loop(config, until=UNTIL, progress=False, log=lambda line: None)
    assert_same_rows(rows(config), without_ray)
    assert len(without_ray["candidates"]) == len(without_ray["executions"]) == len(without_ray["scores"]) == 9
    assert len([node for node in ray.nodes() if node["Alive"]]) == 2


@pytest.mark.integration
def test_a_node_lost_mid_stage_loses_and_duplicates_nothing(ray_cluster, bootstrapped, without_ray, tmp_path,
                                                           monkeypatch):
    from lab.cluster import node_arguments

    doomed = ray_cluster.add_node(**node_arguments(1))
    config = continued(bootstrapped, tmp_path, **{"cluster.address": ray_cluster.address, **SPREAD})
    add_candidates, stored_before_loss = Store.add_candidates, []

    def add_then_lose_a_node(self, run_id, iteration, candidates):
        ids = add_candidates(self, run_id, iteration, candidates)
        if iteration == 1 and not stored_before_loss:
            stored_before_loss.append(len(self.candidates(run_id, iteration=1)))
            ray_cluster.remove_node(doomed, allow_graceful=False)
        return ids

    monkeypatch.setattr(Store, "add_candidates", add_then_lose_a_node)
    run_loop(config, until=(1, "sample"), progress=False,
             log=lambda line: None)  # the lost replica's units go elsewhere
    assert 0 < stored_before_loss[0] < len(without_ray["candidates"])
    monkeypatch.setattr(Store, "add_candidates", add_candidates)
    with Store(config.store_path) as store:
        rerun = stage_work(RunContext.existing(config, store), 1)["sample"]()
    assert rerun["candidates_added"] == 0
    assert_same_rows(rows(config), without_ray, tables=("candidates",))


def test_without_a_cluster_address_ray_is_never_imported():
    code = ("import sys\nfrom lab import __main__, evaluation, handoff, loop, stages, training_jobs\n"
            "from lab.config import make_config\n"
            "assert make_config('tiny').cluster.address is None\n"
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
