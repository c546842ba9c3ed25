"""The Review screen's handlers: pick a run and iteration, filter and page the problem list, open a
problem, step through problems and candidates, jump to the next suspected hard negative, open a
deep link, put two candidates side by side, and redraw what labels written elsewhere changed.

Every handler takes the Lab, the tab's View and named inputs, and returns the new values keyed by
component name (layout.py's names): always the new View, and only the components it changes.
`render` draws everything a View shows.

Not covered here: writing labels (labels.py), the HTML (render.py), the reads (views.py).
"""
from __future__ import annotations

from typing import Any

import gradio as gr

from lab.app import render as html
from lab.app import views
from lab.app.state import Lab, View
from lab.store import StoreError

REVIEW = ("view", "problems", "page", "problem_view", "candidate", "candidates_view", "counter", "compare_with")
"""What `render` fills."""
FILTERS = ("language", "split", "state", "search")


def render(lab: Lab, view: View, author: str = "", *, listing: bool = True) -> dict[str, Any]:
    """REVIEW for `view`: the page of the problem list at its offset (the last page when past the end;
    only with `listing`) and its problem (the page's first when None, none when '') with its candidate
    (the top one when none or gone)."""
    scope = views.scope_of(lab.store, view.run, view.iteration)
    if scope is None:
        message = (html.empty_store_html(str(lab.store.path)) if not lab.runs() else
                   '<div class="empty">This run has no candidates yet: launch an iteration from the '
                   '<b>Iterate</b> tab.</div>')
        return {"view": view.with_(problem=None, candidate=None, page_ids=(), candidate_ids=(), seen=(), labels_seen=0),
                "problems": views.problems_table([]), "page": "", "problem_view": message,
                "candidate": gr.update(choices=[], value=None), "candidates_view": "", "counter": "",
                "compare_with": gr.update(choices=[], value=None)}
    values: dict[str, Any] = {}
    if listing:
        values, view = _listing(lab, view, author, scope)
    problem = view.problem if view.problem is not None else (view.page_ids[0] if view.page_ids else None)
    summary = views.problem_summary(lab.store, scope, problem) if problem else None
    counter = _counter(lab, scope, author)
    if summary is None or problem is None:
        return {**values, "view": view.with_(problem=None, candidate=None, candidate_ids=(), seen=(), labels_seen=0),
                "problem_view": '<div class="empty">No problem matches these filters.</div>', "counter": counter,
                "candidate": gr.update(choices=[], value=None), "candidates_view": "",
                "compare_with": gr.update(choices=[], value=None)}
    candidates = views.ranked_candidates(lab.store, scope, problem)
    ids = tuple(c["id"] for c in candidates)
    selected = view.candidate if view.candidate in ids else (ids[0] if ids else None)
    compare_with = view.compare_with if view.compare_with in ids else None
    view = view.with_(problem=problem, candidate=selected, compare_with=compare_with, candidate_ids=ids,
                      seen=tuple((c["id"], c["label_version"] or 0) for c in candidates),
                      labels_seen=max((row["id"] for c in candidates for row in c["history"]), default=0))
    choices = html.candidate_choices(candidates)
    pairs = views.problem_pairs(lab.store, scope.run_id, problem)
    where = {"run": view.run, "iteration": view.iteration}
    return {
        **values, "view": view, "counter": counter,
        "problem_view": html.problem_html(summary, views.ranking_note(summary, scope.iteration), pairs, candidates,
                                          selected, where),
        "candidate": gr.update(choices=choices, value=selected),
        "candidates_view": html.candidates_html(candidates, summary["language"], selected, summary["tests"],
                                                compare_with),
        "compare_with": gr.update(choices=[("side by side with: none", -1)] + [(f"side by side with {text}", cid)
                                                                              for text, cid in choices],
                                  value=compare_with if compare_with else -1),
    }


def _listing(lab: Lab, view: View, author: str, scope: views.Scope) -> tuple[dict[str, Any], View]:
    filters = view.filters(author_queue(lab, view, author))
    offset = max(0, int(view.offset or 0))
    rows, total = views.list_problems(lab.store, scope, offset=offset, **filters)
    if not rows and offset > 0:
        offset = max(0, (total - 1) // views.PAGE_SIZE * views.PAGE_SIZE)
        rows, total = views.list_problems(lab.store, scope, offset=offset, **filters)
    pages = max(1, -(-total // views.PAGE_SIZE))
    queue_note = " in your queue" if view.state == "mine" else ""
    return ({"problems": views.problems_table(rows),
             "page": f"page {offset // views.PAGE_SIZE + 1} / {pages} · {total} problems{queue_note}"},
            view.with_(offset=offset, page_ids=tuple(row["problem_id"] for row in rows)))


def author_queue(lab: Lab, view: View, author: str) -> set[str] | None:
    if view.state != "mine":
        return None
    run = lab.runs().get(view.run or "")
    assigned = views.queues(lab.store, lab.lab_dir, run["name"], run["id"]) if run else {}
    return set(assigned.get(author.strip(), []))


def _counter(lab: Lab, scope: views.Scope, author: str) -> str:
    counts = views.label_counts(lab.store, scope)
    labels = ", ".join(f"{views.LABEL_NAMES[k]} {v}" for k, v in sorted(counts["by_label"].items())) or "no labels yet"
    text = (f"**{counts['labeled']}** labeled · **{counts['pending']}** pending in iteration {scope.iteration} "
            f"({labels})")
    last = lab.reader.last_action(scope.run_id, author.strip()) if author.strip() else []
    if last:
        what = (f"{views.LABEL_NAMES.get(last[0]['label'] or '', 'clear')} on candidate {last[0]['candidate_id']}"
                if len(last) == 1 else f"a bulk label of {len(last)} candidates")
        text += f" · **u** undoes your {what}"
    return text


# -------------------------------------------------------------- choosing what to show

def select_run(lab: Lab, view: View, run: str | None, author: str = "") -> dict[str, Any]:
    """The run (the newest when `run` is unknown) at its newest iteration, filters reset: REVIEW,
    the run and iteration choices, and the filters' values and choices."""
    runs = lab.runs()
    if run not in runs:
        run = next(reversed(runs), None)
    iterations = lab.iterations(run)
    iteration = iterations[-1] if iterations else None
    return {"run": gr.update(choices=list(runs), value=run),
            "iteration": gr.update(choices=iterations, value=iteration),
            **select_iteration(lab, view.with_(run=run), iteration, author)}


def select_iteration(lab: Lab, view: View, iteration: int | None, author: str = "") -> dict[str, Any]:
    """The iteration with its languages and splits as filter choices, filters reset: REVIEW + FILTERS."""
    scope = views.scope_of(lab.store, view.run, iteration)
    choices = views.filter_choices(lab.store, scope) if scope else {"language": [], "split": []}
    fresh = View(run=view.run, iteration=iteration)
    return {"language": gr.update(choices=[("all", "")] + choices["language"], value=""),
            "split": gr.update(choices=[("all", "")] + choices["split"], value=""),
            "state": gr.update(value="all"), "search": gr.update(value=""), **render(lab, fresh, author)}


def set_filter(lab: Lab, view: View, author: str = "", **changed: Any) -> dict[str, Any]:
    """A filter changed (by name): the first page, its first problem opened; nothing when the value is
    the one shown (a filter reset by another handler fires this too)."""
    changed = {name: value if value is not None else "" for name, value in changed.items()}
    if all(getattr(view, name) == value for name, value in changed.items()):
        return {}
    return render(lab, view.with_(offset=0, problem=None, candidate=None, **changed), author)


def turn_page(lab: Lab, view: View, delta: int, author: str = "") -> dict[str, Any]:
    return render(lab, view.with_(offset=max(0, view.offset + delta), problem=None, candidate=None), author)


def pick_problem(lab: Lab, view: View, row: int | None, author: str = "") -> dict[str, Any]:
    """The problem in row `row` of the page (nothing opened for a row off the page)."""
    on_page = isinstance(row, int) and 0 <= row < len(view.page_ids)
    problem = view.page_ids[row] if on_page and row is not None else ""
    return render(lab, view.with_(problem=problem, candidate=None, compare_with=None), author, listing=False)


def step_problem(lab: Lab, view: View, delta: int, author: str = "") -> dict[str, Any]:
    """The next/previous problem of the filtered list, turning the page at either end (and staying at
    the list's ends)."""
    ids = view.page_ids
    position = ids.index(view.problem) + delta if view.problem in ids else 0
    if 0 <= position < len(ids):
        return render(lab, view.with_(problem=ids[position], candidate=None, compare_with=None), author, listing=False)
    if position < 0 and view.offset == 0:
        return render(lab, view, author, listing=False)
    turned = render(lab, view.with_(offset=view.offset + (views.PAGE_SIZE if delta > 0 else -views.PAGE_SIZE),
                                    problem=""), author)
    page: View = turned["view"]
    if page.offset == view.offset or not page.page_ids:
        return render(lab, view, author)
    first_or_last = page.page_ids[0 if delta > 0 else -1]
    return render(lab, page.with_(problem=first_or_last, candidate=None, compare_with=None), author)


def pick_candidate(lab: Lab, view: View, candidate: int | None, author: str = "") -> dict[str, Any]:
    return render(lab, view.with_(candidate=candidate), author, listing=False)


def step_candidate(lab: Lab, view: View, delta: int, author: str = "") -> dict[str, Any]:
    ids = view.candidate_ids
    if not ids:
        return render(lab, view, author, listing=False)
    position = ids.index(view.candidate) + delta if view.candidate in ids else 0
    return render(lab, view.with_(candidate=ids[min(max(position, 0), len(ids) - 1)]), author, listing=False)


def set_compare(lab: Lab, view: View, compare_with: int | None, author: str = "") -> dict[str, Any]:
    """Show the selected candidate side by side with `compare_with` (-1 or None: none)."""
    chosen = compare_with if compare_with not in (None, -1) else None
    if chosen == view.compare_with:
        return {}
    return render(lab, view.with_(compare_with=chosen), author, listing=False)


def show_candidate(lab: Lab, view: View, candidate_id: int, author: str = "") -> dict[str, Any]:
    """The problem, iteration and page of one candidate of the view's run, that candidate selected
    (filters kept when its problem passes them, else cleared): deep links, undo, next suspected."""
    row = next(iter(lab.reader.candidate_places([candidate_id])), None)
    run = lab.runs().get(view.run or "")
    if row is None or run is None or row["run_id"] != run["id"]:
        return render(lab, view, author)
    scope = views.scope_of(lab.store, view.run, row["iteration"])
    assert scope is not None, "the candidate's run and iteration exist"
    moved = view.with_(iteration=row["iteration"]) if row["iteration"] != view.iteration else view
    order = list(views.matching_problems(lab.store, scope, **moved.filters(author_queue(lab, moved, author))))
    if row["problem_id"] not in order:
        moved = View(run=view.run, iteration=row["iteration"])
        order = list(views.matching_problems(lab.store, scope, **moved.filters()))
    offset = order.index(row["problem_id"]) // views.PAGE_SIZE * views.PAGE_SIZE if row["problem_id"] in order else 0
    shown = render(lab, moved.with_(offset=offset, problem=row["problem_id"], candidate=candidate_id), author)
    if moved.iteration != view.iteration or moved.filters() != view.filters():
        shown.update(_filters_of(lab, moved))
    return shown


def _filters_of(lab: Lab, view: View) -> dict[str, Any]:
    scope = views.scope_of(lab.store, view.run, view.iteration)
    choices = views.filter_choices(lab.store, scope) if scope else {"language": [], "split": []}
    return {"iteration": gr.update(choices=lab.iterations(view.run), value=view.iteration),
            "language": gr.update(choices=[("all", "")] + choices["language"], value=view.language),
            "split": gr.update(choices=[("all", "")] + choices["split"], value=view.split),
            "state": gr.update(value=view.state), "search": gr.update(value=view.search)}


def next_suspected(lab: Lab, view: View, author: str = "") -> dict[str, Any]:
    """The next unlabeled suspected hard negative of the filtered list (wrapping around), or a message."""
    scope = views.scope_of(lab.store, view.run, view.iteration)
    found = views.next_suspected(lab.store, scope, view.problem, view.candidate,
                                 **view.filters(author_queue(lab, view, author))) if scope else None
    if found is None:
        return {**render(lab, view, author, listing=False),
                "message": "No unlabeled suspected hard negative left in this filtered list."}
    problem, candidate, position = found
    offset = position // views.PAGE_SIZE * views.PAGE_SIZE
    return {**render(lab, view.with_(offset=offset, problem=problem, candidate=candidate, compare_with=None), author,
                     listing=offset != view.offset),
            "message": f"Next suspected hard negative: candidate {candidate} of {problem}."}


def open_link(lab: Lab, view: View, query: dict[str, str], author: str = "") -> dict[str, Any]:
    """A fresh page: the run (newest by default), and the problem and candidate of a deep link
    `?run=&problem=&candidate=` when it names them (a message when they are not in the run)."""
    shown = select_run(lab, view, query.get("run"), author)
    opened: View = shown["view"]
    candidate, problem, message = query.get("candidate", ""), query.get("problem", ""), ""
    if candidate.isdigit():
        moved = show_candidate(lab, opened, int(candidate), author)
        if moved["view"].candidate == int(candidate):
            return {**shown, **moved}
        message = f"The link's candidate {candidate} is not in run {opened.run!r}."
    if problem:
        moved = render(lab, opened.with_(problem=problem), author, listing=False)
        if moved["view"].problem == problem:
            return {**shown, **moved}
        message = f"The link's problem {problem!r} has no candidates in iteration {opened.iteration} of {opened.run!r}."
    if query.get("run") and query["run"] != opened.run:
        message = f"No run called {query['run']!r} here: showing {opened.run!r}."
    return {**shown, "message": message} if message else shown


def refresh_if_changed(lab: Lab, view: View, author: str = "") -> dict[str, Any]:
    """Timer tick: redraw the shown page when a label of its candidates was written since it was drawn
    (in another tab, by anyone), the selection kept; nothing otherwise."""
    try:
        if lab.reader.newest_label_id(view.candidate_ids) == view.labels_seen:
            return {}
    except StoreError:
        return {}
    return render(lab, view, author)
