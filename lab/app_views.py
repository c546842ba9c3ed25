"""What the app shows, as plain functions: reads through the store's reader and the HTML, tables and
figures built from their rows. No Gradio and no SQL here (the store's "reads for the app" are), so
all of it is unit-testable.

Ranking. A problem's candidates are ranked by the scores of one reward-model version: the one that
scored most of them (the loop scores iteration k's training samples with rm-(k-1), the model that
mines its hard negatives, and its evaluation samples with rm-k), the later-trained on a tie; by mean
log-prob when none scored them (`Store.ranking_rows`). Ties rank a failing candidate above a passing
one (pessimistic: the reranker cannot tell them apart).

Flags, computed in Python from those rows (`rank_problem`, `summarize_problem`):
  suspected hard negative  what `mining.hard_negatives` picks from the problem's candidates with the
                           run's `mining` config (labels included: a candidate labelled hard negative
                           is one, one labelled positive is not), or a candidate already mined as the
                           rejected side of a 'hard_negative' pair
  mistake                  the top-ranked executed sample fails while a passing sample exists (samples
                           only: they are what the reranker picks from at evaluation; greedy and
                           reference candidates are not)
The problem list is one read of the iteration's short rows (no code, no outputs), filtered by state
and paged here; opening a problem reads that problem's candidates only.

Safety. Every piece of user or model text (code, prompts, outputs, notes, ids) reaches HTML only
through `html.escape` or pygments (which escapes); bytes that are not UTF-8 arrive as U+FFFD
(`Store.reader`).

Not covered here: Gradio components and events (app.py), background iterations (launcher.py),
plots (plots.py), and any write to the store.
"""
from __future__ import annotations

import dataclasses
import difflib
import html
import json
from collections import Counter
from itertools import groupby

import pandas as pd
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

from lab.config import MiningConfig, UsageError
from lab.languages import lexer_name
from lab.mining import hard_negatives
from lab.records import EvaluationRow, MeasurementRow, PairRow, RankingRow, StageRow
from lab.reports import generator_title, measurement_text, own_generators, series_key
from lab.store import Store

PAGE_SIZE = 25
MAX_CODE_CHARS = 20_000
MAX_OUTPUT_CHARS = 3_000
MAX_OUTPUT_LINES = 40
MAX_CARDS = 100
MAX_PAIRS_SHOWN = 50
STATES = {
    "all": "all problems",
    "suspected": "has suspected hard negatives",
    "unlabeled": "has unlabeled candidates",
    "all_fail": "all sampled candidates fail",
    "mistake": "reranker picked a failing candidate while a passing one existed",
}
LABEL_NAMES = {"hard_negative": "hard negative", "positive": "positive", "exclude": "exclude"}


@dataclasses.dataclass(frozen=True)
class Scope:
    """What the Review tab looks at: one iteration of one run, with that run's mining rule."""
    run_id: int
    iteration: int
    mining: MiningConfig


def mining_config(config_json: str, run_name: str = "?") -> MiningConfig:
    """The `mining` section of a run's stored config; fields it lacks take MiningConfig's defaults."""
    try:
        section = json.loads(config_json or "{}").get("mining") or {}
    except (json.JSONDecodeError, AttributeError) as error:
        raise UsageError(f"run {run_name!r}: its stored config_json is not a JSON object ({error}); "
                         "the run was not written by this lab") from error
    known = {f.name for f in dataclasses.fields(MiningConfig)}
    return MiningConfig(**{name: value for name, value in section.items() if name in known})


def scope_of(store: Store, run_name: str | None, iteration: int | None) -> Scope | None:
    """The scope of a run (by name) and iteration; None when either is missing."""
    run = next((r for r in store.reader().runs() if r["name"] == run_name), None)
    if run is None or iteration is None:
        return None
    return Scope(run["id"], int(iteration), mining_config(run["config_json"], run["name"]))


# ------------------------------------------------------------------ ranking and flags (pure)

def rank_problem(rows: list[RankingRow], mining: MiningConfig) -> list[dict]:
    """One problem's `Store.ranking_rows`, best first, each with rank, rank_key (the score it is
    ranked by) and suspected (see the module docstring)."""
    picked = set(hard_negatives(rows, mining))
    ranked: list[dict] = []
    for row in rows:
        rank_key = row["reward"] if row["ranked_by"] is not None else row["mean_logprob"]
        ranked.append({**row, "rank_key": rank_key, "mined": bool(row["mined"]),
                       "suspected": row["id"] in picked or bool(row["mined"])})
    ranked.sort(key=lambda r: (r["rank_key"] is None, -(r["rank_key"] or 0.0), r["passed"] == 1, r["id"]))
    for rank, ranked_row in enumerate(ranked, start=1):
        ranked_row["rank"] = rank
    return ranked


def summarize_problem(ranked: list[dict]) -> dict:
    """Counts and flags of one problem from its `rank_problem` rows."""
    first = ranked[0]
    samples = [r for r in ranked if r["origin"] == "sample"]
    executed_samples = [r for r in samples if r["passed"] is not None]
    n_sample_pass = sum(r["passed"] == 1 for r in samples)
    return {
        "problem_id": first["problem_id"], "language": first["language"], "split": first["split"],
        "ranked_by": first["ranked_by"], "ranked_by_iteration": first["ranked_by_iteration"],
        "n_candidates": len(ranked), "n_pass": sum(r["passed"] == 1 for r in ranked),
        "n_fail": sum(r["passed"] == 0 for r in ranked), "n_labeled": sum(r["label"] is not None for r in ranked),
        "n_suspected": sum(r["suspected"] for r in ranked), "n_samples": len(samples),
        "n_sample_pass": n_sample_pass, "n_sample_fail": sum(r["passed"] == 0 for r in samples),
        "mistake": bool(n_sample_pass and executed_samples and executed_samples[0]["passed"] == 0),
        "all_fail": bool(samples) and all(r["passed"] == 0 for r in samples),
    }


STATE_TESTS = {
    "all": lambda summary: True,
    "suspected": lambda summary: summary["n_suspected"] > 0,
    "unlabeled": lambda summary: summary["n_labeled"] < summary["n_candidates"],
    "all_fail": lambda summary: summary["all_fail"],
    "mistake": lambda summary: summary["mistake"],
}


# ------------------------------------------------------------------ reads

def _ranked_by_problem(store: Store, scope: Scope, **filters) -> dict[str, list[dict]]:
    rows = store.reader().ranking_rows(scope.run_id, scope.iteration, **filters)
    return {problem_id: rank_problem(list(group), scope.mining)
            for problem_id, group in groupby(rows, key=lambda r: r["problem_id"])}


def list_problems(store: Store, scope: Scope, *, language: str | None = None, split: str | None = None,
                  state: str = "all", search: str = "", offset: int = 0,
                  limit: int = PAGE_SIZE) -> tuple[list[dict], int]:
    """One page of the iteration's problems (by id) with their counts and flags, and how many match."""
    if state not in STATE_TESTS:
        raise UsageError(f"unknown problem state {state!r}: choose one of {', '.join(STATE_TESTS)}")
    ranked = _ranked_by_problem(store, scope, language=language or None, split=split or None, search=search or "")
    matching = [s for s in map(summarize_problem, ranked.values()) if STATE_TESTS[state](s)]
    return matching[offset: offset + limit], len(matching)


def problem_summary(store: Store, scope: Scope, problem_id: str) -> dict | None:
    """The problem's row of the list plus its prompt; None when it has no candidates in the scope."""
    ranked = _ranked_by_problem(store, scope, problem_id=problem_id).get(problem_id)
    if not ranked:
        return None
    return {**summarize_problem(ranked), "prompt": store.reader().problem(problem_id).prompt}


def ranked_candidates(store: Store, scope: Scope, problem_id: str) -> list[dict]:
    """The problem's candidates (Store.candidates rows: code, outputs, label), best first, each with
    rank, rank_key, suspected and mined."""
    ranked = _ranked_by_problem(store, scope, problem_id=problem_id).get(problem_id, [])
    if not ranked:
        return []
    flags = {r["id"]: r for r in ranked}
    rows = store.reader().candidates(scope.run_id, iteration=scope.iteration, problem_id=problem_id,
                                     reward_model=ranked[0]["ranked_by"])
    flagged = [{**row, **{key: flags[row["id"]][key] for key in ("rank", "rank_key", "suspected", "mined")}}
               for row in rows if row["id"] in flags]
    return sorted(flagged, key=lambda r: r["rank"])


def ranking_note(summary: dict, iteration: int) -> str:
    """What a problem's candidates are ranked by, from its `problem_summary`."""
    ranked_by, trained_in = summary["ranked_by"], summary["ranked_by_iteration"]
    if ranked_by is None:
        return "No reward-model scores for these candidates yet: ranked by the generator's mean log-prob."
    if trained_in is None:
        return f"Ranked by reward model {ranked_by}."
    role = " (the model that mined this iteration's hard negatives)" if trained_in == iteration - 1 else ""
    return f"Ranked by reward model {ranked_by}, trained in iteration {trained_in}{role}."


def label_counts(store: Store, scope: Scope) -> dict:
    """Candidates of the iteration with a current label vs without (pending), and per label."""
    by_label = Counter(r["label"] for r in store.reader().ranking_rows(scope.run_id, scope.iteration))
    pending = by_label.pop(None, 0)
    return {"labeled": sum(by_label.values()), "pending": pending, "by_label": dict(by_label)}


def filter_choices(store: Store, scope: Scope) -> dict[str, list[str]]:
    rows = store.reader().ranking_rows(scope.run_id, scope.iteration)
    return {"language": sorted({r["language"] for r in rows}), "split": sorted({r["split"] for r in rows})}


def problem_pairs(store: Store, run_id: int, problem_id: str) -> list[PairRow]:
    """The preference pairs built on one problem (any iteration), newest first."""
    return store.reader().pairs(run_id, problem_ids=[problem_id])[::-1]


# ------------------------------------------------------------------ metrics tables

def pass_at_1_table(evaluations: list[EvaluationRow]) -> pd.DataFrame:
    """Rows benchmark / language / generator / method, one pass@1 column per iteration; the generator column
    is empty for each iteration's own generator (reports.series_key), 'base model (no SFT)' and the like
    for the others."""
    if not evaluations:
        return pd.DataFrame(columns=["benchmark", "language", "generator", "method"])
    own = own_generators(evaluations)
    frame = pd.DataFrame([{**row, "generator": generator_title(generator) if generator else "", "method": method}
                          for row in evaluations for generator, method in [series_key(row, own)]])
    table = frame.pivot_table(index=["benchmark", "language", "generator", "method"], columns="iteration",
                              values="pass_at_1")
    table.columns = [f"iter {i}" for i in table.columns]
    return table.round(3).reset_index()


def heldout_table(measurements: list[MeasurementRow]) -> pd.DataFrame:
    """Rows eval set / measure (its label, measure/subject), one column per iteration: value [95%
    interval] (n=count) of `Store.measurements` rows."""
    if not measurements:
        return pd.DataFrame(columns=["eval set", "measure"])
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for m in measurements:
        cells.setdefault((m["eval_set"], m["name"]), {})[f"iter {m['iteration']}"] = measurement_text(m)
    iterations = sorted({m["iteration"] for m in measurements})
    return pd.DataFrame([{"eval set": eval_set, "measure": name,
                          **{f"iter {k}": row.get(f"iter {k}", "") for k in iterations}}
                         for (eval_set, name), row in cells.items()])


def hard_negatives_per_iteration(store: Store, run_id: int) -> pd.DataFrame:
    columns = ["iteration", "mined_pairs", "mined_candidates", "labeled_hard_negatives"]
    return pd.DataFrame(store.reader().hard_negative_counts(run_id), columns=columns)


def uses_reference(pair: PairRow) -> bool:
    """Whether a pair has a human-written reference solution on either side (not on-policy)."""
    return "reference" in (pair["chosen_origin"], pair["rejected_origin"])


def pairs_table(pairs: list[PairRow]) -> pd.DataFrame:
    """Per iteration and kind: pairs, and how many of them have a reference solution on a side."""
    counts = Counter((p["iteration"], p["kind"], uses_reference(p)) for p in pairs)
    keys = sorted({(iteration, kind) for iteration, kind, _ in counts})
    return pd.DataFrame([{"iteration": k, "kind": kind, "pairs": counts[(k, kind, False)] + counts[(k, kind, True)],
                          "with a reference solution": counts[(k, kind, True)]} for k, kind in keys],
                        columns=["iteration", "kind", "pairs", "with a reference solution"])


# ------------------------------------------------------------------ HTML

CODE_CSS = HtmlFormatter(style="default").get_style_defs(".code")


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n[... {len(text) - limit} more characters not shown]"


def code_html(code: str, language: str) -> str:
    try:
        lexer = get_lexer_by_name(lexer_name(language), startinline=True)
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
    return (
        f'<div class="{classes}" id="candidate-{c["id"]}" data-candidate="{c["id"]}">'
        f'<div class="card-head"><b>#{c["rank"]}</b> {pass_badge(c["passed"])} {flags} '
        f'{label_badge(c["label"], c["label_note"])}'
        f'<span class="meta">reward {_number(c["reward"])} · log-prob {_number(c["mean_logprob"])} · '
        f'status {esc(c["status"] or "not executed")} · exit {esc(c["exit_code"])} · {origin_badge(c["origin"])} · '
        f'id {c["id"]} · {esc(c["num_tokens"])} tokens</span></div>{note}'
        f'{code_html(c["completion"], language)}'
        f'<details{detail_open}><summary>stderr / stdout</summary><div class="stream">stderr</div>'
        f'{output_excerpt(c["stderr"])}<div class="stream">stdout</div>{output_excerpt(c["stdout"])}</details>'
        f'<details{detail_open}><summary>diff against the best passing candidate</summary>{diff}</details></div>'
    )


def origin_badge(origin: str) -> str:
    """'sample' / 'greedy' as text; a human-written reference solution stands out."""
    return '<span class="badge ref">reference solution</span>' if origin == "reference" else esc(origin)


def pairs_html(pairs: list[PairRow]) -> str:
    """The preference pairs built on a problem (`problem_pairs`), folded, with the ones that have a
    reference solution on a side marked: those are not on-policy."""
    if not pairs:
        return '<div class="meta pairs-line">no preference pairs on this problem yet</div>'
    with_reference = sum(map(uses_reference, pairs))
    rows = "".join(
        f'<tr class="{"with-reference" if uses_reference(p) else ""}">'
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


def problem_html(summary: dict, ranking_text: str, pairs: list[PairRow]) -> str:
    """Header (id, counts, ranking basis, mistake banner, pairs) and the highlighted prompt of a
    `problem_summary` row."""
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
        f'<div class="meta">{esc(ranking_text)}</div>{banner}{pairs_html(pairs)}'
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


def stages_html(stages: list[StageRow]) -> str:
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
.badge.hn { background: #cf222e; color: white; } .badge.ref { background: #bf8700; color: white; }
.badge.label-hard_negative { background: #8250df; color: white; } .badge.label-positive { background: #1a7f37; color: white; }
.badge.label-exclude { background: #6e7781; color: white; }
.banner { padding: 6px 10px; border-radius: 6px; margin: 6px 0; font-weight: 600; }
.banner.mistake { background: #ffebe9; color: #a40e26; } .banner.allfail { background: #fff8c5; color: #7d4e00; }
.banner.ok { background: #dafbe1; color: #116329; }
table.ranking { border-collapse: collapse; font-size: 12px; width: 100%; }
table.ranking td, table.ranking th { padding: 2px 8px; border-bottom: 1px solid #eaeef2; text-align: left; }
table.ranking tr.suspected td { background: #fff1f0; } table.ranking tr.selected td { font-weight: 700; }
table.ranking tr.with-reference td { background: #fff8c5; }
.empty { padding: 16px; } .empty pre { background: #f6f8fa; padding: 8px; border-radius: 4px; }
#label-hard_negative { background: #8250df; color: white; } #label-positive { background: #1a7f37; color: white; }
#problems table { font-size: 12px; }
.stages { margin: 6px 0; font-size: 13px; } .stage { padding: 1px 8px; margin-right: 4px; border-radius: 10px; background: #eaeef2; }
.stage.done { background: #dafbe1; } .stage.running { background: #ddf4ff; font-weight: 600; } .stage.failed { background: #ffebe9; }
.progress-bar { background: #eaeef2; border-radius: 4px; height: 14px; overflow: hidden; }
.progress-bar > div { background: #0969da; height: 100%; }
"""
