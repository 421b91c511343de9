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
# The Python 3.10 check (ROS 2 Humble's Python, no ROS): .venv310 from requirements-py310.txt, test/py310_check.py.
# PY310: python3.10 on PATH, else pyenv's; `make test PY310=/path/to/python3.10` to choose.
ifndef PY310
PY310 := $(shell for p in python3.10 $$(pyenv root 2>/dev/null)/versions/3.10*/bin/python3.10; do \
	$$p -c 'import sys; assert sys.version_info[:2] == (3, 10); print(sys.executable)' 2>/dev/null && break; done)
endif
VENV310 := .venv310
STAMP310 := $(VENV310)/.installed

.PHONY: demo test venvs test-py310 test-jazzy ros2-tools measure bench lint experiment lerobot-env clean-venv

$(STAMP): requirements.txt requirements-ros.txt constraints.txt setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip==26.3
	$(BIN)/python -m pip install -q -r requirements.txt $(ROS_REQS) -c constraints.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/corft-ros demo

# Every venv is built first, at once (pip's downloads and unpacking overlap), and the Jazzy suite runs beside the main
# one in its own block of DDS domains (test/domains.py; its output follows the main suite's): a fresh clone's
# make test stays under 20 min on 2 cores. Then the Python 3.10 check.
JAZZY_LOG := .test-jazzy.log
test:
	@$(MAKE) --no-print-directory -j4 --output-sync=target venvs
	$(BIN)/ruff check corft_ros test launch setup.py
	@rm -f $(JAZZY_LOG) $(JAZZY_LOG).rc; ( $(MAKE) --no-print-directory test-jazzy > $(JAZZY_LOG) 2>&1; echo $$? >> $(JAZZY_LOG).rc ) & \
	  echo "$(BIN)/python -m pytest -q --durations=15 test   (test-jazzy runs beside it: $(JAZZY_LOG))"; \
	  $(BIN)/python -m pytest -q --durations=15 test; main=$$?; wait; \
	  echo "--- test-jazzy, run beside the main suite:"; cat $(JAZZY_LOG); jazzy=$$(cat $(JAZZY_LOG).rc); \
	  rm -f $(JAZZY_LOG).rc; test $$main -eq 0 -a $$jazzy -eq 0
	@$(MAKE) --no-print-directory test-py310

# The real `ros2` CLI (upstream launch/launch_ros/ros2cli from ../shared) and colcon (requirements-colcon.txt) for the
# real-launch tests (test/cli/test_ros2_launch.py); a no-op with a one-line note where ../shared is absent.
ros2-tools: $(STAMP)
	@$(BIN)/python test/ros2_tools.py .ros2-tools

# No pip cache (nothing written outside the repo); --no-deps: the file pins the complete set (without triton, see there).
$(STAMP310): requirements-py310.txt
	@test -x $(VENV310)/bin/python || $(PY310) -m venv $(VENV310)
	$(VENV310)/bin/python -m pip install -q --no-cache-dir --upgrade pip==26.3
	$(VENV310)/bin/python -m pip install -q --no-cache-dir --no-deps -r requirements-py310.txt
	@touch $(STAMP310)

ifneq ($(PY310),)
# Without the sourced ROS 2's PYTHONPATH: this venv has no ROS, whatever the machine has.
test-py310: $(STAMP310)
	env -u PYTHONPATH $(VENV310)/bin/python test/py310_check.py
else ifdef ROS_DISTRO
test-py310:
	@echo "test-py310: SKIPPED, no python3.10 on this machine (make test PY310=/path/to/python3.10 runs it)"
else
test-py310:
	@echo "test-py310: no python3.10 found (pyenv install 3.10, or make test PY310=/path/to/python3.10)" >&2; exit 1
endif

# ROS 2 Jazzy (rclpy 7.1.6 wheels, Python 3.11): .venv-jazzy runs the real-launch tests and the real-DDS node tests
# (test/nodes) on a second distribution. constraints.txt's Kilted ROS lines are left out for it.
VENVJZ := .venv-jazzy
STAMPJZ := $(VENVJZ)/.installed
JAZZY_PYTHON ?= python3.11
KILTED_ROS_PINS := '^(ros-|rclpy|rcl_|rosidl|action_msgs|builtin_interfaces|diagnostic_msgs|geometry_msgs|lifecycle_msgs|rosgraph_msgs|sensor_msgs|service_msgs|std_msgs|std_srvs|trajectory_msgs|type_description_interfaces|unique_identifier_msgs)'
$(VENVJZ)/.deps: requirements.txt requirements-jazzy.txt constraints.txt
	@test -x $(VENVJZ)/bin/python || $(JAZZY_PYTHON) -m venv $(VENVJZ)
	$(VENVJZ)/bin/python -m pip install -q --upgrade pip==26.3
	grep -v -E $(KILTED_ROS_PINS) constraints.txt > $(VENVJZ)/constraints.txt
	$(VENVJZ)/bin/python -m pip install -q -r requirements.txt -r requirements-jazzy.txt -c $(VENVJZ)/constraints.txt
	@touch $@
# The editable install writes corft_ros.egg-info into the repo: after .venv's own (order-only), never beside it.
$(STAMPJZ): $(VENVJZ)/.deps setup.py | $(STAMP)
	$(VENVJZ)/bin/python -m pip install -q --no-deps --no-build-isolation -e .
	@touch $(STAMPJZ)

ifdef ROS_DISTRO
test-jazzy:
	@echo "test-jazzy: SKIPPED, a system ROS 2 ($(ROS_DISTRO)) is sourced and .venv runs on it"
else
test-jazzy: $(STAMPJZ) ros2-tools
	env -u PYTHONPATH CORFT_TEST_DOMAINS=101-200 $(VENVJZ)/bin/python -m pytest -q -p no:cacheprovider \
		--basetemp=$(VENVJZ)/pytest-tmp test/cli/test_ros2_launch.py test/nodes
endif

# LeRobot's own venv (torch 2.14.1; ours pins 2.13.0): the LeRobot interop tests and the policy node's lerobot
# backend use it where it exists (docs/lerobot.md). Its video decoder (torchcodec) needs FFmpeg's shared libraries.
# Python 3.11 where there is one (the pinned torch 2.14.1 wheel is for 3.11), else the system's python3.
VENVLR := .venv-lerobot
STAMPLR := $(VENVLR)/.installed
LEROBOT_PYTHON ?= $(shell command -v python3.11 || echo python3)
$(STAMPLR): requirements-lerobot.txt
	@test -x $(VENVLR)/bin/python || $(LEROBOT_PYTHON) -m venv $(VENVLR)
	$(VENVLR)/bin/python -m pip install -q --no-cache-dir --upgrade pip==26.3
	$(VENVLR)/bin/python -m pip install -q --no-cache-dir -r requirements-lerobot.txt
	@touch $(STAMPLR)

lerobot-env: $(STAMPLR)

# The venvs `make test` uses (LeRobot's is built by .ci/run: `make -j4 -O lerobot-env venvs`).
VENVS := $(STAMP) ros2-tools
ifneq ($(PY310),)
VENVS += $(STAMP310)
endif
ifndef ROS_DISTRO
VENVS += $(STAMPJZ)
endif
venvs: $(VENVS)

measure: $(STAMP)
	$(BIN)/corft-ros measure all --json

bench: measure  # the old name

lint: $(STAMP)
	$(BIN)/ruff check corft_ros test launch setup.py

experiment: $(STAMP)
	$(BIN)/corft-ros experiment --output docs/results

clean-venv:
	rm -rf $(VENV) $(VENV310) $(VENVLR) $(VENVJZ) .ros2-tools
