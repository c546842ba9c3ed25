"""Training stages as `accelerate launch` jobs: SFT, the reward model and policy optimisation trained by
N data-parallel processes (DDP on CPU processes or GPUs, or DeepSpeed ZeRO with a config from
lab/launch_configs/), while the loop waits and then reads the adapter and the logs back.

A training stage is a function `f(config, *, output_dir, on_log, on_step, **arguments) -> metrics`
that saves its adapter to output_dir (sft.train_sft, reward.train_reward_model, ppo.train_ppo).
`train` calls it in this process when cluster.train_processes is 0. Otherwise it writes a job folder
beside output_dir (<output_dir>-job/):
  job.json        the function's import name, the config, output_dir, the command that ran it
  arguments.pkl   the function's other arguments, exactly (pairs, examples, prompts, adapter paths)
  events.jsonl    written by the job's main process: each trainer log and step as it happens
  metrics.json    written by the main process when the function returns: what it returned, and
                  `processes`, how many trained
  output.txt      everything the processes printed
and runs `accelerate launch --config_file <cluster.launch_config or ddp.yaml> --num_processes N
-m lab.training_jobs <job folder>`. Every process runs the function; the trainers inside split
each batch over the processes and average the gradients, and the main process saves. The loop
follows events.jsonl (its metrics go to the store and its steps move the progress bar as they
happen) and returns metrics.json, so the store gets the same checkpoint row and metrics as in process.

Not covered here: the trainers themselves (sft.py, reward.py, ppo.py), which stage trains what (loop.py).
"""
from __future__ import annotations

import importlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from lab.config import LabConfig, repo_root
from lab.models import resolve_model_dir
from lab.stored_config import flatten_config

LAUNCH_CONFIGS = Path(__file__).resolve().parent / "launch_configs"
DEFAULT_LAUNCH_CONFIG = LAUNCH_CONFIGS / "ddp.yaml"
POLL_S = 0.5


def train(function: Callable[..., dict], config: LabConfig, output_dir: str, *,
          on_log: Callable[[dict], None] | None = None, on_step: Callable[[int, int], None] | None = None,
          **arguments) -> dict:
    """function(config, output_dir=..., on_log=..., on_step=..., **arguments): here, or as an
    `accelerate launch` job of cluster.train_processes processes. Returns the function's metrics."""
    processes = config.cluster.train_processes
    if processes < 0:
        raise ValueError(f"cluster.train_processes={processes}: use 0 (train in this process) or a process count")
    if processes == 0:
        return function(config, output_dir=output_dir, on_log=on_log, on_step=on_step, **arguments)
    for spec in dict.fromkeys([config.model.generator, config.model.reward_backbone or config.model.generator]):
        resolve_model_dir(spec, config.model)  # converted (or built) once here, not by every process at once
    job_dir = Path(f"{Path(output_dir).resolve()}-job")
    shutil.rmtree(job_dir, ignore_errors=True)
    job_dir.mkdir(parents=True)
    command = launch_command(config, job_dir)
    (job_dir / "job.json").write_text(json.dumps({
        "function": f"{function.__module__}:{function.__qualname__}", "config": config.to_dict(),
        "output_dir": str(Path(output_dir).resolve()), "command": command}, indent=2))
    (job_dir / "arguments.pkl").write_bytes(pickle.dumps(arguments))
    with open(job_dir / "output.txt", "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=repo_root(),
                                   env={**os.environ, "PYTHONPATH": _python_path()}, start_new_session=True)
        try:
            _follow(process, job_dir / "events.jsonl", on_log, on_step)
        except BaseException:
            os.killpg(process.pid, signal.SIGTERM)  # the launcher and every training process
            process.wait()
            raise
    if process.returncode != 0 or not (job_dir / "metrics.json").is_file():
        tail = (job_dir / "output.txt").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"the training job in {job_dir} failed (exit code {process.returncode}); the end of its "
                           f"output ({job_dir / 'output.txt'}):\n{tail}")
    return json.loads((job_dir / "metrics.json").read_text())


def launch_command(config: LabConfig, job_dir: Path) -> list[str]:
    """The `accelerate launch` command line that runs the job in `job_dir`."""
    launch_config = Path(config.cluster.launch_config or DEFAULT_LAUNCH_CONFIG)
    if not launch_config.is_file():
        known = ", ".join(sorted(p.name for p in LAUNCH_CONFIGS.glob("*.yaml")))
        raise FileNotFoundError(f"cluster.launch_config={config.cluster.launch_config!r}: no such file; use one of "
                                f"{known} in {LAUNCH_CONFIGS}")
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(launch_config),
            "--num_processes", str(config.cluster.train_processes), "-m", "lab.training_jobs", str(job_dir)]


def _python_path() -> str:
    """This checkout first, so that the job's processes import the lab the loop runs."""
    return os.pathsep.join(filter(None, [str(repo_root()), os.environ.get("PYTHONPATH")]))


def _follow(process: subprocess.Popen, events: Path, on_log, on_step) -> None:
    """Hand the job's events to the callbacks as they are written, until the job ends."""
    position = 0
    while True:
        finished = process.poll() is not None
        if events.is_file():
            with events.open() as handle:
                handle.seek(position)
                while (line := handle.readline()).endswith("\n"):
                    event = json.loads(line)
                    if "log" in event and on_log is not None:
                        on_log(event["log"])
                    if "step" in event and on_step is not None:
                        on_step(*event["step"])
                position = handle.tell() - len(line)
        if finished:
            return
        time.sleep(POLL_S)


def main(argv: list[str] | None = None) -> None:
    """One process of a job (under `accelerate launch`): run the function on its job folder."""
    job_dir = Path((argv or sys.argv[1:])[0])
    job = json.loads((job_dir / "job.json").read_text())
    arguments = pickle.loads((job_dir / "arguments.pkl").read_bytes())
    if torch.cuda.is_available():  # each process on its own GPU before any model is loaded
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    main_process = int(os.environ.get("RANK", "0")) == 0
    module, _, name = job["function"].partition(":")
    function = getattr(importlib.import_module(module), name)
    config = LabConfig().override(**flatten_config(job["config"]))
    with open(job_dir / "events.jsonl", "a") if main_process else open(os.devnull, "w") as events:
        def emit(kind: str, value) -> None:
            events.write(json.dumps({kind: value}, default=str) + "\n")
            events.flush()

        metrics = function(config, output_dir=job["output_dir"], on_log=lambda values: emit("log", values),
                           on_step=lambda step, max_steps: emit("step", [step, max_steps]), **arguments)
    if main_process:
        partial = job_dir / "metrics.json.partial"
        partial.write_text(json.dumps({**metrics, "processes": int(os.environ.get("WORLD_SIZE", "1"))}, default=str))
        partial.replace(job_dir / "metrics.json")


if __name__ == "__main__":
    main()
