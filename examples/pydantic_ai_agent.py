"""A PydanticAI agent made durable with ``kitaru.adapters.pydantic_ai.wrap``.

Run it with ``python examples/pydantic_ai_agent.py`` (``pip install 'kitaru[pydantic-ai]'``).
With ``OPENAI_API_KEY`` set, the agent talks to OpenAI's chat API (``OPENAI_BASE_URL``
points it elsewhere); without one it runs offline on PydanticAI's ``FunctionModel``,
which answers from a small script in this file, and says so.

What happens:
1. The agent runs in a child process. It asks the model what to do, calls the tool
   ``search``, asks again, and while its second tool call ``save_note`` runs the
   process is killed with SIGKILL.
2. ``kitaru executions resume`` continues the execution in a new process. The two
   model requests and the ``search`` call that completed return their recorded
   results: no request is sent again and ``search`` does not run again (the
   side-effect log proves it). ``save_note`` runs again, and the agent finishes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel

from kitaru import flow
from kitaru.adapters import pydantic_ai as kp

HERE = Path(__file__).resolve()
TOPIC = "durable agents"


def _note(step: str) -> None:
    """Append to the side-effect log: one line each time a tool body really runs."""
    with open(os.environ["EXAMPLE_SIDE_EFFECTS"], "a") as log:
        log.write(f"{step}\n")


def search(query: str) -> list[str]:
    """Search the notes archive.

    Args:
        query: What to look for.
    """
    _note("search")
    return [f"{query}: a journal records every step", f"{query}: resume replays the record"]


def save_note(text: str) -> str:
    """Save a note for the report.

    Args:
        text: The note to save.
    """
    _note("save_note")
    if os.environ.get("EXAMPLE_CRASH") == "1":
        print("    *** the process is killed (SIGKILL) inside save_note ***", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return f"saved: {text}"


def _scripted(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """The offline model: search, then save a note, then write the report."""
    returns = [
        part for message in messages for part in message.parts if isinstance(part, ToolReturnPart)
    ]
    if not returns:
        return ModelResponse(parts=[ToolCallPart("search", {"query": TOPIC})])
    if len(returns) == 1:
        return ModelResponse(parts=[ToolCallPart("save_note", {"text": str(returns[0].content)})])
    return ModelResponse(parts=[TextPart(f"Report on {TOPIC}: {returns[1].content}")])


def _model() -> Model | str:
    if os.environ.get("OPENAI_API_KEY"):
        return "openai-chat:gpt-4o-mini"
    return FunctionModel(_scripted)


agent = kp.wrap(
    Agent(
        _model(),
        instructions="Search the archive, save one note, then write a one-line report.",
        tools=[search, save_note],
    )
)


@flow
def report(topic: str) -> str:
    return str(agent.run_sync(f"Write a report on {topic}.").output)


def _child() -> None:
    # background=True returns at once, so the id is printed before the crash.
    handle = report.run(TOPIC, background=True)
    print(f"    started execution {handle.exec_id}", flush=True)
    print(handle.wait())


def _kitaru(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # From another directory, in a new process that has never imported this file:
    # the flow is found again from where the journal says it lives.
    return subprocess.run(
        [sys.executable, "-m", "kitaru", *args],
        env=env,
        cwd=tempfile.gettempdir(),
        text=True,
        capture_output=True,
        check=False,
    )


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="kitaru-adapter-"))
    env = dict(os.environ)
    env.setdefault("KITARU_STORE", str(workdir / "journal.db"))
    env.setdefault("KITARU_CONFIG_PATH", str(workdir / "config"))
    env["EXAMPLE_SIDE_EFFECTS"] = str(workdir / "side-effects.log")
    if not env.get("OPENAI_API_KEY"):
        print("Running offline: no OPENAI_API_KEY, so a scripted FunctionModel answers.\n")
    print(f"Journal: {env['KITARU_STORE']}\n")

    print("1. Run the agent; it crashes in its second tool call")
    child = subprocess.run(
        [sys.executable, str(HERE), "--child"],
        env={**env, "EXAMPLE_CRASH": "1"},
        text=True,
        capture_output=True,
        check=False,
    )
    print(child.stdout, end="")
    print(f"    child exit status: {child.returncode} (-9 means SIGKILL)\n")
    exec_id = next(
        line.split()[-1] for line in child.stdout.splitlines() if "started execution" in line
    )

    print("2. Resume it in a new process")
    resumed = _kitaru("executions", "resume", exec_id, "-o", "json", env=env)
    if resumed.returncode != 0:
        print(resumed.stderr, file=sys.stderr)
        return 1
    result: dict[str, Any] = json.loads(resumed.stdout)
    print(f"    {result['status']}: {result['result']}\n")

    got = json.loads(_kitaru("executions", "get", exec_id, "-o", "json", env=env).stdout)
    runs = Path(env["EXAMPLE_SIDE_EFFECTS"]).read_text().split()
    print("3. The durable calls, and what ran over both processes")
    for call in got["checkpoints"]:
        print(f"    {call['invocation_id']:<18} {call['status']}")
    for step in ("search", "save_note"):
        print(f"    {step:<18} body ran {runs.count(step)} time(s)")
    print(
        "\nThe model requests and search completed before the crash: on resume they\n"
        "returned their recorded results. save_note ran twice: its first run was cut off."
    )
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if "--child" in sys.argv:
        _child()
    else:
        sys.exit(main())
