"""Recovery, proven over generated flows and generated crashes.

A generated flow (``strategies.flows``: sequences, ``submit`` and ``map`` fan-outs of
counted checkpoints, flow-body and in-checkpoint model calls against a fake provider
that counts requests, checkpoints that fail and are retried, answered waits) runs
once without crashes, and once more while its processes die at generated points
(``strategies.crash_plans``): before any journal append, half-way through one (its
transaction open), inside a checkpoint body, or with a model request in flight. Each
death is followed by a resume from a new process, until the execution completes.

The properties, checked after every process (``prop_flows.harness.check_books``):

- the result equals the run that never crashed (bodies that mutate the state they are
  given included: they get copies, live and resumed alike);
- per call, the bodies entered equal the attempts the journal records as ended, plus
  at most the one attempt a death interrupted; a call recorded as finished never
  runs again;
- the provider gets one request per recorded flow-body model call, plus at most the
  one a death interrupted, and none once the call is recorded;
- an uncommitted append leaves nothing, a dead process leaves a stale lease, and
  ``kitaru store check`` passes.

Deaths are simulated in this process (many examples) and real in child processes
(``os._exit`` at the same points, SIGKILL at random moments from outside).

Generated drift (``strategies.drifts``: a changed argument, or the same-named
checkpoint of another module at one step) must be reported as a divergence wherever
the journal's record of that call would otherwise be reused.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, TIMEOUT, assert_clean_error, child_env, kitaru, only_exec_id
from hypothesis import assume, event, given
from hypothesis import strategies as st
from prop_flows import interpreter
from prop_flows.async_interpreter import interpret_async
from prop_flows.children import ChildDriver
from prop_flows.crashing import CrashPoint, MortalPostgresStore, MortalStore
from prop_flows.harness import (
    Driver,
    EchoProvider,
    Journey,
    check_books,
    check_clean_run,
)
from store_backends import StoreBackend
from strategies import costly, crash_plans, crash_points, drifts, flows, kill_delays

from kitaru import KitaruDivergenceError
from kitaru.client import ExecutionsClient
from kitaru.journal.postgres import PostgresStore
from kitaru.journal.sqlite import SqliteStore
from kitaru.replay.planning import selectable_calls
from kitaru.replay.state import fold

KEY = "sk-test-recovery-properties"
ASYNC_MODULE = "tests.prop_flows.async_interpreter"


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[EchoProvider]:
    """The echo provider every model call of the generated flows goes to."""
    server = EchoProvider().start()
    try:
        server.point_providers_here(monkeypatch)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        yield server
    finally:
        server.stop()


class Examples:
    """A fresh folder (journal, side-effect files) for each Hypothesis example."""

    def __init__(self, root: Path):
        self.root = root
        self.count = 0

    def new(self) -> Path:
        self.count += 1
        folder = self.root / f"example-{self.count}"
        folder.mkdir()
        return folder


@pytest.fixture
def examples(tmp_path: Path) -> Examples:
    return Examples(tmp_path)


_CLEAN_RUNS: dict[str, Journey] = {}
"""The clean run by flow (its steps as JSON), for this test process.

A flow's clean result depends on its steps alone (a property checked by every crashed
run that must reach it), and the backends' runs of a property draw the same flows, as
do the torn-append cases: each flow's clean run is made and checked once."""


def reference(
    folder: Path, steps: list[list[Any]], provider: EchoProvider, *, asynchronous: bool = False
) -> Journey:
    """The flow run without crashes (waits answered), checked for its clean accounting;
    made once per flow in this process (``_CLEAN_RUNS``). ``asynchronous``: the same
    steps written as an ``async def`` flow with awaits and gathers.

    Always on SQLite: the result a crashed run must reach, whatever its backend.
    """
    key = json.dumps([steps, asynchronous])
    if key not in _CLEAN_RUNS:
        name = "async-reference" if asynchronous else "reference"
        program = interpret_async if asynchronous else interpreter.interpret
        driver = Driver(folder / f"{name}.db", provider, program=program)
        try:
            journey = driver.drive(steps, folder / f"{name}.log", [])
        finally:
            driver.close()
        check_clean_run(steps, journey)
        check_books(steps, journey, folder / f"{name}.db")
        _CLEAN_RUNS[key] = journey
    return _CLEAN_RUNS[key]


def journal_at(backend: StoreBackend, folder: Path, name: str) -> str:
    """A fresh store of ``backend`` for one journal of an example."""
    place = folder / name
    place.mkdir()
    return backend.location(place)


def note_deaths(journey: Journey) -> None:
    """Tell Hypothesis's statistics where processes died (``--hypothesis-show-statistics``)."""
    deaths = [ledger.died_at for ledger in journey.ledgers if ledger.died_at]
    event("processes that died", len(deaths))
    for where in deaths:
        event("died", re.sub(r"\d+(\.\d+)?", "N", where.split(" (")[0].split(" of ")[0]))


class TestCrashesInThisProcess:
    # On the class: a decorator on the test would change the examples derandomized
    # Hypothesis draws (they are keyed on the test function's source).
    pytestmark = pytest.mark.slow

    @costly(1.0)
    @given(steps=flows(), plan=crash_plans())
    def test_any_crashes_resume_to_the_result_of_a_clean_run(
        self,
        provider: EchoProvider,
        examples: Examples,
        store_backend: StoreBackend,
        steps: list[list[Any]],
        plan: list[CrashPoint],
    ) -> None:
        """Processes dying at generated points lose nothing recorded and reach the same result."""
        folder = examples.new()
        clean = reference(folder, steps, provider)
        journal = journal_at(store_backend, folder, "crashed")
        driver = Driver(journal, provider)
        try:
            crashed = driver.drive(steps, folder / "crashed.log", plan)
        finally:
            driver.close()
        assert crashed.result == clean.result
        check_books(steps, crashed, journal)
        note_deaths(crashed)


class TestReplaysThroughCrashes:
    # On the class: a decorator on the test would change the examples derandomized
    # Hypothesis draws (they are keyed on the test function's source).
    pytestmark = pytest.mark.slow

    @costly(0.5)
    @given(steps=flows(), pick=st.integers(0, 10_000), plan=crash_plans())
    def test_a_replay_that_crashes_reaches_the_result_of_a_clean_replay(
        self,
        *,
        provider: EchoProvider,
        examples: Examples,
        store_backend: StoreBackend,
        steps: list[list[Any]],
        pick: int,
        plan: list[CrashPoint],
    ) -> None:
        """A replay from any call, crashed anywhere and resumed, equals the same replay run
        cleanly; what it reuses from its source never runs."""
        folder = examples.new()
        journal = journal_at(store_backend, folder, "journal")
        driver = Driver(journal, provider)
        try:
            source = driver.drive(steps, folder / "source.log", [])
            state = fold(source.exec_id, driver.observer.read_events(source.exec_id))
            calls = selectable_calls(state)
            assume(calls)
            chosen = calls[pick % len(calls)]
            replay = (source.exec_id, chosen.call_id)
            clean = driver.drive(steps, folder / "clean.log", [], replay=replay)
            crashed = driver.drive(steps, folder / "crashed.log", plan, replay=replay)
        finally:
            driver.close()
        assert crashed.result == clean.result
        check_books(steps, clean, journal)
        check_books(steps, crashed, journal)
        reused = {c.identity for c in calls if c.position < chosen.position}
        reused &= {c.identity for c in calls if c.status == "completed"}
        for journey in (clean, crashed):
            final = journey.ledgers[-1]
            assert reused <= final.reused
            assert not {key for key in reused if final.effects[key]}, "a reused call ran"
            assert not {key for key in reused if final.asked[key]}, "a reused model call was sent"
        note_deaths(crashed)


class TestDriftedCodeIsNeverGivenARecordedOutput:
    # On the class: a decorator on the test would change the examples derandomized
    # Hypothesis draws (they are keyed on the test function's source).
    pytestmark = pytest.mark.slow

    @costly(0.5)
    @given(data=st.data(), steps=flows(waits=False), point=crash_points())
    def test_a_drifted_call_diverges_exactly_where_its_record_would_be_reused(
        self,
        *,
        provider: EchoProvider,
        examples: Examples,
        store_backend: StoreBackend,
        data: st.DataObject,
        steps: list[list[Any]],
        point: CrashPoint,
    ) -> None:
        """Code changed at one step (another argument value, or the same-named checkpoint of
        another module): checking the completed run diverges at that call; resuming a
        crashed run diverges there if the journal holds that call's outcome (for another
        function: holds the call at all), and otherwise completes."""
        drift = drifts(steps)
        assume(drift is not None)
        assert drift is not None
        key, how = data.draw(drift, label="drift")
        folder = examples.new()
        driver = Driver(journal_at(store_backend, folder, "journal"), provider)
        try:
            clean = driver.drive(steps, folder / "clean.log", [])
            crashed = driver.drive(steps, folder / "crashed.log", [point], segments=1)
            interpreter.DRIFT[key] = how
            try:
                self._check_verify(driver, clean.exec_id, key, how)
                if crashed.exec_id:
                    self._check_resume(driver, crashed.exec_id, key, how)
            finally:
                interpreter.DRIFT.clear()
        finally:
            driver.close()
        event("drift", how)

    @staticmethod
    def _check_verify(driver: Driver, exec_id: str, key: str, how: str) -> None:
        state = fold(exec_id, driver.observer.read_events(exec_id))
        (found,) = ExecutionsClient(driver.observer).verify(exec_id)
        assert found.outcome == "diverged", found
        assert found.position == state.calls[key].position
        if how == "value":
            assert found.argument == "value"
        else:
            assert found.expected != found.actual
            assert "twins.work" in f"{found.expected} {found.actual}"

    @staticmethod
    def _check_resume(driver: Driver, exec_id: str, key: str, how: str) -> None:
        state = fold(exec_id, driver.observer.read_events(exec_id))
        if state.status != "running":
            return  # the process finished before its crash point: nothing to resume
        recorded = state.calls.get(key)
        reused = recorded is not None and (how == "module" or recorded.status == "completed")
        event("drifted call recorded before the resume", reused)
        outcome = driver.resume_once(exec_id)
        if reused:
            assert recorded is not None
            assert isinstance(outcome.error, KitaruDivergenceError), outcome
            assert outcome.error.position == recorded.position
        else:
            assert outcome.error is None, outcome.error


class TestRealProcessDeaths:
    # On the class: a decorator on the test would change the examples derandomized
    # Hypothesis draws (they are keyed on the test function's source).
    pytestmark = pytest.mark.slow

    @costly(0.1)
    @given(steps=flows(min_steps=2, max_steps=5), plan=crash_plans(max_size=3, latest=4))
    def test_child_processes_dying_at_the_same_points_resume_to_the_same_result(
        self,
        provider: EchoProvider,
        examples: Examples,
        store_backend: StoreBackend,
        steps: list[list[Any]],
        plan: list[CrashPoint],
    ) -> None:
        """Real processes dying at generated points (os._exit, SIGKILL) keep the books too."""
        folder = examples.new()
        clean = reference(folder, steps, provider)
        elsewhere = folder / "elsewhere"
        elsewhere.mkdir()
        journal = journal_at(store_backend, folder, "crashed")
        driver = ChildDriver(journal, provider, elsewhere)
        try:
            crashed = driver.drive(steps, folder / "crashed.log", list(plan))
        finally:
            driver.close()
        assert crashed.result == clean.result
        check_books(steps, crashed, journal)
        note_deaths(crashed)

    @costly(0.1)
    @given(steps=flows(min_steps=2, max_steps=5), delays=kill_delays(longest=1.5))
    def test_sigkill_at_random_moments_then_resume_elsewhere_reaches_the_same_result(
        self,
        *,
        provider: EchoProvider,
        examples: Examples,
        store_backend: StoreBackend,
        steps: list[list[Any]],
        delays: list[float],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A generated flow SIGKILLed again and again, resumed each time by `kitaru
        executions resume` from another folder, completes with the clean run's result."""
        monkeypatch.setenv("PROP_PAUSE", "0.03")  # bodies take time: kills land inside them
        provider.delay = 0.03  # and inside model requests
        folder = examples.new()
        clean = reference(folder, steps, provider)
        elsewhere = folder / "elsewhere"
        elsewhere.mkdir()
        journal = journal_at(store_backend, folder, "killed")
        driver = ChildDriver(journal, provider, elsewhere)
        try:
            killed = driver.drive(steps, folder / "killed.log", list(delays))
        finally:
            driver.close()
            provider.delay = 0.0
        assert killed.result == clean.result
        check_books(steps, killed, journal)
        note_deaths(killed)


# A sequential flow has a fixed order of appends, so a process that dies half-way
# through its k-th append must leave exactly what one dying just before it leaves.
SEQUENTIAL = [
    ["work", "s0", 1, 0, 0.0],
    ["work", "s1", 2, 1, 0.0],
    ["ask", "s2"],
    ["doomed", "s3"],
    ["llm", "s4"],
    ["work", "s5", 3, 0, 0.0],
]
TORN_APPENDS = {
    1: "the start",
    3: "a failed attempt",
    5: "a checkpoint with its model call",
    7: "a final failure",
    8: "a flow-body model call",
    10: "the completion",
}
"""Appends of SEQUENTIAL: 1 start, 2 s0, 3-4 s1 (failed, completed), 5 s2, 6-7 s3
(failed twice), 8 s4, 9 s5, 10 the execution's completion."""


class TestTornAppendInARealProcess:
    # On the class: a decorator on the test would change the examples derandomized
    # Hypothesis draws (they are keyed on the test function's source).
    pytestmark = pytest.mark.slow

    @pytest.mark.parametrize("k", TORN_APPENDS, ids=TORN_APPENDS.values())
    def test_a_process_dying_with_its_transaction_open_leaves_nothing_of_it(
        self, provider: EchoProvider, examples: Examples, store_backend: StoreBackend, k: int
    ) -> None:
        """os._exit after the inserts, before COMMIT: as if the append had never begun."""
        folder = examples.new()
        clean = reference(folder, SEQUENTIAL, provider)
        elsewhere = folder / "elsewhere"
        elsewhere.mkdir()
        journeys = {}
        for kind in ("torn", "append"):
            journal = journal_at(store_backend, folder, kind)
            # The appends are numbered as TORN_APPENDS says only if no call's start is
            # written on its own, which a call slower than FLUSH_AFTER on a busy
            # machine would do in one of the two runs and not the other.
            driver = ChildDriver(journal, provider, elsewhere, env={"PROP_FLUSH_AFTER": "3600"})
            try:
                journeys[kind] = driver.drive(
                    SEQUENTIAL, folder / f"{kind}.log", [CrashPoint(kind, k)]
                )
            finally:
                driver.close()
            assert journeys[kind].result == clean.result
            check_books(SEQUENTIAL, journeys[kind], journal)
        torn, cut = journeys["torn"].ledgers[1], journeys["append"].ledgers[1]
        assert torn.died_at is not None
        assert cut.died_at is not None
        assert torn.events == cut.events


class TestFlowRetriesAcrossACrash:
    # SQLite only: what it proves is the runtime's retry budget (the journal's record of
    # failed passes), which no backend changes; it finds its execution in the default
    # journal (helpers.only_exec_id), and the properties above cover both backends.
    # On the class: a decorator on the test would change the examples derandomized
    # Hypothesis draws (they are keyed on the test function's source).
    pytestmark = pytest.mark.slow

    @pytest.mark.parametrize("kill_pass", [0, 2])
    def test_a_crash_does_not_give_the_flow_a_fresh_retry_budget(
        self, tmp_path: Path, kill_pass: int
    ) -> None:
        """``@flow(retries=1)``: the body fails twice in all, whether or not a crash came
        between; only a retry by hand gives it a new budget."""
        log = tmp_path / "passes.log"
        command = [sys.executable, "-m", "tests.prop_flows.retried", str(log), str(kill_pass)]
        first = subprocess.run(
            command,
            cwd=REPO,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        exec_id = only_exec_id()
        if kill_pass:
            assert first.returncode == -signal.SIGKILL, first.stderr
            resumed = kitaru("executions", "resume", exec_id, cwd=tmp_path)
            assert_clean_error(resumed, "failed: RuntimeError: pass 3 fails")
        else:
            assert first.returncode == 1, first.stderr
        passes = log.read_text().split()
        failed = len(passes) - (1 if kill_pass else 0)
        assert failed == 2, passes
        retried = kitaru("executions", "retry", exec_id, cwd=tmp_path)
        assert_clean_error(retried, "fails")
        assert len(log.read_text().split()) == len(passes) + 2


_STORE_READS = {
    "list_workers",
    "will_run",
    "wait_for_work",
    "read_events",
    "stream_events",
    "read_event_ranges",
    "read_payload",
    "get_execution",
    "call_page",
    "call_rows",
    "find_executions",
    "list_executions",
    "find_cached",
    "wait_inputs",
    "cancel_requested",
    "wait_for_mail",
    "check_storage",
    "structural_problems",
    "all_exec_ids",
    "all_payloads",
    "get_lease",
    "live_lease",
    "read_memory",
    "memory_row",
    "memory_history",
    "memory_latest",
    "close",
}


@pytest.mark.parametrize(
    ("real", "mortal"),
    [(SqliteStore, MortalStore), (PostgresStore, MortalPostgresStore)],
    ids=["sqlite", "postgresql"],
)
def test_a_simulated_death_guards_every_write_of_the_store(real: type, mortal: type) -> None:
    """A mortal store refuses every write of its backend after death, so the simulation
    stays honest as the store grows: a new store method must be listed as a read or
    guarded there."""
    methods = {
        name for name, value in vars(real).items() if callable(value) and not name.startswith("_")
    }
    guarded = {name for klass in mortal.__mro__[:2] for name in vars(klass) if name in methods}
    assert methods - _STORE_READS - guarded == set()


def async_reference(folder: Path, steps: list[list[Any]], provider: EchoProvider) -> Journey:
    """The async flow's clean run; it must also reach the sync flow's result."""
    return reference(folder, steps, provider, asynchronous=True)


class TestAsyncFlowsThroughCrashes:
    """Generated flows run by an ``async def`` flow (``prop_flows.async_interpreter``):
    awaited checkpoints, ``asyncio.gather`` fan-outs finishing out of order, a task
    cancelled beside every fan-out, ``llm_async`` and ``wait_async``. Crashed anywhere,
    resumed, they keep the same books and reach the same result as a clean run."""

    # On the class: a decorator on the test would change the examples derandomized
    # Hypothesis draws (they are keyed on the test function's source).
    pytestmark = pytest.mark.slow

    @costly(0.5)
    @given(steps=flows(), plan=crash_plans())
    def test_async_flows_crashed_anywhere_resume_to_the_result_of_a_clean_run(
        self,
        provider: EchoProvider,
        examples: Examples,
        steps: list[list[Any]],
        plan: list[CrashPoint],
    ) -> None:
        """Simulated deaths at generated points of an async flow lose nothing recorded; the
        result equals the clean async run's, which equals the sync flow's."""
        folder = examples.new()
        clean = async_reference(folder, steps, provider)
        assert clean.result == reference(folder, steps, provider).result
        journal = folder / "crashed.db"
        driver = Driver(journal, provider, program=interpret_async)
        try:
            crashed = driver.drive(steps, folder / "crashed.log", plan)
        finally:
            driver.close()
        assert crashed.result == clean.result
        check_books(steps, crashed, journal)
        note_deaths(crashed)

    @costly(0.1)
    @given(steps=flows(min_steps=2, max_steps=5), delays=kill_delays(longest=1.5))
    def test_async_flows_sigkilled_mid_await_resume_elsewhere_to_the_same_result(
        self,
        *,
        provider: EchoProvider,
        examples: Examples,
        steps: list[list[Any]],
        delays: list[float],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """An async flow SIGKILLed again and again (inside awaited bodies and model
        requests), resumed by `kitaru executions resume`, completes with the clean result."""
        monkeypatch.setenv("PROP_PAUSE", "0.03")
        provider.delay = 0.03
        folder = examples.new()
        clean = async_reference(folder, steps, provider)
        elsewhere = folder / "elsewhere"
        elsewhere.mkdir()
        journal = folder / "killed.db"
        driver = ChildDriver(journal, provider, elsewhere, module=ASYNC_MODULE)
        try:
            killed = driver.drive(steps, folder / "killed.log", list(delays))
        finally:
            driver.close()
            provider.delay = 0.0
        assert killed.result == clean.result
        check_books(steps, killed, journal)
        note_deaths(killed)

    @costly(0.1)
    @given(steps=flows(min_steps=2, max_steps=5), plan=crash_plans(max_size=3, latest=4))
    def test_async_child_processes_dying_at_generated_points_resume_to_the_same_result(
        self,
        provider: EchoProvider,
        examples: Examples,
        store_backend: StoreBackend,
        steps: list[list[Any]],
        plan: list[CrashPoint],
    ) -> None:
        """Real processes running an async flow die at generated points (os._exit in an
        append or a body, SIGKILL during a model request) and keep the books, on every
        store backend."""
        folder = examples.new()
        clean = async_reference(folder, steps, provider)
        elsewhere = folder / "elsewhere"
        elsewhere.mkdir()
        journal = journal_at(store_backend, folder, "crashed")
        driver = ChildDriver(journal, provider, elsewhere, module=ASYNC_MODULE)
        try:
            crashed = driver.drive(steps, folder / "crashed.log", list(plan))
        finally:
            driver.close()
        assert crashed.result == clean.result
        check_books(steps, crashed, journal)
        note_deaths(crashed)
