#!/usr/bin/env bash
# The gpu path's smoke run on one GPU (scripts/gpu_smoke.py says what it measures): sets up what is
# missing (the venv with torch's CUDA build and the 0.5B model, via scripts/setup.sh; vLLM in its own
# .venv-vllm where it installs), then runs the 4-bit SFT, reward-model and PPO steps and both samplers.
# Usage: scripts/gpu_smoke.sh [--dry-run] [--no-setup] [--set FIELD=VALUE ...] [--json FILE]
#   --dry-run   CPU and the tiny model, no set-up: checks the script as far as CPU goes (CI runs it)
#   --no-setup  use .venv (or $PYTHON) as it is
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m[gpu_smoke]\033[0m %s\n' "$*"; }
setup=1
args=()
for arg in "$@"; do
  case "$arg" in
    --dry-run) setup=0; args+=("$arg") ;;
    --no-setup) setup=0 ;;
    *) args+=("$arg") ;;
  esac
done
if [ "$setup" = 1 ]; then
  scripts/setup.sh main
  if [ ! -x .venv-vllm/bin/python ] || ! .venv-vllm/bin/python -c 'import vllm' 2>/dev/null; then
    say "installing vLLM into .venv-vllm (requirements-vllm.txt; its own torch/transformers)"
    { python3 -m venv .venv-vllm && .venv-vllm/bin/python -m pip install -q -r requirements-vllm.txt; } ||
      say "vLLM did not install: sampling with the hand-written decoder only"
  fi
fi
exec "${PYTHON:-.venv/bin/python}" scripts/gpu_smoke.py ${args[@]+"${args[@]}"}
