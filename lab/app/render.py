"""The HTML the app shows, as plain functions of the rows views.py reads: the problem header (with its
reward distribution), the candidate cards (code, verdict, the full error output and failing test, the
diff against the best passing candidate, label history), two candidates side by side, job stages.

Safety. Every piece of user or model text (code, prompts, outputs, notes, ids, names) reaches HTML
only through `html.escape` or pygments (which escapes); bytes that are not UTF-8 arrive as U+FFFD
(`Store.reader`).

Deep links. The problem header carries data-run, data-iteration and data-problem, each card
data-candidate; static/app.js writes the shown ones into the address (?run=&problem=&candidate=).

Not covered here: reading rows (views.py), styling (static/app.css), Gradio components (layout.py).
"""
from __future__ import annotations

import difflib
import html
from datetime import UTC, datetime

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

from lab.app.views import LABEL_NAMES
from lab.languages import lexer_name
from lab.records import LabelRow, PairRow, StageRow
from lab.text import clip

MAX_CODE_CHARS = 20_000
MAX_OUTPUT_CHARS = 3_000
MAX_OUTPUT_LINES = 40
MAX_ERROR_CHARS = 20_000
MAX_CARDS = 100
MAX_PAIRS_SHOWN = 50
CODE_STYLES = {"": "default", ".dark ": "github-dark"}
"""Pygments style per page theme (the prefix that scopes its rules)."""


def code_css() -> str:
    """Syntax colours for `.code` blocks, light and (under Gradio's `.dark`) dark."""
    return "\n".join(HtmlFormatter(style=style).get_style_defs(f"{scope}.code") for scope, style in CODE_STYLES.items())


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def ago(iso_time: str | None, now: datetime | None = None) -> str:
    """'12 s ago', '2 min ago', '3 h ago', or the date, of a stored UTC ISO time."""
    if not iso_time:
        return "never"
    then = datetime.fromisoformat(iso_time)
    seconds = ((now or datetime.now(UTC)) - then).total_seconds()
    if seconds < 60:
        return f"{max(0, seconds):.0f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds / 3600:.0f} h ago"
    return f"on {then:%Y-%m-%d}"


def code_html(code: str, language: str) -> str:
    try:
        lexer = get_lexer_by_name(lexer_name(language), startinline=True)
    except ClassNotFound:
        lexer = TextLexer()
    return f'<pre class="code">{highlight(clip(code, MAX_CODE_CHARS), lexer, HtmlFormatter(nowrap=True))}</pre>'


def output_excerpt(text: str | None) -> str:
    """The last lines of an output (errors come last), escaped."""
    text = (text or "").rstrip()
    if not text:
        return '<span class="muted">(empty)</span>'
    last_lines = "".join(text.splitlines(keepends=True)[-MAX_OUTPUT_LINES:])
    return f'<pre class="output">{esc(clip(text, min(len(last_lines), MAX_OUTPUT_CHARS), keep="tail"))}</pre>'


def error_output(text: str | None) -> str:
    """A failing program's error output in full (up to MAX_ERROR_CHARS, its end kept), scrollable."""
    text = (text or "").rstrip()
    if not text:
        return '<span class="muted">(empty)</span>'
    return f'<pre class="output error">{esc(clip(text, MAX_ERROR_CHARS, keep="tail"))}</pre>'


def diff_html(reference: str, code: str) -> str:
    lines = list(difflib.unified_diff(
        clip(reference, MAX_CODE_CHARS).splitlines(), clip(code, MAX_CODE_CHARS).splitlines(),
        "best passing", "this candidate", lineterm="", n=2,
    ))
    if not lines:
        return '<span class="muted">identical to the best passing candidate</span>'
    css = {"+": "add", "-": "del", "@": "hunk"}
    body = "\n".join(f'<span class="{css.get(line[:1], "")}">{esc(line)}</span>' for line in lines)
    return f'<pre class="diff">{body}</pre>'


def _number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def pass_badge(passed: int | None) -> str:
    if passed is None:
        return '<span class="badge pending">not executed</span>'
    return '<span class="badge pass">PASS</span>' if passed else '<span class="badge fail">FAIL</span>'


def label_badge(label: str | None, note: str | None = None) -> str:
    if label is None:
        return '<span class="badge unlabeled">unlabeled</span>'
    title = f' title="{esc(note)}"' if note else ""
    return f'<span class="badge label-{esc(label)}"{title}>{esc(LABEL_NAMES.get(label, label))}</span>'


def origin_badge(origin: str) -> str:
    """'sample' / 'greedy' as text; a human-written reference solution stands out."""
    return '<span class="badge ref">reference solution</span>' if origin == "reference" else esc(origin)


def candidate_choices(candidates: list[dict]) -> list[tuple[str, int]]:
    """(radio label, candidate id): '#1 ✗', '#2 ✓', '#3 ?' (not executed)."""
    mark = {1: "✓", 0: "✗", None: "?"}
    return [(f"#{c['rank']} {mark[c['passed']]}", c["id"]) for c in candidates]


def ranking_table_html(candidates: list[dict], selected_id: int | None) -> str:
    rows = []
    for c in candidates[:MAX_CARDS]:
        flags = (("suspected", c["suspected"]), ("selected", c["id"] == selected_id))
        classes = " ".join(name for name, on in flags if on)
        flag = '<span class="badge hn">suspected hard negative</span>' if c["suspected"] else ""
        rows.append(
            f'<tr class="{classes}" data-candidate="{c["id"]}"><td>#{c["rank"]}</td><td>{c["id"]}</td>'
            f'<td>{_number(c["reward"])}</td><td>{_number(c["mean_logprob"])}</td><td>{esc(c["status"] or "—")}</td>'
            f'<td>{pass_badge(c["passed"])} {flag}</td><td>{label_badge(c["label"], c["label_note"])}</td></tr>'
        )
    return (
        f'<details class="ranking-table"><summary>ranking table ({len(candidates)} candidates)</summary>'
        f'<table class="ranking"><thead><tr><th>rank</th><th>id</th><th>reward</th><th>log-prob</th><th>status</th>'
        f'<th>result</th><th>label</th></tr></thead><tbody>{"".join(rows)}</tbody></table></details>'
    )


def history_html(history: list[LabelRow]) -> str:
    """A candidate's label rows, newest first: when, who, what (undos marked)."""
    if not history:
        return ""
    def item(row: LabelRow) -> str:
        undo = " (undo)" if row["undoes"] is not None else ""
        note = f' <i>{esc(row["note"])}</i>' if row["note"] else ""
        return (f'<li><span class="meta">v{row["version"]} · {esc(ago(row["created_at"]))}</span> '
                f'<b>{esc(row["author"])}</b> → {label_badge(row["label"])}{undo}{note}</li>')
    rows = "".join(item(row) for row in reversed(history))
    return f'<details class="history"><summary>label history ({len(history)})</summary><ul>{rows}</ul></details>'


def candidate_card(candidate: dict, language: str, best_passing: dict | None, selected: bool,
                   tests: str = "") -> str:
    c = candidate
    classes = "card" + (" suspected" if c["suspected"] else "") + (" selected" if selected else "")
    flags = ""
    if c["suspected"]:
        why = ("mined as a hard negative" if c["mined"] else "labeled hard negative" if c["label"] == "hard_negative"
               else "fails, yet the reward model ranks it with the best (the mining rule)")
        flags = f'<span class="badge hn" title="{why}">suspected hard negative</span>'
    note = f'<div class="note">note: {esc(c["label_note"])}</div>' if c["label"] and c["label_note"] else ""
    if best_passing is None:
        diff = '<span class="muted">no passing candidate to compare with</span>'
    elif best_passing["id"] == c["id"]:
        diff = '<span class="muted">this is the best passing candidate</span>'
    else:
        diff = diff_html(best_passing["completion"], c["completion"])
    detail_open = " open" if selected else ""
    failing = c["passed"] == 0
    failure = (f'<details{detail_open} class="failure"><summary>why it fails: the error and the test</summary>'
               f'<div class="stream">stderr (in full)</div>{error_output(c["stderr"])}'
               f'<div class="stream">the unit tests it ran</div>{code_html(tests, language)}</details>'
               if failing else "")
    return (
        f'<div class="{classes}" id="candidate-{c["id"]}" data-candidate="{c["id"]}">'
        f'<div class="card-head"><b>#{c["rank"]}</b> {pass_badge(c["passed"])} {flags} '
        f'{label_badge(c["label"], c["label_note"])}'
        f'<span class="meta">reward {_number(c["reward"])} · log-prob {_number(c["mean_logprob"])} · '
        f'status {esc(c["status"] or "not executed")} · exit {esc(c["exit_code"])} · {origin_badge(c["origin"])} · '
        f'id {c["id"]} · {esc(c["num_tokens"])} tokens</span></div>{note}'
        f'{code_html(c["completion"], language)}{failure}'
        f'<details><summary>stdout{"" if failing else " / stderr"}</summary><div class="stream">stdout</div>'
        f'{output_excerpt(c["stdout"])}'
        f'{"" if failing else "<div class=stream>stderr</div>" + output_excerpt(c["stderr"])}'
        f'</details><details{detail_open}><summary>diff against the best passing candidate</summary>{diff}</details>'
        f'{history_html(c.get("history", []))}</div>'
    )


def pairs_html(pairs: list[PairRow]) -> str:
    """The preference pairs built on a problem (`problem_pairs`), folded, with the ones that have a
    reference solution on a side marked: those are not on-policy."""
    if not pairs:
        return '<span class="meta pairs-line">no preference pairs on this problem yet</span>'
    with_reference = sum("reference" in (p["chosen_origin"], p["rejected_origin"]) for p in pairs)
    rows = "".join(
        f'<tr class="{"with-reference" if "reference" in (p["chosen_origin"], p["rejected_origin"]) else ""}">'
        f'<td>{esc(p["iteration"])}</td><td>{esc(p["kind"])}</td>'
        f'<td>{esc(p["chosen_id"])} {origin_badge(p["chosen_origin"])}</td>'
        f'<td>{esc(p["rejected_id"])} {origin_badge(p["rejected_origin"])}</td></tr>'
        for p in pairs[:MAX_PAIRS_SHOWN])
    hidden = len(pairs) - MAX_PAIRS_SHOWN
    more = f'<div class="muted">{hidden} older pairs not shown.</div>' if hidden > 0 else ""
    return (f'<details class="pairs"><summary>{len(pairs)} preference pairs on this problem · '
            f'<b>{with_reference}</b> with a reference solution</summary><table class="ranking"><thead><tr>'
            f'<th>iteration</th><th>kind</th><th>chosen</th><th>rejected</th></tr></thead><tbody>{rows}</tbody></table>'
            f'{more}</details>')


def reward_strip_html(candidates: list[dict], selected_id: int | None, measure: str) -> str:
    """The problem's score distribution as one strip: a dot per candidate at its ranking score,
    green passing, red failing, grey not executed, the selected one ringed."""
    scored = [c for c in candidates if c["rank_key"] is not None]
    if not scored:
        return ""
    low, high = min(c["rank_key"] for c in scored), max(c["rank_key"] for c in scored)
    width, span = 300, (high - low) or 1.0
    dots = "".join(
        f'<circle cx="{8 + (c["rank_key"] - low) / span * width:.1f}" cy="{12 + (c["rank"] % 3) * 3}" r="4" '
        f'class="{ {1: "pass", 0: "fail"}.get(c["passed"], "pending") }'
        f'{" selected" if c["id"] == selected_id else ""}">'
        f'<title>#{c["rank"]} id {c["id"]}: {_number(c["rank_key"])}</title></circle>'
        for c in scored)
    return (f'<div class="strip" title="this problem\'s {measure} distribution"><span class="meta">{measure} '
            f'{_number(low)}</span><svg width="{width + 16}" height="24" role="img" aria-label="{measure} of each '
            f'candidate">{dots}</svg><span class="meta">{_number(high)}</span></div>')


def problem_html(summary: dict, ranking_text: str, pairs: list[PairRow], candidates: list[dict],
                 selected_id: int | None, where: dict) -> str:
    """Header (id, counts, ranking basis, score strip, mistake banner, pairs), the highlighted prompt
    and the unit tests of a `problem_summary` row; `where` (run, iteration) goes into data attributes."""
    if summary["mistake"]:
        banner = (f'<div class="banner mistake">Reranker mistake: the top-ranked sample fails while '
                  f'{summary["n_sample_pass"]} passing sample(s) exist.</div>')
    elif summary["all_fail"]:
        banner = '<div class="banner allfail">All sampled candidates fail: the reranker cannot pick a right one.</div>'
    elif summary["n_sample_pass"] > 0:
        banner = '<div class="banner ok">The top-ranked sample passes.</div>'
    else:
        banner = ""
    measure = "reward" if summary["ranked_by"] else "mean log-prob"
    counts = (f'{summary["n_candidates"]} candidates · {summary["n_pass"]} pass · {summary["n_fail"]} fail · '
              f'{summary["n_suspected"]} suspected hard negatives · {summary["n_labeled"]} labeled')
    return (
        f'<div class="problem" id="problem-head" data-run="{esc(where["run"])}"'
        f' data-iteration="{esc(where["iteration"])}" data-problem="{esc(summary["problem_id"])}">'
        f'<div class="problem-line"><h3>{esc(summary["problem_id"])}</h3>'
        f'<span class="meta">{esc(summary["language"])} · split {esc(summary["split"])} · {counts}</span></div>'
        f'<div class="problem-line">{banner}{reward_strip_html(candidates, selected_id, measure)}'
        f'<span class="meta">{esc(ranking_text)}</span>{pairs_html(pairs)}</div>'
        f'<details open class="prompt"><summary>prompt</summary>{code_html(summary["prompt"], summary["language"])}'
        f'</details><details class="tests"><summary>unit tests</summary>'
        f'{code_html(summary["tests"], summary["language"])}'
        '</details></div>'
    )


def side_by_side_html(left: dict, right: dict, language: str) -> str:
    """Two candidates' code in two columns, the lines that differ marked."""
    def column(candidate: dict, other: dict) -> str:
        other_lines = set(other["completion"].splitlines())
        lines = "\n".join(f'<span class="{"changed" if line not in other_lines else ""}">{esc(line)}</span>'
                          for line in clip(candidate["completion"], MAX_CODE_CHARS).splitlines())
        return (f'<div><div class="card-head"><b>#{candidate["rank"]}</b> {pass_badge(candidate["passed"])} '
                f'{label_badge(candidate["label"])}<span class="meta">reward {_number(candidate["reward"])} · id '
                f'{candidate["id"]}</span></div><pre class="code side">{lines}</pre></div>')
    return (f'<div class="side-by-side" data-language="{esc(language)}">'
            f'{column(left, right)}{column(right, left)}</div>')


def candidates_html(candidates: list[dict], language: str, selected_id: int | None, tests: str = "",
                    compare_with: int | None = None) -> str:
    if not candidates:
        return '<div class="empty">This problem has no candidates in this iteration.</div>'
    by_id = {c["id"]: c for c in candidates}
    best_passing = next((c for c in candidates if c["passed"] == 1), None)
    side = (side_by_side_html(by_id[selected_id], by_id[compare_with], language)
            if selected_id in by_id and compare_with in by_id and compare_with != selected_id else "")
    cards = "".join(candidate_card(c, language, best_passing, c["id"] == selected_id, tests)
                    for c in candidates[:MAX_CARDS])
    more = (f'<div class="muted">{len(candidates) - MAX_CARDS} lower-ranked candidates not shown.</div>'
            if len(candidates) > MAX_CARDS else "")
    return side + cards + more + ranking_table_html(candidates, selected_id)


def stages_html(stages: list[StageRow], iteration: int | None = None) -> str:
    """The stages of a run's iteration (default: its newest) with their status, from the store."""
    if not stages:
        return ""
    iteration = max(stage["iteration"] for stage in stages) if iteration is None else iteration
    mark = {"done": "✓", "running": "…", "failed": "✗", "cancelled": "⊘"}
    cells = "".join(
        f'<span class="stage {esc(stage["status"])}" title="{esc(stage["status"])}">{mark.get(stage["status"], "")} '
        f'{esc(stage["name"])}</span>'
        for stage in stages if stage["iteration"] == iteration
    )
    return f'<div class="stages">iteration {iteration}: {cells}</div>'


def empty_store_html(store_path: str) -> str:
    return (
        '<div class="empty"><h3>No runs yet</h3>'
        f'<p>The store <code>{esc(store_path)}</code> holds no runs. Create one from the <b>Iterate</b> tab '
        '(pick a run name and preset, press <b>Launch iteration</b>) or from a shell:</p>'
        f'<pre>python -m lab iterate --lab-dir {esc(str(store_path).rsplit("/", 1)[0])} --run demo --preset tiny '
        '--iterations 1</pre><p>The tiny preset takes a few minutes on CPU; this page fills in when it '
        'finishes.</p></div>'
    )
