"""Problems: HumanEval, MBPP, MultiPL-E and user JSONL files, loaded into one `Problem` record.

Sources: a local data directory (default `../shared/data`, or `$RR_DATA_DIR`, or
`DataConfig.data_dir`) laid out as in that folder's README, or the Hugging Face hub
through `datasets.load_dataset` ('openai_humaneval', 'mbpp', 'nuprl/MultiPL-E').

MultiPL-E's licence forbids using it as training data (a learned reranker included):
`load_problems(..., purpose="train")` refuses it, and records carry `training_allowed`.

User problems: a JSONL file, one object per line, with the fields
  id (str), language (str, a MultiPL-E code such as "py"), prompt (str), tests (str),
  stop_tokens (list of str), and optionally entry_point (str), split (str, default
  "train"), reference (str: a known-correct completion), training_allowed (bool, default true).
A program is run as prompt + completion + "\\n" + tests; exit code 0 means pass.

Loading is all-or-nothing: any bad row raises `ProblemLoadError` naming file, line and field.
Not covered here: running programs (execution.py) or storing problems (store.py).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from lab.config import DataConfig


@dataclass(frozen=True)
class Problem:
    id: str
    """Unique across sources: 'humaneval/HumanEval_0_has_close_elements', 'mbpp/601',
    'multipl-e/humaneval-cpp/HumanEval_0_has_close_elements', or the user's own id."""
    language: str
    """MultiPL-E language code: py, cpp, java, js, ts, php, sh, cs, rs, go, rb, pl, lua, r, rkt, d, scala, ..."""
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
MBPP_STOP_TOKENS = ("\nclass", "\nassert", '\n"""', "\nprint", "\nif", "\n```", "\n#")
MULTIPLE_LICENCE_MESSAGE = (
    "MultiPL-E is evaluation-only: its licence (BSD-3 with a Machine Learning Restriction, clause 4) "
    "forbids using it as training data for any model, the reward model included. "
    "Train on MBPP train/validation (load_problems('mbpp', split='train', purpose='train'))."
)
USER_REQUIRED_FIELDS = {"id": str, "language": str, "prompt": str, "tests": str, "stop_tokens": list}
USER_OPTIONAL_FIELDS = {"entry_point": str, "split": str, "reference": str, "training_allowed": bool}


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
        raise ValueError(f"purpose must be 'eval' or 'train', not {purpose!r}")
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
        raise ValueError(
            f"unknown benchmark {benchmark!r}: use 'humaneval', 'mbpp', 'multipl-e/humaneval', "
            "'multipl-e/mbpp' or 'jsonl:<path>'"
        )
    if split is not None:
        if split not in MBPP_SPLITS:
            raise ValueError(f"unknown split {split!r}: choose one of {', '.join(MBPP_SPLITS)}")
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


def _load_mbpp(data: DataConfig) -> list[Problem]:
    if _local_root(data) is not None:
        rows = _rows(data, "mbpp/mbpp.jsonl", (), ("task_id", "text", "code", "test_list"))
    else:
        rows = [r for split in ("train", "validation", "test", "prompt") for r in _hub_rows("mbpp", "full", split)]
    problems = []
    for label, line, row in rows:
        if not row["test_list"]:
            raise ProblemLoadError(f"{label}, line {line}: field 'test_list' is empty")
        match = re.search(r"assert\s+\(?\s*(?:set\(|sorted\(|math\.isclose\()?\s*([A-Za-z_]\w*)\s*\(", row["test_list"][0])
        setup = row.get("test_setup_code") or ""
        problems.append(Problem(
            id=f"mbpp/{row['task_id']}", language="py",
            prompt=f'"""\n{row["text"].strip()}\n{row["test_list"][0].strip()}\n"""\n',
            tests=(setup + "\n" if setup else "") + "\n".join(row["test_list"]) + "\n",
            stop_tokens=MBPP_STOP_TOKENS, entry_point=match.group(1) if match else "",
            source="mbpp", split=mbpp_split_of(int(row["task_id"])), training_allowed=True,
            reference=row["code"].replace("\r\n", "\n").replace("\r", "\n"),
        ))
    return problems


def _load_multiple(benchmark: str, language: str, data: DataConfig) -> list[Problem]:
    if benchmark not in MULTIPLE_BENCHMARKS:
        raise ValueError(f"unknown MultiPL-E benchmark {benchmark!r}: use 'multipl-e/humaneval' or 'multipl-e/mbpp'")
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
            raise ProblemLoadError(f"{label}, line {line}: field 'name' {row['name']!r} is not '<Benchmark>_<N>_<name>'")
        problems.append(Problem(
            id=f"multipl-e/{benchmark}-{language}/{row['name']}", language=language, prompt=row["prompt"],
            tests=row["tests"], stop_tokens=tuple(row["stop_tokens"]), entry_point=entry_point,
            source="multipl-e", split="test" if benchmark == "humaneval" else mbpp_split_of(int(number)),
            training_allowed=False,
        ))
    return problems


# ---------------------------------------------------------------- checks

KNOWN_LANGUAGES = {
    "py", "cpp", "java", "js", "ts", "php", "sh", "cs", "rs", "go", "rb", "pl", "lua", "r", "rkt", "d",
    "scala", "jl", "swift", "adb", "clj", "dart", "elixir", "hs", "ml", "luau",
}


def _check_language(language: str, where: str) -> None:
    if language not in KNOWN_LANGUAGES:
        raise ProblemLoadError(
            f"{where}: field 'language' has unknown language {language!r}; "
            f"use a MultiPL-E code: {', '.join(sorted(KNOWN_LANGUAGES))}"
        )


def _check_type(value: object, kind: type, where: str, name: str) -> None:
    if not isinstance(value, kind) or (kind is str and not value.strip() and name in ("id", "language", "prompt")):
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
            raise ProblemLoadError(f"{path}, line {line_number}: not valid JSON ({error.msg} at column {error.colno})") from None
        if not isinstance(row, dict):
            raise ProblemLoadError(f"{path}, line {line_number}: expected a JSON object, got {type(row).__name__}")
        rows.append((line_number, row))
    return rows
