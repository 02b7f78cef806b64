"""The README's first command: the crash-and-resume demo works end to end, offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[1] / "examples" / "crash_and_resume.py"


@pytest.mark.slow
def test_demo_crashes_resumes_and_redoes_nothing_finished(tmp_path: Path) -> None:
    """The demo's child dies by SIGKILL, the resume completes, finished work is not redone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KITARU_", "OPENAI_"))}
    env["KITARU_STORE"] = str(tmp_path / "journal.db")
    env["KITARU_CONFIG_PATH"] = str(tmp_path / "config")
    result = subprocess.run(
        [sys.executable, str(DEMO)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "child exit status: -9" in out
    assert "running (interrupted)" in out
    assert "Status     completed" in out
    assert "search        body ran 1 time(s)" in out
    assert "write_report  body ran 2 time(s)" in out
    assert "summarise     model called 1 time(s)" in out
