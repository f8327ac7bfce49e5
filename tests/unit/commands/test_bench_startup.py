"""``copilot bench startup``: the start-up benchmark runs the real app and reports its numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from copilot.cli import main


@pytest.mark.slow
def test_one_run_reports_every_number_the_issue_asks_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The hashing backend keeps this test free of the real model; the app is still real.
    code = main(
        [
            "--data-dir",
            str(tmp_path),
            "bench",
            "startup",
            "--runs",
            "1",
            "--json",
            "--backend",
            "hashing",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    first = report["first_run"]
    for key in (
        "first_paint_s",
        "model_ready_s",
        "panel_ready_s",
        "panel_build_stall_ms",
        "load_stall_ms",
        "replay_stall_ms",
        "rss_mb_pack_loaded",
        "rss_mb_after_replay",
    ):
        assert first[key] > 0, key
    # Milestones come in start-up order.
    assert first["first_paint_s"] < first["model_ready_s"] < first["panel_ready_s"]
    assert first["replay_turns"] > 5
    assert 0 < report["first_paint_new_data_dir_s"] < 30
    # The index was built by an untimed preparation run, in the data directory given.
    assert report["preparation_s"] is not None
    assert report["data_dir"] == str(tmp_path)
    assert report["warm_runs"] == 0
    assert report["warm_median"]["first_paint_s"] == first["first_paint_s"]
    assert set(report["meets_targets"]) == {
        "first_paint_warm",
        "first_paint_first_run",
        "model_ready",
        "no_stall_over_50ms",
        "memory",
    }


def test_zero_runs_is_a_readable_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--data-dir", str(tmp_path), "bench", "startup", "--runs", "0"])
    assert code == 2
    assert "--runs must be at least 1" in capsys.readouterr().err
