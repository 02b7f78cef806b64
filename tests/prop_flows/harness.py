"""Drive a generated flow through crashes and resumes in this process, and keep books.

:class:`Driver` runs one execution of the interpreter flow as a series of simulated
processes ("segments"): each gets a fresh :class:`~crashing.MortalStore` and dies at
its crash point (if it reaches it); the next one resumes. Waits are answered between
segments, as a person would. After every segment the driver quiesces the dead
process's threads and takes a :class:`Ledger` of the world: side effects, provider
requests and what the journal records, read by an outside observer.

:func:`check_books` then checks the exact accounting every crash must respect.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_server import FakeLLMServer, RecordedRequest

import kitaru._stores
from kitaru._config import store_url
from kitaru._flow_handle import FlowHandle
from kitaru._store_check import check_store
from kitaru._stores import new_store
from kitaru.client import ExecutionsClient
from kitaru.journal.events import (
    CallCompleted,
    CallFailed,
    CallStartedAndCompleted,
    LlmCallRecorded,
)
from kitaru.journal.store import Store
from kitaru.replay.state import fold
from kitaru.runtime.locate import flow_ref
from kitaru.runtime.runner import (
    Outcome,
    Run,
    replay_execution,
    resume_execution,
    start_execution,
)

from . import crashing
from .crashing import CrashPoint, Mortal, SimulatedDeath
from .interpreter import answer_for, interpret, prompt_key, side_effects

__all__ = [
    "Driver",
    "EchoProvider",
    "Journey",
    "Ledger",
    "answer_waits",
    "check_books",
    "check_clean_run",
    "flow_keys",
    "take_ledger",
]


def last_content(request: RecordedRequest) -> str:
    try:
        return str(request.body["messages"][-1]["content"])
    except (KeyError, IndexError, TypeError):
        return ""


class EchoProvider(FakeLLMServer):
    """The fake provider, answering ``re: <last message>`` so answers are deterministic.

    ``on_request`` runs in the server thread for every request, before it is answered;
    ``delay`` holds every answer back that many seconds.
    """

    def __init__(self) -> None:
        super().__init__()
        self.on_request: Callable[[], None] | None = None
        self.delay = 0.0
        # A client killed mid-request leaves a broken socket behind: not worth a traceback.
        self._httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]

    def _record(self, request: RecordedRequest) -> Any:
        reply = super()._record(request)
        hook = self.on_request
        if hook is not None:
            hook()
        if self.delay:
            time.sleep(self.delay)
        return dataclasses.replace(reply, text=f"re: {last_content(request)}")

    def asked(self, since: int = 0) -> Counter[str]:
        """Requests after the first ``since``, counted by the key of their prompt."""
        return Counter(prompt_key(last_content(r)) for r in self.requests[since:])


@dataclass(frozen=True)
class FlowKeys:
    """The durable calls a generated flow makes, by kind, and what a clean run costs."""

    checkpoints: dict[str, int]
    """Checkpoint key -> how many times a run without crashes enters its body."""
    llm: list[str]
    """Flow-body ``kitaru.llm()`` boundaries."""
    asks: list[str]
    """Checkpoints that make a model call inside."""
    waits: list[str]


def flow_keys(steps: list[list[Any]]) -> FlowKeys:
    from .interpreter import DOOMED_RETRIES

    checkpoints: dict[str, int] = {}
    llm: list[str] = []
    asks: list[str] = []
    waits: list[str] = []
    for step in steps:
        kind = step[0]
        if kind == "work":
            checkpoints[step[1]] = step[3] + 1
        elif kind == "submit":
            checkpoints.update({key: fails + 1 for key, _, fails, _ in step[1]})
        elif kind == "map":
            checkpoints.update(dict.fromkeys(step[1], 1))
        elif kind == "ask":
            checkpoints[step[1]] = 1
            asks.append(step[1])
        elif kind == "doomed":
            checkpoints[step[1]] = DOOMED_RETRIES + 1
        elif kind in ("twin", "jot"):
            checkpoints[step[1]] = 1
        elif kind == "llm":
            llm.append(step[1])
        elif kind == "wait":
            waits.append(step[1])
    return FlowKeys(checkpoints, llm, asks, waits)


@dataclass
class Ledger:
    """The world after one segment, as an outside observer sees it."""

    died_at: str | None
    """Where the segment's process died; None if it ran to its end (or to a wait)."""
    effects: Counter[str]
    """Checkpoint bodies entered so far, by key."""
    asked: Counter[str]
    """Provider requests so far, by prompt key."""
    ended: Counter[str] = field(default_factory=Counter)
    """Attempts the journal records as ended (completed or failed), by call identity."""
    finished: set[str] = field(default_factory=set)
    """Calls the journal records as completed, or failed for good."""
    llm_children: Counter[str] = field(default_factory=Counter)
    """Model calls recorded inside each checkpoint."""
    status: str | None = None
    events: list[str] = field(default_factory=list)
    """The journal's event types, in seq order."""
    reused: set[str] = field(default_factory=set)
    """Calls a replay took from its source (or an override) without running them."""


def take_ledger(
    observer: Store,
    exec_id: str | None,
    *,
    died_at: str | None,
    log: Path,
    provider: EchoProvider,
    since: int,
) -> Ledger:
    """What the world looks like now: side effects, requests since ``since``, the journal."""
    ledger = Ledger(died_at=died_at, effects=side_effects(log), asked=provider.asked(since))
    if exec_id is None:
        return ledger
    events = observer.read_events(exec_id)
    ledger.events = [type(stored.event).__name__ for stored in events]
    for stored in events:
        event = stored.event
        if isinstance(event, CallCompleted | CallStartedAndCompleted):
            ledger.finished.add(event.identity)
            if event.reused_from is not None or event.overridden:
                ledger.reused.add(event.identity)
            else:
                ledger.ended[event.identity] += 1
        elif isinstance(event, CallFailed):
            ledger.ended[event.identity] += 1
            if event.final:
                ledger.finished.add(event.identity)
        elif isinstance(event, LlmCallRecorded) and event.parent is not None:
            ledger.llm_children[event.parent] += 1
    ledger.status = fold(exec_id, events).status
    return ledger


def answer_waits(observer: Store, exec_id: str) -> None:
    """Answer every wait the execution is paused at, as a person would."""
    state = fold(exec_id, observer.read_events(exec_id))
    posted = observer.wait_inputs(exec_id)
    client = ExecutionsClient(observer)
    for identity in state.pending_waits:
        if identity not in posted:
            client.input(exec_id, wait=identity, value=answer_for(identity))


@dataclass
class Journey:
    """One execution driven to its end through crashes."""

    exec_id: str
    result: Any
    ledgers: list[Ledger]


class Driver:
    """Runs executions of the interpreter flow in segments against one journal store.

    ``location`` is the store's URL (or a journal file); ``die`` is what a process's
    death does to the liveness tokens its store holds (``StoreBackend.die``).
    """

    def __init__(
        self,
        location: str | Path,
        provider: EchoProvider,
        *,
        max_segments: int = 40,
        program: Any = interpret,
    ):
        self.url = store_url(str(location))
        self.program = program
        """The flow that runs the steps: ``interpret`` or ``async_interpreter.interpret_async``."""
        self.provider = provider
        self.max_segments = max_segments
        self.observer = new_store(self.url)

    def close(self) -> None:
        self.observer.close()

    @contextmanager
    def _process(
        self, mortal: Mortal
    ) -> Iterator[crashing.MortalStore | crashing.MortalPostgresStore]:
        """Make ``mortal`` the process that owns the journal while the block runs."""
        url = self.url
        previous = kitaru._stores._stores.get(url)
        previous_env = os.environ.get("KITARU_STORE")
        os.environ["KITARU_STORE"] = url
        store = crashing.install(url, mortal)

        def on_request() -> None:
            try:
                if mortal.due("llm"):
                    mortal.kill("while a model request was in flight")
            except SimulatedDeath:
                pass  # a request from a thread of an already dead process

        self.provider.on_request = on_request
        try:
            yield store
        finally:
            self.provider.on_request = None
            crashing.current = None
            if mortal.dead:
                store.bury()
            store.close()
            if previous_env is None:
                os.environ.pop("KITARU_STORE", None)
            else:
                os.environ["KITARU_STORE"] = previous_env
            if previous is None:
                kitaru._stores._stores.pop(url, None)
            else:
                kitaru._stores._stores[url] = previous

    def drive(
        self,
        steps: list[list[Any]],
        log: Path,
        plan: list[CrashPoint],
        *,
        replay: tuple[str, str] | None = None,
        segments: int | None = None,
    ) -> Journey:
        """Start the flow, die at each point of ``plan`` in turn, resume until it ends.

        With ``replay=(source execution, selector)`` the execution is a replay of the
        source from that call (``interpret.replay(source, from_=selector)``). With
        ``segments``, stop after that many processes, ended or not (the journey's result
        is then None, and its ``exec_id`` empty if no execution was started).
        """
        since = self.provider.count
        known = {row.exec_id for row in self.observer.list_executions()}
        points = list(plan)
        exec_id: str | None = None
        ledgers = [Ledger(None, Counter(), Counter())]
        for segment in range(self.max_segments):
            if segments is not None and segment == segments:
                return Journey(exec_id or "", None, ledgers)
            mortal = Mortal(points.pop(0) if points else None)
            run: Run | None = None
            with self._process(mortal) as store:
                try:
                    if exec_id is None and replay is not None:
                        run = replay_execution(
                            self.program,
                            replay[0],
                            from_=replay[1],
                            overrides=None,
                            flow_inputs={"log": str(log)},
                            registry=None,
                            background=False,
                            store=store,
                        )
                        exec_id = run.exec_id
                    elif exec_id is None:
                        run = start_execution(
                            self.program,
                            flow_ref(self.program.func),
                            (steps, str(log)),
                            {},
                            retries=0,
                            background=False,
                        )
                        exec_id = run.exec_id
                    else:
                        run = resume_execution(
                            exec_id, mode="resume", background=False, store=store
                        )
                    outcome = run.drive()
                    assert not mortal.dead, f"a dead process ran on: {mortal.died_at}"
                    if outcome.error is not None:
                        raise AssertionError(f"the execution failed: {outcome.error!r}")
                except SimulatedDeath:
                    assert mortal.dead
                finally:
                    if run is not None:
                        run.ctx.drain()  # the dead process's threads end before anyone looks
            if exec_id is None:
                # Death before the start was recorded: nothing exists, the user starts again.
                started = {row.exec_id for row in self.observer.list_executions()} - known
                assert not started, "a dead start left an execution"
                ledgers.append(self._ledger(None, mortal, log, since))
                continue
            ledger = self._ledger(exec_id, mortal, log, since)
            ledgers.append(ledger)
            if mortal.dead:
                self._check_dead_process_left_cleanly(exec_id, store)
            if ledger.status == "completed":
                result = FlowHandle(exec_id, store=self.observer).get()
                return Journey(exec_id, result, ledgers)
            answer_waits(self.observer, exec_id)
        raise AssertionError(f"no end after {self.max_segments} processes: {ledgers[-1]}")

    def resume_once(self, exec_id: str) -> Outcome:
        """Resume the execution in one process that does not die; how the run ended."""
        with self._process(Mortal(None)) as store:
            run = resume_execution(exec_id, mode="resume", background=False, store=store)
            try:
                return run.drive()
            finally:
                run.ctx.drain()

    def _ledger(self, exec_id: str | None, mortal: Mortal, log: Path, since: int) -> Ledger:
        return take_ledger(
            self.observer,
            exec_id,
            died_at=mortal.died_at,
            log=log,
            provider=self.provider,
            since=since,
        )

    def _check_dead_process_left_cleanly(
        self, exec_id: str, store: crashing.MortalStore | crashing.MortalPostgresStore
    ) -> None:
        assert self.observer.live_lease(exec_id) is None, "a dead process still holds its lease"
        if store.torn_after_seq is not None:
            events = self.observer.read_events(exec_id)
            assert len(events) == store.torn_after_seq, "an uncommitted append left events"


def check_books(steps: list[list[Any]], journey: Journey, location: str | Path) -> None:
    """Every crash lost at most the attempt it interrupted, and nothing reported done.

    Per segment and per call: bodies entered minus attempts recorded as ended is 0, or
    1 if the segment's process died (the attempt it killed); a call recorded as
    finished never runs again; a flow-body model call is sent once per recorded
    completion, plus at most the one a death interrupted, and never after completing.
    """
    keys = flow_keys(steps)
    for before, after in zip(journey.ledgers, journey.ledgers[1:], strict=False):
        lost = 1 if after.died_at is not None else 0
        for key in keys.checkpoints:
            entered = after.effects[key] - before.effects[key]
            ended = after.ended[key] - before.ended[key]
            where = f"checkpoint {key} in a segment that died at {after.died_at}"
            assert 0 <= entered - ended <= lost, (where, entered, ended)
            if key in before.finished:
                assert entered == 0, f"{key} ran again after it was recorded as finished"
        for key in keys.llm:
            sent = after.asked[key] - before.asked[key]
            done = int(key in after.finished - after.reused) - int(
                key in before.finished - before.reused
            )
            assert 0 <= sent - done <= lost, (f"llm {key}, died at {after.died_at}", sent, done)
        for key in keys.asks:
            sent = after.asked[key] - before.asked[key]
            entered = after.effects[key] - before.effects[key]
            recorded = after.llm_children[key] - before.llm_children[key]
            assert recorded <= sent <= entered, (f"ask {key}", recorded, sent, entered)
            assert recorded == after.ended[key] - before.ended[key], f"ask {key} lost its call"
    final = journey.ledgers[-1]
    assert final.status == "completed"
    assert final.finished >= set(keys.checkpoints) | set(keys.llm)
    checker = new_store(str(location))
    try:
        report = check_store(checker)
    finally:
        checker.close()
    assert report.ok, report.problems


def check_clean_run(steps: list[list[Any]], journey: Journey) -> None:
    """A run that never crashed entered each body as planned and asked each prompt once."""
    keys = flow_keys(steps)
    final = journey.ledgers[-1]
    assert {k: final.effects[k] for k in keys.checkpoints} == keys.checkpoints
    assert final.asked == Counter(keys.llm + keys.asks)
