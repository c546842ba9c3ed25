"""model.report_to reaches the TRL trainers: with 'tensorboard' a tiny SFT run writes TensorBoard event
files holding its loss at every step under the stage's output folder; with the default 'none' it
writes none."""
from lab.models import trainer_arguments
from lab.sft import train_sft

EXAMPLES = [(f"def f{i}(x):\n", f"    return x * {i}\n") for i in range(4)]


def test_sft_with_report_to_tensorboard_writes_its_loss_curve_to_event_files(tiny_config, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = tiny_config.override(**{"model.report_to": "tensorboard", "sft.max_steps": 3, "sft.max_epochs": 10})
    out = tmp_path / "iter-0" / "generator"
    train_sft(config, EXAMPLES, str(out))
    event_files = list(out.glob("runs/*/events.out.tfevents.*"))
    assert len(event_files) == 1, sorted(p.relative_to(out) for p in out.rglob("*"))
    events = EventAccumulator(str(event_files[0].parent))
    events.Reload()
    assert [event.step for event in events.Scalars("train/loss")] == [1, 2, 3]


def test_the_default_reports_nowhere_but_the_store(tiny_config, tmp_path):
    assert tiny_config.model.report_to == "none"
    train_sft(tiny_config.override(**{"sft.max_steps": 1}), EXAMPLES, str(tmp_path / "sft"))
    assert not list(tmp_path.rglob("events.out.tfevents.*"))


def test_several_trackers_are_passed_as_a_list(tiny_config):
    config = tiny_config.override(**{"model.report_to": "tensorboard, wandb"})
    assert trainer_arguments(config.model, "out")["report_to"] == ["tensorboard", "wandb"]
