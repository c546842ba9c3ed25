# The two commands of the README. Both set up what they need first (idempotent).
.PHONY: run test setup-main setup-test

export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export GRADIO_ANALYTICS_ENABLED ?= False
export TRL_EXPERIMENTAL_SILENCE ?= 1

run: setup-main
	.venv/bin/python -m lab run

test: setup-test
	.venv/bin/python -m pytest

setup-main:
	scripts/setup.sh main

setup-test:
	scripts/setup.sh test
