"""Who a process is: the host it runs on and when it started.

Leases record these so people can be told who holds an execution, and so a store can
tell a holder that died on this very host from one that runs elsewhere.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from kitaru.journal.locks import kernel_id

__all__ = ["process_started", "this_host"]


def this_host() -> str:
    """This machine's identity: host name and kernel id (a reboot is a new host)."""
    return f"{socket.gethostname()}#{kernel_id()}"


def process_started(pid: int) -> str | None:
    """Return a token for when ``pid`` started, "" if unknowable, None if it is not running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        stat = ""
    if stat:
        # Split after the parenthesised command name: field 3 is the state, field 22 the
        # start time in clock ticks.
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X"):
            return None  # dead, only not yet reaped by its parent: it runs nothing
        return fields[19]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return ""
    return ""
