"""Running flows in real subprocesses and driving the real ``kitaru`` command
(``python -m kitaru``).

Every child process inherits the test's environment (``KITARU_STORE`` and
``KITARU_CONFIG_PATH`` point into ``tmp_path``) with a ``PYTHONPATH`` that holds only
the kitaru package the tests import, so a resuming process can only find a flow
through what the journal recorded.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import pytest

from kitaru.client import KitaruClient
from kitaru.journal.sqlite import SqliteStore
from kitaru.journal.store import Lease
from kitaru.runtime.ownership import this_host

REPO = Path(__file__).resolve().parents[1]
FLOWS = REPO / "tests" / "flows"
TIMEOUT = 60.0


class OwnedStore(SqliteStore):
    """The real store, taking an execution's lease for each append as a runner does.

    For tests of the journal below the runtime: appends still go through the fenced path.
    With ``keep``, a lease it took is kept after the append (as a running owner keeps it).
    """

    owner = "tests/1"

    def __init__(self, path: Path, *, keep: bool = False):
        super().__init__(path)
        self.keep = keep

    def append(self, exec_id, first_seq, events, payloads=None, *, owner=None, sync=True):  # type: ignore[no-untyped-def]
        claimed = False
        if owner is None:
            owner = self.owner
            if self.get_lease(exec_id) is None:
                lease = Lease(exec_id, owner, this_host(), os.getpid(), "", time.time() + 60)
                assert self.claim(lease) is None
                claimed = True
        try:
            super().append(exec_id, first_seq, events, payloads, owner=owner, sync=sync)
        finally:
            if claimed and not self.keep:
                self.release(exec_id, owner)


def kitaru_command(*args: str) -> list[str]:
    """The ``kitaru`` command run by this interpreter, so it never depends on a console
    script being on PATH.

    ``-P`` keeps the working folder off ``sys.path``, as it is for the installed
    ``kitaru`` script: a flow module lying in the folder a resume starts from is found
    only through what the journal recorded. kitaru itself comes from the child's
    PYTHONPATH (see ``child_env``).
    """
    return [sys.executable, "-P", "-m", "kitaru", *args]


_KITARU_ONLY: list[str] = []


def _kitaru_only_path() -> str:
    """A folder holding nothing but this process's ``kitaru`` package (a symlink).

    On a child's PYTHONPATH it makes the child run the same kitaru as the tests (also
    from a checkout other than the installed one) while the tests' own modules stay out
    of its reach.
    """
    if not _KITARU_ONLY:
        import kitaru as package

        folder = Path(tempfile.mkdtemp(prefix="kitaru-package-"))
        (folder / "kitaru").symlink_to(Path(package.__file__).resolve().parent)
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _KITARU_ONLY.append(str(folder))
    return _KITARU_ONLY[0]


def child_env(**changes: str | None) -> dict[str, str]:
    """This process's environment with ``changes`` (None removes), and a PYTHONPATH that
    holds only kitaru itself."""
    env = dict(os.environ)
    env["PYTHONPATH"] = _kitaru_only_path()
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def flow_command(module: str, *args: str, mode: str = "module") -> list[str]:
    """How to start ``tests/flows/<module>.py``: as a package module or as a script."""
    if mode == "module":
        return [sys.executable, "-m", f"tests.flows.{module}", *args]
    assert mode == "script", mode
    return [sys.executable, str(FLOWS / f"{module}.py"), *args]


def run_flow(
    module: str,
    *args: str,
    env: dict[str, str],
    mode: str = "module",
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a flow module to its end (or its death) in a new process.

    As a package module it runs from the repository root; as a script from ``cwd``.
    """
    where = REPO if mode == "module" else cwd
    assert where is not None, "a script runs from a folder the test chooses"
    return subprocess.run(
        flow_command(module, *args, mode=mode),
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def kitaru(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``kitaru`` command in a new process started in ``cwd``."""
    return subprocess.run(
        kitaru_command(*args),
        cwd=cwd,
        env=env if env is not None else child_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@contextlib.contextmanager
def background(
    command: list[str], *, cwd: Path, env: dict[str, str]
) -> Iterator[subprocess.Popen[str]]:
    """Start ``command`` in the background; it is killed and reaped when the block ends."""
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=TIMEOUT)


def wait_for_file(path: Path, proc: subprocess.Popen[str], timeout: float = TIMEOUT) -> None:
    """Wait until ``path`` exists; fail at once if ``proc`` ends first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"process ended ({proc.returncode}) before {path.name}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.02)


def side_effects(path: Path) -> Counter[str]:
    """How many times each checkpoint body left its trace line in ``path``."""
    if not path.exists():
        return Counter()
    return Counter(path.read_text(encoding="utf-8").split())


def cached_stores() -> set[object]:
    """The journals this process keeps open in its store cache (``open_store``)."""
    import kitaru._stores

    return set(kitaru._stores._stores)


def forget_stores_opened_since(before: set[object]) -> None:
    """Close and drop the cached journals opened since ``before`` was taken, so their
    files do not stay open for the rest of the run.

    This closes this thread's connections at once. A finished flow thread's connections
    go with its thread locals, but an unclosed ``sqlite3.Connection`` sits in a reference
    cycle with its statement cache, so its files close at the next garbage collection
    (running one per test would cost more than the files do).
    """
    from kitaru._stores import forget_store

    for location in cached_stores() - before:
        forget_store(str(location))


def open_fds() -> int:
    """How many file descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


def store_file() -> Path:
    """The journal file the current test uses."""
    return Path(os.environ["KITARU_STORE"])


def only_exec_id() -> str:
    """The id of the one execution in this test's journal."""
    executions = KitaruClient().executions.list()
    assert len(executions) == 1, [e.exec_id for e in executions]
    return executions[0].exec_id


def completed_calls(exec_id: str) -> set[str]:
    """Identities of the execution's durable calls that the journal records as completed."""
    execution = KitaruClient().executions.get(exec_id)
    return {c.invocation_id for c in execution.checkpoints if c.status == "completed"}


def unpaired(events: list[Any]) -> list[Any]:
    """``events`` with each ``CallStartedAndCompleted`` given back as the ``CallStarted``
    and ``CallCompleted`` it stands for, for tests that look at starts or completions."""
    from kitaru.journal.events import CallStartedAndCompleted

    found: list[Any] = []
    for event in events:
        if isinstance(event, CallStartedAndCompleted):
            found.extend((event.started, event.completed))
        else:
            found.append(event)
    return found


def journal_rows(exec_id: str) -> list[tuple[int, str, bytes]]:
    """The execution's events exactly as stored: ``(seq, type, body)`` from raw SQLite."""
    with contextlib.closing(sqlite3.connect(store_file())) as conn:
        rows = conn.execute(
            "SELECT seq, type, body FROM events WHERE exec_id = ? ORDER BY seq", (exec_id,)
        ).fetchall()
    return [(int(seq), str(kind), bytes(body)) for seq, kind, body in rows]


def assert_clean_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """The command failed with exit code 1, no traceback, and a message holding ``fragments``."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


def started(proc: subprocess.Popen[str]) -> str:
    """The execution id the flow process prints (checkpoint bodies may print before it)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        # A print of a checkpoint body may share the line (it writes its newline apart).
        if '{"exec_id"' in line:
            data, _ = json.JSONDecoder().raw_decode(line[line.index('{"exec_id"') :])
            exec_id: str = data["exec_id"]
            return exec_id
    pytest.fail(f"the flow process ended ({proc.wait()}) without printing its execution id")


def line_before_communicate(proc: subprocess.Popen[str]) -> str:
    """Read one line of ``proc``'s stdout and nothing after it, for a test that then
    calls ``proc.communicate()``.

    ``proc.stdout.readline()`` may pull the following lines into the stream's buffer,
    and ``communicate()`` with stdout and stderr piped reads the pipes' descriptors
    directly, so the buffered lines would be lost to it. Bytes are read one at a time
    here, so everything after the newline stays in the pipe.
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = bytearray()
    while not data.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            break
        data += byte
    return data.decode()


_Plan = TypeVar("_Plan")


def reset_plan(plan: _Plan) -> _Plan:
    """Put every field of a module's shared plan (a dataclass its in-process flows read)
    back to its default, in place: each test starts from a fresh plan, and the flows
    keep the one object they were written against."""
    fresh: Any = type(plan)()
    for spec in fields(fresh):
        setattr(plan, spec.name, getattr(fresh, spec.name))
    return plan
