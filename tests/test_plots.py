"""plots.py: every figure from rows, None when there is nothing to draw, the `plot_*` PNG wrappers, the
method list and titles from measures.py and the report's column titles."""
import threading

import pytest
from conftest import measurement_row

from lab import plots
from lab.measures import METHOD_NAMES, METHOD_TITLES


def evaluation_rows(methods=METHOD_NAMES, languages=("py", "cpp"), iterations=(1, 2), benchmark="humaneval",
                    generator=None):
    return [{"iteration": k, "benchmark": benchmark, "language": language, "generator": generator or f"gen-{k}",
             "method": method, "pass_at_1": 0.5, "ci_low": 0.25, "ci_high": 0.75, "n_problems": 4}
            for k in iterations for language in languages for method in methods]


MEASUREMENTS = [measurement_row(measure, subject, value, iteration=k, count=10)
                for k in (0, 1) for measure, subject, value in (
                    ("pair_accuracy", "reranker", 0.6), ("ranking_accuracy", "logprob", 0.7), ("top1", "random", 0.4),
                    ("length_correlation", "passed", -0.3), ("top1", "logprob", None))]


def legend_texts(figure):
    return [text.get_text() for axis in figure.axes if axis.get_legend() for text in axis.get_legend().get_texts()]


@pytest.mark.parametrize("draw, rows", [
    (plots.pass_at_1_figure, []), (plots.pass_at_1_bars_figure, []), (plots.reward_histogram_figure, []),
    (plots.reward_histogram_figure, [{"reward": None, "passed": 1}, {"reward": 1.0, "passed": None}]),
    (plots.training_curves_figure, [{"iteration": 0, "stage": "sft", "name": "lr", "step": 1, "value": 1.0}]),
    (plots.hard_negatives_figure, []),
    (plots.policy_curves_figure, [{"iteration": 1, "stage": "sft", "name": "pass_rate", "step": 1, "value": 0.5}]),
    (plots.heldout_figure, [measurement_row("top1", "random", None, eval_set="x", count=0)]),
])
def test_nothing_to_draw_gives_no_figure_and_no_file(draw, rows, tmp_path):
    assert draw(rows) is None
    assert plots.save(draw(rows), tmp_path / "none.png") == [] and not (tmp_path / "none.png").exists()


def test_pass_at_1_draws_every_method_of_measures_in_order_with_its_title():
    rows = evaluation_rows(methods=("oracle", "reranker+logprob", "greedy", "retired-method"))
    rows[0]["ci_low"] = rows[0]["ci_high"] = None
    for draw in (plots.pass_at_1_figure, plots.pass_at_1_bars_figure):
        figure = draw(rows)
        assert [axis.get_title() for axis in figure.axes] == ["HumanEval Python", "HumanEval C++"]
        assert legend_texts(figure) == [METHOD_TITLES["greedy"], METHOD_TITLES["reranker+logprob"],
                                        METHOD_TITLES["oracle"], "retired-method"]
    assert [axis.get_title() for axis in plots.pass_at_1_figure(evaluation_rows(benchmark="mbpp")).axes] == [
        "MBPP Python", "MBPP C++"]


def test_pass_at_1_draws_the_iteration_generator_as_one_series_and_earlier_generators_apart():
    rows = evaluation_rows(methods=("greedy", "reranker")) + evaluation_rows(methods=("greedy",), generator="base")
    for draw in (plots.pass_at_1_figure, plots.pass_at_1_bars_figure):
        assert legend_texts(draw(rows)) == [METHOD_TITLES["greedy"], METHOD_TITLES["reranker"],
                                            f"base model (no SFT): {METHOD_TITLES['greedy']}"]


def test_reward_histograms_have_a_panel_per_version_most_scored_first():
    rows = [{"reward": i / 10, "passed": i % 2, "reward_model": "rm-1" if i < 30 else "rm-0"} for i in range(40)]
    figure = plots.reward_histogram_figure(rows, "candidates")
    assert [axis.get_title().splitlines()[-1] for axis in figure.axes] == ["rm-1", "rm-0"]
    single = plots.reward_histogram_figure([{"reward": 1.0, "passed": 1}, {"reward": 1.0, "passed": 0}], "x")
    assert [axis.get_title() for axis in single.axes] == ["Reward of passing vs failing x"]
    assert legend_texts(single) == ["failing (n=1)", "passing (n=1)"]


def test_heldout_curves_have_a_panel_per_measure_and_skip_missing_values():
    figure = plots.heldout_figure(MEASUREMENTS)
    assert [axis.get_title() for axis in figure.axes] == [
        "mbpp-validation: pair_accuracy", "mbpp-validation: ranking_accuracy", "mbpp-validation: top1",
        "mbpp-validation: length_correlation"]
    assert legend_texts(figure) == ["reranker", "logprob", "random", "passed"]
    assert figure.axes[3].get_ylim()[0] < -1 < 0 < figure.axes[0].get_ylim()[0] + 0.1


def test_heldout_intervals_are_error_bars_differences_centre_on_zero_and_counts_are_not_plotted():
    rows = [measurement_row("pair_accuracy", "reranker", 0.7, eval_set="v", count=80, ci_low=0.6, ci_high=0.78),
            measurement_row("top1_difference", "reranker-random", -0.25, eval_set="v", count=40, ci_low=-0.4,
                            ci_high=-0.1),
            measurement_row("problems", "", 84.0, eval_set="v")]
    figure = plots.heldout_figure(rows)
    assert [axis.get_title() for axis in figure.axes if axis.get_visible()] == [
        "v: pair_accuracy", "v: top1_difference"]
    accuracy, difference = figure.axes[0], figure.axes[1]
    bar_ends = [y for collection in accuracy.collections for segment in collection.get_segments() for _, y in segment]
    assert min(bar_ends) == 0.6 and max(bar_ends) == 0.78
    low, high = difference.get_ylim()
    assert low <= -0.4 and -0.1 <= high and 0 in [line.get_ydata()[0] for line in difference.get_lines()]


def test_policy_curves_show_the_reward_model_score_and_the_pass_rate_together_per_iteration():
    names = ("rm_score", "pass_rate", "kl", "entropy", "length")
    metrics = [{"iteration": k, "stage": "policy", "name": name, "step": step, "value": 0.1 * step + k}
               for k in (1, 2) for name in names for step in (1, 2, 3)]
    sft_kl = {"iteration": 1, "stage": "sft", "name": "kl", "step": 9, "value": 5.0}
    figure = plots.policy_curves_figure(metrics + [sft_kl])
    score, kl, entropy, length, passed = figure.axes  # the pass rate's twin axis comes last
    assert passed.bbox.bounds == score.bbox.bounds and passed.get_ylim() == (-0.02, 1.02)
    assert [list(line.get_xdata()) for line in score.get_lines()] == [[1, 2, 3], [1, 2, 3]]
    assert [line.get_linestyle() for line in passed.get_lines()] == ["--", "--"]
    assert [max(line.get_xdata()) for line in kl.get_lines()] == [3, 3]  # the sft stage's kl is not drawn
    assert legend_texts(figure)[:4] == ["iteration 1: reward-model score", "iteration 2: reward-model score",
                                        "iteration 1: pass rate (executed)", "iteration 2: pass rate (executed)"]


def test_save_writes_each_figure_as_png_under_its_name(tmp_path):
    candidates = [{"reward": i / 7, "passed": i % 3 == 0} for i in range(20)]
    metrics = [{"iteration": k, "stage": "policy", "name": name, "step": step, "value": step / 3}
               for k in (1, 2) for name in ("loss", "kl") for step in (1, 2, 3)]
    written = (plots.save(plots.pass_at_1_figure(evaluation_rows()), tmp_path / "a" / "p.png")
               + plots.save(plots.pass_at_1_bars_figure(evaluation_rows()), tmp_path / "b.png")
               + plots.save(plots.reward_histogram_figure(candidates, title="pool"), tmp_path / "h.png")
               + plots.save(plots.training_curves_figure(metrics, names=("kl", "loss")), tmp_path / "c.png")
               + plots.save(plots.policy_curves_figure([{**m, "name": "pass_rate"} for m in metrics]),
                            tmp_path / "pol.png"))
    assert [p.name for p in written] == ["p.png", "b.png", "h.png", "c.png", "pol.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in written)


def test_figures_can_be_drawn_from_several_threads_at_once(tmp_path):
    errors = []

    def draw(index):
        try:
            plots.save(plots.pass_at_1_figure(evaluation_rows()), tmp_path / f"{index}.png")
            plots.save(plots.heldout_figure(MEASUREMENTS), tmp_path / f"m{index}.png")
        except Exception as error:  # noqa: BLE001 - collected and reported below
            errors.append(error)

    threads = [threading.Thread(target=draw, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(list(tmp_path.glob("*.png"))) == 8
