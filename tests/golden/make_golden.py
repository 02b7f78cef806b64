"""Regenerate the golden journals (``*.journal``) beside this file.

Run ``python tests/golden/make_golden.py`` only when the journal format changes on
purpose; a golden file is what an older kitaru wrote, and new code must keep reading
it. Never regenerate to make a failing golden test pass.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

_RUN = """
import sys
sys.path.insert(0, {here!r})
import golden_flows
handle = golden_flows.report.run("kitaru")
try:
    handle.wait()
except Exception:
    pass
"""


def _make(name: str, **env: str) -> None:
    work = Path(tempfile.mkdtemp())
    store = work / "journal.db"
    full_env = {**os.environ, "KITARU_STORE": str(store), "KITARU_CONFIG_PATH": str(work), **env}
    subprocess.run([sys.executable, "-c", _RUN.format(here=str(HERE))], env=full_env, check=False)
    # Fold the WAL into the main file so one file holds everything.
    with sqlite3.connect(store) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copyfile(store, HERE / f"{name}.journal")
    shutil.rmtree(work)


if __name__ == "__main__":
    _make("completed_v1")
    _make("interrupted_v1", GOLDEN_CRASH="publish")
    _make("failed_v1", GOLDEN_PUBLISH_OK="/nonexistent/marker")
    print("wrote", *sorted(p.name for p in HERE.glob("*.journal")))
