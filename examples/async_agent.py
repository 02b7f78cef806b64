"""An async research agent: concurrent searches and model calls, a crash, a resume.

Run it with ``python examples/async_agent.py``. It works offline with no API key: its
model calls are answered by ``KITARU_LLM_MOCK_RESPONSE`` (set below).

What it shows:
1. The flow and its checkpoints are ``async def``. Searches run concurrently with
   ``asyncio.gather`` and finish in the reverse of the order they were started; the
   summaries are concurrent ``await kitaru.llm_async(...)`` calls; the report is a
   plain sync checkpoint, called from the async body.
2. The agent runs in a child process that is killed with SIGKILL while one search is
   still awaiting. The other searches had finished: the journal holds them.
3. ``kitaru executions resume`` continues the execution in a new process. The finished
   searches return their recorded results (the side-effect log proves they did not
   run again); the interrupted one runs again; the agent ends.
4. Each call's identity (``search``, ``search_2``, ...) was taken when the call was
   made, in program order, not when it finished: the same topic has the same identity
   in both processes, so the resume cannot hand one search's result to another.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import kitaru
from kitaru import checkpoint, flow

HERE = Path(__file__).resolve()
TOPICS = ["journals", "replay", "leases"]


def _note(step: str) -> None:
    """Append to the side-effect log: one line each time a step's body really runs."""
    with open(os.environ["DEMO_SIDE_EFFECTS"], "a") as log:
        log.write(f"{step}\n")
    print(f"    running {step} ...", flush=True)


@checkpoint(type="tool_call")
async def search(topic: str, seconds: float) -> str:
    _note(f"search:{topic}")
    await asyncio.sleep(seconds)  # an HTTP request, say; other searches run meanwhile
    if os.environ.get("DEMO_CRASH") == "1" and topic == TOPICS[0]:
        print(
            f"    *** the process is killed (SIGKILL) while search:{topic} awaits ***", flush=True
        )
        os.kill(os.getpid(), signal.SIGKILL)
    return f"{topic}: what the sources say"


@checkpoint
def write_report(question: str, notes: list[str], summaries: list[str]) -> str:
    _note("write_report")
    lines = "\n".join(f"- {n} ({s})" for n, s in zip(notes, summaries, strict=True))
    return f"# {question}\n\n{lines}\n"


@flow
async def research_agent(question: str, topics: list[str]) -> str:
    # The first topic is searched longest, so the searches finish last-started first.
    seconds = [0.2 * (len(topics) - index) for index in range(len(topics))]
    notes = await asyncio.gather(*(search(t, s) for t, s in zip(topics, seconds, strict=True)))
    summaries = await asyncio.gather(*(kitaru.llm_async(f"Summarise: {note}") for note in notes))
    return write_report(question, list(notes), list(summaries)).load()


def _child() -> None:
    # background=True returns at once, so the id is printed before the crash.
    handle = research_agent.run("How do durable agents recover?", TOPICS, background=True)
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
    workdir = Path(tempfile.mkdtemp(prefix="kitaru-async-demo-"))
    env = dict(os.environ)
    env.setdefault("KITARU_STORE", str(workdir / "journal.db"))
    env.setdefault("KITARU_CONFIG_PATH", str(workdir / "config"))
    env["DEMO_SIDE_EFFECTS"] = str(workdir / "side-effects.log")
    env.setdefault("KITARU_LLM_MOCK_RESPONSE", "Recorded steps are returned, not redone.")
    env.setdefault("KITARU_DEFAULT_MODEL", "openai/gpt-4o-mini")
    print(f"Journal: {env['KITARU_STORE']}\n")

    print("1. Run the agent; it is killed while a search is awaiting")
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

    print("2. Resume it in a new process")
    resumed = _kitaru("executions", "resume", exec_id, env=env)
    print(_indent(resumed.stdout))
    if resumed.returncode != 0:
        print(resumed.stderr, file=sys.stderr)
        return 1

    runs = Path(env["DEMO_SIDE_EFFECTS"]).read_text().split()
    got = json.loads(_kitaru("executions", "get", exec_id, "-o", "json", env=env).stdout)
    print("3. What ran, over both processes")
    for topic in TOPICS:
        print(f"    search:{topic:<10} body ran {runs.count(f'search:{topic}')} time(s)")
    print(f"    write_report     body ran {runs.count('write_report')} time(s)")
    model_calls = sorted(call["name"] for call in got["llm_calls"])
    print(f"    model calls recorded: {', '.join(model_calls)}")
    print(f"\n4. The result\n{_indent(str(got['result']))}")
    print(
        "Only the search cut off by the crash ran twice. search, search_2 and search_3 are\n"
        "the first, second and third calls the flow body made, whichever finished first,\n"
        "so on resume each recorded result went back to the call that produced it."
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
