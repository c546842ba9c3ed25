# The two commands of the README (`make run`, `make test`), and the edit loop's fast tier (`make check`).
# Each sets up what it needs first (idempotent).
.PHONY: run test check lint setup-main setup-test

export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export GRADIO_ANALYTICS_ENABLED ?= False
export TRL_EXPERIMENTAL_SILENCE ?= 1

run: setup-main
	.venv/bin/python -m lab run

# The full suite (what CI runs): lint, type check, then every test but the real-model ones (`-m slow`).
test: setup-test lint
	.venv/bin/python -m pytest

# The fast tier: lint, and the tests that are neither `integration` nor `browser` (pytest.ini).
check: setup-test
	.venv/bin/ruff check lab scripts tests app.py
	.venv/bin/python -m pytest -m "not slow and not integration and not browser"

lint: setup-test
	.venv/bin/ruff check lab scripts tests app.py
	.venv/bin/mypy

setup-main:
	scripts/setup.sh main

setup-test:
	scripts/setup.sh test
