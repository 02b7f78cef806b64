"""A flow whose run configuration comes from the environment, killed half-way.

``python -m tests.flows.configured N`` runs ``configured(N)``. With
``CONFIGURED_CRASH=1`` the process kills itself (SIGKILL) after ``fetch`` completed.
After a resume the body fails once (``CONFIGURED_SIDE`` counts what ran), so it only
completes if the execution's frozen ``retries`` allow a second pass; ``summarise``
reuses an earlier execution's output only if its frozen ``cache`` is on.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

from kitaru import checkpoint, flow


def _note(what: str) -> int:
    side = Path(os.environ["CONFIGURED_SIDE"])
    with side.open("a") as log:
        log.write(what + "\n")
    return side.read_text().split().count(what)


_announced = threading.Event()
"""Set once the execution's id is printed."""


@checkpoint
def fetch(n: int) -> int:
    _note("fetch")
    return n * 2


@checkpoint
def summarise(n: int) -> str:
    _note("summarise")
    return f"summary of {n}"


@flow
def configured(n: int) -> str:
    doubled = fetch(n).load()
    if os.environ.get("CONFIGURED_CRASH") == "1":
        _announced.wait(timeout=60)  # the body runs on its own thread: the id is out first
        os.kill(os.getpid(), signal.SIGKILL)
    if _note("body-after-crash") == 1 and os.environ.get("CONFIGURED_FAIL_ONCE") == "1":
        raise RuntimeError("the first pass after the resume fails")
    return summarise(doubled).load()


if __name__ == "__main__":
    handle = configured.run(int(sys.argv[1]), background=True)
    print(json.dumps({"exec_id": handle.exec_id}), flush=True)
    _announced.set()
    print(json.dumps({"result": handle.wait()}), flush=True)
