"""Plots, all in one place: functions that draw a matplotlib Figure from rows (the app and the
notebooks show them as they are), and `save`, which writes one as PNG (the run artefacts).

  pass_at_1_figure         pass@1 of each method by benchmark/language (a panel each) and iteration,
                           with the 95% bootstrap intervals as error bars
  pass_at_1_bars_figure    the same numbers as grouped bars: a group per iteration, a bar per method
  reward_histogram_figure  reward-model scores of passing vs failing candidates, a panel per version
  training_curves_figure   step metrics of the training stages (Store.metrics rows)
  policy_curves_figure     the policy stage's steps: the rollouts' reward-model score beside their executed
                           pass rate, then KL, entropy and length
  hard_negatives_figure    hard negatives mined and labelled per iteration (Store.hard_negative_counts rows)
  heldout_figure           a reward model's measurements on held-out problems per iteration
                           (Store.measurements rows), a panel per measure

Every *_figure returns None when its rows hold nothing to draw, and `save` then writes nothing. The
figures are built without pyplot, so the app can draw them from several threads at once.

Panels are titled as the report's columns (reports.column_of). Not covered here: computing the
numbers (measures.py, evaluation.py), tables (reports.py) or reading the store (callers pass its rows).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lab.measures import METHOD_NAMES, METHOD_TITLES
from lab.records import CandidateRow, EvaluationRow, HardNegativeCountRow, MeasurementRow, MetricRow, RewardScoreRow
from lab.reports import column_of, generator_order, generator_title, own_generators, series_key

PASSING_COLOR, FAILING_COLOR = "tab:green", "tab:red"
DPI = 110


def save(figure: Figure | None, path: Path) -> list[Path]:
    """Write `figure` as PNG at `path` (folders made): [path], or [] when there is no figure."""
    if figure is None:
        return []
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    return [path]


def _series(rows: Sequence[EvaluationRow]) -> list[tuple[str, str]]:
    """The (generator, method) series present: the iteration's generator's methods in the order of
    measures.METHODS (others, from an older store, after), then the other generators' (base model first)."""
    own = own_generators(rows)
    present = {series_key(r, own) for r in rows}
    order = {name: i for i, name in enumerate(METHOD_NAMES)}
    generators = generator_order({generator for generator, _ in present} - {""})
    return sorted(present, key=lambda s: ((generators.index(s[0]) + 1) if s[0] else 0, order.get(s[1], 99), s[1]))


def _series_title(series: tuple[str, str]) -> str:
    generator, method = series
    title = METHOD_TITLES.get(method, method)
    return f"{generator_title(generator)}: {title}" if generator else title


def _error_bars(points: list[EvaluationRow]) -> list[list[float]]:
    """Distances from pass@1 to its interval's ends (0 where a row has no interval)."""
    def end(row: EvaluationRow, value: float | None) -> float:
        return row["pass_at_1"] if value is None else value
    return [[r["pass_at_1"] - end(r, r.get("ci_low")) for r in points],
            [end(r, r.get("ci_high")) - r["pass_at_1"] for r in points]]


def _panel_rows(rows: Sequence[EvaluationRow], series: tuple[str, str], column: str) -> list[EvaluationRow]:
    """One series' pass@1 rows in one benchmark/language panel, by iteration."""
    own = own_generators(rows)
    return sorted((r for r in rows if series_key(r, own) == series and column_of(r) == column),
                  key=lambda r: r["iteration"])


def pass_at_1_figure(rows: Sequence[EvaluationRow]) -> Figure | None:
    """One panel per benchmark/language: x = iteration, a line per method with its 95% interval.
    Rows: iteration, benchmark, language, method, pass_at_1, ci_low, ci_high (Store.evaluations)."""
    if not rows:
        return None
    columns = list(dict.fromkeys(column_of(r) for r in rows))
    series = _series(rows)
    iterations = sorted({r["iteration"] for r in rows})
    figure = Figure(figsize=(4.5 * len(columns) + 1.8, 3.8), layout="constrained")
    axes = figure.subplots(1, len(columns), squeeze=False, sharey=True)[0]
    for axis, column in zip(axes, columns):
        for offset, one in enumerate(series):
            points = _panel_rows(rows, one, column)
            if points:
                x = [r["iteration"] + (offset - (len(series) - 1) / 2) * 0.06 for r in points]
                axis.errorbar(x, [r["pass_at_1"] for r in points], yerr=_error_bars(points), marker="o", capsize=3,
                              label=_series_title(one))
        axis.set(title=column, xlabel="iteration", xticks=iterations, ylim=(0, 1.04),
                 xlim=(iterations[0] - 0.5, iterations[-1] + 0.5))
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("pass@1 (95% bootstrap CI)")
    axes[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))  # beside the panel: pass@1 of 1.0 is common
    return figure


def pass_at_1_bars_figure(rows: Sequence[EvaluationRow]) -> Figure | None:
    """One panel per benchmark/language: a group of bars per iteration, a bar per method, with the
    95% intervals. Rows as for `pass_at_1_figure`."""
    if not rows:
        return None
    columns = list(dict.fromkeys(column_of(r) for r in rows))
    series = _series(rows)
    iterations = sorted({r["iteration"] for r in rows})
    width = 0.8 / len(series)
    figure = Figure(figsize=(1.2 + 2.2 * len(iterations) * len(columns), 3.8), layout="constrained")
    axes = figure.subplots(1, len(columns), squeeze=False, sharey=True)[0]
    for axis, column in zip(axes, columns):
        for offset, one in enumerate(series):
            bars = _panel_rows(rows, one, column)
            if bars:
                x = [iterations.index(r["iteration"]) + (offset - (len(series) - 1) / 2) * width for r in bars]
                axis.bar(x, [r["pass_at_1"] for r in bars], width, yerr=_error_bars(bars), capsize=2,
                         label=_series_title(one))
        axis.set_title(column)
        axis.set_xticks(range(len(iterations)), [f"iteration {k}" for k in iterations])
        axis.set_ylim(0, 1.05)
        axis.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("pass@1 (95% bootstrap CI)")
    axes[-1].legend(fontsize=7, loc="upper left")
    return figure


def reward_histogram_figure(candidates: Sequence[CandidateRow | RewardScoreRow],
                            title: str = "candidates") -> Figure | None:
    """Histogram of `reward` for passing vs failing candidates (rows with reward and passed; those
    lacking either are left out), a panel per `reward_model` when rows carry one, most rows first.
    A reranker that works separates the two."""
    scored = [(reward, bool(passed), c.get("reward_model")) for c in candidates
              if (reward := c.get("reward")) is not None and (passed := c.get("passed")) is not None]
    if not scored:
        return None
    versions = sorted({version for _, _, version in scored},
                      key=lambda v: (-sum(version == v for _, _, version in scored), str(v)))
    figure = Figure(figsize=(6 if len(versions) == 1 else 4.6 * len(versions), 3.8), layout="constrained")
    for axis, version in zip(figure.subplots(1, len(versions), squeeze=False)[0], versions):
        rewards = [(reward, passed) for reward, passed, scored_by in scored if scored_by == version]
        low, high = min(reward for reward, _ in rewards), max(reward for reward, _ in rewards)
        bins = [low + (high - low) * i / 30 for i in range(31)] if high > low else 10
        for passed, name, color in ((False, "failing", FAILING_COLOR), (True, "passing", PASSING_COLOR)):
            values = [reward for reward, verdict in rewards if verdict == passed]
            axis.hist(values, bins=bins, alpha=0.6, label=f"{name} (n={len(values)})", color=color)
        axis.set(xlabel="reward model score", ylabel="candidates",
                 title=f"Reward of passing vs failing {title}" + (f"\n{version}" if version else ""))
        axis.title.set_fontsize(9 if len(versions) > 1 else 11)
        axis.legend(fontsize=8, loc="best")
    return figure


def training_curves_figure(metrics: Sequence[MetricRow],
                           names: tuple[str, ...] = ("loss", "reward", "kl")) -> Figure | None:
    """A panel per (stage, metric name) among `names`, x = step, a line per iteration; rows with
    iteration, stage, name, step, value (Store.metrics)."""
    wanted = [m for m in metrics if m["name"] in names]
    if not wanted:
        return None
    stages = list(dict.fromkeys(m["stage"] for m in wanted))
    panels = sorted({(m["stage"], m["name"]) for m in wanted},
                    key=lambda panel: (stages.index(panel[0]), names.index(panel[1])))
    columns = min(len(panels), 3)
    rows_needed = -(-len(panels) // columns)
    figure = Figure(figsize=(4.2 * columns, 3.2 * rows_needed), layout="constrained")
    axes = figure.subplots(rows_needed, columns, squeeze=False)
    for axis, (stage, name) in zip(axes.flat, panels):
        for iteration in sorted({m["iteration"] for m in wanted if (m["stage"], m["name"]) == (stage, name)}):
            points = sorted((m["step"], m["value"]) for m in wanted
                            if (m["stage"], m["name"], m["iteration"]) == (stage, name, iteration))
            axis.plot([step for step, _ in points], [value for _, value in points], marker=".",
                      label=f"iteration {iteration}")
        axis.set(title=f"{stage}: {name}", xlabel="step")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    return figure


POLICY_PANELS = (("kl", "KL to the reference, per token"), ("entropy", "entropy, per token"),
                 ("length", "completion tokens"))


def _step_points(metrics: Sequence[MetricRow], name: str, iteration: int) -> tuple[list[int], list[float]]:
    points = sorted((m["step"], m["value"]) for m in metrics if m["name"] == name and m["iteration"] == iteration)
    return [step for step, _ in points], [value for _, value in points]


def policy_curves_figure(metrics: Sequence[MetricRow]) -> Figure | None:
    """The policy stage's steps (Store.metrics rows of stage 'policy'), a line per iteration: the reward
    model's mean score of the rollouts (left axis) with their executed pass rate (right axis, dashed) in
    one panel, since a score that rises while the pass rate falls is reward hacking; then KL, entropy
    and completion length."""
    rows = [m for m in metrics if m["stage"] == "policy"]
    iterations = sorted({m["iteration"] for m in rows if m["name"] in ("rm_score", "pass_rate")})
    if not iterations:
        return None
    figure = Figure(figsize=(4.2 * (1 + len(POLICY_PANELS)), 3.4), layout="constrained")
    axes = figure.subplots(1, 1 + len(POLICY_PANELS))
    score_axis, pass_axis = axes[0], axes[0].twinx()
    for number, iteration in enumerate(iterations):
        color = f"C{number % 10}"
        score_axis.plot(*_step_points(rows, "rm_score", iteration), marker=".", color=color,
                        label=f"iteration {iteration}: reward-model score")
        pass_axis.plot(*_step_points(rows, "pass_rate", iteration), marker="x", linestyle="--", color=color,
                       label=f"iteration {iteration}: pass rate (executed)")
        for axis, (name, _) in zip(axes[1:], POLICY_PANELS):
            axis.plot(*_step_points(rows, name, iteration), marker=".", color=color, label=f"iteration {iteration}")
    score_axis.set(title="rollouts: reward-model score and pass rate", xlabel="policy step", ylabel="mean score")
    pass_axis.set(ylabel="pass rate", ylim=(-0.02, 1.02))
    handles = [line for axis in (score_axis, pass_axis) for line in axis.get_lines()]
    score_axis.legend(handles=handles, fontsize=7, loc="best")
    for axis, (_, title) in zip(axes[1:], POLICY_PANELS):
        axis.set(title=title, xlabel="policy step")
        axis.legend(fontsize=7, loc="best")
    for axis in axes:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    return figure


def hard_negatives_figure(per_iteration: Sequence[HardNegativeCountRow]) -> Figure | None:
    """Per iteration: candidates mined as hard negatives and candidates labelled so by hand."""
    if not per_iteration:
        return None
    iterations = [r["iteration"] for r in per_iteration]
    figure = Figure(figsize=(5, 3), layout="constrained")
    axis = figure.subplots()
    width = 0.4
    axis.bar([k - width / 2 for k in iterations], [r["mined_candidates"] for r in per_iteration], width,
             label="mined (pairs)")
    axis.bar([k + width / 2 for k in iterations], [r["labeled_hard_negatives"] for r in per_iteration], width,
             label="labeled by hand")
    axis.set(title="hard negatives per iteration", xlabel="iteration", ylabel="candidates", xticks=iterations)
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))  # beside the bars, never over them
    return figure


def heldout_figure(measurements: Sequence[MeasurementRow]) -> Figure | None:
    """A panel per measure ('pair_accuracy', 'ranking_accuracy', 'top1', 'length_correlation', ...),
    x = iteration, a line per subject (reranker, logprob, random, passed), with error bars where the
    row has a 95% interval. Rows: Store.measurements; rows without a value, and bookkeeping
    measures without a subject (problems, lambda), are left out. Accuracies show chance (0.5) as a
    dashed line, differences ('*_difference') zero."""
    rows = [m for m in measurements if m.get("value") is not None and m["subject"]]
    if not rows:
        return None
    panels = list(dict.fromkeys((m["eval_set"], m["measure"]) for m in rows))
    iterations = sorted({m["iteration"] for m in rows})
    columns = min(len(panels), 4)
    rows_needed = -(-len(panels) // columns)
    figure = Figure(figsize=(3.6 * columns + 0.4, 3.0 * rows_needed), layout="constrained")
    axes = figure.subplots(rows_needed, columns, squeeze=False)
    for axis, (eval_set, measure) in zip(axes.flat, panels):
        lines = [m for m in rows if m["eval_set"] == eval_set and m["measure"] == measure]
        for what in dict.fromkeys(m["subject"] for m in lines):
            points = sorted((m["iteration"], value, m.get("ci_low"), m.get("ci_high"))
                            for m in lines if m["subject"] == what and (value := m["value"]) is not None)
            errors = [[v - low if low is not None else 0 for _, v, low, _ in points],
                      [high - v if high is not None else 0 for _, v, _, high in points]]
            axis.errorbar([p[0] for p in points], [p[1] for p in points], yerr=errors, marker="o", capsize=3,
                          label=what)
        if measure.endswith("accuracy"):
            axis.axhline(0.5, color="grey", linestyle="--", linewidth=1)
        if measure.endswith("difference"):
            axis.axhline(0.0, color="grey", linestyle="--", linewidth=1)
        else:
            axis.set_ylim((-1.05, 1.05) if measure.endswith("correlation") else (-0.02, 1.02))
        axis.set(title=f"{eval_set}: {measure}", xlabel="iteration", xticks=iterations)
        axis.title.set_fontsize(9)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))  # beside the panel, off the lines
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    return figure
