"""Single ownership, proven over generated deployments and generated adversities.

Hypothesis generates how each owner of an execution starts (a script, a child forked
after import, a process in its own PID namespace, the ``kitaru`` command in this or
another PID namespace), what happens to it at a generated moment during its fan-out
(SIGKILL, one Ctrl-C, two Ctrl-Cs, SIGTERM, a pause past a short lease TTL, nothing),
and whether a rival ``kitaru executions resume`` tries to take the execution at the
same time. Every round is followed by the next owner until the execution completes.

The properties:

- no call's side effect is ever executed by two live owners at once (each body holds
  an exclusive lock on its call while it runs, so an overlap is seen, not inferred);
- the journal records at most one completion per call;
- the result equals the result of a run that never met an adversity.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import REPO, TIMEOUT, child_env, kitaru_command
from hypothesis import given
from hypothesis import strategies as st
from strategies import costly

from kitaru._stores import new_store
from kitaru.journal.events import CallCompleted, CallStartedAndCompleted, ExecutionCompleted
from kitaru.runtime.values import decode_value

pytestmark = pytest.mark.slow

TTL = "0.5"
PID_NS = ("unshare", "-p", "-f", "--mount-proc")


def _pid_namespaces() -> bool:
    probe = subprocess.run([*PID_NS, "true"], capture_output=True, timeout=TIMEOUT, check=False)
    return probe.returncode == 0


_CAN_UNSHARE = _pid_namespaces()


@dataclass(frozen=True)
class Round:
    launcher: str
    """script | fork | pidns (first round); resume | resume_pidns (later rounds)."""
    adversity: str
    """none | sigkill | sigint | sigint_twice | sigterm | pause."""
    after: float
    """Seconds after the owner's first body started."""
    rival: str
    """none | resume | resume_all | resume_pidns: another process tries to take over."""


def rounds() -> st.SearchStrategy[list[Round]]:
    first = st.sampled_from(["script", "fork", "pidns"] if _CAN_UNSHARE else ["script", "fork"])
    later = st.sampled_from(["resume", "resume_pidns"] if _CAN_UNSHARE else ["resume"])
    adversity = st.sampled_from(["none", "sigkill", "sigint", "sigint_twice", "sigterm", "pause"])
    delay = st.sampled_from([0.0, 0.05, 0.15, 0.3])
    rival = st.sampled_from(
        ["none", "resume", "resume_all", *(["resume_pidns"] if _CAN_UNSHARE else [])]
    )

    def plan(first_launcher: str, rest: list[tuple[str, str, float, str]]) -> list[Round]:
        head, *tail = rest
        return [
            Round(first_launcher, *head[1:]),
            *(Round(launcher, adv, after, rival) for launcher, adv, after, rival in tail),
        ]

    return st.builds(
        plan,
        first,
        st.lists(st.tuples(later, adversity, delay, rival), min_size=1, max_size=4),
    )


class Deployment:
    """One execution of ``tests/flows/owners.py`` and the processes that own it in turn."""

    def __init__(self, folder: Path, width: int):
        self.folder = folder
        self.width = width
        self.store = folder / "journal.db"
        self.side = folder / "side"
        self.side.mkdir()
        self.exec_id: str | None = None

    def env(self) -> dict[str, str]:
        return child_env(
            KITARU_STORE=str(self.store),
            KITARU_LEASE_TTL=TTL,
            OWNERS_SIDE=str(self.side),
            # Long enough that a rival started meanwhile arrives while bodies still run.
            OWNERS_PAUSE="0.8",
        )

    def command(self, launcher: str) -> list[str]:
        flow = [sys.executable, "-m", "tests.flows.owners"]
        resume = kitaru_command("executions", "resume", str(self.exec_id))
        return {
            "resume_all": kitaru_command("executions", "resume", "--all"),
            "script": [*flow, "run", str(self.width)],
            "fork": [*flow, "fork", str(self.width)],
            "pidns": [*PID_NS, *flow, "run", str(self.width)],
            "resume": resume,
            "resume_pidns": [*PID_NS, *resume],
        }[launcher]

    def effects(self) -> int:
        path = self.side / "effects"
        return len(path.read_text().split()) if path.exists() else 0

    def play(self, round_: Round) -> None:
        """Start an owner, meet it with the round's adversity and rival, let it end."""
        before = self.effects()
        owner = subprocess.Popen(
            self.command(round_.launcher),
            cwd=REPO,
            env=self.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        rival: subprocess.Popen[str] | None = None
        try:
            deadline = time.monotonic() + TIMEOUT
            while self.effects() == before and owner.poll() is None:
                assert time.monotonic() < deadline, "the owner never started a body"
                time.sleep(0.005)
            if self.exec_id is None:
                self.exec_id = self._only_exec_id()
            if round_.rival != "none" and self.exec_id is not None:
                rival = subprocess.Popen(
                    self.command(round_.rival),
                    cwd=self.folder,
                    env=self.env(),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                    start_new_session=True,
                )
            time.sleep(round_.after)
            self._meet(owner, round_.adversity)
            _, err = owner.communicate(timeout=TIMEOUT)
            # The kitaru command never shows a traceback; a user's script stopped by
            # Ctrl-C shows Python's usual KeyboardInterrupt ones, which are its own.
            if round_.launcher.startswith("resume") or "sigint" not in round_.adversity:
                assert "Traceback" not in err, err
            assert "Another writer appended" not in err, err
            if rival is not None:
                _, err = rival.communicate(timeout=TIMEOUT)
                assert rival.returncode in (0, 1), err
                assert "Traceback" not in err, err
                # A second writer on the execution is the violation this hunts for.
                assert "Another writer appended" not in err, err
        finally:
            for proc in (owner, rival):
                if proc is not None and proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.communicate(timeout=TIMEOUT)

    def _meet(self, owner: subprocess.Popen[str], adversity: str) -> None:
        if owner.poll() is not None:
            return
        if adversity == "sigkill":
            os.killpg(owner.pid, signal.SIGKILL)
        elif adversity == "pause":
            os.killpg(owner.pid, signal.SIGSTOP)
            time.sleep(float(TTL) * 2.5)
            os.killpg(owner.pid, signal.SIGCONT)
        elif adversity in ("sigint", "sigint_twice", "sigterm"):
            signum = signal.SIGTERM if adversity == "sigterm" else signal.SIGINT
            os.killpg(owner.pid, signum)
            if adversity == "sigint_twice":
                time.sleep(0.05)
                if owner.poll() is None:
                    os.killpg(owner.pid, signum)

    def _only_exec_id(self) -> str | None:
        store = new_store(str(self.store))
        try:
            rows = store.list_executions()
        finally:
            store.close()
        assert len(rows) <= 1, rows
        return rows[0].exec_id if rows else None

    def finish(self) -> int:
        """Resume until the execution completes; return its result."""
        for _ in range(5):
            outcome = self.outcome()
            if outcome is not None:
                return outcome
            done = subprocess.run(
                self.command("resume"),
                cwd=self.folder,
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                check=False,
            )
            assert "Traceback" not in done.stderr, done.stderr
        raise AssertionError(f"{self.exec_id} did not complete")

    def outcome(self) -> int | None:
        assert self.exec_id is not None
        store = new_store(str(self.store))
        try:
            for stored in store.read_events(self.exec_id):
                if isinstance(stored.event, ExecutionCompleted):
                    ref = stored.event.result
                    data = ref.inline if ref.inline is not None else store.read_payload(ref.hash)
                    return int(decode_value(data))  # type: ignore[call-overload]
        finally:
            store.close()
        return None

    def completions(self) -> Counter[str]:
        assert self.exec_id is not None
        store = new_store(str(self.store))
        try:
            return Counter(
                e.event.identity
                for e in store.read_events(self.exec_id)
                if isinstance(e.event, CallCompleted | CallStartedAndCompleted)
            )
        finally:
            store.close()

    def overlaps(self) -> list[str]:
        path = self.side / "overlaps"
        return path.read_text().split() if path.exists() else []


class TestOneLiveOwner:
    @costly(0.2)
    @given(width=st.integers(1, 3), plan=rounds())
    def test_no_call_ever_runs_in_two_live_owners(
        self, tmp_path_factory: pytest.TempPathFactory, width: int, plan: list[Round]
    ) -> None:
        """Whatever meets its owners, no call runs twice at once and each completes once."""
        deployment = Deployment(tmp_path_factory.mktemp("deployment"), width)
        for round_ in plan:
            if deployment.exec_id is not None and deployment.outcome() is not None:
                break
            deployment.play(round_)
        assert deployment.exec_id is not None
        assert deployment.finish() == sum(i * i for i in range(width))
        assert deployment.overlaps() == []
        assert max(deployment.completions().values()) == 1, deployment.completions()
