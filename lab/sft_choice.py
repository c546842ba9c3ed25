"""The SFT recipe, chosen on held-out MBPP validation problems, never on an evaluation set.

Each recipe is a set of config assignments (sft.learning_rate, sft.max_steps, model.lora_r, ...). For
each, an adapter is trained on the run's training problems' reference solutions and the SFT'd model is
measured against the base model exactly as the SFT gate measures it (lab/generators.py: a greedy
answer and N samples per validation problem, executed; paired differences over problems). The chosen
recipe is the one the gate would keep (sampled pass@1 above the base model's, greedy not below) with
the largest sampled gain; when none would be kept, none is chosen, and the run's sft.keep=auto
rejects SFT anyway.

Each recipe's candidates are stored under the model name '<run>/sft[<recipe>]' (iteration 0,
role validation), so they never mix with the run's own gen-0; its adapter lives under
<run_dir>/sft-choice/. Both make an interrupted choice resume: a trained adapter is not trained again,
stored candidates are not sampled again.

Not covered here: prompt forms other than the run's sampling.prompt_style (the chat form with answer
extraction is not built), HumanEval or any evaluation problem (refused, like the temperature choice).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from lab import generators
from lab.config import UsageError, parse_assignments
from lab.sft import train_sft
from lab.stages import RunContext
from lab.temperature import validation_problems

ADAPTER_FILE = "adapter_model.safetensors"


def recipe_label(assignments: dict[str, str]) -> str:
    return ",".join(f"{field}={value}" for field, value in sorted(assignments.items()))


def parse_recipe(text: str) -> dict[str, str]:
    """'sft.learning_rate=2e-5,sft.max_steps=8' -> {field: value}, checked against the config's fields."""
    try:
        assignments = parse_assignments([item for item in text.split(",") if item.strip()])
    except UsageError as error:
        raise UsageError(f"recipe {text!r}: {error}") from None
    if not assignments:
        raise UsageError(f"recipe {text!r}: give one or more SECTION.FIELD=VALUE separated by commas")
    return assignments


def recipe_outcomes(run: RunContext, assignments: dict[str, str], problems) -> dict[str, dict[str, float]]:
    """Train (unless trained before) and measure one recipe on `problems`."""
    config = run.config.override(**assignments)
    label = recipe_label(assignments)
    out = Path(run.config.run_dir) / "sft-choice" / label.replace("/", "_")
    if not (out / ADAPTER_FILE).is_file():
        examples = [(p.prompt, p.reference) for p in run.problems("train") if p.reference]
        run.models.release()
        train_sft(config, examples, str(out), on_step=run.on_step(f"sft steps [{label}]"))
    recipe_run = dataclasses.replace(run, config=config)
    return generators.generator_outcomes(recipe_run, 0, (f"{run.name}/sft[{label}]", str(out)), problems)


def choose_sft_recipe(run: RunContext, recipes: list[dict[str, str]]) -> dict:
    """Measure every recipe against the base model on the run's validation problems. Returns
    {"problems", "num_samples", "base": {method: pass@1}, "recipes": {label: GeneratorComparison},
    "kept": [labels the gate would keep], "chosen": label or None}."""
    if not recipes:
        raise UsageError("no SFT recipe to measure: give one or more, e.g. sft.learning_rate=2e-5,sft.max_steps=8")
    problems = validation_problems(run)
    base = generators.generator_outcomes(run, 0, (run.config.model.generator, None), problems)
    comparisons = {}
    for assignments in recipes:
        run.log(f"SFT recipe {recipe_label(assignments)}: training, then sampling and executing on "
                f"{len(problems)} MBPP validation problems")
        comparisons[recipe_label(assignments)] = generators.compare(recipe_outcomes(run, assignments, problems), base)
    kept = [label for label, comparison in comparisons.items() if generators.decide("auto", comparison).keep]
    chosen = max(kept, key=lambda label: comparisons[label].differences["random"]["difference"], default=None)
    return {"problems": len(problems), "num_samples": run.config.sampling.num_samples,
            "base": next(iter(comparisons.values())).baseline, "recipes": comparisons, "kept": kept, "chosen": chosen}
