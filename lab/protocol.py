"""A study protocol: the file that fixes, before any result is seen, what a study runs and reports.

A protocol is TOML (or JSON with the same keys):

  name            the study's name: its lab directory (<lab_dir>/study-<name>) and results
                  (results/study/<name>/, results/study.json)
  preset          the configuration preset (default 'cpu')
  sampling_seeds  S seeds: each is a sampling run (sampling.seed), its candidates drawn once
  reward_seeds    R seeds: each is a reward-model run (reward.seed) on every sampling run's candidates
  n               the N values reported (pick 1 of N); evaluation sets are sampled at the largest, and N
                  takes each problem's first N samples; the first is the headline N
  methods         the rows reported (measures.METHOD_NAMES), default all
  differences     "a - b" paired differences reported per evaluation set
  [config]        configuration overrides by dotted name, as `--set` takes them (values as strings or
                  TOML values); the evaluation sets are data.eval_benchmarks x data.eval_languages
  [[references]]  reference models: model (a generator source), methods (greedy, filter+logprob, ...), n,
                  and optional [references.config] overrides (e.g. model.sampling_weights)
  [[targets]]     what the study is judged by: name (a difference "a - b", "heldout_pair_accuracy", a
                  control "hard_negative - equal_compute", or "best - base_greedy"), set, n, and kind:
                  'above' (its interval's lower end above `threshold`, default 0), 'at_least' (its mean at
                  least `threshold`) or 'report' (reported, no threshold)

The study is one bootstrap and one hard-negative iteration with the policy stage off (the generator is
what the candidates come from, shared by every reward seed): a protocol cannot set policy.enabled,
loop.iterations, loop.candidates_from, sampling.seed or reward.seed, which the study sets per run.

Not covered here: running it (study.py), its statistics (study_stats.py).
"""
from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from lab.config import LabConfig, UsageError, make_config, repo_root
from lab.measures import METHOD_NAMES

KEYS = {"name", "preset", "sampling_seeds", "reward_seeds", "n", "methods", "differences", "config", "references",
        "targets", "description"}
STUDY_SETS = {"policy.enabled": False, "loop.iterations": 1}
"""What every run of a study is, whatever the protocol says (the module docstring)."""
PER_RUN_FIELDS = ("policy.enabled", "ppo.enabled", "loop.iterations", "loop.candidates_from", "sampling.seed",
                  "reward.seed", "run_name", "lab_dir")
DEFAULT_DIFFERENCES = ("reranker - logprob", "ensemble - logprob", "reranker+logprob - logprob",
                       "filter+reranker - filter+logprob", "filter+ensemble - filter+logprob",
                       "filter+logprob - logprob", "ensemble - reranker")
TARGET_KINDS = ("above", "at_least", "report")
REFERENCE_METHODS = ("greedy", "random", "logprob", "filter+logprob", "oracle")


@dataclass(frozen=True)
class Reference:
    """A reference model: its answers on the evaluation sets, by `methods`, from `n` samples."""
    model: str
    methods: tuple[str, ...]
    n: int
    overrides: dict
    """Configuration overrides for sampling it (e.g. model.sampling_weights)."""


@dataclass(frozen=True)
class Target:
    """A measure the study is judged by (the module docstring); `set` and `n` locate it."""
    name: str
    kind: str
    set: str | None = None
    n: int | None = None
    """The N it is read at (default: the headline N, the protocol's first)."""
    threshold: float = 0.0


@dataclass(frozen=True)
class Protocol:
    """A protocol file, read and checked (the module docstring says what each key means)."""
    path: str
    """As given, relative to the repository when inside it: what study.json records."""
    name: str
    preset: str
    sampling_seeds: tuple[int, ...]
    reward_seeds: tuple[int, ...]
    n: tuple[int, ...]
    """The N values; the first is the headline N."""
    methods: tuple[str, ...]
    differences: tuple[tuple[str, str], ...]
    overrides: dict
    references: tuple[Reference, ...]
    targets: tuple[Target, ...]

    def config(self, lab_dir: str | None = None, **overrides) -> LabConfig:
        """The study's configuration (the protocol's overrides on its preset), in its lab directory."""
        base = make_config(self.preset, **{**self.overrides, **STUDY_SETS})
        return base.override(lab_dir=str(Path(lab_dir or base.lab_dir) / f"study-{self.name}"), **overrides)

    def sampling_run(self, seed: int) -> str:
        return f"s{seed}"

    def replicate_run(self, seed: int, reward_seed: int) -> str:
        return f"s{seed}-r{reward_seed}"

    def sampling_config(self, seed: int, lab_dir: str | None = None) -> LabConfig:
        return self.config(lab_dir, run_name=self.sampling_run(seed), **{"sampling.seed": seed})

    def replicate_config(self, seed: int, reward_seed: int, lab_dir: str | None = None) -> LabConfig:
        return self.config(lab_dir, run_name=self.replicate_run(seed, reward_seed), **{
            "sampling.seed": seed, "reward.seed": reward_seed, "loop.candidates_from": self.sampling_run(seed)})


def load_protocol(path: str | Path) -> Protocol:
    """Read and check a protocol file; a bad one raises UsageError naming the file and the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"protocol {path}: cannot read it ({error})") from None
    try:
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise UsageError(f"protocol {path}: not valid {kind} ({error})") from None

    def fail(key: str, problem: str) -> UsageError:
        return UsageError(f"protocol {path}: {key}: {problem}")

    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown key; the keys are {', '.join(sorted(KEYS))}")
    if not isinstance(raw.get("name"), str) or not raw["name"].replace("-", "").replace("_", "").isalnum():
        raise fail("name", "required: letters, digits, '-' and '_' (it names the study's directories)")

    def integers(key: str, required: bool = True) -> tuple[int, ...]:
        values = raw.get(key)
        if values is None and not required:
            return ()
        if not isinstance(values, list) or not values or not all(isinstance(v, int) and v >= 0 for v in values) \
                or len(set(values)) != len(values):
            raise fail(key, "a non-empty list of distinct whole numbers >= 0")
        return tuple(values)

    n = integers("n")
    if 0 in n:
        raise fail("n", "each N is at least 1")
    methods = tuple(raw.get("methods", METHOD_NAMES))
    if not set(methods) <= set(METHOD_NAMES):
        raise fail("methods", f"unknown method(s) {sorted(set(methods) - set(METHOD_NAMES))}; known: {METHOD_NAMES}")
    differences = tuple(_difference(fail, "differences", item) for item in raw.get("differences", DEFAULT_DIFFERENCES))
    overrides = raw.get("config", {})
    if not isinstance(overrides, dict):
        raise fail("config", "a table of dotted configuration fields")
    fixed = sorted(set(overrides) & set(PER_RUN_FIELDS))
    if fixed:
        raise fail(f"config.{fixed[0]}", "set by the study itself per run; leave it out")
    protocol = Protocol(
        path=_display_path(path), name=raw["name"], preset=raw.get("preset", "cpu"),
        sampling_seeds=integers("sampling_seeds"), reward_seeds=integers("reward_seeds"), n=n, methods=methods,
        differences=differences, overrides=dict(overrides),
        references=tuple(_reference(fail, i, item) for i, item in enumerate(raw.get("references", []))),
        targets=tuple(_target(fail, i, item) for i, item in enumerate(raw.get("targets", []))))
    try:
        protocol.config()
    except UsageError as error:
        raise fail("config", str(error)) from None
    return protocol


def _difference(fail, key: str, item: object) -> tuple[str, str]:
    if not isinstance(item, str) or item.count(" - ") != 1:
        raise fail(key, f"{item!r}: write a difference as 'a - b' with two method names")
    a, b = (part.strip() for part in item.split(" - "))
    if not {a, b} <= set(METHOD_NAMES):
        raise fail(key, f"{item!r}: both sides must be methods of {METHOD_NAMES}")
    return a, b


def _reference(fail, index: int, item: object) -> Reference:
    key = f"references[{index}]"
    if not isinstance(item, dict) or not isinstance(item.get("model"), str):
        raise fail(key, "a table with model (a generator source, e.g. 'package:qwen2.5-coder-1.5b-instruct')")
    methods = tuple(item.get("methods", ("greedy",)))
    if not set(methods) <= set(REFERENCE_METHODS):
        raise fail(f"{key}.methods", f"choose from {REFERENCE_METHODS}")
    n = item.get("n", 8)
    if not isinstance(n, int) or n < 1:
        raise fail(f"{key}.n", "a whole number >= 1")
    return Reference(item["model"], methods, n, dict(item.get("config", {})))


def _target(fail, index: int, item: object) -> Target:
    key = f"targets[{index}]"
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise fail(key, "a table with name, kind and (for a set's measure) set")
    kind = item.get("kind", "above")
    if kind not in TARGET_KINDS:
        raise fail(f"{key}.kind", f"choose one of {TARGET_KINDS}")
    return Target(item["name"], kind, item.get("set"), item.get("n"), float(item.get("threshold", 0.0)))


def _display_path(path: Path) -> str:
    """The protocol's path relative to the repository when it is inside it (as study.json records it)."""
    try:
        return str(path.resolve().relative_to(repo_root()))
    except ValueError:
        return str(path)
