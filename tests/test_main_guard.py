"""A flow started at a module's top level (no main guard) is not started again by a resume.

Resuming imports the flow's script or module in the resuming process; a top-level
``.run()`` there must not start a second execution. The import stops at that call with
``UnguardedRunError`` (a ``KitaruUsageError``), and the resume goes on with the flow if
it was defined above that line; otherwise it fails with the same advice.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, TIMEOUT, assert_clean_error, child_env, kitaru, side_effects

from kitaru import KitaruUsageError, flow
from kitaru.runtime.locate import UnguardedRunError, check_not_importing

AGENT = """
import json, os, signal, threading
from kitaru import checkpoint, flow

# The kill waits for the execution id to be printed: the flow runs on its own thread.
printed = threading.Event()


def record(tag):
    with open(os.environ["GUARD_SIDE"], "a") as file:
        file.write(tag + "\\n")


@checkpoint(type="tool_call")
def search(topic: str) -> list[str]:
    record("search")
    return [topic, topic.upper()]


@checkpoint
def summarise(notes: list[str]) -> str:
    record("summarise")
    if os.environ.get("GUARD_KILL"):
        printed.wait(30)
        os.kill(os.getpid(), signal.SIGKILL)
    return " / ".join(notes)


@flow
def research_agent(topic: str) -> str:
    notes = search(topic)
    return summarise(notes)


handle = research_agent.run(topic="durable agents", background=True)
print(json.dumps({"exec_id": handle.exec_id}), flush=True)
printed.set()
print(json.dumps({"result": handle.wait()}), flush=True)
"""

LATER_FLOW = """
import json, os, signal, threading
from kitaru import checkpoint, flow

printed = threading.Event()


@checkpoint
def note(tag: str) -> str:
    with open(os.environ["GUARD_SIDE"], "a") as file:
        file.write(tag + "\\n")
    if tag == "second" and os.environ.get("GUARD_KILL"):
        printed.wait(30)
        os.kill(os.getpid(), signal.SIGKILL)
    return tag


@flow
def warm_up() -> str:
    return note("warm-up")


warm_up.run().wait()


@flow
def main_flow() -> list[str]:
    return [note("first").load(), note("second").load()]


if __name__ == "__main__":
    handle = main_flow.run(background=True)
    print(json.dumps({"exec_id": handle.exec_id}), flush=True)
    printed.set()
    handle.wait()
"""


def _env(tmp_path: Path, **changes: str) -> dict[str, str]:
    # PYTHONPATH names the kitaru under test; the flow's own folder is never on it.
    return child_env(GUARD_SIDE=str(tmp_path / "side.txt"), PYTHONPATH=str(REPO), **changes)


def _killed(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run ``command`` until it SIGKILLs itself; the execution id it printed."""
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == -signal.SIGKILL, (result.stdout, result.stderr)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    exec_id: str = next(line["exec_id"] for line in lines if "exec_id" in line)
    return exec_id


def _executions(tmp_path: Path, elsewhere: Path) -> list[dict[str, object]]:
    listed = kitaru("executions", "list", "-o", "json", cwd=elsewhere, env=_env(tmp_path))
    assert listed.returncode == 0, listed.stderr
    found: list[dict[str, object]] = json.loads(listed.stdout)
    return found


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


class TestScriptWithoutAMainGuard:
    @pytest.mark.slow
    def test_resume_does_not_start_a_second_execution(
        self, tmp_path: Path, elsewhere: Path
    ) -> None:
        """Resuming the README's unguarded sample finishes it, with no new execution."""
        script = tmp_path / "agent.py"
        script.write_text(AGENT, encoding="utf-8")
        exec_id = _killed([sys.executable, str(script)], tmp_path, _env(tmp_path, GUARD_KILL="1"))
        resumed = kitaru("executions", "resume", exec_id, cwd=elsewhere, env=_env(tmp_path))
        assert resumed.returncode == 0, resumed.stderr
        assert "Traceback" not in resumed.stderr
        assert 'if __name__ == "__main__":' in resumed.stderr
        executions = _executions(tmp_path, elsewhere)
        assert [(e["exec_id"], e["status"]) for e in executions] == [(exec_id, "completed")]
        assert side_effects(tmp_path / "side.txt") == {"search": 1, "summarise": 2}
        got = kitaru("executions", "get", exec_id, "-o", "json", cwd=elsewhere, env=_env(tmp_path))
        assert json.loads(got.stdout)["result"] == "durable agents / DURABLE AGENTS"

    @pytest.mark.slow
    def test_a_flow_defined_below_the_call_fails_with_the_advice(
        self, tmp_path: Path, elsewhere: Path
    ) -> None:
        """If the import stops before the flow is defined, resume says to add the guard."""
        script = tmp_path / "later.py"
        script.write_text(LATER_FLOW, encoding="utf-8")
        exec_id = _killed([sys.executable, str(script)], tmp_path, _env(tmp_path, GUARD_KILL="1"))
        assert len(_executions(tmp_path, elsewhere)) == 2  # warm_up, then main_flow
        resumed = kitaru("executions", "resume", exec_id, cwd=elsewhere, env=_env(tmp_path))
        assert_clean_error(resumed, "warm_up.run()", 'if __name__ == "__main__":', "main_flow")
        assert len(_executions(tmp_path, elsewhere)) == 2
        assert side_effects(tmp_path / "side.txt")["warm-up"] == 1


class TestModuleWithoutAMainGuard:
    @pytest.mark.slow
    def test_resume_of_a_package_module_does_not_run_it_again(
        self, tmp_path: Path, elsewhere: Path
    ) -> None:
        """A module run with ``python -m`` is imported by the resume only up to its .run()."""
        package = tmp_path / "agents"
        package.mkdir()
        (package / "__init__.py").write_text("", encoding="utf-8")
        (package / "research.py").write_text(AGENT, encoding="utf-8")
        exec_id = _killed(
            [sys.executable, "-m", "agents.research"], tmp_path, _env(tmp_path, GUARD_KILL="1")
        )
        resumed = kitaru("executions", "resume", exec_id, cwd=elsewhere, env=_env(tmp_path))
        assert resumed.returncode == 0, resumed.stderr
        executions = _executions(tmp_path, elsewhere)
        assert [(e["exec_id"], e["status"]) for e in executions] == [(exec_id, "completed")]
        assert side_effects(tmp_path / "side.txt") == {"search": 1, "summarise": 2}


@flow
def _idle() -> int:
    return 1


class TestTheGuardItself:
    def test_run_outside_an_import_is_allowed(self) -> None:
        """With no resume import under way, the check lets a run start."""
        check_not_importing("_idle", "run")

    def test_the_error_is_a_usage_error_with_its_details(self) -> None:
        """The refusal is a KitaruUsageError carrying the flow and the module."""
        from kitaru.runtime import locate

        token = locate._importing.set("agent.py")
        try:
            with pytest.raises(KitaruUsageError) as caught:
                _idle.run()
        finally:
            locate._importing.reset(token)
        assert isinstance(caught.value, UnguardedRunError)
        assert (caught.value.flow, caught.value.module) == ("_idle", "agent.py")
        assert 'if __name__ == "__main__":' in str(caught.value)
