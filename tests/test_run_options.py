"""Run options: stack, image, cache and retries on the run, the flow, the process and the
environment; how they are resolved, frozen into the execution and honoured later; and
``.run()`` that blocks until the execution ends or waits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, TIMEOUT, child_env

import kitaru as kt
from kitaru import (
    ImageSettings,
    KitaruClient,
    KitaruConfig,
    KitaruStateError,
    KitaruUsageError,
    KitaruUserCodeError,
    checkpoint,
    flow,
)
from kitaru._run_config import configure, runtime_layer
from kitaru._stores import open_store
from kitaru.journal.events import CallCompleted, CallStartedAndCompleted

_seen: list[tuple[Any, ...]] = []
_runs: Counter[str] = Counter()
_gate = threading.Event()


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    _seen.clear()
    _runs.clear()
    _gate.clear()
    before = runtime_layer()
    yield
    _gate.set()  # never leave a flow thread blocked
    configure(
        stack=before.stack,
        image=before.image,
        cache=before.cache,
        retries=before.retries,
        project=before.project,
    )


@checkpoint
def double(x: int) -> int:
    _runs["double"] += 1
    return x * 2


@flow
def takes_one(x: int) -> int:
    _seen.append((x,))
    return double(x).load()


@flow(retries=3, cache=True, image={"requirements": ["httpx"]})
def decorated(x: int) -> int:
    return double(x).load()


@checkpoint
def slow_step(x: int) -> int:
    time.sleep(0.3)
    return x + 1


@flow
def slow(x: int) -> int:
    return slow_step(x).load()


@checkpoint
def held() -> str:
    assert _gate.wait(TIMEOUT), "the test never opened the gate"
    return "opened"


@flow
def gated() -> str:
    return held().load()


@flow
def asks() -> str:
    answer = kt.wait(schema=str, name="answer", question="Which?", timeout=TIMEOUT)
    return f"got {answer}"


@flow
def breaks() -> int:
    raise ValueError("broken on purpose")


@checkpoint(runtime="isolated")
def pair(a: int, b: str, sep: str = "-") -> str:
    return f"{a}{sep}{b}"


@flow
def grid() -> list[str]:
    return pair.product([1, 2], ["a", "b"], sep=":").load()  # type: ignore[no-any-return]


def spec_of(exec_id: str) -> kt.run_config.FrozenExecutionSpec:
    spec = KitaruClient().executions.get(exec_id).frozen_execution_spec
    assert spec is not None
    return spec


class TestOptionsAreNotFlowArguments:
    def test_run_options_configure_the_run(self) -> None:
        """cache=, retries=, stack= and image= on .run() are not passed to the flow."""
        handle = takes_one.run(4, cache=True, retries=2, stack="local", image="python:3.12-slim")
        assert handle.wait(timeout=TIMEOUT) == 8
        assert _seen == [(4,)]
        resolved = spec_of(handle.exec_id).resolved_execution
        assert (resolved.stack, resolved.cache, resolved.retries) == ("local", True, 2)
        assert resolved.image == ImageSettings(base_image="python:3.12-slim")

    def test_replay_options_configure_the_replay(self) -> None:
        """The same options on .replay() configure the new execution, not the flow's inputs."""
        source = takes_one.run(3)
        source.wait(timeout=TIMEOUT)
        replay = takes_one.replay(
            source.exec_id, from_="double", cache=True, retries=4, image={"user": "agent"}
        )
        assert replay.wait(timeout=TIMEOUT) == 6
        assert _seen == [(3,), (3,)]
        resolved = spec_of(replay.exec_id).resolved_execution
        assert (resolved.cache, resolved.retries) == (True, 4)
        assert resolved.image == ImageSettings(user="agent")

    def test_arguments_that_do_not_fit_fail_at_once(self) -> None:
        """Arguments the flow cannot take raise KitaruUsageError and start nothing."""
        with pytest.raises(KitaruUsageError, match=r"takes_one\(x\b.*too many positional"):
            takes_one.run(1, 2)
        assert KitaruClient().executions.list() == []


class TestBlockingRun:
    def test_get_right_after_run_gives_the_result(self) -> None:
        """On the local stack .run() returns once the flow ended, so .get() has the result."""
        assert slow.run(1).get() == 2

    def test_run_returns_when_the_execution_waits(self) -> None:
        """A run that reaches a wait returns with the execution waiting for its input."""
        handle = asks.run()
        assert handle.status == "waiting"
        KitaruClient().executions.input(handle.exec_id, value="blue")
        assert handle.wait(timeout=TIMEOUT) == "got blue"

    def test_a_failing_flow_raises_from_get_not_from_run(self) -> None:
        """.run() returns the handle of a failed execution; .get() raises its error."""
        handle = breaks.run()
        assert handle.status == "failed"
        with pytest.raises(KitaruUserCodeError, match="broken on purpose"):
            handle.get()

    def test_background_returns_at_once(self) -> None:
        """background=True returns while the flow still runs; .wait() gives the result."""
        handle = gated.run(background=True)
        assert handle.status == "running"
        with pytest.raises(KitaruStateError, match="still running"):
            handle.get()
        _gate.set()
        assert handle.wait(timeout=TIMEOUT) == "opened"

    def test_background_must_be_a_bool(self) -> None:
        """A background= that is not True or False is refused before anything starts."""
        with pytest.raises(KitaruUsageError, match="background must be True or False"):
            takes_one.run(1, background="yes")
        assert KitaruClient().executions.list() == []


class TestPrecedence:
    @pytest.mark.parametrize(
        ("layers", "expected"),
        [
            ({"invocation": 5, "decorator": 3, "configure": 2, "env": "1"}, 5),
            ({"decorator": 3, "configure": 2, "env": "1"}, 3),
            ({"configure": 2, "env": "1"}, 2),
            ({"env": "1"}, 1),
            ({}, 0),
        ],
    )
    def test_retries_come_from_the_highest_layer_that_sets_them(
        self, layers: dict[str, Any], expected: int, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Invocation beats the decorator, which beats configure(), then the environment."""
        if "env" in layers:
            monkeypatch.setenv("KITARU_RETRIES", layers["env"])
        if "configure" in layers:
            kt.configure(retries=layers["configure"])
        target = flow(retries=layers["decorator"])(_body) if "decorator" in layers else plain
        options = {"retries": layers["invocation"]} if "invocation" in layers else {}
        handle = target.run(2, **options)
        assert handle.wait(timeout=TIMEOUT) == 4
        assert spec_of(handle.exec_id).resolved_execution.retries == expected

    def test_the_environment_sets_cache_stack_and_image(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """KITARU_CACHE, KITARU_STACK and KITARU_IMAGE (JSON) apply when nothing else is set."""
        monkeypatch.setenv("KITARU_CACHE", "true")
        monkeypatch.setenv("KITARU_STACK", "local")
        monkeypatch.setenv(
            "KITARU_IMAGE", json.dumps({"base_image": "python:3.12", "environment": {"A": 1}})
        )
        handle = plain.run(1)
        resolved = spec_of(handle.exec_id).resolved_execution
        assert (resolved.cache, resolved.stack) == (True, "local")
        assert resolved.image == ImageSettings(base_image="python:3.12", environment={"A": "1"})

    def test_images_combine_field_by_field(self) -> None:
        """configure()'s base image and the flow's requirements both apply; the run's wins."""
        kt.configure(image=ImageSettings(base_image="python:3.11", environment={"A": "1"}))
        handle = decorated.run(1, image={"environment": {"B": "2"}})
        image = spec_of(handle.exec_id).resolved_execution.image
        assert image == ImageSettings(
            base_image="python:3.11", requirements=["httpx"], environment={"A": "1", "B": "2"}
        )
        defaults = spec_of(handle.exec_id).flow_defaults
        assert (defaults.retries, defaults.cache) == (3, True)

    def test_configure_leaves_omitted_settings_and_none_clears(self) -> None:
        """configure(x=...) changes only x; configure(x=None) clears it."""
        kt.configure(retries=2, cache=True)
        kt.configure(stack="local")
        assert (runtime_layer().retries, runtime_layer().cache) == (2, True)
        layer = kt.configure(retries=None)
        assert isinstance(layer, KitaruConfig)
        assert (layer.retries, layer.cache, layer.stack) == (None, True, "local")
        handle = plain.run(1)
        assert spec_of(handle.exec_id).resolved_execution.retries == 0

    @pytest.mark.parametrize(
        ("name", "value", "message"),
        [
            ("KITARU_CACHE", "maybe", "KITARU_CACHE='maybe' is not understood"),
            ("KITARU_RETRIES", "-1", "KITARU_RETRIES='-1' is not a whole number"),
            ("KITARU_IMAGE", "{not json", "KITARU_IMAGE is not valid JSON"),
            ("KITARU_IMAGE", '{"colour": "red"}', "Unknown image setting 'colour'"),
        ],
    )
    def test_bad_environment_values_are_refused(
        self, name: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A malformed KITARU_* variable raises KitaruUsageError naming it; nothing starts."""
        monkeypatch.setenv(name, value)
        with pytest.raises(KitaruUsageError, match=message):
            plain.run(1)
        monkeypatch.delenv(name)
        assert KitaruClient().executions.list() == []


@flow
def plain(x: int) -> int:
    return double(x).load()


def _body(x: int) -> int:
    return double(x).load()


class TestSettingsValidation:
    def test_image_settings_fields_are_checked(self) -> None:
        """Empty strings, unknown fields and wrong types are refused with a clear message."""
        with pytest.raises(KitaruUsageError, match="Image base_image cannot be empty"):
            ImageSettings(base_image="  ")
        with pytest.raises(KitaruUsageError, match="requirements must be a list"):
            ImageSettings(requirements="httpx")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            ImageSettings(colour="red")  # type: ignore[call-arg]
        with pytest.raises(KitaruUsageError, match="Unknown image setting 'colour'"):
            flow(image={"colour": "red"})(_body)
        assert ImageSettings(base_image=" python:3.12 ").base_image == "python:3.12"
        assert ImageSettings.from_mapping({"parent_image": "img"}).base_image == "img"

    def test_kitaru_config_and_options_are_checked(self) -> None:
        """Negative retries, an empty stack and a non-bool cache are refused."""
        with pytest.raises(KitaruUsageError, match="retries must be a whole number"):
            KitaruConfig(retries=-1)
        with pytest.raises(KitaruUsageError, match="stack cannot be empty"):
            kt.configure(stack="")
        with pytest.raises(KitaruUsageError, match="cache must be True, False or None"):
            plain.run(1, cache="yes")
        assert KitaruConfig(image="python:3.12").image == ImageSettings(base_image="python:3.12")

    def test_checkpoint_runtime_takes_kitaru_values(self) -> None:
        """runtime= accepts inline and isolated in any case, and refuses anything else."""
        assert checkpoint(runtime="INLINE")(_body).runtime == "inline"
        assert pair.runtime == "isolated"
        with pytest.raises(KitaruUsageError, match="Unsupported checkpoint runtime 'remote'"):
            checkpoint(runtime="remote")(_body)


class TestProduct:
    def test_product_fans_out_over_every_combination(self) -> None:
        """.product() makes one call per combination, in itertools.product order."""
        handle = grid.run()
        assert handle.wait(timeout=TIMEOUT) == ["1:a", "1:b", "2:a", "2:b"]
        calls = KitaruClient().executions.get(handle.exec_id).checkpoints
        assert [c.invocation_id for c in calls] == ["pair", "pair_2", "pair_3", "pair_4"]


class TestReplayHonoursTheFrozenSpec:
    def test_a_replay_inherits_the_source_configuration(self) -> None:
        """A replay without options keeps the source's cache and retries; options change them."""
        source = takes_one.run(2, cache=True, retries=3)
        source.wait(timeout=TIMEOUT)
        kt.configure(retries=0, cache=False)
        same = takes_one.replay(source.exec_id, from_="double")
        assert same.wait(timeout=TIMEOUT) == 4
        resolved = spec_of(same.exec_id).resolved_execution
        assert (resolved.cache, resolved.retries) == (True, 3)
        changed = takes_one.replay(source.exec_id, from_="double", retries=1)
        changed.wait(timeout=TIMEOUT)
        assert spec_of(changed.exec_id).resolved_execution.retries == 1


class TestFrozenSpecHonouredOnResume:
    @pytest.mark.slow
    def test_a_resume_uses_the_settings_the_execution_started_with(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Killed, then resumed under other KITARU_RETRIES/KITARU_CACHE: the frozen values win."""
        side = tmp_path / "side.log"
        env = child_env(
            PYTHONPATH=str(REPO),
            KITARU_RETRIES="1",
            KITARU_CACHE="true",
            CONFIGURED_CRASH="1",
            CONFIGURED_SIDE=str(side),
        )
        died = subprocess.run(
            [sys.executable, "-m", "tests.flows.configured", "5"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert died.returncode == -9, died.stderr
        exec_id = json.loads(died.stdout.splitlines()[0])["exec_id"]

        monkeypatch.setenv("KITARU_RETRIES", "0")
        monkeypatch.setenv("KITARU_CACHE", "false")
        monkeypatch.setenv("CONFIGURED_SIDE", str(side))
        monkeypatch.setenv("CONFIGURED_FAIL_ONCE", "1")
        monkeypatch.delenv("CONFIGURED_CRASH", raising=False)
        result = KitaruClient().executions.resume(exec_id).wait(timeout=TIMEOUT)

        assert result == "summary of 10"
        ran = side.read_text().split()
        assert ran.count("fetch") == 1
        assert ran.count("body-after-crash") == 2, "the frozen retries=1 allowed a second pass"
        resolved = spec_of(exec_id).resolved_execution
        assert (resolved.retries, resolved.cache) == (1, True)
        completed = [
            e.event
            for e in open_store().read_events(exec_id)
            if isinstance(e.event, CallCompleted | CallStartedAndCompleted)
            and e.event.identity == "summarise"
        ]
        assert completed
        assert completed[0].cache_key is not None, "the frozen cache=True applied"
        assert os.environ["KITARU_CACHE"] == "false"
