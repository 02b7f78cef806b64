"""``executions logs --limit/--source/--grouped/-v`` and ``executions input --interactive``."""

from __future__ import annotations

import json
import logging

import pytest
from click.testing import CliRunner, Result
from helpers import TIMEOUT

from kitaru import KitaruClient, KitaruStateError, checkpoint, flow, wait
from kitaru.cli import main


def cli(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)


@checkpoint
def fetch(n: int) -> int:
    print(f"fetching {n}")
    logging.getLogger("agent").warning("slow source %s", n)
    return n


@checkpoint
def combine(total: int) -> int:
    print(f"combined {total}")
    return total


@flow
def gather() -> int:
    a = fetch(1)
    b = fetch(2)
    return combine(a.load() + b.load())  # type: ignore[return-value]


@flow
def reviewed(limit: int) -> dict[str, object]:
    answer = wait(
        schema=int,
        name="budget",
        question=f"What budget (at most {limit})?",
        timeout=0,
        metadata={"team": "research"},
    )
    return {"budget": answer}


def gathered() -> str:
    handle = gather.run()
    handle.wait(timeout=TIMEOUT)
    return handle.exec_id


def parked(limit: int = 100) -> str:
    handle = reviewed.run(limit)
    with pytest.raises(KitaruStateError):
        handle.wait(timeout=TIMEOUT)
    return handle.exec_id


class TestLogLines:
    def test_plain_lines_are_the_messages_in_order(self) -> None:
        """With no options, each line is a message, across checkpoints in time order."""
        out = cli("executions", "logs", gathered()).stdout.splitlines()
        assert out == [
            "fetching 1",
            "slow source 1",
            "fetching 2",
            "slow source 2",
            "combined 3",
        ]

    def test_verbosity_adds_time_level_then_origin(self) -> None:
        """``-v`` adds time and level; ``-vv`` also checkpoint, attempt and source."""
        exec_id = gathered()
        one = cli("executions", "logs", exec_id, "-v").stdout.splitlines()
        assert one[1].endswith(" WARNING slow source 1")
        two = cli("executions", "logs", exec_id, "-vv").stdout.splitlines()
        assert two[1].endswith(" fetch#1 WARNING agent: slow source 1")
        assert two[4].endswith(" combine#1 INFO    stdout: combined 3")

    def test_limit_caps_the_lines(self) -> None:
        """``--limit N`` prints the first N lines, in text and in JSON."""
        exec_id = gathered()
        assert cli("executions", "logs", exec_id, "--limit", "2").stdout.splitlines() == [
            "fetching 1",
            "slow source 1",
        ]
        rows = cli("executions", "logs", exec_id, "--limit", "3", "-o", "json").stdout
        assert [json.loads(r)["message"] for r in rows.splitlines()] == [
            "fetching 1",
            "slow source 1",
            "fetching 2",
        ]

    def test_grouped_puts_each_checkpoint_under_a_header(self) -> None:
        """``--grouped`` prints a header per checkpoint and its lines under it."""
        out = cli("executions", "logs", gathered(), "--grouped").stdout.splitlines()
        assert out == [
            "== fetch ==",
            "  fetching 1",
            "  slow source 1",
            "== fetch_2 ==",
            "  fetching 2",
            "  slow source 2",
            "== combine ==",
            "  combined 3",
        ]

    def test_grouped_with_json_is_refused(self) -> None:
        """``--grouped -o json`` is one error line: groups are for people."""
        result = cli("executions", "logs", gathered(), "--grouped", "-o", "json")
        assert result.exit_code == 1
        assert "--grouped" in result.stderr
        assert result.stdout == ""


class TestLogSources:
    def test_a_stream_source_narrows_the_step_lines(self) -> None:
        """``--source stdout`` keeps printed lines, ``--source agent`` that logger's."""
        exec_id = gathered()
        printed = cli("executions", "logs", exec_id, "--source", "stdout").stdout
        assert printed.splitlines() == ["fetching 1", "fetching 2", "combined 3"]
        logged = cli("executions", "logs", exec_id, "--source", "agent").stdout
        assert logged.splitlines() == ["slow source 1", "slow source 2"]

    def test_runner_lines_are_the_lifecycle(self) -> None:
        """``--source runner`` prints the execution's lifecycle from the journal."""
        out = cli("executions", "logs", gathered(), "--source", "runner").stdout.splitlines()
        assert out[0] == "execution started: flow gather"
        assert "checkpoint fetch_2 started (attempt 1)" in out
        assert out[-1] == "execution completed"

    def test_runner_with_a_checkpoint_is_refused(self) -> None:
        """``--source runner --checkpoint X`` is refused: runner lines are execution-wide."""
        result = cli("executions", "logs", gathered(), "--source", "runner", "--checkpoint", "x")
        assert result.exit_code == 1
        assert "--checkpoint cannot go with --source runner" in result.stderr

    def test_an_unknown_source_names_the_ones_there_are(self) -> None:
        """A source no line came from is an error listing the sources."""
        result = cli("executions", "logs", gathered(), "--source", "nosuch")
        assert result.exit_code == 1
        assert "no log lines from source 'nosuch'" in result.stderr
        assert "step, runner, agent, stdout" in result.stderr


class TestInteractiveInput:
    def test_prompts_with_the_question_and_re_asks_until_the_value_fits(self) -> None:
        """``input -i`` shows question, schema and metadata, re-asks on bad JSON and on a
        value the schema refuses, then records the good one."""
        exec_id = parked()
        result = cli("executions", "input", exec_id, "-i", stdin='not json\n"ten"\n42\n')
        assert result.exit_code == 0, result.stderr
        out = result.stdout
        assert "Question: What budget (at most 100)?" in out
        assert 'Expects:  {"type": "integer"}' in out
        assert 'Metadata: {"team": "research"}' in out
        assert "Not valid JSON" in out
        assert "does not fit wait 'budget'" in out
        assert "Answered 1 of 1 wait(s)." in out
        resumed = KitaruClient().executions.resume(exec_id)
        assert resumed.wait(timeout=TIMEOUT) == {"budget": 42}

    def test_without_an_id_every_waiting_execution_is_asked(self) -> None:
        """With no id, each waiting execution's wait is asked in turn; empty skips one."""
        first, second = parked(1), parked(2)
        result = cli("executions", "input", "--interactive", stdin="1\n\n")
        assert result.exit_code == 0, result.stderr
        assert result.stdout.index("at most 1") < result.stdout.index("at most 2")
        assert "Skipped." in result.stdout
        waits = {
            exec_id: KitaruClient().executions.get(exec_id).pending_wait
            for exec_id in (first, second)
        }
        assert waits[first] is not None
        assert waits[first].input_received is True
        assert waits[second] is not None
        assert waits[second].input_received is False

    def test_abort_refuses_the_wait(self) -> None:
        """Typing ``abort`` aborts the wait: the execution ends cancelled."""
        exec_id = parked()
        result = cli("executions", "input", exec_id, "-i", stdin="abort\n")
        assert result.exit_code == 0, result.stderr
        assert KitaruClient().executions.get(exec_id).status == "cancelled"

    def test_nothing_to_answer_says_so(self) -> None:
        """With no wait open, ``input -i`` says so and asks nothing."""
        gathered()
        result = cli("executions", "input", "-i")
        assert result.exit_code == 0
        assert result.stdout.startswith("Nothing to answer: no execution has an open wait")

    def test_interactive_with_a_value_is_refused(self) -> None:
        """``-i`` with ``--value`` is a usage error."""
        result = cli("executions", "input", parked(), "-i", "--value", "1")
        assert result.exit_code == 1
        assert "--interactive" in result.stderr
