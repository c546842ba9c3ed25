"""Benchmark the reward model's cost on CPU: today's all-layer LoRA reward model against LoRA on the
top K layers over cached lower-layer states (what lab.reward trains), both arms in one run on the same training
pairs and the same held-out candidates.

    .venv/bin/python scripts/bench_reward.py                          # pairs sampled here from MBPP
    .venv/bin/python scripts/bench_reward.py --lab-dir runs --run default   # pairs of a store run

Arms (the `cpu` preset's reward settings, the same steps, seed and pairs):
  all layers   TRL's RewardTrainer as is, LoRA on every layer: reward.py before the top-K design (each
               sequence padded, every layer, chosen and rejected each with the prompt)
  top K        lab.reward.train_reward_model with reward.trainable_layers=K (--trainable-layers)
Per arm: seconds per pair trained in the first epoch (the new arm's cache is cold then: the lower
layers run once per text) and in later epochs (what retraining in later iterations costs);
held-out candidates scored per second, first and second scoring of the same candidates (a
fresh cache per arm, under a temporary directory); peak RSS during the arm; and held-out pairwise
accuracy (lab.measures.pairwise_accuracy over every passing x failing pair within a held-out
problem), with the paired difference to the all-layer arm over problems (95% bootstrap interval).
Then the ratios, and an estimate of the reward model's cost in one iteration of the cpu preset.

Pairs: with --lab-dir/--run, training pairs are the run's preference pairs (Store.pairs) and the
held-out candidates are the run's executed samples of its 'validation' problems. Without, this
script samples --samples candidates per problem with the 0.5B generator (no adapter) on MBPP train
(training pairs: lab.mining.execution_pairs, as the loop builds them) and MBPP validation
(held-out), and executes them with lab.execution.Executor.

Not covered here: whether a better reward model raises pass@1 (the loop's evaluation measures it).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import gc
import math
import multiprocessing
import os
import random
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from lab.config import LabConfig, make_config, parse_assignments  # noqa: E402
from lab.hidden_states import HiddenStateCache, backbone_identity  # noqa: E402
from lab.measures import paired_difference_ci, pairwise_accuracy  # noqa: E402
from lab.models import load_reward_model, log_forwarder, trainable_weights_kept, trainer_arguments  # noqa: E402
from lab.reward import PreferencePair, score_completions, train_reward_model  # noqa: E402


class StepTimer:
    """on_log target: the wall time of each optimiser step (the trainer logs every step)."""

    def __init__(self):
        self.last, self.seconds = time.perf_counter(), []

    def __call__(self, entry: dict) -> None:
        if "loss" in entry:
            now = time.perf_counter()
            self.seconds.append(now - self.last)
            self.last = now


def train_all_layers_stock_trl(config: LabConfig, pairs: list[PreferencePair], output_dir: str, on_log) -> int:
    """The baseline, reward.py's training before the top-K design: TRL's RewardTrainer on (prompt, chosen,
    rejected) text, LoRA on every layer. Returns the number of pairs it trains on."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    model, tokenizer = load_reward_model(config.model, trainable=True)
    settings = config.reward
    args = RewardConfig(**trainer_arguments(
        config.model, output_dir, seed=config.data.seed, max_steps=settings.max_steps,
        learning_rate=settings.learning_rate, per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps, max_length=settings.max_length))
    dataset = Dataset.from_list([{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs])
    with trainable_weights_kept(model):
        trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                                callbacks=[log_forwarder(on_log, {})])
    trainer.train()
    trainer.save_model(output_dir)
    return len(trainer.train_dataset)


def pairs_from_store(config: LabConfig, lab_dir: str, run: str):
    """(training pairs, held-out items (prompt, completion, problem id, passed)) of a store run."""
    from lab.store import Store
    with Store(Path(lab_dir) / "lab.sqlite") as store:
        run_id = store.run_id(run)
        pairs = [PreferencePair(r["prompt"], r["chosen"], r["rejected"]) for r in store.pairs(run_id)]
        rows = [c for c in store.candidates(run_id, role="validation")
                if c["origin"] == "sample" and c["passed"] is not None]
        prompts = {pid: store.problem(pid).prompt for pid in {c["problem_id"] for c in rows}}
    return pairs, [(prompts[c["problem_id"]], c["completion"], c["problem_id"], bool(c["passed"])) for c in rows]


def pairs_from_mbpp(config: LabConfig, train_problems: int, heldout_problems: int, samples: int):
    """Sample `samples` candidates per problem with the generator (no adapter) on MBPP train and
    validation, execute them; (training pairs as the loop builds them, held-out items)."""
    from lab import mining
    from lab.execution import Executor, build_program
    from lab.generation import generate
    from lab.models import load_sampler
    from lab.problems import load_problems

    def problems(split: str, count: int):
        chosen = load_problems("mbpp", split=split, purpose="train", data=config.data)
        random.Random(config.data.seed).shuffle(chosen)
        return chosen[:count]

    train, heldout = problems("train", train_problems), problems("validation", heldout_problems)
    model, tokenizer = load_sampler(config.model)
    started = time.perf_counter()
    candidates = generate(model, tokenizer, train + heldout, config.sampling, num_samples=samples, progress=False)
    print(f"sampled {len(candidates)} candidates in {time.perf_counter() - started:.0f} s", flush=True)
    del model
    gc.collect()
    by_id = {p.id: p for p in train + heldout}
    with Executor(config.execution) as executor:
        results = executor.run_many([(by_id[c.problem_id].language, build_program(by_id[c.problem_id], c.completion))
                                     for c in candidates], progress=False)
    rows = [{"id": i, "problem_id": c.problem_id, "completion": c.completion, "passed": int(r.passed), "label": None}
            for i, (c, r) in enumerate(zip(candidates, results))]
    train_ids = {p.id for p in train}
    train_rows = [r for r in rows if r["problem_id"] in train_ids]
    row_of = {r["id"]: r for r in rows}
    pairs = [PreferencePair(by_id[row_of[a]["problem_id"]].prompt, row_of[a]["completion"], row_of[b]["completion"])
             for a, b, _ in mining.execution_pairs(train_rows, config.reward.max_pairs_per_problem,
                                                   balance_lengths=config.reward.balance_lengths)]
    items = [(by_id[r["problem_id"]].prompt, r["completion"], r["problem_id"], bool(r["passed"]))
             for r in rows if r["problem_id"] not in train_ids]
    return pairs, items


def heldout_accuracy(items, scores) -> tuple[float | None, int, dict[str, float]]:
    """Pairwise accuracy over every (passing, failing) pair within a problem; pairs; per problem."""
    by_problem: dict[str, list[tuple[bool, float]]] = {}
    for (_, _, problem_id, passed), score in zip(items, scores):
        by_problem.setdefault(problem_id, []).append((passed, score))
    chosen, rejected, per_problem = [], [], {}
    for problem_id, rows in by_problem.items():
        good = [s for passed, s in rows if passed]
        bad = [s for passed, s in rows if not passed]
        if good and bad:
            c, r = zip(*[(g, b) for g in good for b in bad])
            per_problem[problem_id] = pairwise_accuracy(c, r)
            chosen += c
            rejected += r
    return pairwise_accuracy(chosen, rejected), len(chosen), per_problem


def run_arm_in_child(config: LabConfig, trainable_layers: int | None, pairs, items, epochs: int) -> dict:
    """`run_arm` in a fresh process, so that its peak RSS and warm-up are its own."""
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
        return child.submit(run_arm, config, trainable_layers, pairs, items, epochs).result()


def run_arm(config: LabConfig, trainable_layers: int | None, pairs, items, epochs: int) -> dict:
    steps_per_epoch = math.ceil(len(pairs) / config.reward.batch_size)
    config = config.override(**{"reward.trainable_layers": trainable_layers,
                                "reward.max_steps": steps_per_epoch * epochs})
    with tempfile.TemporaryDirectory(prefix="rr-bench-reward-") as work:
        cache = HiddenStateCache(Path(work) / "hidden", backbone_identity(config.model))
        timer = StepTimer()
        if trainable_layers is None:
            trained = train_all_layers_stock_trl(config, pairs, f"{work}/rm", timer)
        else:
            trained = train_reward_model(config, pairs, f"{work}/rm", on_log=timer, cache=cache)["train_pairs"]
        gc.collect()
        model, tokenizer = load_reward_model(config.model, adapter_dir=f"{work}/rm")
        texts = [(prompt, completion) for prompt, completion, _, _ in items]
        scorings = []
        for _ in range(2):
            started = time.perf_counter()
            scores = score_completions(model, tokenizer, texts, batch_size=config.reward.score_batch_size,
                                       progress=False, cache=cache)
            scorings.append(time.perf_counter() - started)
        del model
    accuracy, heldout_pairs, per_problem = heldout_accuracy(items, scores)
    first, later = timer.seconds[:steps_per_epoch], timer.seconds[steps_per_epoch:]
    return {"pairs": trained, "first_epoch_s_per_pair": sum(first) / trained,
            "later_s_per_pair": sum(later) / (trained * (epochs - 1)),
            "first_scoring_per_s": len(texts) / scorings[0], "second_scoring_per_s": len(texts) / scorings[1],
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,  # KiB on Linux
            "accuracy": accuracy, "heldout_pairs": heldout_pairs,
            "per_problem": per_problem}


def iteration_estimate(config: LabConfig, arm: dict) -> tuple[float, float]:
    """Seconds of reward-model work in one iteration k >= 1 of `config` (train_rm, score, validate,
    evaluate) at this arm's unit costs, as (every trained text new, every trained text cached):
    training on reward.max_steps x batch_size pairs (mined pairs' texts were scored in that
    iteration, older pairs' texts maybe trained on before); scoring the new training samples, the
    held-out samples twice (rm-k, then rm-(k-1): a second scoring) and the evaluation samples
    (greedy + sampling.num_samples per problem), all of them new texts (a new generator sampled them)."""
    trained = config.reward.max_steps * config.reward.batch_size
    heldout = config.data.max_validation_problems * config.sampling.num_samples
    new_texts = (config.data.max_train_problems * config.loop.train_samples + heldout
                 + config.data.max_eval_problems * (config.sampling.num_samples + 1))
    scoring = new_texts / arm["first_scoring_per_s"] + heldout / arm["second_scoring_per_s"]
    return (scoring + trained * arm["first_epoch_s_per_pair"],
            scoring + trained * arm["later_s_per_pair"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lab-dir", help="a lab directory whose store holds --run")
    parser.add_argument("--run", help="take pairs and held-out candidates from this run")
    parser.add_argument("--train-problems", type=int, default=24, help="MBPP train problems sampled (without --run)")
    parser.add_argument("--heldout-problems", type=int, default=24, help="MBPP validation problems sampled")
    parser.add_argument("--samples", type=int, default=6, help="candidates sampled per problem")
    parser.add_argument("--max-train-pairs", type=int, default=None, help="train on at most this many pairs")
    parser.add_argument("--epochs", type=int, default=2, help="epochs over the training pairs, in every arm")
    parser.add_argument("--trainable-layers", default="4", help="K of the top-K arms, comma-separated")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch fills the cache; later ones reuse it)")
    config = make_config("cpu", **parse_assignments(args.assignments))
    started = time.perf_counter()
    if args.run:
        pairs, items = pairs_from_store(config, args.lab_dir or config.lab_dir, args.run)
    else:
        pairs, items = pairs_from_mbpp(config, args.train_problems, args.heldout_problems, args.samples)
    random.Random(config.data.seed).shuffle(pairs)
    pairs = pairs[:args.max_train_pairs]
    print(f"{len(pairs)} training pairs, {len(items)} held-out candidates ({sum(i[3] for i in items)} passing); "
          f"{args.epochs} epochs of batch {config.reward.batch_size}; model {config.model.generator}; "
          f"data ready in {time.perf_counter() - started:.0f} s", flush=True)

    arms = {"all layers": None, **{f"top {k}": int(k) for k in args.trainable_layers.split(",")}}
    results = {}
    for name, layers in arms.items():
        arm_started = time.perf_counter()
        results[name] = arm = run_arm_in_child(config, layers, pairs, items, args.epochs)
        print(f"{name:>10}: train {arm['first_epoch_s_per_pair']:.2f} s/pair (epoch 1), "
              f"{arm['later_s_per_pair']:.2f} s/pair (later); "
              f"score {arm['first_scoring_per_s']:.2f} cand/s (first), {arm['second_scoring_per_s']:.2f} (second); "
              f"peak RSS {arm['peak_rss_gib']:.2f} GiB; held-out accuracy {arm['accuracy']:.3f} over "
              f"{arm['heldout_pairs']} pairs; arm took {time.perf_counter() - arm_started:.0f} s", flush=True)

    base = results["all layers"]
    print("\nratios against all layers (> 1 = cheaper):")
    for name, arm in results.items():
        if arm is base:
            continue
        difference = paired_difference_ci(arm["per_problem"], base["per_problem"])
        print(f"{name:>10}: training {base['first_epoch_s_per_pair'] / arm['first_epoch_s_per_pair']:.1f}x (epoch 1), "
              f"{base['later_s_per_pair'] / arm['later_s_per_pair']:.1f}x (later epochs, retraining); "
              f"scoring {arm['first_scoring_per_s'] / base['first_scoring_per_s']:.1f}x (first), "
              f"{arm['second_scoring_per_s'] / base['second_scoring_per_s']:.1f}x (second); "
              f"held-out accuracy {100 * (arm['accuracy'] - base['accuracy']):+.1f} points (per-problem paired "
              f"difference {100 * difference['difference']:+.1f}, 95% CI {100 * difference['ci_low']:+.1f} to "
              f"{100 * difference['ci_high']:+.1f}, {difference['n_problems']} problems)")
    preset = make_config("cpu")
    print(f"\nestimate of the reward-model work in one iteration k >= 1 of the cpu preset (train_rm on "
          f"{preset.reward.max_steps} x {preset.reward.batch_size} pairs; scoring "
          f"{preset.data.max_train_problems} x {preset.loop.train_samples} new samples, "
          f"{preset.data.max_validation_problems} x {preset.sampling.num_samples} held-out twice, "
          f"{preset.data.max_eval_problems} x {preset.sampling.num_samples + 1} evaluation), "
          "from the unit costs above; "
          "SFT, PPO, sampling and execution are unchanged:")
    _, before = iteration_estimate(preset, base)  # the baseline's epochs all cost the same: its steady rate
    print(f"{'all layers':>10}: {before:.0f} s")
    for name, arm in results.items():
        if arm is not base:
            cold, warm = iteration_estimate(preset, arm)
            print(f"{name:>10}: {warm:.0f}-{cold:.0f} s ({before / cold:.1f}-{before / warm:.1f}x; "
                  "trained texts cached or all new)")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
