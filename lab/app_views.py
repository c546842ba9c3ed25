"""What the app shows, as plain functions: read-only queries over the store and the HTML, tables
and figures built from their rows. No Gradio here, so all of it is unit-testable.

Ranking. A problem's candidates are ranked by the scores of one reward-model version: the one that
scored most of them (the loop scores iteration k's training samples with rm-(k-1), the model that
mines its hard negatives, and its evaluation samples with rm-k), the newer on a tie; by mean
log-prob when none scored them. Ties rank a failing candidate above a passing one (pessimistic:
the reranker cannot tell them apart). A *suspected hard negative* is a failing candidate whose
ranking score is >= the best passing candidate's of the same problem, or one mined as the
rejected side of a 'hard_negative' pair (references count as passing candidates, as in mining).
A *mistake* is a problem whose top-ranked sample fails while a passing sample exists (samples
only: they are what the reranker picks from at evaluation; greedy and reference are not).
All of this is defined once, in `_FLAGGED_SQL`.

Safety. Every piece of user or model text (code, prompts, outputs, notes, ids) reaches HTML only
through `html.escape` or pygments (which escapes); bytes that are not UTF-8 are decoded with
U+FFFD replacement (`readable`). Problem lists are paged in SQL (LIMIT/OFFSET).

Not covered here: Gradio components and events (app.py), background iterations (launcher.py),
and any write to the store.
"""
from __future__ import annotations

import difflib
import html
import sqlite3

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

from lab.store import Store

PAGE_SIZE = 25
MAX_CODE_CHARS = 20_000
MAX_OUTPUT_CHARS = 3_000
MAX_OUTPUT_LINES = 40
MAX_CARDS = 100
STATES = {
    "all": "all problems",
    "suspected": "has suspected hard negatives",
    "unlabeled": "has unlabeled candidates",
    "all_fail": "all sampled candidates fail",
    "mistake": "reranker picked a failing candidate while a passing one existed",
}
LABEL_NAMES = {"hard_negative": "hard negative", "positive": "positive", "exclude": "exclude"}
PYGMENTS_NAMES = {
    "py": "python", "cpp": "cpp", "java": "java", "js": "javascript", "ts": "typescript", "php": "php",
    "sh": "bash", "cs": "csharp", "rs": "rust", "go": "go", "rb": "ruby", "pl": "perl", "lua": "lua",
    "r": "r", "rkt": "racket", "d": "d", "scala": "scala", "jl": "julia", "swift": "swift", "hs": "haskell",
}


def readable(store: Store) -> sqlite3.Connection:
    """The store's connection for this thread, decoding non-UTF-8 text with replacement characters."""
    db = store.db
    db.text_factory = lambda raw: raw.decode("utf-8", "replace")
    return db


def query(store: Store, sql: str, params: dict | tuple = ()) -> list[dict]:
    return [dict(row) for row in readable(store).execute(sql, params)]


# ------------------------------------------------------------------ queries

_FLAGGED_SQL = """
WITH mined AS (SELECT DISTINCT rejected_id FROM pairs WHERE run_id = :run AND kind = 'hard_negative'),
version_counts AS (
    SELECT c.problem_id, s.reward_model, COUNT(*) AS n,
           (SELECT MAX(k.iteration) FROM checkpoints k WHERE k.version = s.reward_model) AS trained_in
    FROM candidates c LEFT JOIN scores s ON s.candidate_id = c.id
    WHERE c.run_id = :run AND c.iteration = :iteration {candidate_filter} GROUP BY c.problem_id, s.reward_model
),
chosen AS (
    SELECT problem_id, reward_model FROM (
        SELECT problem_id, reward_model, ROW_NUMBER() OVER (PARTITION BY problem_id
            ORDER BY reward_model IS NULL, n DESC, trained_in DESC, reward_model DESC) AS position
        FROM version_counts) WHERE position = 1
),
base AS (
    SELECT c.id, c.problem_id, e.passed, c.origin = 'sample' AS is_sample, ch.reward_model AS ranked_by,
           CASE WHEN ch.reward_model IS NULL THEN c.mean_logprob ELSE s.score END AS rank_key,
           c.id IN (SELECT rejected_id FROM mined) AS mined,
           (SELECT l.label FROM labels l WHERE l.candidate_id = c.id ORDER BY l.id DESC LIMIT 1) AS label
    FROM chosen ch CROSS JOIN candidates c ON c.run_id = :run AND c.iteration = :iteration AND c.problem_id = ch.problem_id
    LEFT JOIN executions e ON e.candidate_id = c.id
    LEFT JOIN scores s ON s.candidate_id = c.id AND s.reward_model = ch.reward_model
),
scored AS (
    SELECT *, MAX(CASE WHEN passed = 1 THEN rank_key END) OVER (PARTITION BY problem_id) AS best_pass FROM base
),
flagged AS (
    SELECT *, COALESCE(passed = 0 AND (mined OR rank_key >= best_pass), 0) AS suspected FROM scored
),
per_problem AS (
    SELECT problem_id, MAX(ranked_by) AS ranked_by, COUNT(*) AS n_candidates, COALESCE(SUM(passed = 1), 0) AS n_pass,
           COALESCE(SUM(passed = 0), 0) AS n_fail, SUM(label IS NOT NULL) AS n_labeled, SUM(suspected) AS n_suspected,
           SUM(is_sample) AS n_samples, COALESCE(SUM(is_sample AND passed = 1), 0) AS n_sample_pass,
           COALESCE(SUM(is_sample AND passed = 0), 0) AS n_sample_fail,
           MAX(CASE WHEN is_sample AND passed = 1 THEN rank_key END) AS best_sample_pass,
           MAX(CASE WHEN is_sample AND passed = 0 THEN rank_key END) AS best_sample_fail
    FROM flagged GROUP BY problem_id
),
problem_rows AS (
    SELECT pp.*, COALESCE(pp.n_sample_pass > 0 AND pp.best_sample_fail >= pp.best_sample_pass, 0) AS mistake,
           pp.n_samples > 0 AND pp.n_sample_fail = pp.n_samples AS all_fail,
           p.language, p.split, p.prompt
    FROM per_problem pp JOIN problems p ON p.id = pp.problem_id
)
"""
_STATE_SQL = {
    "all": "1",
    "suspected": "n_suspected > 0",
    "unlabeled": "n_labeled < n_candidates",
    "all_fail": "all_fail",
    "mistake": "mistake",
}


def _flagged_sql(problem_id: str | None = None) -> str:
    return _FLAGGED_SQL.format(candidate_filter="AND c.problem_id = :problem_id" if problem_id is not None else "")


def _problem_filter(language: str | None, split: str | None, state: str, search: str) -> tuple[str, dict]:
    if state not in _STATE_SQL:
        raise ValueError(f"unknown problem state {state!r}: choose one of {', '.join(_STATE_SQL)}")
    where, params = [_STATE_SQL[state]], {}
    if language:
        where.append("language = :language")
        params["language"] = language
    if split:
        where.append("split = :split")
        params["split"] = split
    if search.strip():
        escaped = search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("(problem_id LIKE :search ESCAPE '\\' OR prompt LIKE :search ESCAPE '\\')")
        params["search"] = f"%{escaped}%"
    return " AND ".join(where), params


def list_problems(
    store: Store, run_id: int, iteration: int, *, language: str | None = None,
    split: str | None = None, state: str = "all", search: str = "", offset: int = 0, limit: int = PAGE_SIZE,
) -> tuple[list[dict], int]:
    """One page of the iteration's problems with per-problem counts and flags, and the total matching."""
    where, params = _problem_filter(language, split, state, search)
    params.update(run=run_id, iteration=iteration, limit=limit, offset=offset)
    flagged = _flagged_sql()
    rows = query(
        store,
        f"{flagged} SELECT *, COUNT(*) OVER () AS total FROM problem_rows WHERE {where} "
        "ORDER BY problem_id LIMIT :limit OFFSET :offset",
        params,
    )
    if rows:
        return rows, rows[0]["total"]
    total = query(store, f"{flagged} SELECT COUNT(*) AS n FROM problem_rows WHERE {where}", params)[0]["n"] if offset else 0
    return rows, total


def problem_summary(store: Store, run_id: int, iteration: int, problem_id: str) -> dict | None:
    """The problem's row of the list (counts, flags, `ranked_by`: the reward-model version or None)."""
    params = dict(run=run_id, iteration=iteration, problem_id=problem_id)
    rows = query(store, f"{_flagged_sql(problem_id)} SELECT * FROM problem_rows", params)
    return rows[0] if rows else None


def ranked_candidates(store: Store, run_id: int, iteration: int, problem_id: str) -> list[dict]:
    """The problem's candidates, best first, each with rank, rank_key, suspected and mined flags."""
    params = dict(run=run_id, iteration=iteration, problem_id=problem_id)
    flags = {row["id"]: row for row in query(
        store, f"{_flagged_sql(problem_id)} SELECT id, ranked_by, rank_key, suspected, mined FROM flagged", params)}
    if not flags:
        return []
    ranked_by = next(iter(flags.values()))["ranked_by"]
    readable(store)
    rows = store.candidates(run_id, iteration=iteration, problem_id=problem_id, reward_model=ranked_by)
    for row in rows:
        flag = flags[row["id"]]
        row.update(rank_key=flag["rank_key"], suspected=bool(flag["suspected"]), mined=bool(flag["mined"]))
    rows.sort(key=lambda r: (r["rank_key"] is None, -(r["rank_key"] or 0.0), r["passed"] == 1, r["id"]))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows


def ranking_note(store: Store, run_id: int, iteration: int, ranked_by: str | None) -> str:
    if ranked_by is None:
        return "No reward-model scores for these candidates yet: ranked by the generator's mean log-prob."
    trained = query(store, "SELECT iteration FROM checkpoints WHERE run_id = ? AND version = ?", (run_id, ranked_by))
    if not trained:
        return f"Ranked by reward model {ranked_by}."
    role = " (the model that mined this iteration's hard negatives)" if trained[0]["iteration"] == iteration - 1 else ""
    return f"Ranked by reward model {ranked_by}, trained in iteration {trained[0]['iteration']}{role}."


def label_counts(store: Store, run_id: int, iteration: int) -> dict:
    """Candidates of the iteration with a current label vs without (pending), and per label."""
    rows = query(
        store,
        "SELECT (SELECT l.label FROM labels l WHERE l.candidate_id = c.id ORDER BY l.id DESC LIMIT 1) AS label, "
        "COUNT(*) AS n FROM candidates c WHERE c.run_id = ? AND c.iteration = ? GROUP BY 1",
        (run_id, iteration),
    )
    by_label = {row["label"]: row["n"] for row in rows}
    pending = by_label.pop(None, 0)
    return {"labeled": sum(by_label.values()), "pending": pending, "by_label": by_label}


def filter_choices(store: Store, run_id: int, iteration: int) -> dict[str, list[str]]:
    rows = query(
        store,
        "SELECT DISTINCT p.language, p.split FROM candidates c JOIN problems p ON p.id = c.problem_id "
        "WHERE c.run_id = ? AND c.iteration = ?",
        (run_id, iteration),
    )
    return {"language": sorted({r["language"] for r in rows}), "split": sorted({r["split"] for r in rows})}


def hard_negatives_per_iteration(store: Store, run_id: int) -> pd.DataFrame:
    """Per iteration: hard-negative pairs mined, distinct candidates they reject, and manual hard-negative labels."""
    mined = query(
        store,
        "SELECT iteration, COUNT(*) AS mined_pairs, COUNT(DISTINCT rejected_id) AS mined_candidates "
        "FROM pairs WHERE run_id = ? AND kind = 'hard_negative' GROUP BY iteration",
        (run_id,),
    )
    labelled = query(
        store,
        "SELECT c.iteration, COUNT(*) AS labeled_hard_negatives FROM candidates c WHERE c.run_id = ? AND "
        "(SELECT l.label FROM labels l WHERE l.candidate_id = c.id ORDER BY l.id DESC LIMIT 1) = 'hard_negative' "
        "GROUP BY c.iteration",
        (run_id,),
    )
    columns = ["iteration", "mined_pairs", "mined_candidates", "labeled_hard_negatives"]
    rows: dict[int, dict] = {}
    for row in mined + labelled:
        rows.setdefault(row["iteration"], dict.fromkeys(columns, 0)).update(row)
    return pd.DataFrame([rows[i] for i in sorted(rows)], columns=columns)


def reward_values(store: Store, run_id: int, iteration: int, max_versions: int = 3) -> pd.DataFrame:
    """(reward_model, score, passed) of the iteration's executed candidates, for the versions that
    scored most of them."""
    rows = query(
        store,
        "SELECT s.reward_model, s.score, e.passed FROM candidates c JOIN scores s ON s.candidate_id = c.id "
        "JOIN executions e ON e.candidate_id = c.id WHERE c.run_id = ? AND c.iteration = ?",
        (run_id, iteration),
    )
    frame = pd.DataFrame(rows, columns=["reward_model", "score", "passed"])
    kept = frame.reward_model.value_counts().index[:max_versions]
    return frame[frame.reward_model.isin(kept)]


# ------------------------------------------------------------------ metrics


def pass_at_1_table(evaluations: list[dict]) -> pd.DataFrame:
    """Rows benchmark / language / method, one pass@1 column per iteration."""
    if not evaluations:
        return pd.DataFrame(columns=["benchmark", "language", "method"])
    frame = pd.DataFrame(evaluations)
    table = frame.pivot_table(index=["benchmark", "language", "method"], columns="iteration", values="pass_at_1")
    table.columns = [f"iter {i}" for i in table.columns]
    return table.round(3).reset_index()


def pass_at_1_figure(evaluations: list[dict]) -> Figure | None:
    """One panel per (benchmark, language): pass@1 per iteration, a line per method (reranker vs baselines)."""
    if not evaluations:
        return None
    frame = pd.DataFrame(evaluations)
    panels = sorted(frame.groupby(["benchmark", "language"]).groups)
    figure = Figure(figsize=(min(4.2 * len(panels), 13), 3.2), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (benchmark, language) in zip(axes, panels):
        panel = frame[(frame.benchmark == benchmark) & (frame.language == language)]
        for method, rows in panel.groupby("method"):
            rows = rows.sort_values("iteration")
            ax.plot(rows.iteration, rows.pass_at_1, marker="o", label=method)
            if rows.ci_low.notna().all() and rows.ci_high.notna().all():
                ax.fill_between(rows.iteration, rows.ci_low, rows.ci_high, alpha=0.12)
        ax.set(title=f"{benchmark} · {language}", xlabel="iteration", ylabel="pass@1", ylim=(-0.02, 1.02),
               xticks=sorted(panel.iteration.unique()))
        ax.legend(fontsize=7)
    return figure


def hard_negatives_figure(per_iteration: pd.DataFrame) -> Figure | None:
    if per_iteration.empty:
        return None
    figure = Figure(figsize=(5, 3), layout="constrained")
    ax = figure.subplots()
    width = 0.4
    ax.bar(per_iteration.iteration - width / 2, per_iteration.mined_candidates, width, label="mined (pairs)")
    ax.bar(per_iteration.iteration + width / 2, per_iteration.labeled_hard_negatives, width, label="labeled by hand")
    ax.set(title="hard negatives per iteration", xlabel="iteration", ylabel="candidates",
           xticks=list(per_iteration.iteration))
    ax.legend(fontsize=7)
    return figure


def reward_histogram_figure(values: pd.DataFrame, iteration: int) -> Figure | None:
    """Scores of passing vs failing candidates, a panel per reward model: a reranker that works separates them."""
    if values.empty:
        return None
    versions = list(values.reward_model.value_counts().index)
    figure = Figure(figsize=(4.2 * len(versions), 3), layout="constrained")
    for ax, version in zip(figure.subplots(1, len(versions), squeeze=False)[0], versions):
        scores = values[values.reward_model == version]
        bins = np.histogram_bin_edges(scores.score, bins=30)
        for passed, name, color in ((1, "passing", "#1a7f37"), (0, "failing", "#cf222e")):
            ax.hist(scores.score[scores.passed == passed], bins=bins, alpha=0.55, label=name, color=color)
        ax.set(title=f"iteration {iteration}, {version}", xlabel="reward", ylabel="candidates")
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7)
    return figure


# ------------------------------------------------------------------ HTML

CODE_CSS = HtmlFormatter(style="default").get_style_defs(".code")


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n[... {len(text) - limit} more characters not shown]"


def code_html(code: str, language: str) -> str:
    try:
        lexer = get_lexer_by_name(PYGMENTS_NAMES.get(language, language), startinline=True)
    except ClassNotFound:
        lexer = TextLexer()
    return f'<pre class="code">{highlight(_clip(code, MAX_CODE_CHARS), lexer, HtmlFormatter(nowrap=True))}</pre>'


def output_excerpt(text: str | None) -> str:
    """The last lines of an output (errors come last), escaped."""
    text = (text or "").rstrip()
    if not text:
        return '<span class="muted">(empty)</span>'
    lines = text.splitlines()
    tail = "\n".join(lines[-MAX_OUTPUT_LINES:])[-MAX_OUTPUT_CHARS:]
    dropped = len(text) - len(tail)
    prefix = f"[... {dropped} earlier characters not shown]\n" if dropped > 0 else ""
    return f'<pre class="output">{esc(prefix + tail)}</pre>'


def diff_html(reference: str, code: str) -> str:
    lines = list(difflib.unified_diff(
        _clip(reference, MAX_CODE_CHARS).splitlines(), _clip(code, MAX_CODE_CHARS).splitlines(),
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


def candidate_choices(candidates: list[dict]) -> list[tuple[str, int]]:
    """(radio label, candidate id): '#1 ✗', '#2 ✓', '#3 ?' (not executed)."""
    mark = {1: "✓", 0: "✗", None: "?"}
    return [(f"#{c['rank']} {mark[c['passed']]}", c["id"]) for c in candidates]


def ranking_table_html(candidates: list[dict], selected_id: int | None) -> str:
    rows = []
    for c in candidates[:MAX_CARDS]:
        classes = " ".join(name for name, on in (("suspected", c["suspected"]), ("selected", c["id"] == selected_id)) if on)
        flag = '<span class="badge hn">suspected hard negative</span>' if c["suspected"] else ""
        rows.append(
            f'<tr class="{classes}" data-candidate="{c["id"]}"><td>#{c["rank"]}</td><td>{c["id"]}</td>'
            f'<td>{_number(c["reward"])}</td><td>{_number(c["mean_logprob"])}</td><td>{esc(c["status"] or "—")}</td>'
            f'<td>{pass_badge(c["passed"])} {flag}</td><td>{label_badge(c["label"], c["label_note"])}</td></tr>'
        )
    return (
        f'<table class="ranking"><thead><tr><th>rank</th><th>id</th><th>reward</th><th>log-prob</th><th>status</th>'
        f'<th>result</th><th>label</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def candidate_card(candidate: dict, language: str, best_passing: dict | None, selected: bool) -> str:
    c = candidate
    classes = "card" + (" suspected" if c["suspected"] else "") + (" selected" if selected else "")
    flags = ""
    if c["suspected"]:
        why = "mined as a hard negative" if c["mined"] else "ranked at or above the best passing candidate"
        flags = f'<span class="badge hn" title="{why}">suspected hard negative</span>'
    note = f'<div class="note">note: {esc(c["label_note"])}</div>' if c["label"] and c["label_note"] else ""
    if best_passing is None:
        diff = '<span class="muted">no passing candidate to compare with</span>'
    elif best_passing["id"] == c["id"]:
        diff = '<span class="muted">this is the best passing candidate</span>'
    else:
        diff = diff_html(best_passing["completion"], c["completion"])
    detail_open = " open" if selected else ""
    return (
        f'<div class="{classes}" id="candidate-{c["id"]}" data-candidate="{c["id"]}">'
        f'<div class="card-head"><b>#{c["rank"]}</b> {pass_badge(c["passed"])} {flags} '
        f'{label_badge(c["label"], c["label_note"])}'
        f'<span class="meta">reward {_number(c["reward"])} · log-prob {_number(c["mean_logprob"])} · '
        f'status {esc(c["status"] or "not executed")} · exit {esc(c["exit_code"])} · {esc(c["origin"])} · '
        f'id {c["id"]} · {esc(c["num_tokens"])} tokens</span></div>{note}'
        f'{code_html(c["completion"], language)}'
        f'<details{detail_open}><summary>stderr / stdout</summary><div class="stream">stderr</div>'
        f'{output_excerpt(c["stderr"])}<div class="stream">stdout</div>{output_excerpt(c["stdout"])}</details>'
        f'<details{detail_open}><summary>diff against the best passing candidate</summary>{diff}</details></div>'
    )


def problem_html(summary: dict, ranking_text: str) -> str:
    """Header (id, counts, ranking basis, mistake banner) and the highlighted prompt of a `problem_summary` row."""
    if summary["mistake"]:
        banner = (f'<div class="banner mistake">Reranker mistake: the top-ranked sample fails while '
                  f'{summary["n_sample_pass"]} passing sample(s) exist.</div>')
    elif summary["all_fail"]:
        banner = '<div class="banner allfail">All sampled candidates fail: the reranker cannot pick a right one.</div>'
    elif summary["n_sample_pass"] > 0:
        banner = '<div class="banner ok">The top-ranked sample passes.</div>'
    else:
        banner = ""
    counts = (f'{summary["n_candidates"]} candidates · {summary["n_pass"]} pass · {summary["n_fail"]} fail · '
              f'{summary["n_suspected"]} suspected hard negatives · {summary["n_labeled"]} labeled')
    return (
        f'<div class="problem"><h3>{esc(summary["problem_id"])}</h3>'
        f'<div class="meta">{esc(summary["language"])} · split {esc(summary["split"])} · {counts}</div>'
        f'<div class="meta">{esc(ranking_text)}</div>{banner}'
        f'<details open><summary>prompt</summary>{code_html(summary["prompt"], summary["language"])}</details></div>'
    )


def candidates_html(candidates: list[dict], language: str, selected_id: int | None) -> str:
    if not candidates:
        return '<div class="empty">This problem has no candidates in this iteration.</div>'
    best_passing = next((c for c in candidates if c["passed"] == 1), None)
    cards = "".join(candidate_card(c, language, best_passing, c["id"] == selected_id) for c in candidates[:MAX_CARDS])
    more = (f'<div class="muted">{len(candidates) - MAX_CARDS} lower-ranked candidates not shown.</div>'
            if len(candidates) > MAX_CARDS else "")
    return ranking_table_html(candidates, selected_id) + cards + more


def problems_table(rows: list[dict]) -> pd.DataFrame:
    """The problem list: one row per problem, flags as short text so mistakes stand out."""
    def flags(row: dict) -> str:
        marks = []
        if row["mistake"]:
            marks.append("⚠ mistake")
        if row["n_suspected"]:
            marks.append(f"{row['n_suspected']} HN")
        if row["all_fail"]:
            marks.append("all fail")
        return " · ".join(marks)

    return pd.DataFrame(
        [[r["problem_id"], r["language"], f"{r['n_pass']}/{r['n_candidates']}",
          f"{r['n_labeled']}/{r['n_candidates']}", flags(r)] for r in rows],
        columns=["problem", "lang", "pass", "labeled", "flags"],
    )


def stages_html(stages: list[dict]) -> str:
    """The stages of a run's newest iteration with their status, from the store's stage table."""
    if not stages:
        return ""
    iteration = max(stage["iteration"] for stage in stages)
    mark = {"done": "✓", "running": "…", "failed": "✗"}
    cells = "".join(
        f'<span class="stage {esc(stage["status"])}">{mark.get(stage["status"], "")} {esc(stage["name"])}</span>'
        for stage in stages if stage["iteration"] == iteration
    )
    return f'<div class="stages">iteration {iteration}: {cells}</div>'


def empty_store_html(store_path: str) -> str:
    return (
        '<div class="empty"><h3>No runs yet</h3>'
        f'<p>The store <code>{esc(store_path)}</code> holds no runs. Create one from the <b>Iterate</b> tab '
        '(pick a run name and preset, press <b>Launch iteration</b>) or from a shell:</p>'
        f'<pre>python -m lab iterate --lab-dir {esc(str(store_path).rsplit("/", 1)[0])} --run demo --preset tiny '
        '--iterations 1</pre><p>The tiny preset takes a few minutes on CPU; this page fills in when it finishes.</p></div>'
    )


APP_CSS = CODE_CSS + """
.code, .output, .diff { font-size: 12px; line-height: 1.35; padding: 6px 8px; border-radius: 4px;
  background: #f7f7f9; overflow-x: auto; max-height: 420px; overflow-y: auto; white-space: pre; margin: 4px 0; }
.output { background: #fbfbf2; max-height: 220px; }
.diff .add { color: #116329; background: #e6ffec; } .diff .del { color: #82071e; background: #ffebe9; }
.diff .hunk { color: #6e7781; }
.card { border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 10px; margin: 10px 0; }
.card.suspected { border-left: 5px solid #cf222e; }
.card.selected { box-shadow: 0 0 0 3px #0969da; }
.card-head { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; }
.meta { color: #57606a; font-size: 12px; margin-left: 4px; }
.muted { color: #6e7781; font-style: italic; }
.note { font-size: 12px; color: #57606a; margin: 2px 0; }
.stream { font-size: 11px; color: #6e7781; margin-top: 4px; }
.badge { display: inline-block; padding: 1px 7px; border-radius: 10px; font-size: 11px; font-weight: 600; }
.badge.pass { background: #dafbe1; color: #116329; } .badge.fail { background: #ffebe9; color: #a40e26; }
.badge.pending, .badge.unlabeled { background: #eaeef2; color: #57606a; }
.badge.hn { background: #cf222e; color: white; }
.badge.label-hard_negative { background: #8250df; color: white; } .badge.label-positive { background: #1a7f37; color: white; }
.badge.label-exclude { background: #6e7781; color: white; }
.banner { padding: 6px 10px; border-radius: 6px; margin: 6px 0; font-weight: 600; }
.banner.mistake { background: #ffebe9; color: #a40e26; } .banner.allfail { background: #fff8c5; color: #7d4e00; }
.banner.ok { background: #dafbe1; color: #116329; }
table.ranking { border-collapse: collapse; font-size: 12px; width: 100%; }
table.ranking td, table.ranking th { padding: 2px 8px; border-bottom: 1px solid #eaeef2; text-align: left; }
table.ranking tr.suspected td { background: #fff1f0; } table.ranking tr.selected td { font-weight: 700; }
.empty { padding: 16px; } .empty pre { background: #f6f8fa; padding: 8px; border-radius: 4px; }
#label-hard_negative { background: #8250df; color: white; } #label-positive { background: #1a7f37; color: white; }
#problems table { font-size: 12px; }
.stages { margin: 6px 0; font-size: 13px; } .stage { padding: 1px 8px; margin-right: 4px; border-radius: 10px; background: #eaeef2; }
.stage.done { background: #dafbe1; } .stage.running { background: #ddf4ff; font-weight: 600; } .stage.failed { background: #ffebe9; }
.progress-bar { background: #eaeef2; border-radius: 4px; height: 14px; overflow: hidden; }
.progress-bar > div { background: #0969da; height: 100%; }
"""
