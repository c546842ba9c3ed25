"""Fan-out over a Ray cluster of the stages that split into independent pieces: sampling and scoring
on actors that each hold a model replica (replicas.py), execution as tasks that run on each node's
own sandboxed executor. stages.py uses this when `cluster.address` is set; without it nothing here
runs, and Ray is never imported (`connect` imports it).

How a stage's work travels: stages.py cuts it into units (a few problems to sample, a chunk of
candidates to execute or score) and hands them to `run_on_replicas` or `run_as_tasks`, which send
them out and give each result, as it returns, to the stage's `on_result` on the driver; that writes it
to the store in one transaction, as the local path writes a problem or a chunk. Nothing is written on
the nodes, so a unit lands whole or is done again:
- a replica lost with its node (its actor died) is dropped and its units go to the others; with
  none left the call raises `WorkersLost` after everything that returned is stored, and calling the
  stage again does the rest, since the store knows what is missing;
- an execution task lost with its node is retried elsewhere by Ray (TASK_RETRIES); a task that
  still fails raises after the rest is stored, as above.
Results do not depend on how the work was split: a candidate's seed depends on (seed, problem,
sample index) only (generation.candidate_seed), and the scoring units are the local path's chunks.

Isolation: the driver resolves execution.isolation once ('auto' becomes bwrap or light,
sandbox.choose_isolation) and every node's executor runs with that, so a node that cannot provide it
fails the task with the sandbox's error instead of running programs less isolated than the others.

Every node needs the driver's Python environment (this checkout, the same ray), and sees the model
cache and the lab directory's checkpoints at the driver's paths (a shared filesystem), since replicas
load adapters by path.

Not covered here: what the units are and what is stored (stages.py), the replicas' model work
(replicas.py), execution itself (execution.py).
"""
from __future__ import annotations

import atexit
import dataclasses
import json
import os
from collections import deque
from collections.abc import Callable
from typing import Any

from lab.config import ClusterConfig, ExecutionConfig, UsageError
from lab.execution import ExecutionResult, Executor
from lab.sandbox import choose_isolation

RAY_REQUIREMENT = "ray==2.60.0"
LOOPBACK_VARIABLE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Set to 0 before Ray is imported, Ray keeps every address on 127.0.0.1: it otherwise replaces
127.0.0.1 (in ray.init's address and _node_ip_address alike) by the machine's network address."""
IN_FLIGHT_PER_REPLICA = 2
"""Units queued on a replica at once: its next one is waiting when it returns one."""
TASKS_IN_FLIGHT_PER_CPU = 2
TASK_RETRIES = 3
REPLICA_START_TIMEOUT_S = 1800.0
"""How long replicas may take to load their model before the stage gives up on them."""


class WorkersLost(RuntimeError):
    """Every replica of a stage died (their nodes were lost); what returned before is stored."""


def connect(settings: ClusterConfig):
    """The `ray` module, connected to settings.address (once per process); 'local' starts a Ray
    instance on this machine with every process on 127.0.0.1."""
    ray = _ray_on_loopback() if settings.address == "local" else _import_ray(settings)
    if not ray.is_initialized():
        if settings.address == "local":
            ray.init(include_dashboard=False)
        else:
            ray.init(address=settings.address)
    return ray


def _import_ray(settings: ClusterConfig):
    try:
        import ray
    except ImportError:
        raise UsageError(f"cluster.address={settings.address!r} needs Ray: pip install {RAY_REQUIREMENT} "
                         "(requirements.txt), the same version on every node") from None
    return ray


def _ray_on_loopback():
    """Ray, imported with every address it picks kept on 127.0.0.1 (LOOPBACK_VARIABLE; the Ray
    processes started from here inherit it)."""
    os.environ[LOOPBACK_VARIABLE] = "0"
    import ray
    from ray._private import ray_constants

    if ray_constants.ENABLE_RAY_CLUSTER:  # read once, when ray was first imported
        raise UsageError("Ray was imported in this process before the lab could keep it on 127.0.0.1; start a fresh "
                         f"Python, or set {LOOPBACK_VARIABLE}=0 before importing ray, or start Ray yourself "
                         "(`ray start --head`) and use cluster.address=auto")
    return ray


def one_machine_cluster(nodes: int, cpus_per_node: int = 1, object_store_mb: int = 100):
    """A Ray cluster of `nodes` nodes on this machine, every process on 127.0.0.1 (Ray's own test
    utility, ray.cluster_utils.Cluster), with this process connected to it as the driver. For tests
    and scripts/bench_cluster.py; returns the Cluster (.address, .add_node, .remove_node, .shutdown),
    and `node_arguments` gives more nodes the same settings."""
    ray = _ray_on_loopback()
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args=node_arguments(cpus_per_node, object_store_mb))
    for _ in range(nodes - 1):
        cluster.add_node(**node_arguments(cpus_per_node, object_store_mb))
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, _node_ip_address="127.0.0.1")
    return cluster


def node_arguments(cpus: int, object_store_mb: int = 100) -> dict:
    """Keyword arguments of Cluster.add_node for one more node of `one_machine_cluster`."""
    return {"num_cpus": cpus, "node_ip_address": "127.0.0.1", "include_dashboard": False,
            "object_store_memory": object_store_mb * 1024 * 1024}


# ---------------------------------------------------------------- replicas (sampling, scoring)

def run_on_replicas(settings: ClusterConfig, replica_class: type, replica_arguments: tuple, method: str,
                    units: list[tuple], on_result: Callable[[int, Any], None]) -> None:
    """Start `replica_class(*replica_arguments)` as actors (settings.replicas, or one per node that
    has settings.replica_cpus / replica_gpus), call `method(*unit)` on them for every unit, each
    replica taking its next unit as it returns one, and call on_result(unit index, result) on the
    driver as results return. Replicas join as their model loads; they are killed when this returns
    or raises."""
    if not units:
        return
    ray = connect(settings)
    actor_class = ray.remote(num_cpus=settings.replica_cpus, num_gpus=settings.replica_gpus)(replica_class)
    count = settings.replicas or _nodes_for_replicas(ray, settings)
    actors = [actor_class.options(scheduling_strategy="SPREAD").remote(*replica_arguments) for _ in range(count)]
    pool = _ReplicaPool(ray, actors, method)
    try:
        _dispatch(ray, units, pool.submit, pool.returned, on_result, what=f"{count} {replica_class.__name__}s")
    finally:
        for actor in actors:
            ray.kill(actor)  # frees its node for the next stage (a vLLM engine process ends with its input)


def _nodes_for_replicas(ray, settings: ClusterConfig) -> int:
    fitting = [node for node in ray.nodes() if node["Alive"]
               and node["Resources"].get("CPU", 0) >= settings.replica_cpus
               and node["Resources"].get("GPU", 0) >= settings.replica_gpus]
    if not fitting:
        raise UsageError(f"no node of the Ray cluster has cluster.replica_cpus={settings.replica_cpus} CPUs and "
                         f"cluster.replica_gpus={settings.replica_gpus} GPUs for a model replica; lower them")
    return len(fitting)


class _ReplicaPool:
    """The replicas that loaded their model, with the units each has queued; the others join as they
    load (an actor the cluster has no room for never does, and is not waited for)."""

    def __init__(self, ray, actors: list, method: str):
        self.ray, self.method = ray, method
        self.loading = {actor.__ray_ready__.remote(): actor for actor in actors}
        self.queued: dict = {}

    def submit(self, unit: tuple):
        """(object ref, replica) of `unit` sent to the least busy replica, or None when all are busy."""
        self._admit(wait=not self.queued)
        actor = min((a for a in self.queued if self.queued[a] < IN_FLIGHT_PER_REPLICA),
                    key=lambda a: self.queued[a], default=None)
        if actor is None:
            return None
        self.queued[actor] += 1
        return getattr(actor, self.method).remote(*unit), actor

    def returned(self, actor, died: bool) -> None:
        if died:
            self.queued.pop(actor, None)
        elif actor in self.queued:
            self.queued[actor] -= 1

    def _admit(self, wait: bool) -> None:
        """Take in the replicas that finished loading; with `wait`, wait for one (none is working)."""
        if not self.loading:
            return
        ready, _ = self.ray.wait(list(self.loading), num_returns=1 if wait else len(self.loading),
                                 timeout=REPLICA_START_TIMEOUT_S if wait else 0)
        for ref in ready:
            actor = self.loading.pop(ref)
            try:
                self.ray.get(ref)
            except self.ray.exceptions.RayActorError as error:
                if error.actor_init_failed:
                    raise RuntimeError(f"a model replica failed to load on its node: {error}") from None
                continue  # its node was lost while it loaded
            self.queued[actor] = 0


# ---------------------------------------------------------------- tasks (execution)

def run_as_tasks(settings: ClusterConfig, execution: ExecutionConfig, units: list[list[tuple[str, str]]],
                 on_result: Callable[[int, list[ExecutionResult]], None]) -> None:
    """Run each unit of (language, program) jobs as a task on some node's executor, spread over the
    cluster, and call on_result(unit index, results in job order) on the driver as tasks return."""
    if not units:
        return
    ray = connect(settings)
    node_execution = dataclasses.replace(execution, workers=settings.execution_task_cpus,
                                         isolation=choose_isolation(execution.isolation, execution.allow_unsandboxed))
    task = ray.remote(num_cpus=settings.execution_task_cpus, max_retries=TASK_RETRIES,
                      scheduling_strategy="SPREAD")(run_programs)
    window = max(1, int(ray.cluster_resources().get("CPU", 1) / settings.execution_task_cpus * TASKS_IN_FLIGHT_PER_CPU))
    running = [0]

    def submit(unit: list[tuple[str, str]]):
        if running[0] >= window:
            return None
        running[0] += 1
        return task.remote(node_execution, unit), None

    def returned(_, died: bool) -> None:
        running[0] -= 1

    _dispatch(ray, units, submit, returned, on_result, what="execution tasks")


_node_executors: dict[str, Executor] = {}


def run_programs(execution: ExecutionConfig, jobs: list[tuple[str, str]]) -> list[ExecutionResult]:
    """On a node (a Ray task): the jobs through this worker process's executor, started by its first
    task and kept for the next ones (its sandboxed workers and compile servers stay warm)."""
    key = json.dumps(dataclasses.asdict(execution), sort_keys=True)
    if key not in _node_executors:
        _node_executors[key] = Executor(execution)
        atexit.register(_node_executors[key].close)
    return _node_executors[key].run_many(jobs, progress=False)


# ---------------------------------------------------------------- the driver's loop

def _dispatch(ray, units: list, submit: Callable, returned: Callable[[Any, bool], None],
              on_result: Callable[[int, Any], None], what: str) -> None:
    """Send units while `submit(unit)` takes them (it answers (object ref, worker) or None when all
    are busy), hand each result to on_result in the order they return, put back the units of workers
    that died, and cancel what is still out when leaving early."""
    queue = deque(range(len(units)))
    out: dict = {}
    try:
        while queue or out:
            while queue and (sent := submit(units[queue[0]])) is not None:
                out[sent[0]] = (queue.popleft(), sent[1])
            if not out:
                raise WorkersLost(f"all {what} were lost with their nodes; {len(queue)} of {len(units)} units are "
                                  "not done. What returned is stored: rerun the same command to do the rest")
            [ref], _ = ray.wait(list(out), num_returns=1)
            index, worker = out.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayActorError:  # died, or unreachable with its node: its unit goes elsewhere
                returned(worker, True)
                queue.appendleft(index)
                continue
            returned(worker, False)
            on_result(index, result)
    finally:
        for ref in out:
            ray.cancel(ref)
