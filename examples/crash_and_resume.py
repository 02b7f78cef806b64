"""A research agent that crashes half-way and finishes on resume.

Run it with ``python examples/crash_and_resume.py``. It works offline with no API key:
its model call is answered by ``KITARU_LLM_MOCK_RESPONSE`` (set below).

What happens:
1. The agent runs in a child process. While writing its report, the process is
   killed with SIGKILL: no cleanup, no exception handler, exactly like a crash.
2. ``kitaru executions get`` shows what the journal holds: the steps that finished.
3. ``kitaru executions resume`` continues the execution in a brand-new process. The
   finished steps return their recorded results instead of running again (the
   side-effect log proves it), the model call is not made again (the journal holds
   one call), the interrupted step runs again, and the agent ends.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import kitaru
from kitaru import checkpoint, flow

HERE = Path(__file__).resolve()


def _note(step: str) -> None:
    """Append to the side-effect log: one line each time a step's body really runs."""
    with open(os.environ["DEMO_SIDE_EFFECTS"], "a") as log:
        log.write(f"{step}\n")
    print(f"    running {step} ...", flush=True)
    time.sleep(0.3)  # pretend to work


@checkpoint(type="tool_call")
def search(topic: str) -> list[str]:
    _note("search")
    return [f"{topic}: durable execution replays recorded steps", f"{topic}: journals are cheap"]


@checkpoint(type="llm_call")
def write_report(summary: str, topic: str) -> str:
    _note("write_report")
    if os.environ.get("DEMO_CRASH") == "1":
        print("    *** the process is killed (SIGKILL) inside write_report ***", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return f"# Report on {topic}\n\n{summary}\n"


@flow
def research_agent(topic: str) -> str:
    notes = search(topic)
    # A model call in the flow body is a durable call of its own.
    summary = kitaru.llm(f"Summarise these notes: {notes.load()}", name="summarise")
    return write_report(summary, topic)


def _child() -> None:
    # background=True returns at once, so the id is printed before the crash.
    handle = research_agent.run(topic="durable agents", background=True)
    print(f"    started execution {handle.exec_id}", flush=True)
    print(handle.wait())


def _kitaru(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    kitaru = shutil.which("kitaru") or "kitaru"
    # From another directory, in a new process that has never imported this file:
    # the flow is found again from where the journal says it lives.
    return subprocess.run(
        [kitaru, *args],
        env=env,
        cwd=tempfile.gettempdir(),
        text=True,
        capture_output=True,
        check=False,
    )


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="kitaru-demo-"))
    env = dict(os.environ)
    env.setdefault("KITARU_STORE", str(workdir / "journal.db"))
    env.setdefault("KITARU_CONFIG_PATH", str(workdir / "config"))
    env["DEMO_SIDE_EFFECTS"] = str(workdir / "side-effects.log")
    env.setdefault("KITARU_LLM_MOCK_RESPONSE", "Durable agents replay what they already did.")
    env.setdefault("KITARU_DEFAULT_MODEL", "openai/gpt-4o-mini")
    print(f"Journal: {env['KITARU_STORE']}\n")

    print("1. Run the agent; it crashes while writing the report")
    child = subprocess.run(
        [sys.executable, str(HERE), "--child"],
        env={**env, "DEMO_CRASH": "1"},
        text=True,
        capture_output=True,
        check=False,
    )
    print(child.stdout, end="")
    print(f"    child exit status: {child.returncode} (-9 means SIGKILL)\n")
    exec_id = next(
        line.split()[-1] for line in child.stdout.splitlines() if "started execution" in line
    )

    print("2. What the journal holds after the crash")
    print(_indent(_kitaru("executions", "get", exec_id, env=env).stdout))

    print("3. Resume it in a new process")
    resumed = _kitaru("executions", "resume", exec_id, env=env)
    print(_indent(resumed.stdout))
    if resumed.returncode != 0:
        print(resumed.stderr, file=sys.stderr)
        return 1

    runs = Path(env["DEMO_SIDE_EFFECTS"]).read_text().split()
    got = json.loads(_kitaru("executions", "get", exec_id, "-o", "json", env=env).stdout)
    model_calls = [call["name"] for call in got["llm_calls"]]
    print("4. What ran, over both processes")
    for step in ("search", "write_report"):
        print(f"    {step:<13} body ran {runs.count(step)} time(s)")
    print(f"    {'summarise':<13} model called {model_calls.count('summarise')} time(s)")
    print(
        "\nsearch ran once and the model was called once: on resume they returned their\n"
        "recorded results. write_report ran twice: its first run was cut off by the crash."
    )
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.rstrip().splitlines()) + "\n"


if __name__ == "__main__":
    if "--child" in sys.argv:
        _child()
    else:
        sys.exit(main())
