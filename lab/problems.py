"""Problems: HumanEval, MBPP, MultiPL-E and user JSONL files, loaded into one `Problem` record.

Sources: a local data directory (default `../shared/data`, or `$RR_DATA_DIR`, or
`DataConfig.data_dir`) laid out as in that folder's README, or the Hugging Face hub
through `datasets.load_dataset` ('openai_humaneval', 'mbpp', 'nuprl/MultiPL-E').

MultiPL-E's licence forbids using it as training data (a learned reranker included):
`load_problems(..., purpose="train")` refuses it, and records carry `training_allowed`.

MBPP is posed in one of two forms (`DataConfig.mbpp_form`), rendered from MBPP's own rows:
  'humaneval' (default), the evaluation's form: the prompt is the reference solution's imports,
    its `def` line and a docstring with the MBPP text and the first test as a doctest; the
    completion (and the reference) is the body, indented by 4 spaces a level; MultiPL-E Python's
    stop tokens. Problems this cannot pose faithfully (helper functions or classes, module-level
    statements, a body the stop tokens would cut, ...) are left out: `mbpp_left_out` lists them
    (the rendering itself: lab/mbpp_form.py).
  'original', MBPP's own form: a module docstring with the text and the first test; the
    completion is a whole `def`.
MultiPL-E's own MBPP prompts are never used for this: they are evaluation-only.

User problems: a JSONL file, one object per line, with the fields
  id (str), language (str, a MultiPL-E code such as "py"), prompt (str), tests (str),
  stop_tokens (list of str), and optionally entry_point (str), split (str, default
  "train"), reference (str: a known-correct completion), training_allowed (bool, default true).
A program is run as prompt + completion + "\\n" + tests; exit code 0 means pass.

Loading is all-or-nothing: any bad row raises `ProblemLoadError` naming file, line and field.
Not covered here: running programs (execution.py) or storing problems (lab/store/problems.py).
"""
from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lab.config import DataConfig, UsageError
from lab.languages import MULTIPLE_E_CODES
from lab.mbpp_form import Unrenderable, evaluation_form


@dataclass(frozen=True)
class Problem:
    id: str
    """Unique across sources: 'humaneval/HumanEval_0_has_close_elements', 'mbpp/601' (MBPP's own
    form), 'mbpp-he/601' (MBPP 601 rendered in the evaluation's form, a different prompt and
    reference: see DataConfig.mbpp_form), 'multipl-e/humaneval-cpp/HumanEval_0_has_close_elements',
    or the user's own id."""
    language: str
    """MultiPL-E language code: py, cpp, java, js, ... (one of languages.MULTIPLE_E_CODES)."""
    prompt: str
    tests: str
    """Appended after the completion: program = prompt + completion + '\\n' + tests."""
    stop_tokens: tuple[str, ...]
    """The completion is cut at the first of these."""
    entry_point: str
    source: str
    """'humaneval', 'mbpp', 'multipl-e' or 'jsonl:<path>'."""
    split: str
    """'test', 'train', 'validation', 'prompt'."""
    training_allowed: bool
    """False for evaluation-only data (MultiPL-E's licence forbids training on it)."""
    reference: str | None = None
    """A known-correct completion, when the source has one (HumanEval, MBPP)."""


class ProblemLoadError(ValueError):
    """A problem file or row is missing or malformed; the message names file, line and field."""


class LicenceError(ValueError):
    """Evaluation-only data was requested for training."""


MBPP_SPLITS = {"prompt": range(1, 11), "test": range(11, 511), "validation": range(511, 601), "train": range(601, 975)}
MULTIPLE_BENCHMARKS = ("humaneval", "mbpp")
PYTHON_STOP_TOKENS = ("\ndef", "\n#", "\nif", "\nclass", "\nprint")
MULTIPLE_PYTHON_STOP_TOKENS = ("\ndef", "\n#", "\nif", "\nclass")
"""What every MultiPL-E Python row carries: the evaluation cuts Python completions at these."""
MBPP_STOP_TOKENS = ("\nclass", "\nassert", '\n"""', "\nprint", "\nif", "\n```", "\n#")
MBPP_FORMS = ("humaneval", "original")
MBPP_RENDERED_PREFIX = "mbpp-he/"
MULTIPLE_LICENCE_MESSAGE = (
    "MultiPL-E is evaluation-only: its licence (BSD-3 with a Machine Learning Restriction, clause 4) "
    "forbids using it as training data for any model, the reward model included. "
    "Train on MBPP train/validation (load_problems('mbpp', split='train', purpose='train'))."
)
USER_REQUIRED_FIELDS: dict[str, type] = {"id": str, "language": str, "prompt": str, "tests": str, "stop_tokens": list}
USER_OPTIONAL_FIELDS: dict[str, type] = {"entry_point": str, "split": str, "reference": str, "training_allowed": bool}


ANSWER_END = ("\n```",)
"""Where an instruct model closes its answer, whatever the language: a Markdown code fence on a line
of its own (Qwen2.5-Coder-Instruct ends a body with one; executed, it is a syntax error)."""


def completion_stops(stops) -> tuple[str, ...]:
    """A problem's stop strings and ANSWER_END: everything that ends a completion."""
    return tuple(stops) + tuple(end for end in ANSWER_END if end not in stops)


def first_stop(text: str, stops) -> int:
    """Where a completion ends: the index of the earliest of `completion_stops(stops)` in `text`, or -1."""
    return min((i for i in (text.find(s) for s in completion_stops(stops) if s) if i >= 0), default=-1)


def truncate_at_stop(completion: str, stops) -> str:
    """The completion cut at the earliest of its problem's stop strings (what is executed)."""
    cut = first_stop(completion, stops)
    return completion if cut < 0 else completion[:cut]


def load_problems(
    benchmark: str,
    *,
    language: str = "py",
    split: str | None = None,
    purpose: str = "eval",
    data: DataConfig | None = None,
) -> list[Problem]:
    """Load one benchmark as Problem records.

    benchmark: 'humaneval' (OpenAI's Python original), 'mbpp' (Google's, with its splits),
      'multipl-e/humaneval' or 'multipl-e/mbpp' (with `language`), or 'jsonl:<path>'.
    split: MBPP split ('train', 'validation', 'test', 'prompt'); None = every row.
    purpose: 'eval' or 'train'. 'train' refuses evaluation-only data.
    """
    data = data or DataConfig()
    if purpose not in ("eval", "train"):
        raise UsageError(f"purpose must be 'eval' or 'train', not {purpose!r}")
    if benchmark.startswith("multipl-e"):
        if purpose == "train":
            raise LicenceError(MULTIPLE_LICENCE_MESSAGE)
        problems = _load_multiple(benchmark.partition("/")[2], language, data)
    elif benchmark == "humaneval":
        problems = _load_humaneval(data)
    elif benchmark == "mbpp":
        problems = _load_mbpp(data)
    elif benchmark.startswith("jsonl:"):
        problems = load_user_problems(benchmark.partition(":")[2])
    else:
        raise UsageError(
            f"unknown benchmark {benchmark!r}: use 'humaneval', 'mbpp', 'multipl-e/humaneval', "
            "'multipl-e/mbpp' or 'jsonl:<path>'"
        )
    if split is not None:
        _check_split(split)
        problems = [p for p in problems if p.split == split]
    if purpose == "train":
        refused = [p.id for p in problems if not p.training_allowed]
        if refused:
            raise LicenceError(f"{len(refused)} problem(s) are evaluation-only (first: {refused[0]})")
    return problems


def available_multiple_languages(data: DataConfig | None = None) -> list[str]:
    """Language codes with a local MultiPL-E HumanEval file."""
    root = _local_root(data or DataConfig())
    if root is None:
        return []
    return sorted(p.stem.removeprefix("humaneval-") for p in (root / "multipl-e").glob("humaneval-*.jsonl"))


def load_user_problems(path: str | os.PathLike) -> list[Problem]:
    """Read a user JSONL file (schema in the module docstring)."""
    rows = _read_jsonl(Path(path))
    problems = []
    seen: dict[str, int] = {}
    for line_number, row in rows:
        where = f"{path}, line {line_number}"
        for name, kind in USER_REQUIRED_FIELDS.items():
            if name not in row:
                raise ProblemLoadError(f"{where}: missing field {name!r} (required: {', '.join(USER_REQUIRED_FIELDS)})")
            _check_type(row[name], kind, where, name)
        for name, kind in USER_OPTIONAL_FIELDS.items():
            if row.get(name) is not None:
                _check_type(row[name], kind, where, name)
        if not all(isinstance(token, str) for token in row["stop_tokens"]):
            raise ProblemLoadError(f"{where}: field 'stop_tokens' must be a list of strings")
        _check_language(row["language"], where)
        if row["id"] in seen:
            raise ProblemLoadError(f"{where}: field 'id' repeats {row['id']!r} from line {seen[row['id']]}")
        seen[row["id"]] = line_number
        problems.append(Problem(
            id=row["id"], language=row["language"], prompt=row["prompt"], tests=row["tests"],
            stop_tokens=tuple(row["stop_tokens"]), entry_point=row.get("entry_point") or "",
            source=f"jsonl:{path}", split=row.get("split") or "train",
            training_allowed=row.get("training_allowed", True), reference=row.get("reference"),
        ))
    return problems


def mbpp_left_out(split: str | None = None, data: DataConfig | None = None) -> list[tuple[int, str]]:
    """(MBPP task_id, reason), by task_id, for each MBPP problem that the evaluation's form
    (data.mbpp_form 'humaneval') cannot pose faithfully and so leaves out; `split` as in load_problems."""
    if split is not None:
        _check_split(split)
    refused = _render_mbpp(_mbpp_rows(data or DataConfig()))[1]
    return sorted((task_id, reason) for task_id, reason in refused if split is None or mbpp_split_of(task_id) == split)


def mbpp_split_of(task_id: int) -> str:
    for name, ids in MBPP_SPLITS.items():
        if task_id in ids:
            return name
    raise ValueError(f"MBPP task_id {task_id} is outside 1-974")


# ---------------------------------------------------------------- sources

def _local_root(data: DataConfig) -> Path | None:
    if data.source == "hub":
        return None
    if data.data_dir and Path(data.data_dir).is_dir():
        return Path(data.data_dir)
    if data.source == "local":
        raise ProblemLoadError(
            f"data directory {data.data_dir!r} does not exist: set data.data_dir or $RR_DATA_DIR "
            "to a copy of the benchmark data, or use data.source=hub"
        )
    return None


def _rows(data: DataConfig, relative: str, hub: tuple, required: Iterable[str]) -> list[tuple[str, int, dict]]:
    """(file label, line, row) from the local file, or from the hub when there is no local copy."""
    root = _local_root(data)
    if root is not None:
        path = root / relative
        if relative.endswith(".json"):
            rows = [(str(path), i + 1, row) for i, row in enumerate(json.loads(_read_text(path)))]
        else:
            rows = [(str(path), line, row) for line, row in _read_jsonl(path)]
    else:
        rows = _hub_rows(*hub)
    for label, line, row in rows:
        for name in required:
            if name not in row or row[name] is None:
                raise ProblemLoadError(f"{label}, line {line}: missing field {name!r}")
    return rows


def _hub_rows(name: str, config: str | None, split: str) -> list[tuple[str, int, dict]]:
    import datasets

    label = f"hub:{name}" + (f"/{config}" if config else "") + f"[{split}]"
    try:
        dataset = datasets.load_dataset(name, config, split=split)
    except Exception as error:
        raise ProblemLoadError(
            f"{label}: could not load from the Hugging Face hub ({type(error).__name__}: {error}). "
            "Offline? Point data.data_dir / $RR_DATA_DIR at a local copy instead."
        ) from error
    return [(label, i + 1, dict(row)) for i, row in enumerate(dataset)]


def _load_humaneval(data: DataConfig) -> list[Problem]:
    rows = _rows(data, "humaneval/HumanEval.jsonl", ("openai_humaneval", None, "test"),
                 ("task_id", "prompt", "canonical_solution", "test", "entry_point"))
    return [
        Problem(
            id=f"humaneval/{row['task_id'].replace('/', '_')}_{row['entry_point']}", language="py",
            prompt=row["prompt"], tests=f"{row['test']}\ncheck({row['entry_point']})\n",
            stop_tokens=PYTHON_STOP_TOKENS, entry_point=row["entry_point"], source="humaneval",
            split="test", training_allowed=True, reference=row["canonical_solution"],
        )
        for _, _, row in rows
    ]


def _mbpp_rows(data: DataConfig) -> list[tuple[str, int, dict]]:
    if _local_root(data) is not None:
        rows = _rows(data, "mbpp/mbpp.jsonl", (), ("task_id", "text", "code", "test_list"))
    else:
        rows = [r for split in ("train", "validation", "test", "prompt") for r in _hub_rows("mbpp", "full", split)]
    for label, line, row in rows:
        if not row["test_list"]:
            raise ProblemLoadError(f"{label}, line {line}: field 'test_list' is empty")
    return rows


def _load_mbpp(data: DataConfig) -> list[Problem]:
    """MBPP's problems in data.mbpp_form; rendered once per process and data source (the rendering parses
    every solution, and a run's problem selection reads several splits)."""
    return list(_mbpp_problems(data.data_dir, data.source, data.mbpp_form))


@functools.lru_cache(maxsize=4)
def _mbpp_problems(data_dir: str | None, source: str, mbpp_form: str) -> tuple[Problem, ...]:
    return tuple(_render_mbpp_problems(DataConfig(data_dir=data_dir, source=source, mbpp_form=mbpp_form)))


def _render_mbpp_problems(data: DataConfig) -> list[Problem]:
    if data.mbpp_form not in MBPP_FORMS:
        raise UsageError(
            f"data.mbpp_form is {data.mbpp_form!r}: use 'humaneval' (the evaluation's form: signature and "
            "docstring, the completion is the body) or 'original' (MBPP's own: the completion is a whole def)"
        )
    rows = _mbpp_rows(data)
    if data.mbpp_form == "humaneval":
        return _render_mbpp(rows)[0]
    problems = []
    for _, _, row in rows:
        match = re.search(r"assert\s+\(?\s*(?:set\(|sorted\(|math\.isclose\()?\s*([A-Za-z_]\w*)\s*\(",
                          row["test_list"][0])
        problems.append(Problem(
            id=f"mbpp/{row['task_id']}", language="py",
            prompt=f'"""\n{row["text"].strip()}\n{row["test_list"][0].strip()}\n"""\n',
            tests=_mbpp_tests(row), stop_tokens=MBPP_STOP_TOKENS, entry_point=match.group(1) if match else "",
            source="mbpp", split=mbpp_split_of(int(row["task_id"])), training_allowed=True,
            reference=_unix_newlines(row["code"]),
        ))
    return problems


def _mbpp_tests(row: dict) -> str:
    setup = row.get("test_setup_code") or ""
    return (setup + "\n" if setup else "") + "\n".join(row["test_list"]) + "\n"


def _unix_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


# ---------------------------------------------------------------- MBPP in the evaluation's form

def _render_mbpp(rows: list[tuple[str, int, dict]]) -> tuple[list[Problem], list[tuple[int, str]]]:
    """(rendered problems, [(task_id, reason)] of those left out)."""
    rendered, refused = [], []
    for _, _, row in rows:
        try:
            rendered.append(_mbpp_in_evaluation_form(row))
        except Unrenderable as why:
            refused.append((int(row["task_id"]), str(why)))
    return rendered, refused


def _mbpp_in_evaluation_form(row: dict) -> Problem:
    """The row in the evaluation's form (lab/mbpp_form.py), unless the stop tokens would cut its body."""
    tests = _mbpp_tests(row)
    prompt, body, entry_point = evaluation_form(_unix_newlines(row["code"]), tests, row["text"], row["test_list"][0])
    cut = first_stop(body, MULTIPLE_PYTHON_STOP_TOKENS)
    if cut >= 0:
        line = body[cut + 1:].splitlines()[0]
        raise Unrenderable(f"a stop token would cut the body at {line[:40]!r}")
    return Problem(
        id=f"{MBPP_RENDERED_PREFIX}{row['task_id']}", language="py", prompt=prompt, tests=tests,
        stop_tokens=MULTIPLE_PYTHON_STOP_TOKENS, entry_point=entry_point, source="mbpp",
        split=mbpp_split_of(int(row["task_id"])), training_allowed=True, reference=body,
    )


def _load_multiple(benchmark: str, language: str, data: DataConfig) -> list[Problem]:
    if benchmark not in MULTIPLE_BENCHMARKS:
        raise UsageError(f"unknown MultiPL-E benchmark {benchmark!r}: use 'multipl-e/humaneval' or 'multipl-e/mbpp'")
    _check_language(language, f"multipl-e/{benchmark}")
    root = _local_root(data)
    if root is not None and not (root / "multipl-e" / f"{benchmark}-{language}.jsonl").exists():
        present = ", ".join(available_multiple_languages(data)) or "none"
        raise ProblemLoadError(
            f"{root / 'multipl-e' / f'{benchmark}-{language}.jsonl'}: no such file; "
            f"languages present locally: {present}"
        )
    rows = _rows(data, f"multipl-e/{benchmark}-{language}.jsonl",
                 ("nuprl/MultiPL-E", f"{benchmark}-{language}", "test"),
                 ("name", "prompt", "tests", "stop_tokens"))
    problems = []
    for label, line, row in rows:
        number, _, entry_point = row["name"].split("_", 1)[1].partition("_")
        if not number.isdigit():
            raise ProblemLoadError(f"{label}, line {line}: field 'name' {row['name']!r} "
                                   "is not '<Benchmark>_<N>_<name>'")
        problems.append(Problem(
            id=f"multipl-e/{benchmark}-{language}/{row['name']}", language=language, prompt=row["prompt"],
            tests=row["tests"], stop_tokens=tuple(row["stop_tokens"]), entry_point=entry_point,
            source="multipl-e", split="test" if benchmark == "humaneval" else mbpp_split_of(int(number)),
            training_allowed=False,
        ))
    return problems


# ---------------------------------------------------------------- checks

def _check_split(split: str) -> None:
    if split not in MBPP_SPLITS:
        raise UsageError(f"unknown split {split!r}: choose one of {', '.join(MBPP_SPLITS)}")


def _check_language(language: str, where: str) -> None:
    if language not in MULTIPLE_E_CODES:
        raise ProblemLoadError(
            f"{where}: field 'language' has unknown language {language!r}; "
            f"use a MultiPL-E code: {', '.join(sorted(MULTIPLE_E_CODES))}"
        )


def _check_type(value: object, kind: type, where: str, name: str) -> None:
    blank = isinstance(value, str) and not value.strip()
    if not isinstance(value, kind) or (blank and name in ("id", "language", "prompt")):
        raise ProblemLoadError(f"{where}: field {name!r} must be a non-empty {kind.__name__}, got {value!r:.60}")


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise ProblemLoadError(f"{path}: no such file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ProblemLoadError(f"{path}: not UTF-8 text ({error})") from error


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    rows = []
    for line_number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ProblemLoadError(f"{path}, line {line_number}: not valid JSON "
                                   f"({error.msg} at column {error.colno})") from None
        if not isinstance(row, dict):
            raise ProblemLoadError(f"{path}, line {line_number}: expected a JSON object, got {type(row).__name__}")
        rows.append((line_number, row))
    return rows
