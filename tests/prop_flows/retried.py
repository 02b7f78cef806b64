"""A flow with ``@flow(retries=1)`` whose body fails on every pass.

``python -m tests.prop_flows.retried LOG [KILL_PASS]`` runs it; every pass of the body
appends ``pass`` to ``LOG``, and pass number ``KILL_PASS`` (if given, counted over the
log) kills its own process instead of failing, as a crash in the middle of a retry.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from kitaru import KitaruError, checkpoint, flow


# Each pass passes its own number; the recorded call is reused all the same.
@checkpoint(ignore_args=("x",))
def prepare(x: int) -> int:
    return x + 1


@flow(retries=1)
def always_fails(log: str, kill_pass: int = 0) -> int:
    with open(log, "a", encoding="utf-8") as file:
        file.write("pass\n")
    passes = Path(log).read_text(encoding="utf-8").split().count("pass")
    prepare(passes)
    if passes == kill_pass:
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError(f"pass {passes} fails")


if __name__ == "__main__":
    try:
        always_fails.run(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0).wait()
    except KitaruError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
