"""A checkpoint that prints and logs, then holds until a file exists.

``speak`` prints ``warming up``, waits for the file ``STALL_GO`` names (if set),
prints two lines and logs one record, leaves the file ``STALL_PRINTED`` names, then
waits for the file ``STALL_RELEASE`` names (so a test can kill the process while the
checkpoint runs), prints one more line and returns. A resumed run finds the release
file and completes.

``python -m tests.mgmt_flows.stalled_printer`` prints ``{"exec_id": ...}``, then
``{"status": "completed", "result": ...}``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from kitaru import checkpoint, flow

_log = logging.getLogger("agent")


@checkpoint
def speak() -> str:
    print("warming up")
    go = os.environ.get("STALL_GO")
    deadline = time.monotonic() + 60
    while go and not Path(go).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    print("first words")
    _log.warning("logged while running")
    print("second words")
    Path(os.environ["STALL_PRINTED"]).touch()
    release = Path(os.environ["STALL_RELEASE"])
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    print("released")
    return "spoke"


@flow
def stalled_printer() -> str:
    return speak()  # type: ignore[return-value]


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    handle = stalled_printer.run(background=True)
    print(json.dumps({"exec_id": handle.exec_id}), flush=True)
    print(json.dumps({"status": "completed", "result": handle.wait()}), flush=True)
