"""Load test of the app's labels: simulated annotators label through its HTTP API while iterations of
the tiny preset run, then the store is checked.

    python scripts/load_test.py --lab-dir DIR [--run demo] [--annotators 8] [--seconds 120] [--think 1.0]

On loopback only: serves `python app.py --lab-dir DIR` on a free 127.0.0.1 port, keeps one
`python -m lab iterate --preset tiny` running the whole time (starting the next iteration when one
ends), and runs N annotators, each a thread with its own HTTP connection to the app's API (POST
/gradio_api/run/label, /undo, /candidates), for the given time. Each labels
candidates of a shared pool (so that they race on the same ones) with the label version it last saw,
takes a refused write's news and writes again over it half the time, now and then undoes its own last
label, and between two labels reads for --think seconds on average (uniform from half to one and a
half times it; 0 labels back to back, a stress test rather than a team). Then, from the store:

  - every write the API acknowledged is there, once (by its row id), and no annotator row is there
    that no call acknowledged;
  - each candidate's label versions run 1, 2, 3, ... without a gap or a repeat;
  - each candidate's current label is the last write acknowledged on it;
  - no call failed (a conflict is an answer, not a failure), and no iteration failed.

Prints the counts, the iterations that ran meanwhile and the label calls' latency (p50, p95, max);
exits 1 when a check fails. A run with candidates is needed: when DIR has none, the run's bootstrap
(tiny preset) is made first, untimed. Not covered here: the app (lab/app/), the store's rules
(lab/store/labels.py).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from lab.app.server import spawn

REPO = Path(__file__).resolve().parent.parent
LABELS = ("hard_negative", "positive", "exclude")
POOL = 60
"""Candidates the annotators share: few enough that they race on them."""
UNDO_SHARE = 0.05
TARGET_P95_S = 0.5


@dataclass
class Annotator:
    name: str
    seen: dict[int, int] = field(default_factory=dict)
    acknowledged: list[dict] = field(default_factory=list)
    """Every row the API said it wrote (or found already written), with the call's time."""
    latencies: list[float] = field(default_factory=list)
    conflicts: int = 0
    undos: int = 0
    errors: list[str] = field(default_factory=list)


def env() -> dict[str, str]:
    return {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "TRL_EXPERIMENTAL_SILENCE": "1"}


def iterate(lab_dir: Path, run: str, iterations: int, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lab", "iterate", "--lab-dir", str(lab_dir), "--run", run,
                             "--preset", "tiny", "--iterations", str(iterations)],
                            cwd=REPO, env=env(), stdout=log, stderr=subprocess.STDOUT)


def has_candidates(lab_dir: Path, run: str) -> bool:
    path = lab_dir / "lab.sqlite"
    if not path.exists():
        return False
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("SELECT COUNT(*) FROM candidates c JOIN runs r ON r.id = c.run_id WHERE r.name = ?",
                          (run,)).fetchone()[0] > 0


class Api:
    """One annotator's keep-alive connection to the app's API: call(name, *arguments) -> the result."""

    def __init__(self, port: int):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, name: str, *arguments):
        self.connection.request("POST", f"/gradio_api/run/{name}", json.dumps({"data": list(arguments)}),
                                {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"/{name}: HTTP {response.status}: {body[:300]!r}")
        return json.loads(body)["data"][0]


def annotate(annotator: Annotator, port: int, run: str, iteration: int, stop: float, seed: int, think: float) -> None:
    rng = random.Random(seed)
    try:
        client = Api(port)
        pool = client.call("candidates", run, iteration)[:POOL]
    except Exception as error:  # the report counts it; the test fails on it
        annotator.errors.append(f"start: {type(error).__name__}: {error}")
        return
    annotator.seen = {c["id"]: c["label_version"] for c in pool}
    while time.monotonic() < stop:
        try:
            if annotator.acknowledged and rng.random() < UNDO_SHARE:
                undo(annotator, client, run)
                continue
            candidate = rng.choice(pool)["id"]
            label(annotator, client, candidate, rng.choice(LABELS), rng)
        except Exception as error:
            annotator.errors.append(f"{type(error).__name__}: {error}")
        time.sleep(think * rng.uniform(0.5, 1.5))


def label(annotator: Annotator, client: Api, candidate: int, choice: str, rng: random.Random) -> None:
    for attempt in range(2):
        started = time.perf_counter()
        answer = client.call("label", candidate, choice, annotator.name, annotator.seen[candidate],
                             f"load test {attempt}")
        annotator.latencies.append(time.perf_counter() - started)
        if answer["status"] == "saved":
            annotator.seen[candidate] = answer["version"]
            annotator.acknowledged.append({"id": answer["label_id"], "candidate_id": candidate, "label": choice,
                                           "version": answer["version"]})
            return
        if answer["status"] != "conflict":
            annotator.errors.append(f"label {candidate}: {answer}")
            return
        annotator.conflicts += 1
        annotator.seen[candidate] = answer["current"]["version"]
        if rng.random() < 0.5:  # keep theirs
            return


def undo(annotator: Annotator, client: Api, run: str) -> None:
    started = time.perf_counter()
    answer = client.call("undo", run, annotator.name)
    annotator.latencies.append(time.perf_counter() - started)
    if answer["status"] == "undone":
        annotator.undos += 1
        for row in answer["rows"]:
            annotator.seen[row["candidate_id"]] = row["version"]
            annotator.acknowledged.append({"id": row["id"], "candidate_id": row["candidate_id"], "label": row["label"],
                                           "version": row["version"]})
    elif answer["status"] not in ("nothing", "conflict"):
        annotator.errors.append(f"undo: {answer}")


def check(lab_dir: Path, annotators: list[Annotator]) -> list[str]:
    """What the store breaks of the module docstring's checks ([] when nothing)."""
    names = [a.name for a in annotators]
    acknowledged = {row["id"]: row for a in annotators for row in a.acknowledged}
    with sqlite3.connect(f"file:{lab_dir / 'lab.sqlite'}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        marks = ",".join("?" * len(names))
        rows = {r["id"]: dict(r) for r in db.execute(f"SELECT * FROM labels WHERE author IN ({marks})", names)}
        touched = sorted({r["candidate_id"] for r in rows.values()})
        history = {c: [dict(r) for r in db.execute("SELECT * FROM labels WHERE candidate_id = ? ORDER BY version",
                                                   (c,))]
                   for c in touched}
    problems = []
    for label_id, ack in acknowledged.items():
        row = rows.get(label_id)
        if row is None or (row["candidate_id"], row["label"], row["version"]) != \
                (ack["candidate_id"], ack["label"], ack["version"]):
            problems.append(f"acknowledged label row {label_id} ({ack}) is not in the store as acknowledged: {row}")
    problems += [f"label row {label_id} was written but never acknowledged"
                 for label_id in rows.keys() - acknowledged.keys()]
    for candidate, versions in history.items():
        if [r["version"] for r in versions] != list(range(1, len(versions) + 1)):
            problems.append(f"candidate {candidate}: versions {[r['version'] for r in versions]} have a gap or repeat")
        newest = versions[-1]
        if newest["id"] in rows and newest["id"] not in acknowledged:
            problems.append(f"candidate {candidate}: its current label row {newest['id']} was never acknowledged")
    return problems


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab-dir", required=True, type=Path)
    parser.add_argument("--run", default="demo")
    parser.add_argument("--annotators", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--think", type=float, default=1.0, help="mean seconds between two labels of an annotator")
    args = parser.parse_args()
    args.lab_dir.mkdir(parents=True, exist_ok=True)
    logs = args.lab_dir / "load_test_logs"
    logs.mkdir(exist_ok=True)
    if not has_candidates(args.lab_dir, args.run):
        print(f"no candidates in run {args.run!r} yet: running its bootstrap (tiny preset) first, untimed", flush=True)
        with open(logs / "bootstrap.log", "wb") as log:
            if iterate(args.lab_dir, args.run, 0, log).wait() != 0:
                sys.exit(f"the bootstrap failed: see {logs / 'bootstrap.log'}")
    with sqlite3.connect(f"file:{args.lab_dir / 'lab.sqlite'}?mode=ro", uri=True) as db:
        iteration = db.execute("SELECT MAX(c.iteration) FROM candidates c JOIN runs r ON r.id = c.run_id "
                               "WHERE r.name = ?", (args.run,)).fetchone()[0]
    load_before = os.getloadavg()[0]
    server, url = spawn(args.lab_dir, logs / "app.log")
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    jobs: list[tuple[float, subprocess.Popen, float | None]] = []
    stopped: set[int] = set()
    annotators = [Annotator(f"annotator-{i + 1}") for i in range(args.annotators)]
    try:
        started = time.monotonic()
        stop = started + args.seconds
        job_log = open(logs / "iterations.log", "ab")
        jobs.append((0.0, iterate(args.lab_dir, args.run, 1, job_log), None))
        threads = [threading.Thread(target=annotate, args=(a, port, args.run, iteration, stop, i, args.think))
                   for i, a in enumerate(annotators)]
        for thread in threads:
            thread.start()
        while time.monotonic() < stop:
            begun, job, _ = jobs[-1]
            if job.poll() is not None:
                jobs[-1] = (begun, job, time.monotonic() - started)
                if time.monotonic() < stop - 5:
                    jobs.append((time.monotonic() - started, iterate(args.lab_dir, args.run, 1, job_log), None))
            time.sleep(0.5)
        for thread in threads:
            thread.join()
    finally:
        for index, (begun, job, ended) in enumerate(jobs):
            if job.poll() is None:
                stopped.add(index)
                job.terminate()
                job.wait(60)
                ended = ended or time.monotonic() - started
            jobs[index] = (begun, job, ended)
        server.terminate()
        server.wait(10)
    latencies = [s for a in annotators for s in a.latencies]
    errors = [f"{a.name}: {e}" for a in annotators for e in a.errors]
    problems = check(args.lab_dir, annotators)
    saved = sum(len(a.acknowledged) for a in annotators)
    print(f"load test: {args.annotators} annotators for {args.seconds:.0f} s, "
          f"{args.think:g} s between labels on average, "
          f"on {url} (loopback), lab {args.lab_dir}, run {args.run!r} iteration {iteration}")
    print(f"machine: {os.cpu_count()} CPUs, load average {load_before:.1f} before the test, "
          f"{os.getloadavg()[0]:.1f} after")
    for index, (begun, job, ended) in enumerate(jobs):
        print(f"  tiny iteration alongside: from {begun:.0f} s to {ended:.0f} s, exit status {job.returncode}"
              + (" (stopped at the end of the test)" if index in stopped else ""))
    print(f"calls: {len(latencies)} ({saved} label rows acknowledged, {sum(a.conflicts for a in annotators)} refused "
          f"as conflicts, {sum(a.undos for a in annotators)} undos), errors: {len(errors)}")
    if latencies:
        print(f"latency of a call: p50 {statistics.median(latencies):.3f} s, p95 {percentile(latencies, 0.95):.3f} s, "
              f"max {max(latencies):.3f} s (target p95 <= {TARGET_P95_S} s)")
    print("store: " + ("every acknowledged label is there once, no label without an acknowledgement, versions "
                       "without gaps, each current label the last acknowledged write: OK" if not problems else
                       f"{len(problems)} problems"))
    failed = [index for index, (_, job, _) in enumerate(jobs) if job.returncode and index not in stopped]
    if failed:
        problems.append(f"{len(failed)} tiny iteration(s) failed, so the labels did not meet a running iteration the "
                        f"whole time: see {logs / 'iterations.log'}")
    for line in (errors + problems)[:20]:
        print(f"  {line}")
    return 1 if errors or problems or not latencies else 0


if __name__ == "__main__":
    sys.exit(main())
