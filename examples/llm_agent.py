"""A writer agent whose model calls are tracked, durable and recorded by kitaru.llm().

Run it offline, with every model call answered by ``KITARU_LLM_MOCK_RESPONSE``::

    python examples/llm_agent.py

or against a real model::

    KITARU_DEFAULT_MODEL=openai/gpt-4o-mini OPENAI_API_KEY=sk-... python examples/llm_agent.py

(a default alias from ``kitaru model register`` works too). When no model or no key is
configured, the script switches the mock on itself and says so.

What it shows:
1. A ``kitaru.llm()`` call in the flow body is a durable call of its own: had the
   process died after it, a resume would return the recorded draft instead of paying
   for it again. It returns a handle, which goes straight into a checkpoint.
2. Inside the ``review`` checkpoint, ``kitaru.llm()`` returns text; its two calls are
   recorded as children of the checkpoint, which is the unit that replays.
3. Every call is recorded with its prompt, response, model, token usage and latency;
   the script prints them from the journal, as ``kitaru executions get ID`` does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import kitaru
from kitaru import KitaruClient, KitaruError, checkpoint, flow

TOPIC = "why an AI agent should keep a journal of its steps"
MOCK_TEXT = (
    "A journal lets an agent stop at any moment and carry on later without redoing, or "
    "paying again for, the work it has already finished."
)


@checkpoint(type="llm_call")
def review(draft: str, topic: str) -> dict[str, str]:
    """Critique the draft, then rewrite it: two model calls, recorded as this step's children."""
    critique = kitaru.llm(
        f"Critique this paragraph about {topic} in two sentences:\n\n{draft}",
        system="You are a demanding but fair editor.",
        max_tokens=200,
        name="critique",
    )
    final = kitaru.llm(
        [
            {"role": "user", "content": f"Write one short paragraph about {topic}."},
            {"role": "assistant", "content": draft},
            {
                "role": "user",
                "content": f"Rewrite it, taking this critique into account:\n{critique}",
            },
        ],
        temperature=0.3,
        name="rewrite",
    )
    return {"draft": draft, "critique": critique, "final": final}


@flow
def writer(topic: str) -> dict[str, str]:
    draft = kitaru.llm(
        f"Write one short paragraph about {topic}.",
        system="You are a concise technical writer.",
        temperature=0.7,
        name="draft",
    )
    # The handle goes into the checkpoint as it is; the checkpoint receives the text.
    return review(draft, topic)  # type: ignore[return-value]


# -- running the example ----------------------------------------------------------------

_KEY_VARIABLES = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
}


def _registered() -> dict[str, object]:
    """The model aliases in effect here, as ``kitaru model list -o json`` shows them."""
    command = shutil.which("kitaru")
    if command is None:
        return {}
    listed = subprocess.run(
        [command, "model", "list", "-o", "json"], capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:
        return {}
    data: dict[str, object] = json.loads(listed.stdout)
    return data


def _why_offline() -> str | None:
    """Why no real model can be called here (None if one can)."""
    registry = _registered()
    model = os.environ.get("KITARU_DEFAULT_MODEL") or registry.get("default")
    if not isinstance(model, str) or not model:
        return "no model is configured (set KITARU_DEFAULT_MODEL or register a default alias)"
    models = registry.get("models")
    for entry in models if isinstance(models, list) else []:
        if entry["alias"] == model:
            if entry["secret"]:
                return None  # the key comes from the alias's linked secret
            model = entry["model"]
    key = _KEY_VARIABLES.get(model.partition("/")[0])
    if key is not None and not os.environ.get(key, "").strip():
        return f"{key} is not set for {model}"
    return None


def _print_calls(exec_id: str) -> None:
    execution = KitaruClient().executions.get(exec_id)
    print(f"\nRecorded model calls of execution {exec_id}:")
    for call in execution.llm_calls:
        where = f"in checkpoint {call.parent}" if call.parent else "in the flow body"
        print(
            f"  {call.name:<9} {where:<24} {call.resolved_model:<28} "
            f"{call.input_tokens} in / {call.output_tokens} out / {call.total_tokens} tokens, "
            f"{call.latency_ms:.1f} ms, key from {call.credential_source}"
        )
    print(f"\nSee every prompt and response with `kitaru executions get {exec_id}`.")


def main() -> int:
    if os.environ.get("KITARU_LLM_MOCK_RESPONSE"):
        print("KITARU_LLM_MOCK_RESPONSE is set: every model call answers with it, offline.\n")
    elif (reason := _why_offline()) is not None:
        os.environ["KITARU_LLM_MOCK_RESPONSE"] = MOCK_TEXT
        os.environ.setdefault("KITARU_DEFAULT_MODEL", "openai/gpt-4o-mini")
        print(
            f"Running offline: {reason}. Every model call is answered by "
            "KITARU_LLM_MOCK_RESPONSE (still journaled and recorded). To call a real "
            "model: KITARU_DEFAULT_MODEL=openai/gpt-4o-mini OPENAI_API_KEY=sk-... "
            "python examples/llm_agent.py\n"
        )
    handle = writer.run(TOPIC)
    print(f"Started execution {handle.exec_id}")
    try:
        result = handle.wait(timeout=600)
    except KitaruError as exc:
        print(f"\nThe execution failed: {exc}", file=sys.stderr)
        _print_calls(handle.exec_id)
        return 1
    for part in ("draft", "critique", "final"):
        print(f"\n{part.capitalize()}:\n  {result[part]}")
    _print_calls(handle.exec_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
