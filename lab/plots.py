"""Plots of an evaluated run, written as PNG files (matplotlib, headless).

  plot_pass_at_1          pass@1 of each method by benchmark/language (one panel each) and iteration,
                          with the 95% bootstrap intervals as error bars
  plot_pass_at_1_bars     the same numbers as grouped bars: per panel a group per iteration, a bar per method
  plot_reward_histograms  reward-model scores of passing vs failing candidates
  plot_training_curves    step metrics of the training stages (the store's `metrics` rows): loss, reward, KL

Not covered here: computing the numbers (evaluation.py), reading the store (callers pass its rows).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from lab.evaluation import METHOD_TITLES, METHODS, column_of  # noqa: E402


def plot_pass_at_1(rows: list[dict], path: Path) -> list[Path]:
    """One panel per benchmark/language: x = iteration, a line per method. Returns [path] or [] with no rows."""
    if not rows:
        return []
    columns = list(dict.fromkeys(column_of(r) for r in rows))
    figure, axes = plt.subplots(1, len(columns), figsize=(4.5 * len(columns) + 1.8, 3.8), squeeze=False, sharey=True)
    for axis, column in zip(axes[0], columns):
        for offset, method in enumerate(METHODS):
            points = sorted((r["iteration"], r) for r in rows if r["method"] == method and column_of(r) == column)
            if not points:
                continue
            x = [k + (offset - 2) * 0.06 for k, _ in points]
            y = [r["pass_at_1"] for _, r in points]
            errors = [[r["pass_at_1"] - r["ci_low"] for _, r in points], [r["ci_high"] - r["pass_at_1"] for _, r in points]]
            axis.errorbar(x, y, yerr=errors, marker="o", capsize=3, label=METHOD_TITLES[method])
        axis.set_title(column)
        axis.set_xlabel("iteration")
        iterations = sorted({r["iteration"] for r in rows})
        axis.set_xticks(iterations)
        axis.set_xlim(iterations[0] - 0.5, iterations[-1] + 0.5)
        axis.set_ylim(0, 1.04)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("pass@1 (95% bootstrap CI)")
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))  # beside the panel: pass@1 of 1.0 is common
    return [_save(figure, path)]


def plot_pass_at_1_bars(rows: list[dict], path: Path) -> list[Path]:
    """One panel per benchmark/language: a group of bars per iteration, a bar per method, with the 95%
    bootstrap intervals. Returns [path] or [] with no rows."""
    if not rows:
        return []
    columns = list(dict.fromkeys(column_of(r) for r in rows))
    iterations = sorted({r["iteration"] for r in rows})
    width = 0.8 / len(METHODS)
    figure, axes = plt.subplots(1, len(columns), figsize=(1.2 + 2.2 * len(iterations) * len(columns), 3.8),
                                squeeze=False, sharey=True)
    for axis, column in zip(axes[0], columns):
        for offset, method in enumerate(METHODS):
            cells = {r["iteration"]: r for r in rows if r["method"] == method and column_of(r) == column}
            if not cells:
                continue
            bars = [cells[k] for k in iterations if k in cells]
            x = [iterations.index(r["iteration"]) + (offset - (len(METHODS) - 1) / 2) * width for r in bars]
            errors = [[r["pass_at_1"] - r["ci_low"] for r in bars], [r["ci_high"] - r["pass_at_1"] for r in bars]]
            axis.bar(x, [r["pass_at_1"] for r in bars], width, yerr=errors, capsize=2, label=METHOD_TITLES[method])
        axis.set_title(column)
        axis.set_xticks(range(len(iterations)), [f"iteration {k}" for k in iterations])
        axis.set_ylim(0, 1.05)
        axis.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("pass@1 (95% bootstrap CI)")
    axes[0][-1].legend(fontsize=7, loc="upper left")
    return [_save(figure, path)]


def plot_reward_histograms(candidates: list[dict], path: Path, title: str = "evaluation candidates") -> list[Path]:
    """Histogram of `reward` for passing vs failing candidates. Returns [path] or [] when nothing is scored."""
    scored = [c for c in candidates if c.get("reward") is not None and c.get("passed") is not None]
    if not scored:
        return []
    figure, axis = plt.subplots(figsize=(6, 3.8))
    passing = [c["reward"] for c in scored if c["passed"]]
    failing = [c["reward"] for c in scored if not c["passed"]]
    low, high = min(c["reward"] for c in scored), max(c["reward"] for c in scored)
    bins = [low + (high - low) * i / 30 for i in range(31)] if high > low else 10
    axis.hist(failing, bins=bins, alpha=0.6, label=f"failing (n={len(failing)})", color="tab:red")
    axis.hist(passing, bins=bins, alpha=0.6, label=f"passing (n={len(passing)})", color="tab:green")
    axis.set_xlabel("reward model score")
    axis.set_ylabel("candidates")
    axis.set_title(f"Reward of passing vs failing {title}")
    axis.legend()
    return [_save(figure, path)]


def plot_training_curves(metrics: list[dict], path: Path,
                         names: tuple[str, ...] = ("loss", "reward", "kl")) -> list[Path]:
    """A panel per (stage, metric name) among `names`, x = step, a line per iteration; `metrics` are
    rows with iteration, stage, name, step, value (Store.metrics). Returns [path] or [] when none match."""
    wanted = [m for m in metrics if m["name"] in names]
    if not wanted:
        return []
    stages = list(dict.fromkeys(m["stage"] for m in wanted))
    panels = sorted({(m["stage"], m["name"]) for m in wanted},
                    key=lambda panel: (stages.index(panel[0]), names.index(panel[1])))
    columns = min(len(panels), 3)
    rows_needed = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows_needed, columns, figsize=(4.2 * columns, 3.2 * rows_needed), squeeze=False)
    for axis, (stage, name) in zip(axes.flat, panels):
        for iteration in sorted({m["iteration"] for m in wanted if (m["stage"], m["name"]) == (stage, name)}):
            points = sorted((m["step"], m["value"]) for m in wanted
                            if (m["stage"], m["name"], m["iteration"]) == (stage, name, iteration))
            axis.plot([step for step, _ in points], [value for _, value in points], marker=".",
                      label=f"iteration {iteration}")
        axis.set_title(f"{stage}: {name}")
        axis.set_xlabel("step")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    return [_save(figure, path)]


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
