"""Where the prints of executions the client runs in this process go.

A program that writes machine-readable output on stdout (the CLI's ``-o json``) needs
whatever flow bodies print to go elsewhere; checkpoint prints are still journaled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

__all__ = ["prints_to_stderr"]


def prints_to_stderr() -> tuple[TextIO, Callable[[], None]]:
    """Send what is printed to stdout to stderr until the undo is called.

    Return the real stdout (to write the machine-readable output to) and the undo.
    """
    from kitaru.runtime.capture import divert_stdout_to_stderr

    return divert_stdout_to_stderr()
