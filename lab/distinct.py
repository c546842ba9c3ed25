"""Duplicate completions as one candidate: a problem's samples with the same text (after stripping trailing
whitespace, per line and at the end) are one distinct candidate, with their count kept.

Why and where it matters. A sampler at temperature 0.8 often writes the same short answer several times.
As separate candidates, duplicates would pit a text against itself in pairs, count one answer several
times in a ranking's pairs, and let a ranker's tie among copies of one text look like a tie among
answers. So pairing (mining.py) and every ranking measure (measures.py: a ranker's top pick, ranking
accuracy and AUC, length correlations, pair accuracy) work on distinct candidates, each counted once;
what describes the sampling distribution itself weights each distinct candidate by its count: the
random pick (the pass rate of the N samples), and the oracle (any of them passes) is the same either way.

The representative of a group is its first manually labelled row if any (a label is a person's word on
that text), else its first row (the store returns rows by id); its verdict, scores and label stand for
the group.

Not covered here: what a candidate row holds (records.py), pairing and measuring (mining.py, measures.py).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

Row = TypeVar("Row", bound=Mapping[str, Any])


def normalized_text(completion: str) -> str:
    """The completion with trailing whitespace stripped from every line and from the end."""
    return "\n".join(line.rstrip() for line in completion.splitlines()).rstrip()


def distinct_candidates(rows: Sequence[Row]) -> list[Row]:
    """One row per (problem, normalised completion), in the order of each group's first row, each with
    `count`: how many of `rows` it stands for. Rows without a completion (the app's short rows) stay
    apart, with count 1."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for position, row in enumerate(rows):
        text = row.get("completion")
        key = (row["problem_id"], normalized_text(text)) if isinstance(text, str) else ("", f"row {position}")
        groups.setdefault(key, []).append(row)
    result = []
    for group in groups.values():
        labelled = [row for row in group if row.get("label") is not None]
        result.append({**(labelled or group)[0], "count": len(group)})
    return result  # type: ignore[return-value]  # the same row type, with `count`
