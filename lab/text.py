"""Long texts cut to a bounded size, saying how much was left out: program output as the store keeps
it, code and output as the app shows them.

Not covered here: where the bounds are set (the store, lab/store/candidates.py; the app's views,
lab/app_views.py), or cutting a completion at its stop strings (problems.truncate_at_stop).
"""
from __future__ import annotations


def clip(text: str, limit: int, *, keep: str = "head", left_out: str = "not shown") -> str:
    """`text` when it has at most `limit` characters; else its first `limit` characters followed by a
    line '[... N more characters <left_out>]', or with keep='tail' its last `limit` characters after a
    line '[... N earlier characters <left_out>]'."""
    if len(text) <= limit:
        return text
    dropped = len(text) - limit
    if keep == "head":
        return text[:limit] + f"\n[... {dropped} more characters {left_out}]"
    if keep == "tail":
        return f"[... {dropped} earlier characters {left_out}]\n" + text[dropped:]
    raise ValueError(f"keep must be 'head' or 'tail', not {keep!r}")
