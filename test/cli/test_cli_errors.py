"""Bad input to any `corft-ros` command: one line on stderr saying what is wrong, and a non-zero exit (no traceback),
including the measurements that used to raise their library's error."""

from __future__ import annotations

import pytest

from corft_ros.cli import main

BAD = [
    ["train", "--bags", "/nonexistent/episodes"],
    ["bag", "ls", "/nonexistent/episodes"],
    ["bag", "info", "/nonexistent/episode"],
    ["export", "/nonexistent/il.pt", "--name", "x"],
    ["launch", "no_such_graph"],
    ["launch", "deploy", "bogus:=1"],
    ["record", "--episodes", "0"],
    ["benchmark", "--models", "/nonexistent/model"],
    ["benchmark", "--regions", "moon"],
    ["experiment", "--demos", "0"],
    ["experiment", "--interventions", "--rounds", "0"],
    ["experiment", "--intervention-rounds", "-1"],
    ["bag", "export-lerobot", "/nonexistent/episodes", "--output", "/tmp/never-written"],
    ["bag", "import-lerobot", "/nonexistent/dataset", "--output", "/tmp/never-written"],
    ["measure", "sim", "--size", "0", "0"],
    ["measure", "sim", "--seconds", "0"],
    ["measure", "sim", "--cameras", "nope", "--graph-seconds", "0"],
    ["measure", "inference", "--model", "/nonexistent/model"],
    ["measure", "dataset", "--episodes", "0"],
    ["measure", "lerobot", "--episodes", "/nonexistent/episodes"],
    ["measure", "logger", "--seconds", "0"],
    ["measure", "rollouts", "--models", "/nonexistent/model"],
]


@pytest.mark.parametrize("argv", BAD, ids=[" ".join(a[:2]) + f"#{i}" for i, a in enumerate(BAD)])
def test_bad_input_gets_one_line_and_a_non_zero_exit(argv, capsys):
    needs = {"launch": "rclpy", "export-lerobot": "pyarrow", "import-lerobot": "pyarrow"}  # the py310 check has neither
    for word in argv[:2]:
        if word in needs:
            pytest.importorskip(needs[word])
    assert main(argv) != 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err
