"""One word per concept: `corft-ros benchmark` compares policies over sim trials, `corft-ros measure NAME` measures a
part of the stack. The old spellings `bench trials` and `bench NAME` still work for one release, with a note."""

from __future__ import annotations

import pytest

from corft_ros.cli import build_parser, main, old_spelling


def test_benchmark_and_measure_are_the_commands():
    parser = build_parser()
    assert parser.parse_args(["benchmark", "--trials", "3"]).func.__name__ == "cmd_trials"
    assert parser.parse_args(["measure", "sim", "--json"]).measure == "sim"
    with pytest.raises(SystemExit):
        parser.parse_args(["measure", "trials"])  # the trials are the benchmark, not a measurement


def test_the_old_spelling_still_works_with_a_note(capsys):
    assert old_spelling(["bench", "trials", "--trials", "3"]) == ["benchmark", "--trials", "3"]
    assert "is now `corft-ros benchmark`" in capsys.readouterr().err
    assert old_spelling(["bench", "logger", "--json"]) == ["measure", "logger", "--json"]
    assert "is now `corft-ros measure logger`" in capsys.readouterr().err
    assert old_spelling(["train", "--bags", "x"]) == ["train", "--bags", "x"]
    assert capsys.readouterr().err == ""
    # through main(): the old spelling reaches the same command and its one-line error
    assert main(["bench", "trials", "--regions", "moon"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("note:") and len(err) == 2 and err[1].startswith("error:"), err
