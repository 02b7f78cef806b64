"""Replay: a NEW execution that reuses a finished one's calls before ``from_``.

In-process flows count how often each checkpoint body runs, which proves what a replay
reused (copied from the source, body not run) and what it ran live. The command line
is driven through click's runner for the table of bad arguments, and as the installed
``kitaru`` script for a replay of a flow recorded by another process, and for a replay
that is killed and then resumed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from helpers import (
    REPO,
    TIMEOUT,
    assert_clean_error,
    background,
    child_env,
    journal_rows,
    kitaru,
    side_effects,
)
from llm_server import FakeLLMServer

import kitaru as kt
from kitaru import (
    KitaruStateError,
    KitaruUsageError,
    checkpoint,
    flow,
)
from kitaru.cli import main
from kitaru.client import KitaruClient

KILLED = -9
MODEL = "openai/gpt-4o-mini"

_runs: Counter[str] = Counter()
_gate = threading.Event()


@pytest.fixture(autouse=True)
def _fresh_counts() -> Iterator[None]:
    _runs.clear()
    _gate.clear()
    yield
    _gate.set()  # never leave a flow thread blocked


@checkpoint(type="tool_call")
def gather(topic: str) -> list[str]:
    _runs["gather"] += 1
    return [f"{topic} fact one", f"{topic} fact two"]


@checkpoint
def summarise(notes: list[str]) -> str:
    _runs["summarise"] += 1
    return " + ".join(notes)


@checkpoint
def score(text: str) -> int:
    _runs[f"score:{text}"] += 1
    return len(text)


@checkpoint
def write(summary: str, topic: str, depth: int) -> str:
    _runs["write"] += 1
    return f"{topic} (depth {depth}): {summary}"


@flow
def research(topic: str, depth: int = 1) -> dict[str, Any]:
    notes = gather(topic)
    summary = summarise(notes)
    of_summary = score(summary)  # identity "score"
    of_topic = score(topic)  # identity "score_2"
    fixed = score("fixed", id="extra")  # explicit identity, still of the "score" family
    report = write(summary, topic, depth)
    return {
        "notes": notes,
        "summary": summary,
        "scores": [of_summary, of_topic, fixed],
        "report": report,
    }


def run_research(topic: str = "tides") -> str:
    handle = research.run(topic)
    handle.wait(timeout=TIMEOUT)
    _runs.clear()
    return handle.exec_id


def ran() -> set[str]:
    """Which checkpoint bodies ran since the counters were cleared (score by its input)."""
    return {key for key, count in _runs.items() if count}


def result_of(handle: kt.FlowHandle) -> Any:
    return handle.wait(timeout=TIMEOUT)


EXPECTED = {
    "notes": ["tides fact one", "tides fact two"],
    "summary": "tides fact one + tides fact two",
    "scores": [31, 5, 5],
    "report": "tides (depth 1): tides fact one + tides fact two",
}


class TestReplayMakesANewExecution:
    def test_replay_records_a_new_execution_that_names_its_source(self) -> None:
        """The replay has its own id, records the source's id, and gets the same result."""
        source = run_research()
        handle = research.replay(source, from_="write")
        assert result_of(handle) == EXPECTED
        assert handle.exec_id != source
        replayed = KitaruClient().executions.get(handle.exec_id)
        assert replayed.original_exec_id == source
        assert replayed.status == "completed"
        assert [c.invocation_id for c in replayed.checkpoints] == [
            "gather",
            "summarise",
            "score",
            "score_2",
            "extra",
            "write",
        ]
        assert all(c.status == "completed" for c in replayed.checkpoints)
        assert KitaruClient().executions.get(source).original_exec_id is None

    def test_the_source_journal_is_not_touched(self) -> None:
        """Replaying appends nothing to the source execution."""
        source = run_research()
        before = journal_rows(source)
        result_of(research.replay(source, from_="score", overrides={"checkpoint.gather": ["x"]}))
        assert journal_rows(source) == before

    def test_replay_through_the_client_matches_the_flow_method(self) -> None:
        """``KitaruClient().executions.replay`` imports the flow and replays it the same way."""
        source = run_research()
        handle = KitaruClient().executions.replay(source, from_="write")
        assert result_of(handle) == EXPECTED
        assert ran() == {"write"}

    def test_a_replay_can_itself_be_replayed(self) -> None:
        """A replay is a finished execution like any other, and names its own source."""
        source = run_research()
        first = research.replay(source, from_="write", overrides={"checkpoint.gather": ["g"]})
        result_of(first)
        _runs.clear()
        second = research.replay(first.exec_id, from_="write")
        assert result_of(second)["notes"] == ["g"]
        assert ran() == {"write"}
        assert KitaruClient().executions.get(second.exec_id).original_exec_id == first.exec_id


class TestFromSelectors:
    @pytest.mark.parametrize(
        ("selector", "live"),
        [
            pytest.param("write", {"write"}, id="name-of-last"),
            pytest.param(
                "score",
                {"score:tides fact one + tides fact two", "score:tides", "score:fixed", "write"},
                id="name-selects-earliest-of-family",
            ),
            pytest.param("score_2", {"score:tides", "score:fixed", "write"}, id="identity-name_2"),
            pytest.param("extra", {"score:fixed", "write"}, id="explicit-id"),
        ],
    )
    def test_from_and_later_calls_run_live_earlier_ones_are_reused(
        self, selector: str, live: set[str]
    ) -> None:
        """Calls before the selected one are copied, it and every later call run again."""
        source = run_research()
        assert result_of(research.replay(source, from_=selector)) == EXPECTED
        assert ran() == live
        assert all(_runs[key] == 1 for key in live)

    def test_a_call_id_selects_that_call(self) -> None:
        """The call id (as ``executions get`` shows it) is a selector too."""
        source = run_research()
        call_id = KitaruClient().executions.get(source).checkpoints[1].call_id
        assert result_of(research.replay(source, from_=call_id)) == EXPECTED
        assert "gather" not in ran()
        assert _runs["summarise"] == 1

    def test_from_the_first_call_runs_everything(self) -> None:
        """Replaying from the first call reuses nothing."""
        source = run_research()
        result_of(research.replay(source, from_="gather"))
        assert _runs["gather"] == 1
        assert _runs["write"] == 1


class TestChangedOutputsPropagate:
    def test_consumers_of_an_overridden_output_run_even_before_from(self) -> None:
        """Calls before ``from_`` that take a changed output run live; the others are reused."""
        source = run_research()
        handle = research.replay(source, from_="write", overrides={"checkpoint.gather": ["new"]})
        result = result_of(handle)
        assert result["notes"] == ["new"]
        assert result["summary"] == "new"
        assert result["scores"] == [3, 5, 5]
        # gather was overridden (its body did not run); summarise consumed it, score
        # consumed summarise; score_2 and extra took no changed input and were copied.
        assert ran() == {"summarise", "score:new", "write"}

    def test_a_flow_body_load_of_a_changed_output_makes_later_calls_live(self) -> None:
        """After the flow body loads a changed output, every later call runs live."""
        handle = inspecting.run("moon")
        handle.wait(timeout=TIMEOUT)
        _runs.clear()

        unchanged = inspecting.replay(handle.exec_id, from_="write")
        assert result_of(unchanged)["count"] == 2
        assert ran() == {"write"}, "loading an unchanged output changes nothing"
        _runs.clear()

        changed = inspecting.replay(
            handle.exec_id, from_="write", overrides={"checkpoint.gather": ["a", "b", "c"]}
        )
        result = result_of(changed)
        assert result["count"] == 3
        # score("before") was made before the load and is reused; score("after") is
        # made after it and runs, though none of its inputs changed.
        assert ran() == {"score:after", "write"}

    def test_a_changed_flow_input_reaches_live_calls_only(self) -> None:
        """A changed flow input reaches the calls from ``from_`` on; earlier ones are copied."""
        source = run_research()
        result = result_of(research.replay(source, from_="score_2", topic="waves"))
        assert result["notes"] == EXPECTED["notes"], "gather was copied from the source"
        assert result["scores"] == [31, 5, 5]
        assert result["report"] == "waves (depth 1): tides fact one + tides fact two"
        assert ran() == {"score:waves", "score:fixed", "write"}

    def test_a_defaulted_flow_input_can_be_changed(self) -> None:
        """An input the source left at its default can be set by the replay."""
        source = run_research()
        result = result_of(research.replay(source, from_="write", depth=3))
        assert result["report"].startswith("tides (depth 3)")
        assert KitaruClient().executions.get(source).result() == EXPECTED


class TestOverrides:
    def test_an_overridden_call_does_not_run_and_every_consumer_sees_the_value(self) -> None:
        """An override replaces the recorded output for every later consumer."""
        source = run_research()
        notes = ["alpha", "beta", "gamma"]
        handle = research.replay(source, from_="summarise", overrides={"checkpoint.gather": notes})
        result = result_of(handle)
        assert result["notes"] == notes
        assert result["summary"] == "alpha + beta + gamma"
        assert "gather" not in ran()
        assert kt.load(handle.exec_id, "gather") == notes
        assert kt.load(source, "gather") == EXPECTED["notes"]

    def test_a_name_overrides_every_call_of_that_checkpoint(self) -> None:
        """``checkpoint.<name>`` replaces the output of the whole family, ``id=`` calls included."""
        source = run_research()
        result = result_of(
            research.replay(source, from_="write", overrides={"checkpoint.score": 0})
        )
        assert result["scores"] == [0, 0, 0]
        assert ran() == {"write"}

    def test_an_identity_overrides_that_call_only(self) -> None:
        """``checkpoint.<name_2>`` replaces that call's output and no other."""
        source = run_research()
        result = result_of(
            research.replay(source, from_="write", overrides={"checkpoint.score_2": 99})
        )
        assert result["scores"] == [31, 99, 5]
        assert ran() == {"write"}

    def test_an_override_at_or_after_from_also_skips_the_body(self) -> None:
        """A call that would run live returns its override instead when it has one."""
        source = run_research()
        result = result_of(
            research.replay(source, from_="score", overrides={"checkpoint.write": "by hand"})
        )
        assert result["report"] == "by hand"
        assert "write" not in ran()
        assert _runs["score:fixed"] == 1

    def test_an_override_can_be_structured(self) -> None:
        """Overrides carry any storable value, which consumers receive as such."""
        handle = shaped.run()
        handle.wait(timeout=TIMEOUT)
        value = {"rows": [(1, "a"), (2, "b")], "tags": {"x", "y"}}
        replayed = shaped.replay(
            handle.exec_id, from_="describe", overrides={"checkpoint.produce": value}
        )
        assert result_of(replayed) == "dict: rows=[(1, 'a'), (2, 'b')] tags=['x', 'y']"

    def test_overriding_the_failed_call_of_a_failed_execution_completes_it(self) -> None:
        """A failed execution can be replayed with the failing call's output given by hand."""
        handle = fragile.run()
        with pytest.raises(kt.KitaruUserCodeError):
            handle.wait(timeout=TIMEOUT)
        _runs.clear()
        replayed = fragile.replay(
            handle.exec_id, from_="breaks", overrides={"checkpoint.breaks": 41}
        )
        assert result_of(replayed) == 42
        assert ran() == {"finish"}
        assert KitaruClient().executions.get(handle.exec_id).status == "failed"


class TestModelCallsInReplay:
    @pytest.fixture
    def server(self, llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> FakeLLMServer:
        llm_server.point_providers_here(monkeypatch)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-replay")
        llm_server.reply_text("first answer")
        return llm_server

    def test_model_calls_before_from_are_not_sent_again(self, server: FakeLLMServer) -> None:
        """Flow-body llm calls before ``from_`` return their recorded text without a request."""
        handle = asking.run("tides")
        assert handle.wait(timeout=TIMEOUT) == {"draft": "first answer", "final": "FIRST ANSWER"}
        assert server.count == 2
        server.reply_text("second answer")

        replayed = asking.replay(handle.exec_id, from_="polish")

        assert result_of(replayed) == {"draft": "first answer", "final": "SECOND ANSWER"}
        assert server.count == 3
        asked = [r.body["messages"][-1]["content"] for r in server.requests]
        assert asked[-1].startswith("Polish")
        llm_calls = KitaruClient().executions.get(replayed.exec_id).llm_calls
        assert [c.name for c in llm_calls] == ["draft", "polish"]

    def test_an_llm_call_is_selected_by_name_and_can_be_overridden(
        self, server: FakeLLMServer
    ) -> None:
        """``checkpoint.<llm name>`` replaces a model call's text; nothing is sent for it."""
        handle = asking.run("tides")
        handle.wait(timeout=TIMEOUT)
        before = server.count

        replayed = asking.replay(
            handle.exec_id, from_="shout", overrides={"checkpoint.polish": "given text"}
        )

        assert result_of(replayed) == {"draft": "first answer", "final": "GIVEN TEXT"}
        assert server.count == before, "neither model call reached the provider"
        assert _runs["shout"] == 2

    def test_from_the_first_model_call_sends_both_again(self, server: FakeLLMServer) -> None:
        """A replay from a model call sends it and every later one to the provider."""
        handle = asking.run("tides")
        handle.wait(timeout=TIMEOUT)
        before = server.count
        result_of(asking.replay(handle.exec_id, from_="draft"))
        assert server.count == before + 2


class TestRefusedReplays:
    """Every refusal names the problem, records no execution and leaves the source alone."""

    @pytest.mark.parametrize(
        ("kwargs", "error", "fragments"),
        [
            pytest.param(
                {"from_": "nope"},
                KitaruStateError,
                ["No checkpoint or llm call matches 'nope'", "Available calls", "gather (name"],
                id="unknown-from",
            ),
            pytest.param(
                {"from_": ""},
                KitaruStateError,
                ["matches ''", "Available calls"],
                id="empty-from",
            ),
            pytest.param(
                {"from_": "write", "overrides": {"gather": ["x"]}},
                KitaruUsageError,
                ["Override key 'gather'", "checkpoint.<selector>"],
                id="override-without-prefix",
            ),
            pytest.param(
                {"from_": "write", "overrides": {"checkpoint.": 1}},
                KitaruUsageError,
                ["Override key 'checkpoint.'"],
                id="override-empty-selector",
            ),
            pytest.param(
                {"from_": "write", "overrides": {"step.gather": 1}},
                KitaruUsageError,
                ["Override key 'step.gather'"],
                id="override-other-prefix",
            ),
            pytest.param(
                {"from_": "write", "overrides": {3: 1}},
                KitaruUsageError,
                ["Override key 3"],
                id="override-key-not-a-string",
            ),
            pytest.param(
                {"from_": "write", "overrides": [("checkpoint.gather", 1)]},
                KitaruUsageError,
                ["overrides= must be a dict"],
                id="overrides-not-a-dict",
            ),
            pytest.param(
                {"from_": "write", "overrides": {"checkpoint.nope": 1}},
                KitaruStateError,
                ["matches 'nope'", "Available calls", "score_2 (name score"],
                id="override-unknown-selector",
            ),
            pytest.param(
                {"from_": "write", "overrides": {"checkpoint.gather": object()}},
                KitaruUsageError,
                ["override for 'checkpoint.gather'", "cannot be stored"],
                id="override-unstorable-value",
            ),
            pytest.param(
                {"from_": "write", "colour": "red"},
                KitaruUsageError,
                ["no parameter 'colour'", "topic, depth"],
                id="unknown-flow-input",
            ),
            pytest.param(
                {"from_": "write", "topic": object()},
                KitaruUsageError,
                ["cannot be stored"],
                id="unstorable-flow-input",
            ),
        ],
    )
    def test_bad_arguments(
        self, kwargs: dict[str, Any], error: type[Exception], fragments: list[str]
    ) -> None:
        """Bad selectors, override keys, override values and inputs are refused up front."""
        source = run_research()
        before = journal_rows(source)
        with pytest.raises(error) as caught:
            research.replay(source, **kwargs)
        for fragment in fragments:
            assert fragment in str(caught.value)
        assert journal_rows(source) == before
        assert [e.exec_id for e in KitaruClient().executions.list()] == [source]
        assert not _runs

    def test_an_ambiguous_selector_lists_the_calls_it_could_mean(self) -> None:
        """A selector that is one call's ``id=`` and another checkpoint's name is refused."""
        handle = clash.run()
        handle.wait(timeout=TIMEOUT)
        before = journal_rows(handle.exec_id)
        for kwargs in (
            {"from_": "second"},
            {"from_": "tail", "overrides": {"checkpoint.second": 0}},
        ):
            with pytest.raises(KitaruStateError) as caught:
                clash.replay(handle.exec_id, **kwargs)
            message = str(caught.value)
            assert "'second' is ambiguous" in message
            assert "second (name first" in message
            assert "second_2 (name second" in message
        assert journal_rows(handle.exec_id) == before
        assert len(KitaruClient().executions.list()) == 1

    def test_a_wait_is_not_a_replay_point(self) -> None:
        """Only checkpoints and flow-body llm calls can be selected, not waits."""
        handle = gated_wait.run()
        with pytest.raises(KitaruStateError):
            handle.wait(timeout=TIMEOUT)
        KitaruClient().executions.input(handle.exec_id, value=None)
        KitaruClient().executions.resume(handle.exec_id).wait(timeout=TIMEOUT)
        with pytest.raises(KitaruStateError, match="matches 'gate'"):
            gated_wait.replay(handle.exec_id, from_="gate")

    def test_a_running_execution_cannot_be_replayed(self) -> None:
        """Replaying an execution that has not finished is refused, naming its status."""
        handle = blocked.run(background=True)
        try:
            before = journal_rows(handle.exec_id)
            with pytest.raises(KitaruStateError, match="is running; only a finished"):
                blocked.replay(handle.exec_id, from_="hold")
            assert journal_rows(handle.exec_id) == before
        finally:
            _gate.set()
        handle.wait(timeout=TIMEOUT)
        assert len(KitaruClient().executions.list()) == 1

    def test_a_waiting_execution_can_be_replayed(self) -> None:
        """An execution paused at a wait is replayed as Kitaru allows; the source stays as it is."""
        handle = gated_wait.run()
        with pytest.raises(KitaruStateError):
            handle.wait(timeout=TIMEOUT)
        before = journal_rows(handle.exec_id)
        replayed = gated_wait.replay(handle.exec_id, from_="before_gate")
        client = KitaruClient()
        assert client.executions.get(replayed.exec_id).status == "waiting"
        assert client.executions.get(replayed.exec_id).original_exec_id == handle.exec_id
        assert journal_rows(handle.exec_id) == before
        client.executions.input(replayed.exec_id, value=None)
        assert client.executions.resume(replayed.exec_id).result() == 1
        assert client.executions.get(handle.exec_id).status == "waiting"

    def test_another_flow_cannot_replay_an_execution(self) -> None:
        """Replaying with a different flow names the flow that ran the execution."""
        source = run_research()
        with pytest.raises(KitaruStateError, match="ran flow 'research'"):
            clash.replay(source, from_="first")
        assert len(KitaruClient().executions.list()) == 1

    def test_an_unknown_execution_id(self) -> None:
        """Replaying an id the journal does not hold says how to list executions."""
        with pytest.raises(KitaruStateError, match="kitaru executions list"):
            research.replay("no-such-execution", from_="write")
        with pytest.raises(KitaruStateError, match="No execution"):
            KitaruClient().executions.replay("no-such-execution", from_="write")


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


class TestReplayCommand:
    @pytest.mark.parametrize(
        ("options", "fragment"),
        [
            pytest.param(["--args", "{topic: 1}"], "--args is not valid JSON", id="args-not-json"),
            pytest.param(["--args", "[1, 2]"], "--args must be a JSON object", id="args-list"),
            pytest.param(["--args", '"waves"'], "--args must be a JSON object", id="args-string"),
            pytest.param(["--args", '{"colour": 1}'], "no parameter 'colour'", id="args-unknown"),
            pytest.param(["--overrides", "{"], "--overrides is not valid JSON", id="ov-not-json"),
            pytest.param(["--overrides", "[]"], "--overrides must be a JSON object", id="ov-list"),
            pytest.param(["--overrides", "7"], "--overrides must be a JSON object", id="ov-number"),
            pytest.param(["--overrides", '{"gather": 1}'], "checkpoint.<selector>", id="ov-key"),
            pytest.param(
                ["--overrides", '{"checkpoint.zzz": 1}'], "matches 'zzz'", id="ov-selector"
            ),
        ],
    )
    def test_malformed_options_exit_1_and_change_nothing(
        self, options: list[str], fragment: str
    ) -> None:
        """Bad JSON or a bad shape in --args / --overrides is one error line and exit code 1."""
        source = run_research()
        before = journal_rows(source)
        result = cli("executions", "replay", source, "--from", "write", *options)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith("Error: ")
        assert fragment in result.stderr
        assert result.stdout == ""
        assert journal_rows(source) == before
        assert len(KitaruClient().executions.list()) == 1
        assert not _runs

    @pytest.mark.parametrize(
        ("from_", "fragment"),
        [("nope", "Available calls:\n  gather"), ("", "matches ''")],
    )
    def test_an_unknown_from_lists_the_calls(self, from_: str, fragment: str) -> None:
        """An unknown --from exits 1 and lists every call that can be chosen."""
        source = run_research()
        result = cli("executions", "replay", source, "--from", from_)
        assert result.exit_code == 1
        assert fragment in result.stderr
        assert len(KitaruClient().executions.list()) == 1

    def test_replay_in_the_foreground_prints_the_new_execution(self) -> None:
        """The command runs the replay here and prints the new execution as JSON."""
        source = run_research()
        result = cli(
            "executions",
            "replay",
            source,
            "--from",
            "write",
            "--args",
            '{"depth": 2}',
            "--overrides",
            '{"checkpoint.summarise": "by hand"}',
            "-o",
            "json",
        )
        assert result.exit_code == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["status"] == "completed"
        assert data["original_exec_id"] == source
        assert data["result"]["report"] == "tides (depth 2): by hand"
        assert ran() == {"score:by hand", "write"}

    def test_text_output_names_both_executions(self) -> None:
        """In text mode the command says which execution it replays as which."""
        source = run_research()
        result = cli("executions", "replay", source, "--from", "write")
        assert result.exit_code == 0, result.stderr
        replay_id = next(e.exec_id for e in KitaruClient().executions.list() if e.exec_id != source)
        assert f"Replaying {source} as {replay_id}" in result.stdout
        assert f"Replayed from {source}" in result.stdout


class TestReplayAcrossProcesses:
    @pytest.fixture
    def side(self, tmp_path: Path) -> Path:
        return tmp_path / "side.txt"

    @pytest.fixture
    def elsewhere(self, tmp_path: Path) -> Path:
        folder = tmp_path / "elsewhere"
        folder.mkdir()
        return folder

    def record_source(self, side: Path) -> str:
        first = subprocess.run(
            [sys.executable, "-m", "tests.mgmt_flows.research", "tides"],
            cwd=REPO,
            env=child_env(MGMT_SIDE=str(side)),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert first.returncode == 0, first.stderr
        exec_id: str = json.loads(first.stdout.splitlines()[0])["exec_id"]
        return exec_id

    @pytest.mark.slow
    def test_the_command_replays_a_flow_recorded_by_another_process(
        self, side: Path, elsewhere: Path
    ) -> None:
        """``kitaru executions replay`` from a folder without the code reuses what it should."""
        source = self.record_source(side)
        before = journal_rows(source)
        result = kitaru(
            "executions",
            "replay",
            source,
            "--from",
            "write",
            "--args",
            '{"topic": "waves"}',
            "--overrides",
            '{"checkpoint.gather": ["one", "two"]}',
            "-o",
            "json",
            cwd=elsewhere,
            env=child_env(MGMT_SIDE=str(side)),
        )
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["status"] == "completed"
        assert data["original_exec_id"] == source
        assert data["result"] == {"notes": ["one", "two"], "report": "waves: one + two [9 chars]"}
        # Source: every step once. Replay: gather overridden, the rest consume it or follow.
        assert side_effects(side) == Counter(
            {"gather": 1, "summarise": 2, "critique": 2, "write": 2}
        )
        assert journal_rows(source) == before

    @pytest.mark.slow
    def test_a_bad_option_from_the_installed_command_leaves_no_trace(
        self, side: Path, elsewhere: Path
    ) -> None:
        """The real command prints one error line, exits 1, and records nothing."""
        source = self.record_source(side)
        before = journal_rows(source)
        result = kitaru(
            "executions", "replay", source, "--from", "write", "--overrides", "{oops",
            cwd=elsewhere,
        )  # fmt: skip
        assert_clean_error(result, "--overrides is not valid JSON")
        assert journal_rows(source) == before
        assert len(KitaruClient().executions.list()) == 1

    @pytest.mark.slow
    def test_a_killed_replay_resumes_to_the_same_result(self, side: Path, elsewhere: Path) -> None:
        """A replay killed in a live call resumes: copied calls still never run."""
        source = self.record_source(side)
        env = child_env(MGMT_SIDE=str(side), MGMT_KILL="write")
        killed = kitaru(
            "executions", "replay", source, "--from", "critique",
            "--overrides", '{"checkpoint.gather": ["x"]}',
            cwd=elsewhere, env=env,
        )  # fmt: skip
        assert killed.returncode == KILLED, killed.stderr
        replay_id = next(e.exec_id for e in KitaruClient().executions.list() if e.exec_id != source)
        interrupted = KitaruClient().executions.get(replay_id)
        assert interrupted.status == "running"
        assert interrupted.interrupted
        assert interrupted.original_exec_id == source

        resumed = kitaru(
            "executions", "resume", replay_id, "-o", "json",
            cwd=elsewhere, env=child_env(MGMT_SIDE=str(side)),
        )  # fmt: skip

        assert resumed.returncode == 0, resumed.stderr
        data = json.loads(resumed.stdout)
        assert data["status"] == "completed"
        assert data["result"] == {"notes": ["x"], "report": "tides: x [1 chars]"}
        # The source ran each step once; the replay ran summarise (consumes the
        # override), critique (from_) and write twice (killed, then resumed).
        assert side_effects(side) == Counter(
            {"gather": 1, "summarise": 2, "critique": 2, "write": 3}
        )
        check = kitaru("store", "check", cwd=elsewhere)
        assert check.returncode == 0, check.stdout + check.stderr


class TestReplayExample:
    @pytest.mark.slow
    def test_the_replay_example_runs_offline(self, tmp_path: Path) -> None:
        """``examples/replay_with_overrides.py`` runs to its end and exits 0."""
        with background(
            [sys.executable, str(REPO / "examples" / "replay_with_overrides.py")],
            cwd=tmp_path,
            env=child_env(),
        ) as proc:
            out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, out + err
        assert "Traceback" not in err
        assert "replayed from" in out


# -- flows used above -------------------------------------------------------------------


@checkpoint
def describe(value: Any) -> str:
    rows = value["rows"] if isinstance(value, dict) else value
    tags = sorted(value["tags"]) if isinstance(value, dict) else []
    return f"{type(value).__name__}: rows={rows} tags={tags}"


@checkpoint
def produce() -> list[int]:
    return [1]


@flow
def shaped() -> str:
    return describe(produce())  # type: ignore[return-value]


@checkpoint
def breaks() -> int:
    _runs["breaks"] += 1
    raise RuntimeError("the service is down")


@checkpoint
def finish(value: int) -> int:
    _runs["finish"] += 1
    return value + 1


@flow
def fragile() -> int:
    return finish(breaks())  # type: ignore[return-value]


@flow
def inspecting(topic: str) -> dict[str, Any]:
    notes = gather(topic)
    before = score("before")
    count = len(notes.load())  # a flow-body load of gather's output
    after = score("after")
    report = write("-", topic, count)
    return {"count": count, "before": before, "after": after, "report": report}


@checkpoint
def first(x: int) -> int:
    return x


@checkpoint
def second(x: int) -> int:
    return x


@checkpoint
def tail(x: int) -> int:
    return x


@flow
def clash() -> list[int]:
    a = first(1, id="second")  # an explicit id that is also a checkpoint's name
    b = second(2)  # so this call is second_2
    return [a, b, tail(3)]  # type: ignore[list-item]


@checkpoint
def before_gate() -> int:
    return 1


@flow
def gated_wait() -> int:
    value = before_gate()
    kt.wait(name="gate", timeout=0)
    return value  # type: ignore[return-value]


@checkpoint
def hold() -> int:
    assert _gate.wait(TIMEOUT), "the test never opened the gate"
    return 1


@flow
def blocked() -> int:
    return hold()  # type: ignore[return-value]


@checkpoint
def shout(text: str) -> str:
    _runs["shout"] += 1
    return text.upper()


@flow
def asking(topic: str) -> dict[str, Any]:
    draft = kt.llm(f"Write about {topic}.", model=MODEL, name="draft")
    polished = kt.llm(f"Polish a text about {topic}.", model=MODEL, name="polish")
    return {"draft": draft, "final": shout(polished)}
