"""Two checkpoints that run at once and print in turns.

``slow`` prints first, then holds until the file ``CHATTER_RELEASE`` names exists;
``fast`` prints once ``slow`` has (it waits for the file ``slow`` leaves), and completes
first. ``slow``'s first line is journaled while it still holds.

``python -m tests.mgmt_flows.chatter`` prints ``{"exec_id": ...}``, then
``{"status": "completed", "result": ...}``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from kitaru import checkpoint, flow


def _started(release: Path) -> Path:
    """The file ``slow`` leaves once it has printed its first line."""
    return release.with_name(release.name + ".slow-started")


@checkpoint
def slow() -> str:
    print("slow starts")
    release = Path(os.environ["CHATTER_RELEASE"])
    _started(release).touch()
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    print("slow ends")
    return "slow"


@checkpoint
def fast() -> str:
    # Print only after ``slow`` has printed, so the lines are printed in the other order.
    started = _started(Path(os.environ["CHATTER_RELEASE"]))
    deadline = time.monotonic() + 60
    while not started.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{started} did not appear within 60 s")
        time.sleep(0.01)
    print("fast says hello")
    return "fast"


@flow
def chatter() -> list[str]:
    return [slow.submit(), fast.submit()]  # type: ignore[list-item]


if __name__ == "__main__":
    handle = chatter.run(background=True)
    print(json.dumps({"exec_id": handle.exec_id}), flush=True)
    print(json.dumps({"status": "completed", "result": handle.wait()}), flush=True)
