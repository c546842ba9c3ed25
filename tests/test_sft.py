"""SFT makes the tiny generator learn its reference completions (and the saved adapter keeps that, in
the sampler too, where it is merged and the linear layers go int8)."""
from conftest import completion_loss

from lab.models import load_generator, load_sampler
from lab.sft import train_sft

EXAMPLES = [(f"def f{i}(x):\n", f"    return x * {i}\n") for i in range(8)]


def test_sft_lowers_completion_loss_and_saves_adapter(tiny_config, tmp_path):
    config = tiny_config.override(**{"sft.max_steps": 20, "sft.max_epochs": 100, "sft.learning_rate": 5e-3})
    model, tokenizer = load_generator(config.model)
    before = completion_loss(model, tokenizer, EXAMPLES)
    logs = []
    metrics = train_sft(config, EXAMPLES, str(tmp_path / "sft"), on_log=logs.append)
    tuned, tokenizer = load_generator(config.model, adapter_dir=str(tmp_path / "sft"))
    after = completion_loss(tuned, tokenizer, EXAMPLES)
    assert after < 0.6 * before, (before, after)
    assert metrics["last_loss"] < metrics["first_loss"]
    assert [entry["step"] for entry in logs if "loss" in entry] == list(range(1, 21))
    trainable = [name for name, p in load_generator(config.model, trainable=True)[0].named_parameters()
                 if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable), "SFT trains the LoRA adapter only"

    merged, _ = load_sampler(config.override(**{"model.sampling_weights": "none"}).model,
                             adapter_dir=str(tmp_path / "sft"))
    assert not any("lora" in name for name, _ in merged.named_modules())
    assert abs(completion_loss(merged, tokenizer, EXAMPLES) - after) < 1e-4
    quantized, _ = load_sampler(config.override(**{"model.sampling_weights": "int8"}).model,
                                adapter_dir=str(tmp_path / "sft"))
    assert any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in quantized.modules())
    assert abs(completion_loss(quantized, tokenizer, EXAMPLES) - after) < 0.1 * after


def test_sft_stops_at_max_epochs_so_it_cannot_memorise_the_training_problems():
    from lab.config import SFTConfig
    from lab.sft import sft_steps

    settings = SFTConfig(max_steps=300, max_epochs=1.0, batch_size=8)
    assert sft_steps(settings, 349) == 44  # one pass over 349 references, 8 a step (the gpu preset ran 300)
    assert sft_steps(SFTConfig(max_steps=8, max_epochs=1.0, batch_size=4), 12) == 3
    assert sft_steps(SFTConfig(max_steps=8, max_epochs=10.0, batch_size=4), 12) == 8
