"""The benchmark command runs end to end and prints every section.

A functional check only: ``--smoke`` runs every section's code on the smallest counts
(a ``--quick`` run takes minutes), and its figures are not asserted on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_benchmark_run_prints_every_section(tmp_path: Path) -> None:
    """``python -m benchmarks --smoke`` runs every section, printing each figure and target."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--workdir", str(tmp_path)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{proc.stderr}"
    for heading in (
        "== 1. Checkpoint overhead",
        "== 2. Resume",
        "== 3. Peers",
        "== 4. import kitaru",
        "== 8. Read path",
        "== 9. kitaru ui",
        "== 10. PostgreSQL journal",
        "== 12. Async chain",
        "== Summary ==",
    ):
        assert heading in out, f"missing {heading!r} in:\n{out}"
    # Each figure is printed beside its target and whether it is met.
    assert "bare durable commit" in out
    assert "per recorded event" in out
    assert "import kitaru costs" in out
    assert "provider SDKs in sys.modules after import kitaru" in out
    assert "first-use modules in sys.modules after import kitaru" in out
    # Start-up: each command beside python -c pass, as a ratio with its target.
    for command, target in (
        ("python -c 'import kitaru':", "<= 5x"),
        ("kitaru --help:", "<= 8x"),
        ("kitaru model list:", "<= 8x"),
    ):
        (line,) = [ln for ln in out.splitlines() if ln.strip().startswith(command)]
        assert "x python -c pass" in line, line
        assert f"target {target}" in line, line
    assert "executions.get(id): median" in out
    assert "payloads read: 0" in out
    assert "per recorded checkpoint" in out
    # Peers are measured, or skipped with a note when not installed.
    for peer in ("dbos", "langgraph"):
        assert f"  {peer} " in out or f"  {peer}: not installed" in out
    # PostgreSQL, on a server of the section's own, beside a bare commit on it.
    assert "kitaru, KITARU_STORE=postgresql://...: median" in out
    assert "dbos on PostgreSQL per step" in out or "on the same server: median" in out
    # The async chain beside the sync chain and the bare commit, as a ratio to sync.
    assert "async / sync, median of per-repeat ratios" in out
    # The run cleans up after itself.
    assert list(tmp_path.iterdir()) == []
