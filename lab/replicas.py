"""Model replicas for the cluster (lab/cluster.py): a generator that samples and a reward model that
scores, each loaded once on its node, then given units of work one after another. They compute what
the local path computes (the same loaders, `generation.generate`, `reward.score_completions`) and
return it; the driver stores it.

Not covered here: sending units and collecting results (cluster.py), what the units are (stages.py).
"""
from __future__ import annotations

from lab import generation, reward
from lab.config import ModelConfig, SamplingConfig
from lab.hidden_states import HiddenStateCache
from lab.models import load_reward_model
from lab.problems import Problem
from lab.vllm_backend import load_backend_sampler


class GeneratorReplica:
    """The generator with `adapter_dir` (None: the base model) on `sampling.backend`, as
    ModelCache.generator loads it."""

    def __init__(self, model_config: ModelConfig, sampling: SamplingConfig, adapter_dir: str | None):
        self.sampling = sampling
        self.model, self.tokenizer = load_backend_sampler(model_config, sampling, adapter_dir)

    def sample(self, problems: list[Problem], count: int, greedy: bool) -> list[tuple[str, list[generation.Candidate]]]:
        """(problem id, its `count` candidates in sample order) for each problem, in the order finished."""
        finished = []
        generation.generate(self.model, self.tokenizer, problems, self.sampling, num_samples=count, greedy=greedy,
                            on_problem_done=lambda problem, candidates: finished.append((problem.id, candidates)),
                            progress=False)
        return finished


class RewardModelReplica:
    """The reward model with `adapter_dir`, and this node's cache of its frozen layers' states."""

    def __init__(self, model_config: ModelConfig, adapter_dir: str, batch_size: int):
        self.batch_size = batch_size
        self.model, self.tokenizer = load_reward_model(model_config, adapter_dir=adapter_dir)
        self.cache = HiddenStateCache.for_reward_backbone(model_config)

    def score(self, items: list[tuple[str, str]]) -> list[float]:
        """The reward of each (prompt, completion), in order."""
        return reward.score_completions(self.model, self.tokenizer, items, batch_size=self.batch_size, progress=False,
                                        cache=self.cache)
