"""The study's statistics on pure data: the bootstrap over seeds x problems against a hand-computed case and
widening with the variance between seeds, pairing across levels, study.json's shape, and the protocol's
checks."""
import json

import numpy as np
import pytest

from lab.config import UsageError
from lab.protocol import load_protocol
from lab.study_stats import aggregate, paired, seed_bootstrap, study_markdown

PROTOCOL = """
name = "shape"
preset = "tiny"
sampling_seeds = [0, 1]
reward_seeds = [0, 1]
n = [2, 4]

[config]
"data.eval_languages" = "py"

[[targets]]
name = "filter+ensemble - filter+logprob"
set = "humaneval-py"

[[targets]]
name = "heldout_pair_accuracy"
kind = "at_least"
threshold = 0.8
"""


def test_the_seed_bootstrap_matches_a_hand_computed_case():
    # two sampling seeds, two problems: seed 0 passes problem a only, seed 1 passes both
    result = seed_bootstrap(np.array([[1.0, 0.0], [1.0, 1.0]]), [0, 1])
    assert result["mean"] == 0.75 and result["sd"] == pytest.approx(np.std([0.5, 1.0], ddof=1))
    # the 16 equally likely draws (seeds aa, ab, ba, bb x problems aa, ab, ba, bb) reach 0 (seed 0 twice, problem
    # b twice: 1/16 > 2.5%) and 1 (e.g. seed 1 twice: 1/4): the interval is [0, 1]
    assert result["ci"] == [0.0, 1.0] and (result["units"], result["problems"]) == (2, 2)
    same = seed_bootstrap(np.full((3, 5), 0.4), [0, 1, 2])
    assert same["ci"] == pytest.approx([0.4, 0.4]) and same["sd"] == pytest.approx(0.0)


def test_the_interval_widens_with_the_variance_between_seeds():
    rng = np.random.default_rng(1)
    problems = rng.uniform(0.2, 0.8, size=40)
    alike = np.tile(problems, (3, 1))
    shifted = np.clip(np.stack([problems - 0.15, problems, problems + 0.15]), 0, 1)
    narrow, wide = seed_bootstrap(alike, [0, 1, 2]), seed_bootstrap(shifted, [0, 1, 2])
    assert narrow["mean"] == pytest.approx(wide["mean"], abs=0.01)
    assert wide["ci"][1] - wide["ci"][0] > 1.3 * (narrow["ci"][1] - narrow["ci"][0])
    # reward seeds nested in sampling seeds: the sampling seeds' spread counts, not only the replicates'
    nested = seed_bootstrap(np.repeat(shifted, 2, axis=0), [0, 0, 1, 1, 2, 2])
    assert nested["ci"][1] - nested["ci"][0] == pytest.approx(wide["ci"][1] - wide["ci"][0], rel=0.25)


def test_a_replicate_method_pairs_with_its_own_sampling_seeds_method():
    reranker = {(0, 0): {"a": 1.0, "b": 0.0}, (0, 1): {"a": 1.0, "b": 1.0}, (1, 0): {"a": 0.0, "b": 0.0}}
    logprob = {(0, None): {"a": 0.5, "b": 0.0}, (1, None): {"a": 1.0, "b": None}}
    assert paired(reranker, logprob) == {(0, 0): {"a": 0.5, "b": 0.0}, (0, 1): {"a": 0.5, "b": 1.0},
                                         (1, 0): {"a": -1.0}}


def files():
    problems = ["p1", "p2", "p3"]

    def outcomes(*methods):
        return {m: [1.0, 0.0, 0.5] for m in methods}
    replicates = [{"sampling_seed": s, "reward_seed": r, "pool": f"s{s}@t", "sets": {"humaneval-py": {
        "problems": problems, "n": {"2": outcomes("reranker", "reranker+logprob", "filter+reranker", "rm-0",
                                              "equal_compute", "fresh"),
                                    "4": outcomes("reranker", "reranker+logprob", "filter+reranker")}}},
        "heldout": {"rm-1": {"pair_accuracy": 0.7 + 0.1 * r}, "hard_negatives": {"before_reseeded": 0.5}}}
        for s in (0, 1) for r in (0, 1)]
    samplings = [{"sampling_seed": s, "pool": f"s{s}@t", "sets": {"humaneval-py": {"problems": problems, "n": {
        n: outcomes("greedy", "random", "logprob", "filter+logprob", "oracle", "ensemble", "filter+ensemble")
        for n in ("2", "4")}}}, "heldout": {"ensemble": {"pair_accuracy": 0.8}}} for s in (0, 1)]
    references = {"models": {"big": {"n": 2, "sets": {"humaneval-py": {"problems": problems, "greedy": [1, 1, 0],
                                                                       "filter+logprob": [1, 1, 1]}}}},
                  "base": {"model": "small", "sets": {"humaneval-py": {"problems": problems, "greedy": [0, 0, 1]}}}}
    return replicates, samplings, references


def test_study_json_has_the_shape_the_issue_gives(tmp_path):
    path = tmp_path / "shape.toml"
    path.write_text(PROTOCOL)
    protocol = load_protocol(path)
    replicates, samplings, references = files()
    # a replicate measured on another draw of its sampling seed's candidates is left out, with a note
    stray = dict(replicates[0], reward_seed=5, pool="s0@other")
    study = json.loads(json.dumps(aggregate(protocol, [*replicates, stray], samplings, references, "abc")))
    assert {"protocol", "commit", "sampling_seeds", "reward_seeds", "sets", "heldout_pair_accuracy", "controls",
            "reference_models", "best", "base_greedy", "targets"} <= set(study)
    assert study["sampling_seeds"] == [0, 1] and study["reward_seeds"] == [0, 1] and len(study["notes"]) == 1
    py = study["sets"]["humaneval-py"]
    assert py["problems"] == 3 and set(py["by_n"]) == {"2", "4"}
    for method in ("greedy", "logprob", "reranker", "ensemble", "filter+logprob", "filter+ensemble", "oracle"):
        assert set(py["top1"][method]) >= {"mean", "sd", "ci"} and py["top1"][method]["mean"] == pytest.approx(0.5)
    assert py["top1"]["reranker"]["units"] == 4 and py["top1"]["logprob"]["units"] == 2
    assert set(py["differences"]["filter+ensemble - filter+logprob"]) >= {"mean", "ci"}
    assert study["heldout_pair_accuracy"]["mean"] == pytest.approx(0.75) and "sd" in study["heldout_pair_accuracy"]
    assert set(study["controls"]["hard_negative - equal_compute"]) >= {"mean", "ci"}
    assert "equal_compute" not in py["by_n"]["4"]["top1"]  # controls are measured at the headline N only
    assert study["reference_models"] == {"big greedy": {"humaneval-py": pytest.approx(2 / 3)},
                                         "big filter+logprob@2": {"humaneval-py": 1.0}}
    assert study["base_greedy"] == {"humaneval-py": pytest.approx(1 / 3)}
    assert set(study["best"]["humaneval-py"]) >= {"method", "mean", "ci", "minus_base_greedy"}
    assert [(t["name"], t["met"]) for t in study["targets"]] == [("filter+ensemble - filter+logprob", False),
                                                                 ("heldout_pair_accuracy", False)]
    table = study_markdown(study)
    assert "examples filter + log-prob [uses visible examples]" in table and "base model greedy" in table


@pytest.mark.parametrize("text, complaint", [
    ('name = "x"\nsampling_seeds = [0]\nreward_seeds = [0]\nn = [8]\nseeds = 1\n', "seeds: unknown key"),
    ('name = "x"\nsampling_seeds = [0]\nreward_seeds = [0]\nn = [8]\n[config]\n"reward.seed" = 3\n',
     "config.reward.seed: set by the study itself"),
    ('name = "x"\nsampling_seeds = [0]\nreward_seeds = [0]\nn = [8]\ndifferences = ["ensemble minus logprob"]\n',
     "write a difference as 'a - b'"),
    ('name = "x"\nsampling_seeds = []\nreward_seeds = [0]\nn = [8]\n', "sampling_seeds: a non-empty list"),
    ('name = "x"\nsampling_seeds = [0]\nreward_seeds = [0]\nn = [8]\n[config]\n"reward.epoch" = 3\n',
     "unknown config field 'reward.epoch'"),
])
def test_a_bad_protocol_is_refused_naming_the_file_and_the_key(tmp_path, text, complaint):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match="bad.toml") as refused:
        load_protocol(path)
    assert complaint in str(refused.value)


def test_the_frozen_protocol_reads(tmp_path):
    from lab.config import repo_root

    protocol = load_protocol(repo_root() / "studies" / "reranker-v1.toml")
    assert len(protocol.sampling_seeds) >= 2 and len(protocol.reward_seeds) >= 3 and protocol.n == (8, 32)
    config = protocol.replicate_config(1, 2, str(tmp_path))
    assert (config.sampling.seed, config.reward.seed, config.loop.candidates_from) == (1, 2, "s1")
    assert not config.policy.enabled and config.data.eval_languages == ("py", "cpp", "java", "js")
