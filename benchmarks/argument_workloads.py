"""The flow and argument shapes of section 7 (``benchmarks/arguments.py``).

Imported only once the driver has pointed ``KITARU_STORE`` into its own directory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kitaru import checkpoint, flow

__all__ = ["SHAPES", "AgentState", "calls", "consume"]


@dataclass
class AgentState:
    """An agent's state as a flow passes it into a checkpoint."""

    notes: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)


def _small() -> tuple[Any, ...]:
    return (42, "a short prompt")


def _megabyte_text() -> tuple[Any, ...]:
    return ("x" * 1_000_000,)


def _megabyte_records() -> tuple[Any, ...]:
    return ([{"id": i, "text": "y" * 80, "score": i / 7} for i in range(10_000)],)


def _megabyte_state() -> tuple[Any, ...]:
    notes = [f"note {i}: " + "z" * 90 for i in range(10_000)]
    return (AgentState(notes=notes, scores={f"k{i}": i / 3 for i in range(100)}),)


SHAPES: dict[str, Callable[[], tuple[Any, ...]]] = {
    "small (an int and a short str)": _small,
    "1 MB str": _megabyte_text,
    "1 MB list of 10,000 dicts": _megabyte_records,
    "1 MB dataclass (10,000 notes)": _megabyte_state,
}


@checkpoint
def consume(first: Any, second: Any = None) -> int:
    return 1 if second is None else 2


@flow
def calls(n: int, shape: str) -> int:
    args = SHAPES[shape]()
    total = 0
    for _ in range(n):
        total += consume(*args).load()
    return total
