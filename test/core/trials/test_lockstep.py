"""Lockstep trials (core/trials/lockstep.py, `corft-ros benchmark --lockstep`): the same model on the same starts
gives the same outcome, in any worker and on a re-run; the report pairs the arms start by start."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from corft_ros.cli import main
from corft_ros.core.paths import models_dir

MODEL = models_dir() / "default"  # a trained policy: successes and failures both happen within a short limit


def _rows(out: Path) -> dict[tuple[str, str, str], tuple[str, str]]:
    with (out / "trials.csv").open() as f:
        return {(r["arm"], r["region"], r["seed"]): (r["success"], r["duration_s"]) for r in csv.DictReader(f)}


def test_lockstep_is_deterministic_across_workers_reruns_and_a_repeat_arm(tmp_path: Path, capsys):
    common = ["benchmark", "--lockstep", "--models", str(MODEL), "--repeat-arm", "default", "--trials", "3",
              "--regions", "seen", "unseen", "--timeout", "8", "--json"]
    assert main([*common, "--workers", "2", "--output", str(tmp_path / "a")]) == 0
    summary = json.loads(capsys.readouterr().out)
    a = _rows(tmp_path / "a")
    assert len(a) == 12  # 2 arms x 2 regions x 3 starts
    repeat = next(c for c in summary["paired"] if c["arm_b"] == "default_repeat" and c["region"] == "all")
    assert repeat["pairs"] == 6 and repeat["only_a"] == repeat["only_b"] == 0
    for (arm, region, seed), outcome in a.items():
        if arm == "default":
            assert a[("default_repeat", region, seed)] == outcome  # same success and the same duration, exactly
    assert main([*common, "--workers", "1", "--output", str(tmp_path / "b")]) == 0  # other worker split, re-run
    capsys.readouterr()
    assert _rows(tmp_path / "b") == a
    extra = [json.loads(line) for line in (tmp_path / "a" / "lockstep.jsonl").read_text().splitlines()]
    assert {r["failure"] for r in extra if not r["success"]} <= {"never_lifted", "dropped", "off_target"}
    assert "## Paired: the same starts" in (tmp_path / "a" / "report.md").read_text()
    # resume: everything is done, nothing runs again
    assert main([*common, "--workers", "2", "--output", str(tmp_path / "a")]) == 0
    assert "already done" in capsys.readouterr().err
    assert _rows(tmp_path / "a") == a


def test_lockstep_refuses_what_it_cannot_do(tmp_path: Path, capsys):
    base = ["benchmark", "--models", str(MODEL), "--output", str(tmp_path / "x")]
    assert main([*base, "--lockstep", "--operator"]) == 2
    assert "scripted operator" in capsys.readouterr().err
    assert main([*base, "--lockstep", "--repeat-arm", "nope"]) == 2
    assert "no such arm" in capsys.readouterr().err
    assert main([*base, "--workers", "2"]) == 2
    assert "apply to --lockstep" in capsys.readouterr().err
