"""The generated flows of ``interpreter``, run by an ``async def`` flow.

The same step language and the same side effects (so ``harness.flow_keys`` and
``check_books`` apply unchanged), written the way async agent code is:

- ``work``, ``ask``, ``jot``, ``doomed`` are ``async def`` checkpoints, awaited;
- ``submit`` is an ``asyncio.gather`` of ``work`` calls (each sleeps its own
  ``pause``, so they finish in another order than they were called);
- ``map`` is an ``asyncio.gather`` of ``fan`` calls without ``id=``, so their
  identities (``fan``, ``fan_2``, ...) come from kitaru; later items sleep less and
  finish first. Beside each fan-out a ``linger`` task is started and cancelled once
  the fan-out is done: a call that never completes, on every run;
- ``llm`` is ``await kitaru.llm_async(...)``, ``ask`` awaits one inside its body;
- ``wait`` is ``await kitaru.wait_async(...)``;
- ``twin`` stays the sync ``twins.work`` checkpoint: sync and async calls mixed.

``python -m tests.prop_flows.async_interpreter run|resume ...`` as for ``interpreter``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any

import kitaru
from kitaru import checkpoint, flow

try:
    from . import interpreter as base
except ImportError:  # run as a script rather than as a package module
    import interpreter as base  # type: ignore[import-not-found, no-redef]

FAN_STAGGER = 0.003
"""Seconds between the finishing times of consecutive ``fan`` calls (last first)."""


@checkpoint(retries=base.WORK_RETRIES)
async def work(  # noqa: PLR0917  (the same arguments as interpreter.work)
    key: str, value: int, fails: int, pause: float, prev: int, log: str
) -> int:
    runs = base.effect(log, key)
    await asyncio.sleep(pause)
    if runs <= fails:
        raise ValueError(f"{key}: planned failure {runs} of {fails}")
    return base.mix(prev, key, value)


@checkpoint(type="tool_call")
async def fan(key: str, value: int, prev: int, log: str, delay: float) -> int:
    base.effect(log, key)
    await asyncio.sleep(delay)
    return base.mix(prev, key, value)


@checkpoint
async def linger() -> None:
    """Waits for ever: the flow body cancels it."""
    await asyncio.Event().wait()


@checkpoint(type="llm_call")
async def ask(key: str, prev: int, log: str) -> str:
    base.effect(log, key)
    return str(await kitaru.llm_async(base.prompt(key, prev), model=base.MODEL))


@checkpoint
async def jot(notebook: base.Notebook, key: str, log: str) -> int:
    base.effect(log, key)
    notebook.entries.append(f"jotted {key}")
    return len(notebook.entries)


@checkpoint(retries=base.DOOMED_RETRIES)
async def doomed(key: str, log: str) -> int:
    base.effect(log, key)
    raise ValueError(f"{key} is doomed")


async def _fan_out(keys: list[str], values: list[int], running: Any, log: str) -> list[int]:
    stray = asyncio.create_task(linger())
    calls = [
        fan(key, value, running, log, FAN_STAGGER * (len(keys) - index))
        for index, (key, value) in enumerate(zip(keys, values, strict=True))
    ]
    values_out = list(await asyncio.gather(*calls))
    stray.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stray
    return values_out


@flow
async def interpret_async(steps: list[list[Any]], log: str) -> list[Any]:
    out: list[Any] = []
    running: Any = 0  # an int, or the handle of the last sync ``twin`` call
    notebook = base.Notebook()
    for step in steps:
        base._alive()
        kind = step[0]
        if kind == "work":
            _, key, value, fails, pause = step
            running = await work(key, value, fails, pause, running, log, id=key)
            out.append(running)
        elif kind == "twin":
            _, key, value = step
            running = base._worker(key, "twins")(key, value, 0, 0.0, running, log, id=key)
            out.append(running)
        elif kind == "jot":
            notebook.entries.append(step[1])
            out.append(await jot(notebook, step[1], log, id=step[1]))
            out.append(list(notebook.entries))
        elif kind == "submit":
            values = await asyncio.gather(
                *(
                    work(key, value, fails, pause, running, log, id=key)
                    for key, value, fails, pause in step[1]
                )
            )
            running = sum(values) % base.MODULUS
            out.append(values)
        elif kind == "map":
            _, keys, values = step
            mapped = await _fan_out(keys, values, running, log)
            running = sum(mapped) % base.MODULUS
            out.append(mapped)
        elif kind == "llm":
            prompt = base.prompt(step[1], base._value(running))
            text = await kitaru.llm_async(prompt, model=base.MODEL, name=step[1])
            running = len(text)
            out.append(text)
        elif kind == "ask":
            answer = await ask(step[1], running, log, id=step[1])
            running = len(answer)
            out.append(answer)
        elif kind == "wait":
            answer = await kitaru.wait_async(schema=str, name=step[1], question="go on?", timeout=0)
            out.append(answer)
        elif kind == "doomed":
            try:
                await doomed(step[1], log, id=step[1])
            except ValueError as exc:
                out.append(f"caught {exc}")
        else:
            raise ValueError(f"unknown step {step!r}")
    return out


if __name__ == "__main__":
    sys.exit(base.main(sys.argv[1:], interpret_async))
