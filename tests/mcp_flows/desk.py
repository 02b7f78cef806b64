"""A small help desk: a greeting, a flaky lookup and an approval, for ``kitaru-mcp`` tests.

The tests import this module as ``mcp_flows.desk`` (``tests/`` is on their path) and
start the server with ``--import-path tests``, so the server imports it by the same
name to resume, retry and replay. Everything a flow needs comes in its arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import kitaru
from kitaru import checkpoint, flow


@dataclass
class Approval:
    approved: bool
    reviewer: str


@checkpoint
def salutation(name: str) -> str:
    print(f"greeting {name}")
    return f"Hello, {name}"


@checkpoint
def sign(text: str) -> str:
    print(f"signing {text!r}")
    return f"{text}! -- the desk"


@flow
def greet(name: str) -> str:
    return sign(salutation(name))


@checkpoint
def lookup(marker: str) -> int:
    print("looking up the ticket")
    if not Path(marker).exists():
        raise ConnectionError(f"ticket service unavailable: create {marker} to bring it up")
    return 42


@flow
def ticket(marker: str) -> int:
    return lookup(marker) + 1


@checkpoint
def ship(version: str, reviewer: str) -> str:
    print(f"shipping {version}")
    return f"{version} shipped, approved by {reviewer}"


@flow
def release(version: str) -> str:
    answer = kitaru.wait(schema=Approval, name="approve", question=f"Ship {version}?", timeout=0.1)
    if not answer.approved:
        return "withdrawn"
    return ship(version, answer.reviewer)
