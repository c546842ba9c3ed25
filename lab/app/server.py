"""Serving the app: `python app.py` / `python -m lab app`, and `launch` for tests and notebooks.

Listens on 127.0.0.1 unless told otherwise; `--auth USER:PASSWORD` protects a shared app. A lab
directory that does not exist (or holds no store) is refused unless `--create` asks for a new lab
there, and a damaged store is refused at start-up with what to do: both print one message and exit
with status 2, no traceback. The page's styles and script are the static files beside this module
(static/app.css, static/app.js); the only files served for download are the lab's exports.

Not covered here: the layout (layout.py), the handlers.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from lab.app import render
from lab.app.export import EXPORTS
from lab.app.layout import STATIC, build_app
from lab.config import UsageError, default_lab_dir, repo_root
from lab.store import StoreError

START_TIMEOUT_S = 120.0
CONCURRENT_EVENTS = 16
"""Events handled at once (Gradio's default is one per event listener, which queues one annotator's
label behind another's)."""


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spawn(lab_dir: str | Path, log_path: str | Path, args: tuple[str, ...] = (),
          env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """`python app.py --lab-dir LAB_DIR --port <a free one> ARGS` in a process of its own on loopback, its
    output to `log_path`, once it answers: (the process, its URL). RuntimeError with the end of its log
    when it has not answered within START_TIMEOUT_S (the benchmark, load test and browser tests use it)."""
    port = free_port()
    environment = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
                   "HF_DATASETS_OFFLINE": "1", **(env or {})}
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "app.py", "--lab-dir", str(lab_dir), "--port", str(port), *args],
                                   cwd=repo_root(), env=environment, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return process, url
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                tail = Path(log_path).read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the app did not start: {tail}") from None
            time.sleep(0.5)


def parse_auth(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ValueError("--auth must be USER:PASSWORD (both non-empty)")
    return user, password


def launch(lab_dir: str | Path | None = None, host: str = "127.0.0.1", port: int = 7860,
           auth: tuple[str, str] | None = None, author: str = "", block: bool = True, create: bool = False):
    """Serve the app. Returns the Blocks (running in the background when block=False)."""
    if host not in ("127.0.0.1", "localhost") and auth is None:
        print(f"warning: listening on {host} without --auth: anyone who can reach this port can read and label")
    lab_dir = Path(lab_dir or default_lab_dir())
    app = build_app(lab_dir, author, create=create)
    app.queue(default_concurrency_limit=CONCURRENT_EVENTS)
    app.launch(server_name=host, server_port=port, auth=auth, prevent_thread_lock=not block, footer_links=[],
               quiet=False, show_error=True, allowed_paths=[str(lab_dir / EXPORTS)],
               css_paths=[STATIC / "app.css"], css=render.code_css(), js=(STATIC / "app.js").read_text())
    return app


def main(argv: list[str] | None = None, prog: str = "python app.py") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="RewardRanker Lab: review rerankings, label "
                                     "hard negatives, launch iterations.")
    parser.add_argument("--lab-dir", default=default_lab_dir(), help="lab directory (default: $RR_LAB_DIR or ./runs)")
    parser.add_argument("--create", action="store_true", help="start a new, empty lab when --lab-dir has none")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--auth", default=os.environ.get("RR_APP_AUTH"),
                        help="USER:PASSWORD required to open the app (default: $RR_APP_AUTH; use when it is shared)")
    parser.add_argument("--author", default="", help="the name a browser starts with until it has typed its own "
                                                     "(each browser keeps its own; none by default)")
    args = parser.parse_args(argv)
    try:
        auth = parse_auth(args.auth)
    except ValueError as error:
        parser.error(str(error))
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        launch(args.lab_dir, args.host, args.port, auth, args.author, create=args.create)
    except (UsageError, StoreError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
