# corft_ros: every target creates .venv (pinned) on first use.
# With a system ROS 2 sourced (ROS_DISTRO set) the ROS wheels are skipped and that ROS 2 is used.
SHELL := /bin/bash
ifdef ROS_DISTRO
PYTHON ?= python3
ROS_REQS :=
else
PYTHON ?= python3.11
ROS_REQS := -r requirements-ros.txt
endif
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test bench lint experiment clean-venv

$(STAMP): requirements.txt requirements-ros.txt constraints.txt setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip==26.3
	$(BIN)/python -m pip install -q -r requirements.txt $(ROS_REQS) -c constraints.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/corft-ros demo

test: $(STAMP)
	$(BIN)/ruff check corft_ros test launch setup.py
	$(BIN)/python -m pytest -q test

bench: $(STAMP)
	$(BIN)/corft-ros bench all --json

lint: $(STAMP)
	$(BIN)/ruff check corft_ros test launch setup.py

experiment: $(STAMP)
	$(BIN)/corft-ros experiment --output docs/results

clean-venv:
	rm -rf $(VENV)
