"""Problem loading: every shipped set, the MultiPL-E licence guard, bad rows, the hub path, and MBPP
rendered in the evaluation's form (every rendered reference passes its tests in the sandbox)."""
import ast
import json
from pathlib import Path

import pytest

from lab.config import DataConfig, ExecutionConfig
from lab.execution import Executor, build_program
from lab.problems import (
    MULTIPLE_PYTHON_STOP_TOKENS,
    LicenceError,
    ProblemLoadError,
    available_multiple_languages,
    load_problems,
    load_user_problems,
    mbpp_left_out,
    mbpp_split_of,
    truncate_at_stop,
)

DATA = DataConfig()  # ../shared/data beside the clone, as on every machine and in CI
ORIGINAL = DataConfig(mbpp_form="original")
MBPP_SIZES = {"prompt": 10, "test": 500, "validation": 90, "train": 374}


def test_humaneval_has_164_problems_with_references_and_check_call():
    problems = load_problems("humaneval", data=DATA)
    assert len(problems) == 164
    assert all(p.reference and f"check({p.entry_point})" in p.tests for p in problems)
    assert len({p.id for p in problems}) == 164


def test_mbpp_splits_follow_the_task_id_ranges():
    sizes = {split: len(load_problems("mbpp", split=split, data=ORIGINAL)) for split in MBPP_SIZES}
    assert sizes == MBPP_SIZES
    train = load_problems("mbpp", split="train", purpose="train", data=ORIGINAL)
    assert all(p.id.startswith("mbpp/") and p.entry_point and p.entry_point in p.tests and "\r" not in p.reference
               for p in train)


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


GOOD = {"id": "mine/1", "language": "py", "prompt": "def f():\n", "tests": "assert f() == 1\n",
        "stop_tokens": ["\ndef"]}


def test_user_jsonl_round_trip(tmp_path):
    path = _write(tmp_path / "mine.jsonl",
                  [GOOD, {**GOOD, "id": "mine/2", "reference": "    return 1\n", "split": "validation"}])
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
    source = Path(DATA.data_dir) / "multipl-e" / "humaneval-js.jsonl"
    rows = [json.loads(line) for line in source.read_text().splitlines()]
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


# ---------------------------------------------------------------- MBPP in the evaluation's form

def mbpp_row(task_id, code, tests, text="Write a function.", setup=""):
    return {"task_id": task_id, "text": text, "code": code.replace("\n", "\r\n"), "test_list": tests,
            "test_setup_code": setup, "challenge_test_list": []}


def rendered_from(tmp_path, rows):
    """(rendered problems by task_id, {task_id: reason} left out) of these MBPP rows."""
    (tmp_path / "mbpp").mkdir(exist_ok=True)
    _write(tmp_path / "mbpp" / "mbpp.jsonl", rows)
    data = DataConfig(data_dir=str(tmp_path), source="local")
    problems = {int(p.id.rpartition("/")[2]): p for p in load_problems("mbpp", data=data)}
    return problems, dict(mbpp_left_out(data=data))


def test_rendered_problem_is_signature_docstring_and_body():
    [problem] = [p for p in load_problems("mbpp", split="prompt", data=DATA) if p.id == "mbpp-he/3"]
    assert problem.prompt == (
        "import math\n\n\n"
        "def is_not_prime(n):\n"
        '    """Write a python function to identify non-prime numbers.\n'
        "    >>> is_not_prime(2)\n"
        "    False\n"
        '    """\n'
    )
    assert problem.reference.startswith("    result = False\n    for i in range(2,int(math.sqrt(n)) + 1):\n")
    assert problem.stop_tokens == MULTIPLE_PYTHON_STOP_TOKENS and problem.entry_point == "is_not_prime"
    assert problem.tests == ("assert is_not_prime(2) == False\nassert is_not_prime(10) == True\n"
                             "assert is_not_prime(35) == True\n")


@pytest.mark.parametrize("code", [
    "def f(xs):\n\tout = []\n\tfor x in xs:\n\t\tif x > 0:\n\t\t\tout.append(x +\n\t\t\t\t1)\n\treturn out ",
    "def f(xs):\n  out = []\n  for x in xs:\n    if x > 0:\n      out.append(x + 1)\n  return out",
    "def f(xs):\n out = []\n#keep the positive ones\n for x in xs:\n        if x > 0: out.append(x + 1)\n return out",
])
def test_tab_two_space_and_column_zero_comment_bodies_are_reindented_to_four_spaces(tmp_path, code):
    problems, left_out = rendered_from(tmp_path, [mbpp_row(601, code, ["assert f([1, -1]) == [2]"])])
    assert not left_out
    reference = problems[601].reference
    assert truncate_at_stop(reference, MULTIPLE_PYTHON_STOP_TOKENS) == reference
    indents = {len(line) - len(line.lstrip()) for line in reference.splitlines() if line.strip()}
    assert "\t" not in reference and indents <= {4, 8, 12, 16, 20}, reference
    compile(problems[601].prompt + reference, "rendered", "exec")


def test_imports_are_kept_and_the_one_function_renders(tmp_path):
    code = ("import math\nfrom heapq import nlargest as top\ndef f(xs, k=2):\n"
            "    return [math.floor(x) for x in top(k, xs)]")
    problems, _ = rendered_from(tmp_path, [mbpp_row(602, code, ["assert f([1.5, 3.2, 2.7]) == [3, 2]"])])
    assert problems[602].prompt.startswith("import math\nfrom heapq import nlargest as top\n\n\ndef f(xs, k=2):\n")
    assert problems[602].prompt.endswith('    >>> f([1.5, 3.2, 2.7])\n    [3, 2]\n    """\n')
    assert problems[602].reference == "    return [math.floor(x) for x in top(k, xs)]\n"


@pytest.mark.parametrize("code, tests, reason", [
    ("def helper(x):\n    return x\ndef f(x):\n    return helper(x)", ["assert f(1) == 1"],
     "2 top-level functions (helper, f)"),
    ("class Pair:\n    pass\ndef f(x):\n    return x", ["assert f(Pair()) is not None == True"],
     "line 1 `class Pair:`"),
    ("LIMIT = 3\ndef f(x):\n    return min(x, LIMIT)", ["assert f(5) == 3"], "module-level code besides imports"),
    ("def g(x):\n    return x", ["assert f(1) == 1"], "entry point not found: the tests never call g()"),
    ('def f(x):\n    s = """a\ndef b"""\n    return x', ["assert f(1) == 1"],
     "a stop token would cut the body at 'def b"),
    ("def f(x):\n    return x", ["assert f(1)"], "the first test is not `assert <call> == <expected>`"),
])
def test_problems_that_cannot_be_posed_faithfully_are_left_out_with_a_reason(tmp_path, code, tests, reason):
    good = mbpp_row(603, "def ok():\n    return 1", ["assert ok() == 1"])
    problems, left_out = rendered_from(tmp_path, [good, mbpp_row(604, code, tests)])
    assert list(problems) == [603] and list(left_out) == [604]
    assert reason in left_out[604]


def test_a_backslash_in_the_example_makes_the_docstring_raw():
    [problem] = [p for p in load_problems("mbpp", split="test", data=DATA) if p.id == "mbpp-he/73"]
    assert "    r\"\"\"Write a function" in problem.prompt
    assert ">>> multiple_split('Forces of the \\ndarkness" in problem.prompt
    assert ast.get_docstring(ast.parse(problem.prompt + problem.reference).body[-1]).count("\\n") == 1


@pytest.mark.integration
def test_every_mbpp_row_is_rendered_or_listed_and_ids_differ_from_the_original_form():
    rendered = load_problems("mbpp", data=DATA)
    left_out = mbpp_left_out(data=DATA)
    assert all(p.id.startswith("mbpp-he/") for p in rendered)
    task_ids = [int(p.id.rpartition("/")[2]) for p in rendered] + [task_id for task_id, _ in left_out]
    assert sorted(task_ids) == list(range(1, 975))
    for split, size in MBPP_SIZES.items():
        left_out_of_split = [t for t, _ in left_out if mbpp_split_of(t) == split]
        assert len([p for p in rendered if p.split == split]) + len(left_out_of_split) == size
    assert mbpp_left_out("train", DATA) == [(t, why) for t, why in left_out if 601 <= t <= 974]
    assert len(mbpp_left_out("train", DATA)) < 30  # 25 of 374 on the shipped data


def test_stop_tokens_are_multiple_pythons_own():
    for benchmark in ("multipl-e/humaneval", "multipl-e/mbpp"):
        problems = load_problems(benchmark, language="py", data=DATA)
        assert {p.stop_tokens for p in problems} == {MULTIPLE_PYTHON_STOP_TOKENS}


def test_unknown_mbpp_form_is_refused_by_name():
    with pytest.raises(ValueError, match=r"data\.mbpp_form is 'humaneva'.*'humaneval'.*'original'"):
        load_problems("mbpp", data=DataConfig(mbpp_form="humaneva"))


@pytest.mark.integration
def test_hub_mbpp_is_rendered_like_the_local_copy(monkeypatch):
    import datasets

    rows = [json.loads(line) for line in (Path(DATA.data_dir) / "mbpp" / "mbpp.jsonl").read_text().splitlines()]
    splits = {"prompt": range(1, 11), "test": range(11, 511), "validation": range(511, 601), "train": range(601, 975)}

    def fake_load_dataset(name, config=None, split=None):
        assert (name, config) == ("mbpp", "full")
        return [row for row in rows if row["task_id"] in splits[split]]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    hub = DataConfig(data_dir=None, source="hub")
    assert {p.id: p for p in load_problems("mbpp", data=hub)} == {p.id: p for p in load_problems("mbpp", data=DATA)}
    assert mbpp_left_out(data=hub) == mbpp_left_out(data=DATA)


@pytest.mark.integration
def test_every_rendered_reference_passes_its_tests_in_the_sandbox():
    problems = load_problems("mbpp", data=DATA)
    with Executor(ExecutionConfig(use_cache=False)) as executor:
        results = executor.run_many([(p.language, build_program(p, p.reference)) for p in problems], progress=False)
        wrong = executor.run_many([(p.language, build_program(p, "    return None\n")) for p in problems[:20]],
                                  progress=False)
    failures = [(p.id, r.status, r.stderr[-200:]) for p, r in zip(problems, results) if not r.passed]
    assert len(problems) > 900 and not failures, failures
    assert not any(r.passed for r in wrong)
