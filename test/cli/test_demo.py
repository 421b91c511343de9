"""`corft-ros demo` (what `make demo` runs), shortened to one trial: the bundled model when there is one, else the
exact "not yet" line and a real benchmark of the scripted operator."""

from __future__ import annotations

import csv
import json

from corft_ros.cli import main
from corft_ros.cli.demo import NO_MODEL
from corft_ros.core.paths import models_dir


def test_demo_runs_trials_and_reports_measured_numbers(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = main(["demo", "--trials", "1", "--timeout", "20", "--realtime", "false", "--output", str(out)])
    printed = capsys.readouterr().out
    bundled = (models_dir() / "default").is_dir()
    assert rc == 0, printed
    if bundled:
        assert NO_MODEL not in printed
    else:
        assert printed.splitlines()[0] == NO_MODEL
        assert NO_MODEL == "not yet: no bundled model at models/default (issue 7: `make experiment` trains it)"
    rows = list(csv.DictReader((out / "trials.csv").read_text().splitlines()))
    summary = json.loads((out / "summary.json").read_text())
    assert len(rows) == summary["trials"] == summary["plan_trials"] == 1
    assert rows[0]["arm"] == ("default" if bundled else "operator")
    assert rows[0]["end_reason"] in ("success", "timeout")
    assert "success" in printed and f"report: {out / 'report.md'}" in printed
    assert (out / "report.md").is_file() and (out / "success_rate.png").is_file()
    assert len([p for p in (out / "episodes").iterdir() if p.is_dir()]) == 1
