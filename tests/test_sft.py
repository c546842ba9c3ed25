"""SFT makes the tiny generator learn its reference completions (and the saved adapter keeps that)."""
from lab.models import load_generator
from lab.sft import completion_loss, train_sft

EXAMPLES = [(f"def f{i}(x):\n", f"    return x * {i}\n") for i in range(8)]


def test_sft_lowers_completion_loss_and_saves_adapter(tiny_config, tmp_path):
    config = tiny_config.override(**{"sft.max_steps": 20, "sft.learning_rate": 5e-3})
    model, tokenizer = load_generator(config.model)
    before = completion_loss(model, tokenizer, EXAMPLES)
    logs = []
    metrics = train_sft(config, EXAMPLES, str(tmp_path / "sft"), on_log=logs.append)
    tuned, tokenizer = load_generator(config.model, adapter_dir=str(tmp_path / "sft"))
    after = completion_loss(tuned, tokenizer, EXAMPLES)
    assert after < 0.6 * before, (before, after)
    assert metrics["last_loss"] < metrics["first_loss"]
    assert [entry["step"] for entry in logs if "loss" in entry] == list(range(1, 21))
