"""``async def`` flows and checkpoints: the same durable calls, awaited.

Flows here run in this process against a real SQLite journal in ``tmp_path``; the crash
reproduction runs ``tests/flows/async_research.py`` in a real process, SIGKILLs it in
the middle of an await and resumes it with ``kitaru executions resume`` from a folder
with no flow code. Side-effect files count how often each checkpoint body ran.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from async_twins import search as other_search
from helpers import (
    REPO,
    TIMEOUT,
    background,
    child_env,
    completed_calls,
    flow_command,
    journal_rows,
    kitaru,
    only_exec_id,
    side_effects,
    unpaired,
    wait_for_file,
)
from llm_server import FakeLLMServer

import kitaru as kt
from kitaru import (
    KitaruContextError,
    KitaruDivergenceError,
    KitaruStateError,
    KitaruUsageError,
    KitaruUserCodeError,
    checkpoint,
    flow,
)
from kitaru.client import KitaruClient
from kitaru.journal.events import (
    CallCompleted,
    CallFailed,
    CallStarted,
    LogsCaptured,
    decode_event,
)

KILLED = -signal.SIGKILL


def events(exec_id: str) -> list[Any]:
    """The execution's events, a start and completion written as one given as two."""
    return unpaired([decode_event(kind, body) for _, kind, body in journal_rows(exec_id)])


def outputs(exec_id: str) -> dict[str, Any]:
    """Completed call identity -> its output, decoded."""
    from kitaru.runtime.values import decode_value

    found = {}
    for event in events(exec_id):
        if isinstance(event, CallCompleted) and event.output.inline is not None:
            found[event.identity] = decode_value(event.output.inline)
    return found


def started(exec_id: str) -> list[CallStarted]:
    return [e for e in events(exec_id) if isinstance(e, CallStarted)]


def note(side: str, tag: str) -> None:
    with open(side, "a", encoding="utf-8") as file:
        file.write(tag + "\n")


# -- flows of this module (resumes import them by reference) ---------------------------

DRIFT: dict[str, str] = {}
"""Topic -> what the flow body passes instead, to change the code between runs."""


FINISHING: dict[str, list[str]] = {}
"""Side file -> the order in which that run's searches must finish (topics): the sleeps
spread the calls out as a real fan-out would, and this makes their order certain even
when a loaded machine stretches a sleep."""


@checkpoint
async def search(topic: str, delay: float, side: str) -> str:
    note(side, f"search:{topic}")
    await asyncio.sleep(delay)
    order = FINISHING.get(side)
    if order is not None:
        while order[0] != topic:
            await asyncio.sleep(0.002)
        order.pop(0)
    return f"notes on {topic}"


@checkpoint
def lookup(topic: str, delay: float, side: str) -> str:
    note(side, f"lookup:{topic}")
    return f"notes on {topic}"


@checkpoint(retries=1)
async def flaky(side: str) -> str:
    note(side, "flaky")
    if side_effects(Path(side))["flaky"] == 1:
        raise RuntimeError("first attempt fails")
    return "steady"


@checkpoint
async def broken(side: str) -> str:
    note(side, "broken")
    if os.environ.get("ASYNC_TEST_FIXED") != "1":
        raise ValueError("search index unavailable")
    return "fixed"


@checkpoint
async def chatty(topic: str, delay: float) -> str:
    print(f"start {topic}")
    await asyncio.sleep(delay)
    print(f"end {topic}")
    return topic


@checkpoint
async def stalls(side: str) -> str:
    note(side, "stalls")
    await asyncio.sleep(60)
    return "never"


@checkpoint
async def unstorable() -> Any:
    return threading.Lock()


def delays(count: int, order: str) -> list[float]:
    """Sleep lengths that make calls finish in ``order`` (``forward`` or ``reverse``).

    Each call starts its sleep a little after the one before it (its start is recorded
    first), so the steps are far wider than that lag can grow on a loaded machine.
    """
    steps = range(count) if order == "forward" else range(count, 0, -1)
    return [0.08 * step for step in steps]


@flow
async def gathered(topics: list[str], order: str, side: str) -> list[str]:
    pauses = delays(len(topics), order)
    results = await asyncio.gather(
        *(search(topic, pause, side) for topic, pause in zip(topics, pauses, strict=True))
    )
    return list(results)


@flow
async def grouped(topics: list[str], order: str, side: str) -> list[str]:
    pauses = delays(len(topics), order)
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(search(topic, pause, side))
            for topic, pause in zip(topics, pauses, strict=True)
        ]
    return [task.result() for task in tasks]


@flow
async def mixed(topic: str, side: str) -> dict[str, Any]:
    before = lookup(topic, 0.0, side)  # sync checkpoint: a handle, as in a sync flow
    notes = await search(before.load(), 0.0, side)
    after = lookup(notes, 0.0, side)
    return {"before": before, "notes": notes, "after": after}


@flow
def sync_twin(topic: str, side: str) -> str:
    return lookup(topic, 0.5, side).load()


@flow
async def async_twin(topic: str, side: str) -> str:
    return await search(topic, 0.5, side)


@flow
async def parked(topics: list[str], side: str) -> dict[str, Any]:
    """Search, wait for a reviewer, search again: the wait parks the execution."""
    first = await search(DRIFT.get(topics[0], topics[0]), 0.0, side)
    answer = await kt.wait_async(schema=str, name="review", question="go on?", timeout=0)
    second = await search(topics[1], 0.0, side)
    return {"first": first, "answer": answer, "second": second}


@flow
async def cancels(side: str) -> dict[str, Any]:
    """A call is cancelled by a timeout the body handles; then the body parks at a wait."""
    quick = await search("quick", 0.0, side)
    try:
        await asyncio.wait_for(stalls(side), timeout=0.05)
        stalled = "finished"
    except TimeoutError:
        stalled = "timed out"
    answer = await kt.wait_async(schema=str, name="go", timeout=0)
    return {"quick": quick, "stalled": stalled, "answer": answer}


@flow
async def retried(side: str) -> str:
    return await flaky(side)


@flow
async def fails(side: str) -> str:
    return await broken(side)


@flow
async def chats(topics: list[str]) -> list[str]:
    order = delays(len(topics), "reverse")
    return list(await asyncio.gather(*(chatty(t, d) for t, d in zip(topics, order, strict=True))))


@flow
async def twice_named(side: str) -> list[str]:
    first = await search("a", 0.0, side)
    second = await other_search("b")
    third = await search("c", 0.0, side)
    return [first, second, third]


@flow
async def stores_a_lock() -> Any:
    return await unstorable()


@flow
def sync_calls_async(side: str) -> str:
    return search("a", 0.0, side)  # type: ignore[return-value]


@flow
async def model_calls(topic: str) -> dict[str, Any]:
    outline = await kt.llm_async(f"outline {topic}", name="outline")
    answers = await asyncio.gather(
        kt.llm_async(f"first {outline}"), kt.llm_async(f"second {outline}")
    )
    inner = await asks(topic)
    return {"outline": outline, "answers": list(answers), "inner": inner}


@checkpoint
async def asks(topic: str) -> str:
    return str(await kt.llm_async(f"inside {topic}"))


# -- tests -----------------------------------------------------------------------------


@pytest.fixture
def side(tmp_path: Path) -> Path:
    return tmp_path / "side-effects.txt"


class TestAsyncCheckpoints:
    def test_an_awaited_checkpoint_returns_its_value_and_is_recorded(self, side: Path) -> None:
        """``await search(...)`` in an async flow gives the value and records the call."""
        handle = mixed.run("kitaru", str(side))
        result = handle.wait(timeout=TIMEOUT)
        assert result == {
            "before": "notes on kitaru",
            "notes": "notes on notes on kitaru",
            "after": "notes on notes on notes on kitaru",
        }
        assert set(outputs(handle.exec_id)) == {"lookup", "search", "lookup_2"}
        assert side.read_text().splitlines() == [
            "lookup:kitaru",
            "search:notes on kitaru",
            "lookup:notes on notes on kitaru",
        ]

    def test_arguments_are_digested_as_for_a_sync_checkpoint(self, side: Path) -> None:
        """The same arguments give the same recorded digests, awaited or not."""
        sync_id = sync_twin.run("topic", str(side)).exec_id
        async_id = async_twin.run("topic", str(side)).exec_id
        (sync_call,) = started(sync_id)
        (async_call,) = started(async_id)
        assert sync_call.arguments == async_call.arguments
        assert sync_call.arguments is not None

    def test_outside_a_flow_it_refuses_like_a_sync_checkpoint(self, side: Path) -> None:
        """Called outside a flow, an async checkpoint raises the sync one's error at once."""
        with pytest.raises(KitaruContextError) as sync_error:
            lookup("a", 0.0, str(side))
        with pytest.raises(KitaruContextError) as async_error:
            search("a", 0.0, str(side))
        assert str(async_error.value) == str(sync_error.value)

    def test_a_sync_flow_body_gets_a_clear_error(self, side: Path) -> None:
        """An async checkpoint called from a sync flow body says to make the flow async."""
        handle = sync_calls_async.run(str(side))
        with pytest.raises(KitaruUserCodeError, match="make the flow an async def"):
            handle.wait(timeout=TIMEOUT)

    def test_map_and_submit_point_to_the_event_loop(self) -> None:
        """``.map()``/``.submit()`` of an async checkpoint say to use gather or a TaskGroup."""
        with pytest.raises(KitaruUsageError, match=r"asyncio\.gather"):
            search.map(["a"], [0.0], ["x"])
        with pytest.raises(KitaruUsageError, match="TaskGroup"):
            search.submit("a", 0.0, "x")

    def test_retries_record_every_attempt(self, side: Path) -> None:
        """``retries=1``: a failed first attempt is journaled, the second completes."""
        handle = retried.run(str(side))
        assert handle.wait(timeout=TIMEOUT) == "steady"
        kinds = [
            type(e) for e in events(handle.exec_id) if isinstance(e, CallFailed | CallCompleted)
        ]
        assert kinds == [CallFailed, CallCompleted]
        assert side_effects(side)["flaky"] == 2

    def test_a_failure_is_recorded_and_a_retry_reruns_only_it(
        self, side: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A failing awaited call fails the execution naming the call; retry runs it again."""
        handle = fails.run(str(side))
        with pytest.raises(KitaruUserCodeError, match="in checkpoint 'broken'") as failed:
            handle.wait(timeout=TIMEOUT)
        assert failed.value.call == "broken"
        monkeypatch.setenv("ASYNC_TEST_FIXED", "1")
        again = KitaruClient().executions.retry(handle.exec_id)
        assert again.wait(timeout=TIMEOUT) == "fixed"
        assert side_effects(side)["broken"] == 2

    def test_an_unstorable_output_fails_the_call_with_the_usual_advice(self) -> None:
        """Returning what cannot be stored fails the awaited call, not the event loop."""
        handle = stores_a_lock.run()
        with pytest.raises(KitaruUserCodeError, match="Return data"):
            handle.wait(timeout=TIMEOUT)

    def test_prints_of_concurrent_calls_go_to_their_own_call(self) -> None:
        """Each gathered call's prints are journaled under that call, however they interleave."""
        handle = chats.run(["a", "b", "c"])
        assert handle.wait(timeout=TIMEOUT) == ["a", "b", "c"]
        logs: dict[str, list[str]] = {}
        for event in events(handle.exec_id):
            if isinstance(event, LogsCaptured):
                logs.setdefault(event.call, []).extend(e.message for e in event.entries)
        assert logs == {
            "chatty": ["start a", "end a"],
            "chatty_2": ["start b", "end b"],
            "chatty_3": ["start c", "end c"],
        }


class TestRacingCallsGetProgramOrderIdentities:
    @pytest.mark.parametrize("program", [gathered, grouped], ids=["gather", "taskgroup"])
    def test_identities_follow_the_calls_not_their_completion(
        self, side: Path, program: Any
    ) -> None:
        """``search_N`` is the N-th call made, whichever call finishes first."""
        topics = ["a", "b", "c", "d"]
        for order in ("forward", "reverse"):
            finishing = topics if order == "forward" else topics[::-1]
            FINISHING[str(side)] = list(finishing)
            try:
                handle = program.run(topics, order, str(side))
                assert handle.wait(timeout=TIMEOUT) == [f"notes on {t}" for t in topics]
            finally:
                FINISHING.pop(str(side), None)
            completed = [e.identity for e in events(handle.exec_id) if isinstance(e, CallCompleted)]
            names = {"a": "search", "b": "search_2", "c": "search_3", "d": "search_4"}
            assert completed == [names[t] for t in finishing]
            assert outputs(handle.exec_id) == {names[t]: f"notes on {t}" for t in topics}

    def test_two_async_checkpoints_with_one_name_count_as_for_sync(self, side: Path) -> None:
        """Same-named checkpoints of two modules share the name's ordinals, as sync ones do."""
        handle = twice_named.run(str(side))
        assert handle.wait(timeout=TIMEOUT) == ["notes on a", "other b", "notes on c"]
        calls = {e.identity: e.target for e in started(handle.exec_id)}
        assert calls == {
            "search": "test_async:search",
            "search_2": "async_twins:search",
            "search_3": "test_async:search",
        }


class TestResumeOfAsyncExecutions:
    def test_a_parked_wait_resumes_without_rerunning_completed_calls(self, side: Path) -> None:
        """``wait_async`` parks the execution; after input, resume replays what completed."""
        handle = parked.run(["a", "b"], str(side))
        with pytest.raises(KitaruStateError):
            handle.wait(timeout=TIMEOUT)
        assert KitaruClient().executions.get(handle.exec_id).status == "waiting"
        KitaruClient().executions.input(handle.exec_id, wait="review", value="yes")
        resumed = KitaruClient().executions.resume(handle.exec_id)
        assert resumed.wait(timeout=TIMEOUT) == {
            "first": "notes on a",
            "answer": "yes",
            "second": "notes on b",
        }
        assert side_effects(side) == Counter(["search:a", "search:b"])

    def test_argument_drift_is_a_divergence(self, side: Path) -> None:
        """Resumed with another argument for a recorded call, the run stops as diverged."""
        handle = parked.run(["a", "b"], str(side))
        with pytest.raises(KitaruStateError):
            handle.wait(timeout=TIMEOUT)
        KitaruClient().executions.input(handle.exec_id, wait="review", value="yes")
        DRIFT["a"] = "changed"
        try:
            resumed = KitaruClient().executions.resume(handle.exec_id)
            with pytest.raises(KitaruDivergenceError) as diverged:
                resumed.wait(timeout=TIMEOUT)
        finally:
            DRIFT.clear()
        assert diverged.value.argument == "topic"
        assert diverged.value.position == 0
        assert side_effects(side) == Counter(["search:a"])

    def test_a_cancelled_call_is_not_completed_and_runs_again_on_resume(self, side: Path) -> None:
        """A call cancelled by the body's timeout stays unfinished; a resume runs it again
        (and the body's own handling decides again), while completed calls replay."""
        handle = cancels.run(str(side))
        with pytest.raises(KitaruStateError):
            handle.wait(timeout=TIMEOUT)
        assert completed_calls(handle.exec_id) == {"search"}
        assert "stalls" in {e.identity for e in started(handle.exec_id)}
        assert not [
            e
            for e in events(handle.exec_id)
            if isinstance(e, CallFailed) and e.identity == "stalls"
        ]
        KitaruClient().executions.input(handle.exec_id, wait="go", value="on")
        resumed = KitaruClient().executions.resume(handle.exec_id)
        assert resumed.wait(timeout=TIMEOUT) == {
            "quick": "notes on quick",
            "stalled": "timed out",
            "answer": "on",
        }
        assert side_effects(side) == Counter({"search:quick": 1, "stalls": 2})
        assert "stalls" not in completed_calls(handle.exec_id)

    def test_verify_checks_async_code_against_the_journal(self, side: Path) -> None:
        """``executions verify`` runs an async body against its record, and sees drift."""
        handle = parked.run(["a", "b"], str(side))
        with pytest.raises(KitaruStateError):
            handle.wait(timeout=TIMEOUT)
        (found,) = KitaruClient().executions.verify(handle.exec_id)
        assert found.outcome == "matched", found
        DRIFT["a"] = "changed"
        try:
            (drifted,) = KitaruClient().executions.verify(handle.exec_id)
        finally:
            DRIFT.clear()
        assert drifted.outcome == "diverged"
        assert drifted.argument == "topic"
        assert side_effects(side) == Counter(["search:a"])

    def test_replay_reuses_calls_before_the_selected_one(self, side: Path) -> None:
        """``flow.replay`` of an async execution reuses earlier calls and reruns from ``from_``."""
        source = gathered.run(["a", "b", "c"], "reverse", str(side))
        assert source.wait(timeout=TIMEOUT) == ["notes on a", "notes on b", "notes on c"]
        replay = gathered.replay(source.exec_id, from_="search_3")
        assert replay.wait(timeout=TIMEOUT) == ["notes on a", "notes on b", "notes on c"]
        assert side_effects(side) == Counter({"search:a": 1, "search:b": 1, "search:c": 2})


class TestRunFromInsideAnEventLoop:
    def test_run_async_does_not_block_the_callers_loop(self, side: Path) -> None:
        """``await flow.run_async(...)`` returns the handle while the caller's loop runs on."""

        async def caller() -> tuple[Any, int]:
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.005)

            ticker = asyncio.create_task(tick())
            handle = await async_twin.run_async("x", str(side))
            ticker.cancel()
            return handle, ticks

        handle, ticks = asyncio.run(caller())
        assert isinstance(handle, kt.FlowHandle)
        assert handle.status == "completed"
        assert handle.wait(timeout=TIMEOUT) == "notes on x"
        # The flow body sleeps 0.5 s in its checkpoint; the caller's loop kept ticking.
        assert ticks >= 20

    def test_run_from_sync_code_inside_a_running_loop_still_works(self, side: Path) -> None:
        """The blocking ``.run()`` works from a coroutine too: the body has its own loop."""

        async def caller() -> Any:
            return async_twin.run("y", str(side)).wait(timeout=TIMEOUT)

        assert asyncio.run(caller()) == "notes on y"


class TestAwaitableModelCalls:
    def test_llm_async_records_names_in_call_order_and_replays(
        self, llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``await kitaru.llm_async`` calls are durable, named in call order, and a replay
        before them sends no request."""
        llm_server.point_providers_here(monkeypatch)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-async")
        monkeypatch.setenv("KITARU_DEFAULT_MODEL", "openai/gpt-4o-mini")
        llm_server.reply_text("an answer")
        handle = model_calls.run("durability")
        result = handle.wait(timeout=TIMEOUT)
        assert result == {
            "outline": "an answer",
            "answers": ["an answer", "an answer"],
            "inner": "an answer",
        }
        calls = {e.identity: e.kind for e in started(handle.exec_id)}
        assert calls == {"outline": "llm", "llm_1": "llm", "llm_2": "llm", "asks": "checkpoint"}
        prompts = [r.body["messages"][-1]["content"] for r in llm_server.requests]
        assert prompts[0] == "outline durability"
        assert sorted(prompts[1:3]) == ["first an answer", "second an answer"]
        sent = len(llm_server.requests)
        replay = model_calls.replay(handle.exec_id, from_="asks")
        assert replay.wait(timeout=TIMEOUT) == result
        assert len(llm_server.requests) == sent + 1  # only the call inside `asks`

    def test_llm_async_outside_a_flow_refuses(self) -> None:
        """``kitaru.llm_async`` outside a flow raises at the call, naming itself."""
        with pytest.raises(KitaruContextError, match=r"kitaru\.llm_async\(\)"):
            kt.llm_async("hello")

    def test_wait_async_outside_a_flow_refuses(self) -> None:
        """``kitaru.wait_async`` outside a flow raises at the call, naming itself."""
        with pytest.raises(KitaruContextError, match=r"kitaru\.wait_async\(\)"):
            kt.wait_async()


class TestSigkillMidAwait:
    @pytest.mark.slow
    def test_a_process_killed_during_an_await_resumes_with_stable_identities(
        self, tmp_path: Path
    ) -> None:
        """SIGKILL while a gathered call awaits: the resume (finishing in the other order)
        reruns only that call, and every identity keeps its topic."""
        side, ready = tmp_path / "side.txt", tmp_path / "ready"
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        topics = ["a", "b", "c", "d"]
        env = child_env(
            ASYNC_SIDE=str(side), ASYNC_ORDER="reverse", ASYNC_HOLD="b", ASYNC_READY=str(ready)
        )
        with background(flow_command("async_research", *topics), cwd=REPO, env=env) as proc:
            wait_for_file(ready, proc)
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=TIMEOUT) == KILLED
        exec_id = only_exec_id()
        names = {"a": "search", "b": "search_2", "c": "search_3", "d": "search_4"}
        assert completed_calls(exec_id) == {"search", "search_3", "search_4"}
        before = outputs(exec_id)
        assert before == {names[t]: f"notes on {t}" for t in "acd"}

        resumed = kitaru(
            "executions",
            "resume",
            exec_id,
            "-o",
            "json",
            cwd=elsewhere,
            env=child_env(ASYNC_SIDE=str(side), ASYNC_ORDER="forward"),
        )

        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["status"] == "completed"
        assert side_effects(side) == Counter(
            {"search:a": 1, "search:b": 2, "search:c": 1, "search:d": 1, "summarise": 1}
        )
        after = outputs(exec_id)
        assert after == {
            **{names[t]: f"notes on {t}" for t in topics},
            "summarise": "notes on a | notes on b | notes on c | notes on d",
        }
        assert kt.FlowHandle(exec_id).get() == {
            "notes": [f"notes on {t}" for t in topics],
            "summary": "notes on a | notes on b | notes on c | notes on d",
        }


class TestRetryAndReplayFromTheCli:
    """``tests/flows/async_research.py`` run in a real process, then retried or replayed
    with the ``kitaru`` command from a folder with no flow code."""

    TOPICS = ("a", "b", "c", "d")

    def run_research(self, side: Path, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            flow_command("async_research", *self.TOPICS),
            cwd=REPO,
            env=child_env(ASYNC_SIDE=str(side), **env),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    @pytest.fixture
    def elsewhere(self, tmp_path: Path) -> Path:
        folder = tmp_path / "elsewhere"
        folder.mkdir()
        return folder

    def test_retry_of_a_failed_async_execution_reruns_only_the_failed_call(
        self, side: Path, elsewhere: Path
    ) -> None:
        """``kitaru executions retry`` runs the failed awaited call again, and nothing else."""
        failed = self.run_research(side, ASYNC_BROKEN="c")
        assert failed.returncode != 0
        assert "the search index is down for c" in failed.stderr
        exec_id = only_exec_id()
        assert KitaruClient().executions.status(exec_id) == "failed"
        assert completed_calls(exec_id) == {"search", "search_2", "search_4"}

        retried = kitaru(
            "executions",
            "retry",
            exec_id,
            "-o",
            "json",
            cwd=elsewhere,
            env=child_env(ASYNC_SIDE=str(side)),
        )

        assert retried.returncode == 0, retried.stderr
        assert json.loads(retried.stdout)["status"] == "completed"
        assert side_effects(side) == Counter(
            {"search:a": 1, "search:b": 1, "search:c": 2, "search:d": 1, "summarise": 1}
        )
        execution = KitaruClient().executions.get(exec_id)
        assert execution.result()["summary"] == " | ".join(f"notes on {t}" for t in self.TOPICS)
        (broken,) = [c for c in execution.checkpoints if c.invocation_id == "search_3"]
        assert [a.status for a in broken.attempts] == ["failed", "completed"]

    def test_replay_with_an_override_reuses_the_calls_before_the_chosen_one(
        self, side: Path, elsewhere: Path
    ) -> None:
        """``kitaru executions replay --from search_3 --overrides`` reuses the first two
        searches, runs the rest again and takes the overridden call's value as given."""
        source = self.run_research(side)
        assert source.returncode == 0, source.stderr
        source_id = json.loads(source.stdout)["exec_id"]

        replayed = kitaru(
            "executions",
            "replay",
            source_id,
            "--from",
            "search_3",
            "--overrides",
            '{"checkpoint.summarise": "by hand"}',
            "-o",
            "json",
            cwd=elsewhere,
            env=child_env(ASYNC_SIDE=str(side)),
        )

        assert replayed.returncode == 0, replayed.stderr
        data = json.loads(replayed.stdout)
        assert data["status"] == "completed"
        assert data["original_exec_id"] == source_id
        assert data["exec_id"] != source_id
        assert KitaruClient().executions.get(data["exec_id"]).result() == {
            "notes": [f"notes on {t}" for t in self.TOPICS],
            "summary": "by hand",
        }
        assert side_effects(side) == Counter(
            {"search:a": 1, "search:b": 1, "search:c": 2, "search:d": 2, "summarise": 1}
        )


class TestAsyncAgentExample:
    @pytest.mark.slow
    def test_the_example_crashes_mid_await_and_resumes_offline(self, tmp_path: Path) -> None:
        """``examples/async_agent.py`` runs offline: SIGKILL mid-await, a resume that reruns
        only the interrupted search, and each topic's result under its own identity."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KITARU_", "OPENAI_"))}
        env["KITARU_STORE"] = str(tmp_path / "journal.db")
        env["KITARU_CONFIG_PATH"] = str(tmp_path / "config")
        env["TMPDIR"] = str(tmp_path)  # the example's work folder stays inside this test's
        env["PYTHONPATH"] = str(REPO)  # this checkout's kitaru, in the example's children too
        result = subprocess.run(
            [sys.executable, str(REPO / "examples" / "async_agent.py")],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert "child exit status: -9" in out
        assert "Status     completed" in out
        assert "search:journals   body ran 2 time(s)" in out
        assert "search:replay     body ran 1 time(s)" in out
        assert "search:leases     body ran 1 time(s)" in out
        assert "write_report     body ran 1 time(s)" in out
        assert "model calls recorded: llm_1, llm_2, llm_3" in out
        topics = ["journals", "replay", "leases"]
        for topic in topics:
            assert f"- {topic}: what the sources say (" in out
        positions = [out.index(f"- {topic}: what the sources say") for topic in topics]
        assert positions == sorted(positions)
