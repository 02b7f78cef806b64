"""A research flow with checkpoints, model calls and a retried failure, run under tracing.

``python -m tests.otel_flows.traced MODE OUT [EXEC_ID]``, from the repository root:

- ``memory``: the SDK's in-memory exporter is installed as the global tracer provider
  first (as an application would), then the flow runs; the finished spans go to ``OUT``
  as JSON, also when the execution failed. ``OTELFLOW_CONFIGURE=1`` switches tracing on
  with ``kitaru.configure`` instead of ``KITARU_OTEL``.
- ``resume``: as ``memory``, but continues the execution ``EXEC_ID`` instead.
- ``approval``: as ``memory``, but runs ``approval`` until it waits, answers the wait
  and resumes it.
- ``async``: as ``memory``, but runs ``research_async``, the same flow written with
  ``async def`` checkpoints, ``kitaru.llm_async`` and a gathered pair of checkpoints.
- ``plain``: no provider is installed; the flow runs and ``OUT`` gets the execution id and
  whether opentelemetry was imported, and of which type the global provider is.

``OTELFLOW_KILL=1`` makes the process SIGKILL itself right after the flow-body model
call, so a later ``resume`` finds ``gather`` and ``summarise`` completed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import kitaru
from kitaru import checkpoint, flow

MODEL = "openai/gpt-4o-mini"
_attempts: dict[str, int] = {}


@checkpoint
def gather(topic: str) -> str:
    return str(kitaru.llm(f"List facts about {topic}.", model=MODEL, name="facts"))


@checkpoint(retries=1)
def publish(summary: str) -> int:
    # The first attempt in each process fails, so every run shows a failed attempt.
    _attempts["publish"] = _attempts.get("publish", 0) + 1
    if _attempts["publish"] == 1:
        raise ConnectionError("the publishing service hung up")
    return len(summary)


@flow
def research(topic: str) -> dict[str, Any]:
    facts = gather(topic).load()
    summary = kitaru.llm(f"Summarise: {facts}", model=MODEL, name="summarise").load()
    if os.environ.get("OTELFLOW_KILL") == "1":
        os.kill(os.getpid(), signal.SIGKILL)
    return {"length": publish(summary).load()}


@checkpoint
async def gather_async(topic: str) -> str:
    return str(await kitaru.llm_async(f"List facts about {topic}.", model=MODEL, name="facts"))


@checkpoint(retries=1)
async def publish_async(summary: str) -> int:
    _attempts["publish_async"] = _attempts.get("publish_async", 0) + 1
    if _attempts["publish_async"] == 1:
        raise ConnectionError("the publishing service hung up")
    return len(summary)


@flow
async def research_async(topic: str) -> dict[str, Any]:
    import asyncio

    facts, more = await asyncio.gather(gather_async(topic), gather_async(f"{topic} again"))
    summary = await kitaru.llm_async(f"Summarise: {facts} {more}", model=MODEL, name="summarise")
    return {"length": await publish_async(summary)}


@flow
def approval(topic: str) -> str:
    kitaru.memory.set("topic", topic)
    approved = kitaru.wait(schema=bool, name="approve", timeout=0)
    return f"{topic}: {'approved' if approved else 'rejected'}"


def _install_memory_exporter() -> Any:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


def _span(span: Any) -> dict[str, Any]:
    return {
        "name": span.name,
        "kind": span.kind.name,
        "id": format(span.context.span_id, "016x"),
        "trace": format(span.context.trace_id, "032x"),
        "parent": None if span.parent is None else format(span.parent.span_id, "016x"),
        "attributes": {key: _plain(value) for key, value in span.attributes.items()},
        "status": span.status.status_code.name,
        "events": [event.name for event in span.events],
    }


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def main(mode: str, out: Path, exec_id: str | None) -> None:
    if mode in ("memory", "resume", "approval", "async"):
        exporter = _install_memory_exporter()
        if os.environ.get("OTELFLOW_CONFIGURE") == "1":
            kitaru.configure(otel=True)
        try:
            if mode == "memory":
                research.run("tides").wait(timeout=60)
            elif mode == "async":
                research_async.run("tides").wait(timeout=60)
            elif mode == "approval":
                # Pauses at the wait, is answered, and is resumed in this process.
                handle = approval.run("tides")
                client = kitaru.KitaruClient()
                client.executions.input(handle.exec_id, value=True)
                client.executions.resume(handle.exec_id, background=False)
            else:
                assert exec_id is not None
                kitaru.KitaruClient().executions.resume(exec_id, background=False)
        except kitaru.KitaruError as exc:
            # A failed execution is traced too: its spans are what the test reads.
            print(exc, file=sys.stderr)
        spans = [_span(span) for span in exporter.get_finished_spans()]
        out.write_text(json.dumps(spans))
        return
    assert mode == "plain", mode
    handle = research.run("tides")
    handle.wait(timeout=60)
    imported = "opentelemetry" in sys.modules
    provider = None
    if imported:
        from opentelemetry import trace

        provider = type(trace.get_tracer_provider()).__name__
    out.write_text(
        json.dumps({"exec_id": handle.exec_id, "imported": imported, "provider": provider})
    )


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
