"""Throughput of the stages that fan out over Ray (lab/cluster.py), in one run (the machine is shared,
so only ratios measured side by side mean anything): executing and sampling through the lab's own
stage functions (stages.execute_candidates, stages.sample_candidates, store writes included)

  local    in this process: one executor with --cpus-per-node workers, one sampler with as many threads
  ray x1   through a Ray cluster of one node with --cpus-per-node CPUs
  ray x2   through a Ray cluster of two such nodes

The clusters run on this machine (ray.cluster_utils, every process on 127.0.0.1), so two nodes are
faster only where the machine has 2 x --cpus-per-node free cores. Each stage is measured whole
(starting the executor's workers or loading the model, in the Ray workers or here, included) and
steady (from its first stored result on: the per-unit cost without the start-up), with the seconds to
that first result. The local run is measured first and again last, and ratios are to the mean of the
two. Target: Ray on one node within 10% of local (ratio >= 0.9).

    python scripts/bench_cluster.py                        # tiny model, 1 CPU per node
    python scripts/bench_cluster.py --preset cpu --problems 16 --cpus-per-node 4
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from lab.cluster import one_machine_cluster  # noqa: E402
from lab.config import make_config  # noqa: E402
from lab.loop import select_train_problems  # noqa: E402
from lab.stages import ModelCache, RunContext, execute_candidates, sample_candidates  # noqa: E402
from lab.store import Store  # noqa: E402


class Stage:
    """One stage's timing: items, whole seconds, and when its first result was stored."""

    def __init__(self):
        self.started = time.perf_counter()
        self.writes: list[tuple[float, int]] = []

    def record(self, write):
        def recorded(*args):
            result = write(*args)
            self.writes.append((time.perf_counter() - self.started, len(args[-1])))
            return result
        return recorded

    def rates(self) -> tuple[float, float, float]:
        """(items/s over the whole stage, items/s after the first stored result, seconds to it)."""
        items, seconds = sum(n for _, n in self.writes), self.writes[-1][0]
        first_at, first_items = self.writes[0]
        steady = (items - first_items) / (seconds - first_at) if seconds > first_at else float("nan")
        return items / seconds, steady, first_at


def measure(config, name: str, copies: int) -> dict[str, tuple[float, float, float]]:
    """The rates (Stage.rates) of one execute and one sample stage of a fresh run called `name`."""
    with Store(config.store_path) as store, ModelCache(config) as models:
        run = RunContext.open(config.override(run_name=name), store, models=models, log=lambda line: None)
        problems = [p for p in select_train_problems(config) if p.reference]
        store.add_problems(problems, run.run_id, role="train")
        store.add_candidates(run.run_id, 0, [
            {"problem_id": p.id, "origin": "sample", "model": "reference", "sample_index": copy,
             "completion": f"{p.reference}\n# copy {copy}\n"}  # distinct programs, whatever caches
            for p in problems for copy in range(copies)])
        execution = Stage()
        store.add_executions = execution.record(Store.add_executions.__get__(store))
        execute_candidates(run, 0)
        sampling = Stage()
        store.add_candidates = sampling.record(Store.add_candidates.__get__(store))
        sample_candidates(run, 1, problems)
    return {"execute": execution.rates(), "sample": sampling.rates()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny", help="tiny (default) or cpu: the 0.5B model")
    parser.add_argument("--cpus-per-node", type=int, default=1)
    parser.add_argument("--problems", type=int, default=48, help="MBPP training problems (with a reference)")
    parser.add_argument("--copies", type=int, default=8, help="programs executed per problem")
    parser.add_argument("--samples", type=int, default=8, help="candidates sampled per problem")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    args = parser.parse_args()
    cpus = args.cpus_per_node
    with tempfile.TemporaryDirectory() as lab_dir:
        config = make_config(args.preset, **{
            "lab_dir": lab_dir, "data.max_train_problems": args.problems, "sampling.num_samples": args.samples,
            "sampling.max_new_tokens": args.max_new_tokens, "execution.use_cache": False,
            "execution.workers": cpus, "model.threads": cpus, "cluster.replica_cpus": cpus})
        results = {"local": measure(config, "local", args.copies)}
        for nodes in (1, 2):
            cluster = one_machine_cluster(nodes, cpus_per_node=cpus)
            try:
                results[f"ray x{nodes}"] = measure(config.override(**{"cluster.address": cluster.address}),
                                                   f"ray-{nodes}", args.copies)
            finally:
                import ray

                ray.shutdown()
                cluster.shutdown()
        again = measure(config, "local-again", args.copies)
    first = results["local"]
    results["local"] = {kind: tuple((a + b) / 2 for a, b in zip(first[kind], again[kind])) for kind in first}
    print(f"\npreset {args.preset}, {cpus} CPU(s) per node (local: as many), {os.cpu_count()} on this machine; "
          f"{args.problems} problems x {args.copies} programs, x {args.samples} samples of "
          f"<= {args.max_new_tokens} tokens")
    print("per stage: items/s over the whole stage (ratio to local), items/s once the first result is stored "
          "(ratio), seconds to that first result (start-up: workers, model load, first unit)")
    for kind, unit in (("execute", "programs"), ("sample", "candidates")):
        base = results["local"][kind]
        print(f"\n{kind} ({unit}/s)   {'whole':>8s} {'ratio':>6s} {'steady':>8s} {'ratio':>6s} {'first at':>9s}")
        for name, rates in results.items():
            whole, steady, first_at = rates[kind]
            print(f"{name:16s} {whole:8.2f} {whole / base[0]:6.2f} {steady:8.2f} {steady / base[1]:6.2f} "
                  f"{first_at:8.1f}s")
        print(f"{'(local first/last':16s} {first[kind][0]:8.2f} / {again[kind][0]:.2f} whole)")
    print("\ntarget: ray x1 within 10% of local (ratio >= 0.90)")


if __name__ == "__main__":
    main()
