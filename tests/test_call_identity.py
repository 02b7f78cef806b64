"""Call identity and argument drift: a resumed call gets its recorded output only if it is
the same function called with the same arguments; checkpoint bodies get copies.

Crash reproductions run real processes killed with SIGKILL (``tests/flows/drift.py``);
the rest run flows in this process and ``retry`` them after a planned failure.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
from helpers import (
    REPO,
    TIMEOUT,
    assert_clean_error,
    child_env,
    journal_rows,
    kitaru,
    only_exec_id,
    reset_plan,
    run_flow,
    unpaired,
)

from kitaru import KitaruDivergenceError, KitaruUsageError, checkpoint, flow
from kitaru._flow_handle import FlowHandle
from kitaru.client import KitaruClient
from kitaru.journal.events import ArgumentDigest, CallStarted, decode_event
from kitaru.journal.store import StoredEvent
from kitaru.replay import fold, match_call
from kitaru.replay.matching import argument_drift

KILLED = -9


def _started_events(exec_id: str) -> list[CallStarted]:
    decoded = [decode_event(kind, body) for _, kind, body in journal_rows(exec_id)]
    return [event for event in unpaired(decoded) if isinstance(event, CallStarted)]


# -- pure matching ---------------------------------------------------------------------


def _journal(*events: Any) -> list[StoredEvent]:
    from kitaru.journal.events import ExecutionStarted, FlowRef, ValueRef

    first = ExecutionStarted(
        flow_name="f",
        flow=FlowRef(module="m", qualname="f"),
        inputs=ValueRef(inline=b"\x90"),
        kitaru_version="test",
    )
    return [StoredEvent(seq, float(seq), e) for seq, e in enumerate([first, *events], start=1)]


def _completed_call(
    target: str | None, arguments: tuple[ArgumentDigest, ...] | None
) -> list[StoredEvent]:
    from kitaru.journal.events import CallCompleted, ValueRef

    started = CallStarted(
        position=0,
        identity="fetch",
        kind="checkpoint",
        name="fetch",
        call_id="c0",
        target=target,
        arguments=arguments,
    )
    done = CallCompleted(position=0, identity="fetch", call_id="c0", output=ValueRef(inline=b"1"))
    return _journal(started, done)


ALICE = (ArgumentDigest("name", "aaaa", "'alice'"),)
BOB = (ArgumentDigest("name", "bbbb", "'bob'"),)


class TestMatchingOnQualifiedIdentity:
    def test_another_function_with_the_same_short_name_diverges(self) -> None:
        """A recorded ``web:fetch`` is not matched by a call of ``db:fetch``."""
        state = fold("e", _completed_call("web:fetch", None))
        with pytest.raises(Exception, match=r"web\.fetch") as caught:
            match_call(state, 0, "fetch", "checkpoint", target="db:fetch")
        assert caught.value.expected == "checkpoint 'fetch' (web.fetch)"  # type: ignore[attr-defined]
        assert caught.value.actual == "checkpoint 'fetch' (db.fetch)"  # type: ignore[attr-defined]

    def test_a_record_without_a_qualified_name_matches_on_the_short_name(self) -> None:
        """Journals written before targets were recorded still replay."""
        state = fold("e", _completed_call(None, None))
        recorded = match_call(state, 0, "fetch", "checkpoint", target="db:fetch", arguments=BOB)
        assert recorded is not None
        assert recorded.identity == "fetch"


class TestMatchingOnArguments:
    def test_a_completed_call_with_another_argument_diverges_naming_it(self) -> None:
        """The divergence names the argument and both values, shortened."""
        state = fold("e", _completed_call("m:fetch", ALICE))
        with pytest.raises(Exception, match="name='alice'") as caught:
            match_call(state, 0, "fetch", "checkpoint", target="m:fetch", arguments=BOB)
        drift = caught.value.argument  # type: ignore[attr-defined]
        assert (drift.name, drift.recorded, drift.now) == ("name", "'alice'", "'bob'")

    def test_ignored_arguments_are_not_compared(self) -> None:
        """An argument listed in ignore_args may differ."""
        state = fold("e", _completed_call("m:fetch", ALICE))
        assert match_call(
            state, 0, "fetch", "checkpoint", target="m:fetch", arguments=BOB, ignored={"name"}
        )

    def test_an_interrupted_call_may_run_again_with_new_arguments(self) -> None:
        """Nothing recorded is reused for a call that never finished, so nothing diverges."""
        state = fold("e", _completed_call("m:fetch", ALICE)[:2])
        assert match_call(state, 0, "fetch", "checkpoint", target="m:fetch", arguments=BOB)

    def test_same_previews_show_the_digests(self) -> None:
        """Values too large to preview differ by digest, and the message shows both digests."""
        old = (ArgumentDigest("doc", "1111", "<str, 900 bytes encoded>"),)
        new = (ArgumentDigest("doc", "2222", "<str, 900 bytes encoded>"),)
        drift = argument_drift(old, new)
        assert drift is not None
        assert "1111" in drift.recorded
        assert "2222" in drift.now

    def test_an_unencodable_argument_is_compared_by_type(self) -> None:
        """An argument recorded by type matches an argument of the same type."""
        client = (ArgumentDigest("client", type_name="openai.OpenAI"),)
        other = (ArgumentDigest("client", type_name="httpx.Client"),)
        assert argument_drift(client, client) is None
        drift = argument_drift(client, other)
        assert drift is not None
        assert "openai.OpenAI" in drift.recorded


# -- crash reproductions in real processes ---------------------------------------------


def _resume(exec_id: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return kitaru("executions", "resume", exec_id, cwd=cwd, env=child_env(**env))


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


class TestSameNameInTwoModules:
    @pytest.mark.slow
    def test_swapped_calls_of_two_fetch_functions_diverge(self, elsewhere: Path) -> None:
        """``web.fetch`` and ``db.fetch`` swapped after a kill: a divergence, not swapped
        outputs."""
        first = run_flow("drift", "swapped", "k", env=child_env(DRIFT_KILL_AFTER="1"))
        assert first.returncode == KILLED, first.stderr
        exec_id = only_exec_id()
        recorded = _started_events(exec_id)
        assert [(e.name, e.target) for e in recorded] == [("fetch", "tests.flows.drift_web:fetch")]

        resumed = _resume(exec_id, elsewhere, DRIFT_SWAP="1")

        assert_clean_error(
            resumed,
            "position 0",
            "checkpoint 'fetch' (tests.flows.drift_web.fetch)",
            "checkpoint 'fetch' (tests.flows.drift_db.fetch)",
        )
        with pytest.raises(KitaruDivergenceError) as caught:
            FlowHandle(exec_id).get()
        assert caught.value.position == 0

    @pytest.mark.slow
    def test_unswapped_resume_completes(self, elsewhere: Path) -> None:
        """The same calls in the same order resume to the uninterrupted result."""
        first = run_flow("drift", "swapped", "k", env=child_env(DRIFT_KILL_AFTER="1"))
        assert first.returncode == KILLED, first.stderr
        resumed = _resume(only_exec_id(), elsewhere)
        assert resumed.returncode == 0, resumed.stderr
        assert KitaruClient().executions.get(only_exec_id()).result() == ["web:k", "db:k"]


NAMES = ["ada", "bob", "cyd", "dee", "eve", "fay"]


def _set_order(seed: int) -> list[str]:
    code = f"print(' '.join(set({NAMES!r})))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=child_env(PYTHONHASHSEED=str(seed)),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    return out.stdout.split()


def _seeds_with_different_first_names() -> tuple[str, str, list[str], list[str]]:
    first = _set_order(1)
    for seed in range(2, 60):
        order = _set_order(seed)
        if order[0] != first[0]:
            return "1", str(seed), first, order
    pytest.fail("no two hash seeds order the names differently")


class TestArgumentsThatChanged:
    @pytest.mark.slow
    def test_a_set_iterated_under_another_hash_seed_diverges_naming_the_argument(
        self, elsewhere: Path
    ) -> None:
        """``lookup(name)`` over a set, resumed under another PYTHONHASHSEED: a divergence that
        names the call, its position and the argument, not another name's record."""
        seed, other, order, resumed_order = _seeds_with_different_first_names()
        first = run_flow(
            "drift", "lookups", *NAMES, env=child_env(DRIFT_KILL_AFTER="2", PYTHONHASHSEED=seed)
        )
        assert first.returncode == KILLED, first.stderr
        exec_id = only_exec_id()
        rows = journal_rows(exec_id)

        resumed = _resume(exec_id, elsewhere, PYTHONHASHSEED=other)

        assert_clean_error(
            resumed,
            "checkpoint 'lookup'",
            "position 0",
            f"name='{order[0]}'",
            f"name='{resumed_order[0]}'",
            "ignore_args=",
        )
        assert journal_rows(exec_id)[: len(rows)] == rows
        with pytest.raises(KitaruDivergenceError) as caught:
            FlowHandle(exec_id).get()
        error = caught.value
        assert error.position == 0
        assert (error.argument, error.recorded_argument, error.current_argument) == (
            "name",
            repr(order[0]),
            repr(resumed_order[0]),
        )

    @pytest.mark.slow
    def test_the_same_hash_seed_resumes_to_every_name_s_own_record(self, elsewhere: Path) -> None:
        """Resumed under the same seed, each name gets its own record."""
        first = run_flow(
            "drift", "lookups", *NAMES, env=child_env(DRIFT_KILL_AFTER="2", PYTHONHASHSEED="3")
        )
        assert first.returncode == KILLED, first.stderr
        resumed = _resume(only_exec_id(), elsewhere, PYTHONHASHSEED="3")
        assert resumed.returncode == 0, resumed.stderr
        result = KitaruClient().executions.get(only_exec_id()).result()
        assert result == {name: f"record of {name}" for name in NAMES}


class TestEqualArgumentsUnderAnotherHashSeed:
    @pytest.mark.slow
    def test_an_equal_set_iterated_in_another_order_is_the_same_argument(
        self, elsewhere: Path
    ) -> None:
        """A set passed to a checkpoint, resumed under another PYTHONHASHSEED (so iterated,
        and encoded, in another order): no divergence, the recorded output is reused."""
        seed, other, _, _ = _seeds_with_different_first_names()
        first = run_flow(
            "drift", "tagged", *NAMES, env=child_env(DRIFT_KILL_AFTER="1", PYTHONHASHSEED=seed)
        )
        assert first.returncode == KILLED, first.stderr
        resumed = _resume(only_exec_id(), elsewhere, PYTHONHASHSEED=other)
        assert resumed.returncode == 0, resumed.stderr
        assert KitaruClient().executions.get(only_exec_id()).result() == [6, 7]


@checkpoint
def measure(items: Any) -> int:
    return len(items)


@flow
def measuring(items: Any) -> int:
    return measure(items).load()


class TestArgumentsOfEveryStoredKind:
    @pytest.mark.parametrize(
        "items",
        [
            {2**70, -(2**80), 3},
            {"cut \udc80 emoji", "plain"},
            frozenset({(2**65, "x\ud800"), (1, "y")}),
            [{2**90: "big key"}, "\udfff"],
        ],
    )
    def test_big_ints_and_lone_surrogates_are_digested_in_any_container(self, items: Any) -> None:
        """Arguments holding values stored as raw bytes (big ints, lone surrogates), in
        sets too, are digested, and the recorded call verifies against the code."""
        handle = measuring.run(items)
        assert handle.wait(timeout=TIMEOUT) == len(items)
        (started,) = _started_events(handle.exec_id)
        assert started.arguments is not None
        assert started.arguments[0].digest
        (report,) = KitaruClient().executions.verify(handle.exec_id)
        assert report.ok, report


class TestArgumentMutation:
    @pytest.mark.slow
    def test_a_mutating_body_gives_the_same_result_live_and_resumed(self, elsewhere: Path) -> None:
        """A checkpoint appending to the state it was given: the flow body sees the same thing
        whether or not the run was killed and resumed in between."""
        live = run_flow("drift", "notes", env=child_env())
        assert live.returncode == 0, live.stderr
        live_result = json.loads(live.stdout.strip().splitlines()[-1])

        killed = run_flow("drift", "notes", env=child_env(DRIFT_KILL_AFTER="1"))
        assert killed.returncode == KILLED, killed.stderr
        interrupted = [e.exec_id for e in KitaruClient().executions.list() if e.status == "running"]
        assert len(interrupted) == 1
        resumed = _resume(interrupted[0], elsewhere)
        assert resumed.returncode == 0, resumed.stderr
        resumed_result = KitaruClient().executions.get(interrupted[0]).result()

        assert resumed_result == live_result
        assert live_result == {"seen": [], "counts": [1, 1]}


# -- in this process -------------------------------------------------------------------


@dataclass
class Plan:
    """What the in-process flows do; tests change it between a run and its retry."""

    fail: bool = True
    now: str = "09:00"
    prompt: str = "hello"
    order: tuple[str, ...] = ("a", "b")
    seen: list[Any] = field(default_factory=list)


PLAN = Plan()


@pytest.fixture
def plan() -> Plan:
    return reset_plan(PLAN)


@checkpoint
def breaker() -> str:
    if PLAN.fail:
        raise RuntimeError("planned failure")
    return "fixed"


@checkpoint(ignore_args=("now",))
def stamped(x: int, now: str) -> str:
    return f"{x} at {now}"


@checkpoint
def strict(x: int, now: str) -> str:
    return f"{x} at {now}"


@flow
def stamping(lenient: bool) -> list[str]:
    step = stamped if lenient else strict
    return [step(1, PLAN.now).load(), breaker().load()]


def _make_a() -> Any:
    @checkpoint
    def step(x: int) -> str:
        return f"a:{x}"

    return step


def _make_b() -> Any:
    @checkpoint
    def step(x: int) -> str:
        return f"b:{x}"

    return step


FROM_A = _make_a()
FROM_B = _make_b()


class Greeter:
    def hello(self, who: str) -> str:
        return f"hello {who}"


class Shouter:
    def hello(self, who: str) -> str:
        return f"HELLO {who}"


GREETER = checkpoint(Greeter().hello)
SHOUTER = checkpoint(Shouter().hello)


def _doubler() -> Any:
    return checkpoint(lambda x: x * 2)


def _tripler() -> Any:
    return checkpoint(lambda x: x * 3)


DOUBLE = _doubler()
TRIPLE = _tripler()


def _first_failed_then_retried(run: Any, *args: Any) -> str:
    handle = run(*args)
    with pytest.raises(Exception, match="planned failure"):
        handle.wait(timeout=TIMEOUT)
    return str(handle.exec_id)


@flow
def ordered() -> list[str]:
    steps = {
        "a": FROM_A,
        "b": FROM_B,
        "greet": GREETER,
        "shout": SHOUTER,
        "double": DOUBLE,
        "triple": TRIPLE,
    }
    out = [str(steps[tag](1).load()) for tag in PLAN.order]
    return [*out, breaker().load()]


class TestNestedFunctionsMethodsAndLambdas:
    @pytest.mark.parametrize(
        ("order", "swapped", "expected", "actual"),
        [
            (("a", "b"), ("b", "a"), "_make_a.<locals>.step", "_make_b.<locals>.step"),
            (("greet",), ("shout",), "Greeter.hello", "Shouter.hello"),
            (("double",), ("triple",), "_doubler.<locals>.<lambda>", "_tripler.<locals>.<lambda>"),
        ],
        ids=["nested", "method", "lambda"],
    )
    def test_swapped_callables_with_the_same_name_diverge(
        self,
        plan: Plan,
        order: tuple[str, ...],
        swapped: tuple[str, ...],
        expected: str,
        actual: str,
    ) -> None:
        """Two callables with one short name, swapped before a retry, are told apart."""
        plan.order = order
        exec_id = _first_failed_then_retried(ordered.run)
        plan.order, plan.fail = swapped, False
        with pytest.raises(KitaruDivergenceError) as caught:
            KitaruClient().executions.retry(exec_id).wait(timeout=TIMEOUT)
        assert caught.value.position == 0
        assert expected in (caught.value.expected or "")
        assert actual in (caught.value.actual or "")
        assert caught.value.expected != caught.value.actual

    def test_the_qualified_names_are_recorded(self, plan: Plan) -> None:
        """Each CallStarted carries module:QualName of the function called."""
        plan.order, plan.fail = ("a", "greet", "double"), False
        ordered.run().wait(timeout=TIMEOUT)
        targets = [e.target for e in _started_events(only_exec_id())]
        here = __name__
        assert targets == [
            f"{here}:_make_a.<locals>.step",
            f"{here}:Greeter.hello",
            f"{here}:_doubler.<locals>.<lambda>",
            f"{here}:breaker",
        ]


class TestIgnoredArguments:
    def test_an_ignored_argument_may_change_before_a_retry(self, plan: Plan) -> None:
        """``ignore_args=("now",)``: the recorded output is reused although ``now`` changed."""
        exec_id = _first_failed_then_retried(stamping.run, True)
        plan.now, plan.fail = "10:30", False
        result = KitaruClient().executions.retry(exec_id).wait(timeout=TIMEOUT)
        assert result == ["1 at 09:00", "fixed"]

    def test_without_it_the_same_change_diverges(self, plan: Plan) -> None:
        """Strict by default: the changed argument is named, with both values."""
        exec_id = _first_failed_then_retried(stamping.run, False)
        plan.now, plan.fail = "10:30", False
        with pytest.raises(KitaruDivergenceError) as caught:
            KitaruClient().executions.retry(exec_id).wait(timeout=TIMEOUT)
        error = caught.value
        assert (error.argument, error.recorded_argument, error.current_argument) == (
            "now",
            "'09:00'",
            "'10:30'",
        )
        assert "checkpoint 'strict'" in str(error)
        assert "ignore_args" in str(error)

    def test_an_unknown_name_is_refused_at_decoration(self) -> None:
        """A misspelt ignore_args= name fails at once, listing the parameters."""
        with pytest.raises(KitaruUsageError, match=r"'nwo'.*x, now"):
            checkpoint(ignore_args=("nwo",))(strict.func)

    def test_a_bare_string_is_refused(self) -> None:
        """ignore_args="now" would ignore n, o and w; it is refused with the fix."""
        with pytest.raises(KitaruUsageError, match=r'ignore_args=\("now",\)'):
            checkpoint(ignore_args="now")(strict.func)


@flow
def asking() -> list[str]:
    import kitaru

    text = kitaru.llm(PLAN.prompt, model="openai/gpt-4o-mini", temperature=0.5).load()
    return [text, breaker().load()]


class TestFlowBodyModelCalls:
    def test_a_changed_prompt_diverges_naming_the_prompt(
        self, plan: Plan, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A flow-body llm() call is checked on its normalised prompt like an argument."""
        monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "mocked")
        exec_id = _first_failed_then_retried(asking.run)
        plan.prompt, plan.fail = "goodbye", False
        with pytest.raises(KitaruDivergenceError) as caught:
            KitaruClient().executions.retry(exec_id).wait(timeout=TIMEOUT)
        assert caught.value.argument == "prompt"
        assert caught.value.expected == "llm 'llm_1'"
        assert "hello" in (caught.value.recorded_argument or "")
        assert "goodbye" in (caught.value.current_argument or "")

    def test_the_same_prompt_replays_its_recorded_answer(
        self, plan: Plan, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Unchanged prompt and options: the retry reuses the recorded answer."""
        monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "first answer")
        exec_id = _first_failed_then_retried(asking.run)
        monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "second answer")
        plan.fail = False
        result = KitaruClient().executions.retry(exec_id).wait(timeout=TIMEOUT)
        assert result == ["first answer", "fixed"]


class Client:
    """Stands for an SDK client: it holds a lock (as a connection pool does), so it cannot
    be stored, and its identity matters."""

    def __init__(self) -> None:
        self.calls = 0
        self._pool_lock = threading.Lock()


@checkpoint
def use_client(client: Client, x: int) -> int:
    client.calls += 1
    PLAN.seen.append(client)
    return x + client.calls


@dataclass
class Box:
    items: list[int] = field(default_factory=list)


@checkpoint(retries=1)
def fill(box: Box) -> int:
    box.items.append(len(box.items))
    if len(box.items) == 1 and PLAN.fail:
        PLAN.fail = False
        raise RuntimeError("first attempt fails")
    return len(box.items)


@flow
def with_client(n: int) -> list[int]:
    client = Client()
    out = [use_client(client, n).load(), use_client(client, n).load()]
    return [*out, client.calls]


@flow
def filling() -> list[Any]:
    box = Box()
    return [fill(box).load(), box.items]


class TestArgumentsThatCannotBeEncoded:
    def test_a_client_is_shared_and_recorded_by_type(self, plan: Plan) -> None:
        """An unencodable argument reaches the body as the same object, recorded by type."""
        result = with_client.run(5).wait(timeout=TIMEOUT)
        assert result == [6, 7, 2]
        assert plan.seen[0] is plan.seen[1]
        (first, _) = _started_events(only_exec_id())
        assert first.arguments is not None
        client, x = first.arguments
        assert client == ArgumentDigest("client", type_name=f"{__name__}.Client")
        assert x.name == "x"
        assert x.digest is not None
        assert x.preview == "5"


class TestCopiesPerAttempt:
    def test_a_retried_attempt_starts_from_the_arguments_as_given(self, plan: Plan) -> None:
        """The failed attempt's mutation does not leak into the next attempt or the flow."""
        assert filling.run().wait(timeout=TIMEOUT) == [1, []]


class TestRecordedDigests:
    def test_an_output_handle_is_digested_by_the_call_that_produced_it(self, plan: Plan) -> None:
        """A handle passed on is recorded as the output of its call, not by its value."""
        plan.order, plan.fail = ("a",), False

        @flow
        def chained() -> str:
            first = FROM_A(1)
            return str(FROM_B(first).load())

        assert chained.run().wait(timeout=TIMEOUT) == "b:a:1"
        second = _started_events(only_exec_id())[1]
        assert second.arguments is not None
        assert second.arguments[0].preview == "<output of checkpoint 'step'>"
        assert second.inputs_from == ("step",)

    def test_large_arguments_are_previewed_by_size(self, plan: Plan) -> None:
        """A megabyte argument is recorded by digest and size, not by its repr."""

        @flow
        def big() -> str:
            return str(FROM_A("x" * 1_000_000).load())[:3]

        assert big.run().wait(timeout=TIMEOUT) == "a:x"
        (started, *_) = _started_events(only_exec_id())
        assert started.arguments is not None
        assert started.arguments[0].preview == "<str, 1000005 bytes encoded>"
        assert len(msgspec.msgpack.encode(started)) < 300


def test_golden_journals_carry_no_qualified_names() -> None:
    """The golden journals predate qualified names, so their replay tests the fallback."""
    golden = REPO / "tests" / "golden" / "completed_v1.journal"
    with sqlite3.connect(golden) as conn:
        bodies = conn.execute("SELECT body FROM events WHERE type = 'call_started'").fetchall()
    for (body,) in bodies:
        event = decode_event("call_started", bytes(body))
        assert isinstance(event, CallStarted)
        assert event.target is None
        assert event.arguments is None
