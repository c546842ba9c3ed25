"""The Review screen's label handlers, and the HTTP API's label calls.

A label says which version of the candidate's label its author saw (the View's), so a write over a
label someone changed meanwhile is refused: the message names who changed it, to what and when, and
offers to keep that or overwrite it (the refused write waits in the tab's `pending` state). After a
label the selection moves on to the next candidate when the tab's auto-advance is on. Undo is the
author's own stack across problems (Store.undo_last): it opens the candidate it changed back. A bulk
label writes one label on the unlabeled candidates the filters select, as one action (one undo).

The API (`api_*`, registered by layout.py with gr.api) takes the same calls by name for scripts and
load tests: a label with its seen version, an undo, and a run's candidates with their versions.

Not covered here: the store's rules (lab/store/labels.py), what is shown (review.py).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import gradio as gr

from lab.app import render as html
from lab.app import views
from lab.app.review import author_queue, render, show_candidate
from lab.app.state import Lab, View
from lab.config import UsageError
from lab.records import LabelRow
from lab.store import LabelConflict, StoreError

ACTIONS = ("hard_negative", "positive", "exclude")
CONFLICT = ("conflict_row", "conflict")
"""The conflict box (its text and two buttons): shown while a refused write waits."""


def conflict_text(current: LabelRow, author: str, what: str = "this", after: str = "") -> str:
    """'annotator B changed this to positive 2 min ago — keep that, or overwrite?'"""
    who = "you (in another tab or window)" if current["author"] == author else f"annotator **{current['author']}**"
    label = views.LABEL_NAMES.get(current["label"] or "", "no label")
    return f"{who} changed {what} to **{label}** {html.ago(current['created_at'])}{after} — keep that, or overwrite?"


def _conflict_box(visible: bool, text: str = "") -> dict[str, Any]:
    return {"conflict_row": gr.update(visible=visible), "conflict": text}


def _refused(message: str) -> dict[str, Any]:
    return {"message": f"Not saved: {message}"}


def label(lab: Lab, view: View, author: str, note: str, advance: bool, action: str) -> dict[str, Any]:
    """Write `action` on the selected candidate over the version the tab showed; REVIEW + message
    (+ the conflict box and pending write when refused)."""
    author, note = (author or "").strip(), (note or "").strip()
    candidate = view.candidate
    if candidate is None:
        return {"message": "Select a candidate first."}
    if candidate not in view.candidate_ids:
        return _refused(f"candidate {candidate} is not shown on this page any more; pick one from the list.")
    if not author:
        return {"message": "Type your name in **Author** first: every label records who made it."}
    return _write(lab, view, author, note, advance, {"candidate": candidate, "label": action, "note": note,
                                                     "version": view.seen_version(candidate)})


def _write(lab: Lab, view: View, author: str, note: str, advance: bool, write: dict) -> dict[str, Any]:
    try:
        lab.store.add_label(write["candidate"], write["label"], author, write["note"], seen_version=write["version"])
    except LabelConflict as conflict:
        shown = render(lab, view, author)
        pending = {**write, "version": conflict.current["version"]}
        return {**shown, "pending": pending, "note": note,
                **_conflict_box(True, conflict_text(conflict.current, author)),
                "message": f"Not saved yet: candidate {write['candidate']} changed since you opened it."}
    except (StoreError, ValueError) as error:
        return {**render(lab, view, author), "note": note, **_refused(str(error))}
    ids, candidate = view.candidate_ids, write["candidate"]
    following = ids[ids.index(candidate) + 1] if advance and candidate in ids and ids.index(candidate) + 1 < len(ids) \
        else candidate
    moved = " Moved on to the next candidate." if following != candidate else ""
    return {**render(lab, view.with_(candidate=following), author), "note": "", "pending": None,
            **_conflict_box(False),
            "message": f"Saved: candidate {candidate} → **{views.LABEL_NAMES[write['label']]}** by {author} at "
                       f"{datetime.now():%H:%M:%S}.{moved} Press u to undo."}


def overwrite(lab: Lab, view: View, author: str, note: str, advance: bool, pending: dict | None) -> dict[str, Any]:
    """The refused write again, over the version the conflict showed (refused again if it moved on)."""
    if not pending:
        return _conflict_box(False)
    author = (author or "").strip()
    if pending.get("undo"):
        return _undo(lab, view, author, force=True)
    return _write(lab, view, author, note, advance, pending)


def keep_theirs(lab: Lab, view: View, author: str, pending: dict | None) -> dict[str, Any]:
    """Drop the refused write: the other label stays."""
    return {**render(lab, view, author), "pending": None, **_conflict_box(False),
            "message": "Kept the other label; yours was not written." if pending else ""}


def undo(lab: Lab, view: View, author: str) -> dict[str, Any]:
    return _undo(lab, view, (author or "").strip(), force=False)


def _undo(lab: Lab, view: View, author: str, *, force: bool) -> dict[str, Any]:
    """Undo the author's newest action in the run, wherever it was, and show the candidate it changed back."""
    if not author:
        return {"message": "Type your name in **Author** first: undo takes back your own labels."}
    run = lab.runs().get(view.run or "")
    if run is None:
        return _refused("pick a run first.")
    try:
        rows = lab.store.undo_last(run["id"], author, force=force)
    except LabelConflict as conflict:
        text = conflict_text(conflict.current, author, f"candidate {conflict.candidate_id}", ", after your label")
        return {"pending": {"undo": True}, **_conflict_box(True, text), "message": "Not undone yet."}
    if not rows:
        return {"pending": None, **_conflict_box(False), "message": f"Nothing of yours ({author}) to undo in this run."}
    restored = views.LABEL_NAMES.get(rows[0]["label"] or "", "unlabeled")
    if len(rows) == 1:
        shown = show_candidate(lab, view, rows[0]["candidate_id"], author)
        message = f"Undone: candidate {rows[0]['candidate_id']} is **{restored}** again."
    else:
        shown = render(lab, view, author)
        message = f"Undone: your bulk label of {len(rows)} candidates."
    return {**shown, "pending": None, **_conflict_box(False), "message": message}


def bulk_label(lab: Lab, view: View, author: str, note: str, bulk_which: str, bulk_action: str) -> dict[str, Any]:
    """Label the unlabeled candidates the filters and `bulk_which` select (every page) as one action."""
    author = (author or "").strip()
    if not author:
        return {"bulk_message": "Type your name in **Author** first."}
    scope = views.scope_of(lab.store, view.run, view.iteration)
    if scope is None:
        return {"bulk_message": "Pick a run and iteration first."}
    try:
        targets = views.bulk_targets(lab.store, scope, bulk_which, **view.filters(author_queue(lab, view, author)))
        if not targets:
            return {"bulk_message": f"No {views.BULK_TARGETS[bulk_which][0]} in the filtered problems."}
        lab.store.add_labels(targets, bulk_action, author, (note or "").strip())
    except LabelConflict as conflict:
        which = f"candidate {conflict.candidate_id}"
        return {"bulk_message": "Not saved: " + conflict_text(conflict.current, author, which)
                + " Press the button again to label the rest."}
    except (StoreError, UsageError, ValueError) as error:
        return {"bulk_message": f"Not saved: {error}"}
    return {**render(lab, view, author), "note": "",
            "bulk_message": f"Labelled {len(targets)} {views.BULK_TARGETS[bulk_which][0]} "
                            f"**{views.LABEL_NAMES[bulk_action]}** as one action: **u** undoes all of it."}


# -------------------------------------------------------------- the HTTP API

def api_label(lab: Lab, candidate_id: int, label: str, author: str, seen_version: int, note: str = "") -> dict:
    """Write a label over the version the caller saw: {'status': 'saved', 'version', 'label_id'}, or
    {'status': 'conflict', 'current': the newest row} when the label changed since, or {'status':
    'refused', 'message'}."""
    try:
        row = lab.store.add_label(int(candidate_id), label or None, author, note or "", seen_version=int(seen_version))
    except LabelConflict as conflict:
        return {"status": "conflict", "current": dict(conflict.current)}
    except (StoreError, ValueError) as error:
        return {"status": "refused", "message": str(error)}
    return {"status": "saved", "version": row["version"], "label_id": row["id"]}


def api_undo(lab: Lab, run: str, author: str) -> dict:
    """Undo the author's newest action in the run: {'status': 'undone', 'rows'}, 'nothing', or 'conflict'."""
    try:
        rows = lab.store.undo_last(lab.reader.run_id(run), author)
    except LabelConflict as conflict:
        return {"status": "conflict", "current": dict(conflict.current)}
    except (StoreError, ValueError) as error:
        return {"status": "refused", "message": str(error)}
    return {"status": "undone", "rows": [dict(row) for row in rows]} if rows else {"status": "nothing"}


def api_candidates(lab: Lab, run: str, iteration: int) -> list[dict]:
    """A run iteration's candidates: id, problem_id, passed, label and label_version (0: none yet)."""
    rows = lab.reader.ranking_rows(lab.reader.run_id(run), int(iteration))
    return [{"id": r["id"], "problem_id": r["problem_id"], "passed": r["passed"], "label": r["label"],
             "label_version": r["label_version"] or 0} for r in rows]
