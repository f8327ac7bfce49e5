"""``copilot`` with no COMMAND opens the window without importing the command modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from copilot.cli import _app_only_args


def test_only_a_bare_start_takes_the_fast_path() -> None:
    args = _app_only_args(["--data-dir", "/tmp/x", "--toggle"])
    assert args is not None and args.data_dir == "/tmp/x" and args.toggle
    assert _app_only_args([]) is not None
    for argv in (["demo"], ["--data-dir", "/tmp/x", "index"], ["--help"], ["--version"]):
        assert _app_only_args(argv) is None, argv
    # A mistake goes to the full parser, which reports it as usual.
    assert _app_only_args(["--data-dir"]) is None
    assert _app_only_args(["--bogus"]) is None


def test_the_window_paints_before_numpy_or_any_command_module_is_imported(
    tmp_path: Path,
) -> None:
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        COPILOT_EXIT_AFTER_FIRST_PAINT="1",
        COPILOT_DATA_DIR=str(tmp_path),
    )
    result = subprocess.run(
        [sys.executable, "-m", "copilot", "--data-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # numpy alone costs ~0.1 s of start-up; the evaluation commands import it.
    assert report["numpy_imported"] is False
