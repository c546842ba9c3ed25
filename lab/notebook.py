"""What the notebooks share: the run's configuration made from a notebook's parameters cell (`setup`),
and figures shown inline in the notebook (`show`).

Not covered here: running stages (loop.py, evaluation.py) or drawing figures (plots.py); the command
line and the app never import this module.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from IPython.display import Image, display
from matplotlib.figure import Figure

from lab.config import LabConfig, default_lab_dir, make_config
from lab.plots import DPI


def setup(preset: str, lab_dir: str | None, run_name: str, max_train_problems: int, max_eval_problems: int,
          num_samples: int, overrides: dict[str, Any]) -> LabConfig:
    """The configuration of the notebook's run (lab_dir None: the command line's default), said in two
    lines: where its store is, and how to open the app on it."""
    config = make_config(preset, lab_dir=lab_dir or default_lab_dir(), run_name=run_name, **{
        "data.max_train_problems": max_train_problems, "data.max_eval_problems": max_eval_problems,
        "sampling.num_samples": num_samples, **overrides})
    print(f"preset {config.preset}, run {config.run_name!r}, store {config.store_path}")
    print(f"open the app on this store: python -m lab app --lab-dir {config.lab_dir}")
    return config


def show(*figures: Figure | Path | str | None) -> None:
    """Show each figure inline: a matplotlib Figure (a plots.*_figure, drawn as PNG) or a PNG file a
    stage wrote. None (a plots.*_figure with nothing to draw) shows nothing."""
    for figure in figures:
        if isinstance(figure, Figure):
            png = io.BytesIO()
            figure.savefig(png, format="png", dpi=DPI, bbox_inches="tight")
            display(Image(data=png.getvalue()))
        elif figure is not None:
            display(Image(filename=str(figure)))
