"""Problem loading: every shipped set, the MultiPL-E licence guard, bad rows, the hub path."""
import json
from pathlib import Path

import pytest

from lab.config import DataConfig
from lab.problems import (
    LicenceError, ProblemLoadError, available_multiple_languages, load_problems, load_user_problems,
)

DATA = DataConfig()  # ../shared/data beside the clone, as on every machine and in CI


def test_humaneval_has_164_problems_with_references_and_check_call():
    problems = load_problems("humaneval", data=DATA)
    assert len(problems) == 164
    assert all(p.reference and f"check({p.entry_point})" in p.tests for p in problems)
    assert len({p.id for p in problems}) == 164


def test_mbpp_splits_follow_the_task_id_ranges():
    sizes = {split: len(load_problems("mbpp", split=split, data=DATA)) for split in ("prompt", "test", "validation", "train")}
    assert sizes == {"prompt": 10, "test": 500, "validation": 90, "train": 374}
    train = load_problems("mbpp", split="train", purpose="train", data=DATA)
    assert all(p.entry_point and p.entry_point in p.tests and "\r" not in p.reference for p in train)


def test_every_shipped_multiple_file_loads_for_both_benchmarks():
    languages = available_multiple_languages(DATA)
    assert {"py", "cpp", "java", "js", "ts", "php", "sh", "cs"} <= set(languages)
    for language in languages:
        for benchmark in ("multipl-e/humaneval", "multipl-e/mbpp"):
            problems = load_problems(benchmark, language=language, data=DATA)
            assert len(problems) > 150, (benchmark, language)
            assert all(p.language == language and not p.training_allowed and p.stop_tokens for p in problems)


def test_multiple_is_refused_as_training_data():
    with pytest.raises(LicenceError, match="evaluation-only"):
        load_problems("multipl-e/humaneval", language="py", purpose="train", data=DATA)
    with pytest.raises(LicenceError):
        load_problems("multipl-e/mbpp", language="cpp", split="train", purpose="train", data=DATA)


def test_unknown_language_and_missing_file_are_named(tmp_path):
    with pytest.raises(ProblemLoadError, match="unknown language 'klingon'"):
        load_problems("multipl-e/humaneval", language="klingon", data=DATA)
    with pytest.raises(ProblemLoadError, match=r"humaneval-py\.jsonl: no such file"):
        load_problems("multipl-e/humaneval", language="py", data=DataConfig(data_dir=str(tmp_path), source="local"))


def _write(path, rows):
    path.write_text("\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows) + "\n")
    return path


GOOD = {"id": "mine/1", "language": "py", "prompt": "def f():\n", "tests": "assert f() == 1\n", "stop_tokens": ["\ndef"]}


def test_user_jsonl_round_trip(tmp_path):
    path = _write(tmp_path / "mine.jsonl", [GOOD, {**GOOD, "id": "mine/2", "reference": "    return 1\n", "split": "validation"}])
    problems = load_user_problems(path)
    assert [p.id for p in problems] == ["mine/1", "mine/2"]
    assert problems[1].reference == "    return 1\n" and problems[1].split == "validation"
    assert problems[0].training_allowed and problems[0].source == f"jsonl:{path}"


@pytest.mark.parametrize("bad_row, message", [
    ("{not json", r"line 2: not valid JSON"),
    ({k: v for k, v in GOOD.items() if k != "tests"}, r"line 2: missing field 'tests'"),
    ({**GOOD, "language": "cobol"}, r"line 2: field 'language' has unknown language 'cobol'"),
    ({**GOOD, "stop_tokens": "\ndef"}, r"line 2: field 'stop_tokens' must be"),
    ({**GOOD, "stop_tokens": [1]}, r"line 2: field 'stop_tokens' must be a list of strings"),
    ({**GOOD, "training_allowed": "yes"}, r"line 2: field 'training_allowed'"),
    (GOOD, r"line 2: field 'id' repeats 'mine/1' from line 1"),
    ("[1, 2]", r"line 2: expected a JSON object"),
])
def test_bad_user_rows_name_file_line_and_field(tmp_path, bad_row, message):
    path = _write(tmp_path / "bad.jsonl", [GOOD, bad_row])
    with pytest.raises(ProblemLoadError, match=str(path).replace(".", r"\.") + ", " + message):
        load_user_problems(path)


def test_non_utf8_file_is_refused_with_its_name(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n\xff\xfe\n")
    with pytest.raises(ProblemLoadError, match="latin1.jsonl: not UTF-8"):
        load_user_problems(path)


def test_bad_row_in_a_benchmark_file_names_it(tmp_path):
    (tmp_path / "humaneval").mkdir()
    good = json.loads((Path(DATA.data_dir) / "humaneval" / "HumanEval.jsonl").read_text().splitlines()[0])
    _write(tmp_path / "humaneval" / "HumanEval.jsonl", [good, {k: v for k, v in good.items() if k != "entry_point"}])
    with pytest.raises(ProblemLoadError, match=r"HumanEval\.jsonl, line 2: missing field 'entry_point'"):
        load_problems("humaneval", data=DataConfig(data_dir=str(tmp_path), source="local"))


def test_hub_rows_are_converted_like_local_ones(monkeypatch):
    import datasets

    local = {p.id: p for p in load_problems("multipl-e/humaneval", language="js", data=DATA)}
    rows = [json.loads(line) for line in (Path(DATA.data_dir) / "multipl-e" / "humaneval-js.jsonl").read_text().splitlines()]
    calls = []

    def fake_load_dataset(name, config=None, split=None):
        calls.append((name, config, split))
        return rows

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    hub = load_problems("multipl-e/humaneval", language="js", data=DataConfig(data_dir=None, source="hub"))
    assert calls == [("nuprl/MultiPL-E", "humaneval-js", "test")]
    assert {p.id: p for p in hub} == local


def test_hub_failure_says_what_to_do(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(ProblemLoadError, match=r"hub:openai_humaneval\[test\].*local copy"):
        load_problems("humaneval", data=DataConfig(data_dir=None, source="hub"))
