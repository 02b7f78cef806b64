"""No execution ever runs in two places: forks, PID namespaces, signals, paused owners.

Each test is a deployment that once ran one execution in two processes at the same
time. Checkpoint bodies of ``tests/flows/owners.py`` mark themselves running with an
``O_EXCL`` file, so any overlap of two live owners on one call is caught, and the
journal is checked for a single completion per call.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import REPO, TIMEOUT, child_env, kitaru_command, only_exec_id, store_file

from kitaru import checkpoint, flow
from kitaru._stores import new_store
from kitaru.client import KitaruClient
from kitaru.journal.events import CallCompleted, CallStartedAndCompleted
from kitaru.runtime import interrupts

pytestmark = pytest.mark.slow


# What a kitaru process prints once it has taken a first SIGINT or SIGTERM.
STOPPING = "kitaru: stopping;"


class World:
    """The folders and processes of one test: the owners' side effects and their gate."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.side = tmp_path / "side"
        self.gate = tmp_path / "gate"
        self.side.mkdir()
        self.gate.mkdir()
        self.procs: list[subprocess.Popen[str]] = []
        self.stderr_read: dict[int, str] = {}

    def env(self, **extra: str) -> dict[str, str]:
        return child_env(OWNERS_SIDE=str(self.side), OWNERS_GATE=str(self.gate), **extra)

    def start(
        self, command: list[str], *, cwd: Path = REPO, env: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """Start a process in its own session, so the whole group can be signalled."""
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=env or self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def flow(self, how: str, n: int, *, prefix: tuple[str, ...] = ()) -> list[str]:
        return [*prefix, sys.executable, "-m", "tests.flows.owners", how, str(n)]

    def kitaru(self, *args: str, prefix: tuple[str, ...] = ()) -> list[str]:
        return [*prefix, *kitaru_command(*args)]

    def run(
        self, command: list[str], env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            cwd=self.tmp,
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    def ready(self, count: int, proc: subprocess.Popen[str]) -> list[Path]:
        """Wait until ``count`` bodies wait at the gate; fail if ``proc`` ends first."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            found = sorted(self.gate.glob("ready-*"))
            if len(found) >= count:
                return found
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"process ended ({proc.returncode}) early:\n{out}\n{err}")
            assert time.monotonic() < deadline, f"{len(found)} of {count} bodies at the gate"
            time.sleep(0.02)

    def take_over_while_paused(
        self, owner: subprocess.Popen[str], exec_id: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """Pause ``owner`` (held at the gate, ``KITARU_LEASE_TTL=1``) past its lease,
        start ``executions resume`` and let its body reach the gate too, wake the owner so
        its heartbeat finds the lease gone, then open the gate; return the resumer."""
        os.killpg(owner.pid, signal.SIGSTOP)
        try:
            time.sleep(2.5)  # the lease (1 s) expires without a renewal
            resumer = self.start(
                self.kitaru("executions", "resume", exec_id), cwd=self.tmp, env=env
            )
            deadline = time.monotonic() + TIMEOUT
            while len(list(self.gate.glob("ready-*"))) < 2:
                assert resumer.poll() is None, resumer.communicate()
                assert time.monotonic() < deadline
                time.sleep(0.02)
        finally:
            os.killpg(owner.pid, signal.SIGCONT)
        time.sleep(0.5)  # the old owner's heartbeat runs and finds the lease gone
        self.release()
        return resumer

    def clear_gate(self) -> None:
        for path in self.gate.glob("ready-*"):
            path.unlink()

    def release(self) -> None:
        (self.gate / "release").write_text("")

    def effects(self) -> Counter[str]:
        path = self.side / "effects"
        return Counter(path.read_text().split()) if path.exists() else Counter()

    def overlaps(self) -> list[str]:
        path = self.side / "overlaps"
        return path.read_text().split() if path.exists() else []

    def await_stderr(self, proc: subprocess.Popen[str], text: str) -> None:
        """Read ``proc``'s stderr until ``text`` appears; ``finish`` still returns all of it."""
        assert proc.stderr is not None
        fd = proc.stderr.fileno()
        seen = self.stderr_read.get(proc.pid, "")
        deadline = time.monotonic() + TIMEOUT
        while text not in seen:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} did not appear on stderr within {TIMEOUT} s:\n{seen}"
            # poll, not select: select refuses descriptors numbered 1024 and above.
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            if poller.poll(left * 1000):
                chunk = os.read(fd, 65536)
                if not chunk:
                    pytest.fail(f"the process closed stderr before {text!r}:\n{seen}")
                seen += chunk.decode(errors="replace")
        self.stderr_read[proc.pid] = seen

    def finish(self, proc: subprocess.Popen[str], timeout: float = TIMEOUT) -> tuple[str, str]:
        out, err = proc.communicate(timeout=timeout)
        return out, self.stderr_read.pop(proc.pid, "") + err

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=TIMEOUT)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    try:
        yield w
    finally:
        w.close()


def _namespaces_work(*flags: str) -> bool:
    probe = subprocess.run(
        ["unshare", *flags, "true"], capture_output=True, timeout=TIMEOUT, check=False
    )
    return probe.returncode == 0


needs_pid_namespaces = pytest.mark.skipif(
    not _namespaces_work("-p", "-f", "--mount-proc"),
    reason="the kernel refuses new PID namespaces here (CI runs as root, where it works)",
)
needs_other_host = pytest.mark.skipif(
    not _namespaces_work("-m", "-u", "-p", "-f", "--mount-proc"),
    reason="the kernel refuses new mount/UTS/PID namespaces here (CI runs as root)",
)


def completions(exec_id: str) -> Counter[str]:
    """How many completions the journal records per call identity."""
    store = new_store(str(store_file()))
    try:
        events = store.read_events(exec_id)
        return Counter(
            e.event.identity
            for e in events
            if isinstance(e.event, CallCompleted | CallStartedAndCompleted)
        )
    finally:
        store.close()


def assert_one_completion_each(exec_id: str) -> None:
    counts = completions(exec_id)
    assert counts, "nothing completed"
    assert max(counts.values()) == 1, counts


class TestForkAfterImport:
    def test_a_forked_child_owns_its_execution_against_resume_all(self, world: World) -> None:
        """A flow run in a child forked after import keeps `resume --all` off its calls."""
        owner = world.start(world.flow("fork", 2))
        world.ready(2, owner)
        exec_id = only_exec_id()

        swept = world.run(world.kitaru("executions", "resume", "--all", "-o", "json"))
        assert swept.returncode == 0, swept.stderr
        assert json.loads(swept.stdout) == [], "resume --all took over a live forked child"
        refused = world.run(world.kitaru("executions", "resume", exec_id))
        assert refused.returncode == 1
        assert "being run by process" in refused.stderr

        world.release()
        out, err = world.finish(owner)
        assert owner.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["result"] == 1
        assert world.effects() == Counter({"work:0": 1, "work:1": 1, "finish": 1})
        assert world.overlaps() == []
        assert_one_completion_each(exec_id)

    def test_a_forked_child_does_not_inherit_its_parents_executions(self, world: World) -> None:
        """A child forked while the parent runs an execution can neither resume nor write it."""
        script = world.tmp / "fork_mid_run.py"
        script.write_text(
            "import multiprocessing, sys, time\n"
            "from pathlib import Path\n"
            "from kitaru import KitaruStateError\n"
            "from kitaru.client import KitaruClient\n"
            "from tests.flows.owners import owned\n"
            "def child(exec_id):\n"
            "    try:\n"
            "        KitaruClient().executions.resume(exec_id)\n"
            "    except KitaruStateError as exc:\n"
            "        print('refused:', exc, flush=True)\n"
            "        sys.exit(0)\n"
            "    sys.exit(5)\n"
            "handle = owned.run(1, background=True)\n"
            "gate = Path(sys.argv[1])\n"
            "while not list(gate.glob('ready-*')):\n"
            "    time.sleep(0.01)\n"
            "fork = multiprocessing.get_context('fork')\n"
            "p = fork.Process(target=child, args=(handle.exec_id,))\n"
            "p.start(); p.join()\n"
            "(gate / 'release').write_text('')\n"
            "print('child exit', p.exitcode, 'result', handle.wait(), flush=True)\n"
        )
        env = world.env(PYTHONPATH=str(REPO))
        done = world.run([sys.executable, str(script), str(world.gate)], env=env)
        assert done.returncode == 0, done.stderr
        assert "refused: Execution" in done.stdout
        assert "child exit 0 result 0" in done.stdout
        assert world.overlaps() == []


class TestSeparatePidNamespaces:
    @needs_pid_namespaces
    def test_a_container_cannot_take_over_a_live_owner_in_another(self, world: World) -> None:
        """Two PID namespaces on one kernel (both see pid 1): the live owner keeps its run."""
        pid_ns = ("unshare", "-p", "-f", "--mount-proc")
        owner = world.start(world.flow("run", 1, prefix=pid_ns))
        world.ready(1, owner)
        exec_id = only_exec_id()
        assert KitaruClient().executions.get(exec_id).interrupted is False

        refused = world.run(world.kitaru("executions", "resume", exec_id, prefix=pid_ns))
        assert refused.returncode == 1, (refused.stdout, refused.stderr)
        assert "being run by process 1 on" in refused.stderr
        assert world.effects() == Counter({"work:0": 1})

        # Once the owner is gone, a process in yet another namespace resumes at once.
        os.killpg(owner.pid, signal.SIGKILL)
        owner.communicate(timeout=TIMEOUT)
        world.release()
        resumed = world.run(world.kitaru("executions", "resume", exec_id, prefix=pid_ns))
        assert resumed.returncode == 0, resumed.stderr
        assert KitaruClient().executions.get(exec_id).status == "completed"
        assert world.overlaps() == []
        assert_one_completion_each(exec_id)


class TestSignals:
    def _interrupted(self, world: World, n: int) -> str:
        """An execution whose first owner died with ``n`` fan-out calls in flight."""
        first = world.start(world.flow("run", n))
        world.ready(n, first)
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate(timeout=TIMEOUT)
        world.clear_gate()
        return only_exec_id()

    def test_ctrl_c_during_a_fan_out_keeps_the_lease_until_the_calls_end(
        self, world: World
    ) -> None:
        """Ctrl-C on a foreground resume: no second resume runs the calls still running."""
        exec_id = self._interrupted(world, 3)
        resumer = world.start(world.kitaru("executions", "resume", exec_id), cwd=world.tmp)
        world.ready(3, resumer)

        resumer.send_signal(signal.SIGINT)
        world.await_stderr(resumer, STOPPING)
        second = world.run(world.kitaru("executions", "resume", exec_id))
        assert second.returncode == 1, (second.stdout, second.stderr)
        assert "being run by process" in second.stderr
        assert resumer.poll() is None, "the resume exited while its calls were running"

        world.release()
        _, err = world.finish(resumer)
        assert resumer.returncode == 130, err
        assert "Traceback" not in err
        assert "stopping" in err
        assert world.overlaps() == []
        # The calls that were running finished and were recorded; `finish` never started.
        assert completions(exec_id) == Counter({"work": 1, "work_2": 1, "work_3": 1})
        assert world.effects()["finish"] == 0

        last = world.run(world.kitaru("executions", "resume", exec_id))
        assert last.returncode == 0, last.stderr
        assert world.effects() == Counter({"work:0": 2, "work:1": 2, "work:2": 2, "finish": 1})
        assert_one_completion_each(exec_id)

    def test_a_second_ctrl_c_exits_at_once_and_the_lease_dies_with_the_process(
        self, world: World
    ) -> None:
        """Two Ctrl-Cs: the process exits without waiting, and a resume can start right away."""
        exec_id = self._interrupted(world, 2)
        resumer = world.start(world.kitaru("executions", "resume", exec_id), cwd=world.tmp)
        world.ready(2, resumer)
        resumer.send_signal(signal.SIGINT)
        world.await_stderr(resumer, STOPPING)
        resumer.send_signal(signal.SIGINT)
        _, err = world.finish(resumer, timeout=10)
        assert resumer.returncode == 130, err
        assert world.overlaps() == []

        world.clear_gate()
        world.release()
        last = world.run(world.kitaru("executions", "resume", exec_id))
        assert last.returncode == 0, last.stderr
        assert KitaruClient().executions.get(exec_id).status == "completed"
        assert_one_completion_each(exec_id)

    def test_ctrl_c_landing_while_the_main_thread_holds_the_stop_lock_cannot_hang(
        self, world: World
    ) -> None:
        """A Ctrl-C handled inside the main thread's own bookkeeping stops, then exits at once."""
        script = world.tmp / "signal_in_lock.py"
        script.write_text(
            "import os, signal, sys, time\n"
            "from kitaru.runtime import interrupts\n"
            "interrupts.install_stop_handlers()\n"
            "with interrupts.running():\n"
            "    try:\n"
            "        with interrupts._state.lock:\n"
            "            os.kill(os.getpid(), signal.SIGINT)\n"
            "            time.sleep(5)\n"
            "    except KeyboardInterrupt:\n"
            "        print('first stopped', interrupts.stop_requested(), flush=True)\n"
            "    with interrupts._state.lock:\n"
            "        os.kill(os.getpid(), signal.SIGINT)\n"
            "        time.sleep(5)\n"
            "sys.exit(3)\n"
        )
        done = world.run([sys.executable, str(script)], env=world.env(PYTHONPATH=str(REPO)))
        assert done.stdout == "first stopped True\n", (done.stdout, done.stderr)
        assert done.returncode == 130, done.stderr
        assert "stopping now" in done.stderr

    def test_a_stop_left_set_by_a_cut_short_exit_does_not_stop_the_next_execution(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A stop request outlives no execution: the next one in the process runs its calls
        (a signal can cut the last execution's bookkeeping short and leave it set)."""
        monkeypatch.setattr(interrupts._state, "stop", True)
        assert interrupts._state.running == 0
        assert _doubled_twice.run(3).wait(timeout=TIMEOUT) == 12

    def test_sigterm_on_a_script_finishes_running_calls_then_stops(self, world: World) -> None:
        """SIGTERM to a script mid fan-out: running calls are recorded, nothing new starts."""
        owner = world.start(world.flow("run", 2))
        world.ready(2, owner)
        exec_id = only_exec_id()
        os.kill(owner.pid, signal.SIGTERM)
        world.await_stderr(owner, STOPPING)
        refused = world.run(world.kitaru("executions", "resume", exec_id))
        assert refused.returncode == 1, (refused.stdout, refused.stderr)
        world.release()
        world.finish(owner)
        assert owner.returncode != 0
        assert completions(exec_id) == Counter({"work": 1, "work_2": 1})
        assert world.effects()["finish"] == 0
        assert KitaruClient().executions.get(exec_id).interrupted is True


class TestPausedOwner:
    def test_a_paused_owner_on_this_host_is_never_taken_over(self, world: World) -> None:
        """SIGSTOP past the lease TTL on the same kernel: the owner is alive, resume is refused."""
        owner = world.start(world.flow("run", 1), env=world.env(KITARU_LEASE_TTL="0.6"))
        world.ready(1, owner)
        exec_id = only_exec_id()
        os.killpg(owner.pid, signal.SIGSTOP)
        try:
            time.sleep(2.0)
            refused = world.run(world.kitaru("executions", "resume", exec_id))
            assert refused.returncode == 1, (refused.stdout, refused.stderr)
            assert KitaruClient().executions.get(exec_id).interrupted is False
        finally:
            os.killpg(owner.pid, signal.SIGCONT)
        world.release()
        _, err = world.finish(owner)
        assert owner.returncode == 0, err
        assert world.effects() == Counter({"work:0": 1, "finish": 1})

    @needs_other_host
    def test_a_paused_owner_on_another_host_stops_cleanly_once_taken_over(
        self, world: World
    ) -> None:
        """An owner on another host paused past its lease loses it and records nothing more."""
        boot_id = world.tmp / "boot_id"
        boot_id.write_text("0ther0ne-0000-4000-8000-000000000000\n")
        leases = store_file().with_name(store_file().name + "-leases")
        leases.mkdir(exist_ok=True)
        # Another machine: its own host name and kernel id, and a lock folder this
        # kernel's processes cannot see (as on a shared volume without shared locks).
        inner = (
            f"hostname other-host && mount --bind {boot_id} /proc/sys/kernel/random/boot_id "
            f'&& mount -t tmpfs none {leases} && exec "$@"'
        )
        prefix = ("unshare", "-m", "-u", "-p", "-f", "--mount-proc", "sh", "-c", inner, "sh")
        ttl = world.env(KITARU_LEASE_TTL="1")
        owner = world.start(world.flow("run", 1, prefix=prefix), env=ttl)
        world.ready(1, owner)
        exec_id = only_exec_id()
        resumer = world.take_over_while_paused(owner, exec_id)
        _, old_err = world.finish(owner)
        _, new_err = world.finish(resumer)
        assert resumer.returncode == 0, new_err
        assert owner.returncode == 3, old_err
        assert "KitaruLeaseLostError" in old_err
        assert "took the execution over" in old_err or "took it over" in old_err
        assert "JournalConflictError" not in old_err
        assert "Traceback" not in old_err
        # Both bodies ran (at-least-once for an in-flight body after expiry), but the
        # journal holds one completion per call: the paused owner's was never recorded.
        assert world.effects()["work:0"] == 2
        assert_one_completion_each(exec_id)
        assert KitaruClient().executions.get(exec_id).status == "completed"

    @needs_other_host
    def test_a_paused_async_owner_on_another_host_records_nothing_once_taken_over(
        self, world: World
    ) -> None:
        """The same for an async flow paused inside an awaited checkpoint: its next durable
        call raises KitaruLeaseLostError and the new owner's record is the only one."""
        boot_id = world.tmp / "boot_id"
        boot_id.write_text("0ther0ne-0000-4000-8000-000000000000\n")
        leases = store_file().with_name(store_file().name + "-leases")
        leases.mkdir(exist_ok=True)
        inner = (
            f"hostname other-host && mount --bind {boot_id} /proc/sys/kernel/random/boot_id "
            f'&& mount -t tmpfs none {leases} && exec "$@"'
        )
        prefix = ("unshare", "-m", "-u", "-p", "-f", "--mount-proc", "sh", "-c", inner, "sh")
        env = world.env(
            ASYNC_OWNERS_SIDE=str(world.side / "effects"), ASYNC_OWNERS_GATE=str(world.gate)
        )
        command = [*prefix, sys.executable, "-m", "tests.flows.async_owners", "1"]
        owner = world.start(command, env={**env, "KITARU_LEASE_TTL": "1"})
        world.ready(1, owner)
        exec_id = only_exec_id()
        deadline = time.monotonic() + TIMEOUT
        while completions(exec_id)["prepare"] == 0:
            assert time.monotonic() < deadline, "prepare was never recorded"
            time.sleep(0.02)
        resumer = world.take_over_while_paused(owner, exec_id, env=env)
        _, old_err = world.finish(owner)
        _, new_err = world.finish(resumer)
        assert resumer.returncode == 0, new_err
        assert owner.returncode == 3, old_err
        assert old_err.startswith("KitaruLeaseLostError: "), old_err
        assert "Traceback" not in old_err
        # Both bodies of the held call ran; only the new owner's completion is recorded,
        # and the completed call before it was not run again.
        assert world.effects() == Counter({"prepare": 1, "fetch:0": 2, "total": 1})
        assert_one_completion_each(exec_id)
        assert KitaruClient().executions.get(exec_id).result() == 0


@checkpoint
def _double(value: int) -> int:
    return value * 2


@flow
def _doubled_twice(value: int) -> int:
    return _double(_double(value)).load()
