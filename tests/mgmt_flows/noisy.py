"""A flow whose checkpoints print, with a yes/no wait between them.

Environment, read at call time:

- ``NOISY_TIMEOUT``: seconds the wait keeps this process waiting (default 0: the
  execution is left ``waiting`` at once and the process exits).

``python -m tests.mgmt_flows.noisy`` prints ``{"exec_id": ...}``, then
``{"status": ...}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any

import kitaru
from kitaru import KitaruStateError, checkpoint, flow


@checkpoint
def step(n: int) -> int:
    print(f"step {n} running")
    return n


@flow
def noisy() -> dict[str, Any]:
    step(1)
    approved = kitaru.wait(
        schema=bool,
        name="go_on",
        question="Go on to step 2?",
        timeout=float(os.environ.get("NOISY_TIMEOUT", "0")),
    )
    step(2)
    return {"approved": approved}


if __name__ == "__main__":
    handle = noisy.run(background=True)
    # One write per line: the flow's own prints come from another thread meanwhile.
    sys.stdout.write(json.dumps({"exec_id": handle.exec_id}) + "\n")
    with contextlib.suppress(KitaruStateError):
        handle.wait()
    sys.stdout.write(json.dumps({"status": handle.status}) + "\n")
