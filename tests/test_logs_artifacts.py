"""What an execution records besides its calls: metadata, captured output, artifacts.

``kitaru.log`` attaches metadata; prints and ``logging`` records inside checkpoint
bodies are journaled per attempt and shown by ``kitaru executions logs`` (followed
live from another process); ``kitaru.save`` / ``kitaru.load`` and
``KitaruClient().artifacts`` store and find named values.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from helpers import (
    REPO,
    TIMEOUT,
    background,
    child_env,
    kitaru,
    kitaru_command,
    line_before_communicate,
    started,
)

import kitaru as kt
from kitaru import (
    KitaruContextError,
    KitaruStateError,
    KitaruUserCodeError,
    checkpoint,
    flow,
)
from kitaru._artifacts import ARTIFACT_TYPES
from kitaru.cli import main
from kitaru.client import KitaruClient
from kitaru.journal.events import MetadataLogged

_runs: Counter[str] = Counter()
_attempts: Counter[str] = Counter()
_agent_log = logging.getLogger("agent")


@pytest.fixture(autouse=True)
def _fresh_counts() -> None:
    _runs.clear()
    _attempts.clear()


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def finished(handle: kt.FlowHandle) -> str:
    handle.wait(timeout=TIMEOUT)
    return handle.exec_id


# -- kitaru.log ---------------------------------------------------------------------------


@checkpoint
def measured(item: str) -> str:
    kt.log(progress={"items": 1, "detail": {"first": item}}, stage="start", tags=["a"])
    kt.log(progress={"detail": {"last": item}}, stage="done", tags=["b"])
    return item


@flow
def logged(item: str) -> str:
    kt.log(run={"owner": "ann"}, attempt=1)
    out = measured(item)
    kt.log(run={"cost": 0.5}, attempt=2)
    return out  # type: ignore[return-value]


@checkpoint
def logs_bad_value() -> str:
    try:
        kt.log(handle=object())
    except kt.KitaruUsageError as exc:
        return str(exc)
    return "accepted"


@flow
def bad_metadata() -> dict[str, str]:
    in_checkpoint = logs_bad_value()
    try:
        kt.log(when=bad_metadata)
    except kt.KitaruUsageError as exc:
        in_body = str(exc)
    return {"checkpoint": in_checkpoint, "body": in_body}  # type: ignore[dict-item]


class TestMetadata:
    def test_dicts_merge_and_other_values_replace(self) -> None:
        """Repeated keys merge dicts key by key; scalars and lists are replaced."""
        exec_id = finished(logged.run("x"))
        execution = KitaruClient().executions.get(exec_id)
        assert execution.metadata == {"run": {"owner": "ann", "cost": 0.5}, "attempt": 2}
        (call,) = execution.checkpoints
        assert call.metadata == {
            "progress": {"items": 1, "detail": {"first": "x", "last": "x"}},
            "stage": "done",
            "tags": ["b"],
        }

    def test_get_shows_the_metadata(self) -> None:
        """``executions get`` prints execution metadata; its JSON has every call's too."""
        exec_id = finished(logged.run("x"))
        text = cli("executions", "get", exec_id).stdout
        assert 'Metadata   {"run": {"owner": "ann", "cost": 0.5}, "attempt": 2}' in text
        data = json.loads(cli("executions", "get", exec_id, "-o", "json").stdout)
        assert data["metadata"]["run"] == {"owner": "ann", "cost": 0.5}
        assert data["checkpoints"][0]["metadata"]["stage"] == "done"

    def test_values_that_are_not_json_are_refused_where_they_are_logged(self) -> None:
        """A value JSON cannot hold raises KitaruUsageError in a checkpoint and in the body."""
        result = bad_metadata.run().wait(timeout=TIMEOUT)
        for message in result.values():
            assert message.startswith("kitaru.log() takes JSON-serialisable values")
            assert "Convert the value first." in message

    def test_outside_a_flow(self) -> None:
        """``kitaru.log()`` outside a flow raises KitaruContextError."""
        with pytest.raises(KitaruContextError, match="can only run inside a @flow"):
            kt.log(a=1)

    def test_a_retried_flow_body_does_not_log_twice(self) -> None:
        """Execution metadata logged again by a re-run flow body is not journaled again."""
        handle = logs_then_fails.run()
        with pytest.raises(KitaruUserCodeError):
            handle.wait(timeout=TIMEOUT)
        _runs["pass"] = 1
        KitaruClient().executions.retry(handle.exec_id).wait(timeout=TIMEOUT)
        events = KitaruClient()._store.read_events(handle.exec_id)
        body_logs = [
            s.event for s in events if isinstance(s.event, MetadataLogged) and s.event.call is None
        ]
        assert len(body_logs) == 1
        assert KitaruClient().executions.get(handle.exec_id).metadata == {"phase": "setup"}


@checkpoint
def must_pass() -> str:
    if not _runs["pass"]:
        raise RuntimeError("not yet")
    return "ok"


@flow
def logs_then_fails() -> str:
    kt.log(phase="setup")
    return must_pass()  # type: ignore[return-value]


# -- captured prints and log records ----------------------------------------------------


@checkpoint(retries=1)
def chatty(name: str) -> str:
    _attempts[name] += 1
    attempt = _attempts[name]
    print(f"{name}: attempt {attempt} starts")
    _agent_log.warning("%s: warned in attempt %d", name, attempt)
    print(f"{name}: to stderr", file=sys.stderr)
    if attempt == 1 and name == "flaky":
        raise ConnectionError("first attempt fails")
    print(f"{name}: no newline", end="")
    return name


@flow
def talkative() -> list[str]:
    print("the flow body is not captured")
    return [chatty("steady"), chatty("flaky")]  # type: ignore[list-item]


def lines_of(exec_id: str, checkpoint: str | None = None) -> list[tuple[str, int, str, str, str]]:
    return [
        (line.checkpoint, line.attempt, line.level, line.source, line.message)
        for line in KitaruClient().executions.logs(exec_id, checkpoint=checkpoint)
    ]


STEADY = [
    ("chatty", 1, "INFO", "stdout", "steady: attempt 1 starts"),
    ("chatty", 1, "WARNING", "agent", "steady: warned in attempt 1"),
    ("chatty", 1, "ERROR", "stderr", "steady: to stderr"),
    ("chatty", 1, "INFO", "stdout", "steady: no newline"),
]
FLAKY = [
    ("chatty_2", 1, "INFO", "stdout", "flaky: attempt 1 starts"),
    ("chatty_2", 1, "WARNING", "agent", "flaky: warned in attempt 1"),
    ("chatty_2", 1, "ERROR", "stderr", "flaky: to stderr"),
    ("chatty_2", 2, "INFO", "stdout", "flaky: attempt 2 starts"),
    ("chatty_2", 2, "WARNING", "agent", "flaky: warned in attempt 2"),
    ("chatty_2", 2, "ERROR", "stderr", "flaky: to stderr"),
    ("chatty_2", 2, "INFO", "stdout", "flaky: no newline"),
]


class TestCapturedOutput:
    def test_prints_and_log_records_are_journaled_per_attempt_in_order(self) -> None:
        """Every line of every attempt is kept, with its level and source, in time order."""
        exec_id = finished(talkative.run())
        assert lines_of(exec_id) == STEADY + FLAKY

    def test_a_checkpoint_is_chosen_by_name_or_identity(self) -> None:
        """``checkpoint=`` takes a call identity, or a name for every call of it."""
        exec_id = finished(talkative.run())
        assert lines_of(exec_id, "chatty_2") == FLAKY
        assert lines_of(exec_id, "chatty") == STEADY + FLAKY
        assert lines_of(exec_id, "nothing") == []

    def test_reused_calls_do_not_log_again(self) -> None:
        """A replay's copied calls add no lines; only what ran live is captured."""
        exec_id = finished(talkative.run())
        _attempts.clear()
        replayed = finished(talkative.replay(exec_id, from_="chatty_2"))
        assert [line[0] for line in lines_of(replayed)] == ["chatty_2"] * 7

    def test_the_command_prints_lines_and_filters_them(self) -> None:
        """``kitaru executions logs`` prints one line per entry (-vv: with where it came
        from); --checkpoint filters."""
        exec_id = finished(talkative.run())
        plain = cli("executions", "logs", exec_id)
        assert plain.stdout.splitlines()[0] == "steady: attempt 1 starts"
        text = cli("executions", "logs", exec_id, "-vv")
        assert text.exit_code == 0, text.stderr
        shown = text.stdout.splitlines()
        assert len(shown) == 11
        assert shown[0].endswith("chatty#1 INFO    stdout: steady: attempt 1 starts")
        assert shown[4].endswith("chatty_2#1 INFO    stdout: flaky: attempt 1 starts")
        assert shown[-1].endswith("chatty_2#2 INFO    stdout: flaky: no newline")
        only = cli("executions", "logs", exec_id, "--checkpoint", "chatty_2").stdout
        assert len(only.splitlines()) == 7

    def test_the_command_prints_json_lines(self) -> None:
        """``-o json`` prints one JSON object per line with every field."""
        exec_id = finished(talkative.run())
        result = cli("executions", "logs", exec_id, "-o", "json", "--checkpoint", "chatty")
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        assert [
            (r["checkpoint"], r["attempt"], r["level"], r["source"], r["message"]) for r in rows
        ] == STEADY + FLAKY
        assert all(set(r) == {"timestamp", "level", "source", "checkpoint", "attempt", "message"}
                   for r in rows)  # fmt: skip

    def test_logs_of_an_unknown_execution(self) -> None:
        """An unknown id is one error line and exit code 1."""
        result = cli("executions", "logs", "no-such-id")
        assert result.exit_code == 1
        assert "No execution no-such-id" in result.stderr


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def follow(exec_id: str, cwd: Path, *options: str) -> Any:
    return background(
        kitaru_command("executions", "logs", exec_id, "--follow", "-o", "json", *options),
        cwd=cwd,
        env=child_env(),
    )


class TestFollow:
    @pytest.mark.slow
    def test_follow_prints_every_line_once_until_the_execution_ends(
        self, tmp_path: Path, elsewhere: Path
    ) -> None:
        """``logs --follow`` from another process streams each line once and exits at the end."""
        with background(
            [sys.executable, "-m", "tests.mgmt_flows.ticker", "6"],
            cwd=REPO,
            env=child_env(TICK_PAUSE="0.2"),
        ) as runner:
            exec_id = started(runner)
            with follow(exec_id, elsewhere) as follower:
                out, err = follower.communicate(timeout=TIMEOUT)
                assert follower.returncode == 0, err
                assert runner.wait(timeout=TIMEOUT) == 0
        rows = [json.loads(line) for line in out.splitlines()]
        expected = [(f"tick {i}", f"logged {i}") for i in range(6)]
        assert [
            (a["message"], b["message"]) for a, b in zip(rows[::2], rows[1::2], strict=True)
        ] == expected
        assert [r["checkpoint"] for r in rows[::2]] == ["tick"] + [f"tick_{i}" for i in range(2, 7)]

    @pytest.mark.slow
    def test_follow_shows_concurrent_checkpoints_lines_once_as_they_print(
        self, tmp_path: Path, elsewhere: Path
    ) -> None:
        """A held checkpoint's line is followed before it ends; every line is printed once."""
        release = tmp_path / "release"
        with background(
            [sys.executable, "-m", "tests.mgmt_flows.chatter"],
            cwd=REPO,
            env=child_env(CHATTER_RELEASE=str(release)),
        ) as runner:
            exec_id = started(runner)
            with follow(exec_id, elsewhere) as follower:
                first = json.loads(line_before_communicate(follower))
                assert first["message"] == "slow starts"
                assert not release.exists()
                release.touch()
                rest, err = follower.communicate(timeout=TIMEOUT)
                assert follower.returncode == 0, err
            assert runner.wait(timeout=TIMEOUT) == 0
        messages = [first["message"], *(json.loads(line)["message"] for line in rest.splitlines())]
        assert Counter(messages) == Counter(["fast says hello", "slow starts", "slow ends"])
        assert messages.index("slow starts") < messages.index("slow ends")

    def test_follow_of_a_finished_execution_prints_all_and_returns(self) -> None:
        """On a finished execution ``--follow`` is the same as a plain listing."""
        exec_id = finished(talkative.run())
        result = cli("executions", "logs", exec_id, "--follow")
        assert result.exit_code == 0
        assert len(result.stdout.splitlines()) == 11

    @pytest.mark.slow
    def test_follow_stops_when_the_execution_is_cancelled(self, elsewhere: Path) -> None:
        """``--follow`` also ends when the execution ends cancelled."""
        with background(
            [sys.executable, "-m", "tests.mgmt_flows.ticker", "10000"],
            cwd=REPO,
            env=child_env(TICK_PAUSE="0.05"),
        ) as runner:
            exec_id = started(runner)
            with follow(exec_id, elsewhere) as follower:
                assert follower.stdout is not None
                follower.stdout.readline()
                assert kitaru("executions", "cancel", exec_id, cwd=elsewhere).returncode == 0
                _, err = follower.communicate(timeout=TIMEOUT)
                assert follower.returncode == 0, err
            assert runner.wait(timeout=TIMEOUT) == 1
        assert KitaruClient().executions.get(exec_id).status == "cancelled"


# -- kitaru.save, kitaru.load, KitaruClient().artifacts ----------------------------------


@checkpoint(type="tool_call")
def research(topic: str) -> str:
    kt.save("sources", [f"{topic}.org", ("pair", 2)], type="context", tags=["web", "raw"])
    kt.save("draft", f"draft about {topic}")
    return f"summary of {topic}"


@checkpoint
def review(summary: str) -> str:
    kt.save("verdict", {"ok": True}, type="blob")
    return summary.upper()


@flow
def study(topic: str) -> dict[str, str]:
    summary = research(topic)
    first = review(summary)
    second = review(summary)
    return {"first": first, "second": second}  # type: ignore[dict-item]


@checkpoint
def saves_wrongly(case: str) -> str:
    arguments: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
        "bad-type": (("x", 1), {"type": "picture"}),
        "empty-name": (("", 1), {}),
        "name-not-str": ((5, 1), {}),
        "tags-not-str": (("x", 1), {"tags": [1]}),
        "unstorable": (("x", object()), {}),
    }
    args, kwargs = arguments[case]
    try:
        kt.save(*args, **kwargs)
    except kt.KitaruUsageError as exc:
        return str(exc)
    return "accepted"


@flow
def bad_save(case: str) -> str:
    return saves_wrongly(case)  # type: ignore[return-value]


@flow
def saves_in_body() -> None:
    kt.save("x", 1)


@checkpoint(retries=1)
def saves_each_attempt() -> int:
    _attempts["save"] += 1
    kt.save("progress", _attempts["save"])
    if _attempts["save"] == 1:
        raise ConnectionError("first attempt fails")
    return _attempts["save"]


@flow
def saves_twice() -> int:
    return saves_each_attempt()  # type: ignore[return-value]


@checkpoint
def step(x: int) -> int:
    return x * 10


@flow
def only_ids() -> list[int]:
    return [step(1, id="a"), step(2, id="b")]  # type: ignore[list-item]


@flow
def loads_in_body(source: str) -> Any:
    return kt.load(source, "sources")


@checkpoint
def loads_in_checkpoint(source: str) -> Any:
    return kt.load(source, "draft")


@flow
def loads_in_step(source: str) -> Any:
    return loads_in_checkpoint(source)


@checkpoint
def asks_model(topic: str) -> str:
    return kt.llm(f"Inside: {topic}", model="openai/gpt-4o-mini")  # type: ignore[return-value]


@flow
def talks_to_models(topic: str) -> list[str]:
    inside = asks_model(topic)
    outside = kt.llm(f"Outside: {topic}", model="openai/gpt-4o-mini", name="headline")
    return [inside, outside]  # type: ignore[list-item]


SOURCES = ["tides.org", ("pair", 2)]


class TestSave:
    def test_saved_artifacts_are_listed_with_their_kind_tags_and_producer(self) -> None:
        """``artifacts.list`` shows saved values, then checkpoint outputs, in order."""
        exec_id = finished(study.run("tides"))
        refs = KitaruClient().artifacts.list(exec_id)
        assert [(r.name, r.kind, r.origin, r.producing_call) for r in refs] == [
            ("sources", "context", "saved", "research"),
            ("draft", "output", "saved", "research"),
            ("verdict", "blob", "saved", "review"),
            ("verdict", "blob", "saved", "review_2"),
            ("research", "output", "checkpoint_output", "research"),
            ("review", "output", "checkpoint_output", "review"),
            ("review_2", "output", "checkpoint_output", "review_2"),
        ]
        assert refs[0].tags == ("web", "raw")
        assert refs[0].attempt == 1
        assert refs[0].load() == SOURCES
        assert refs[-1].load() == "SUMMARY OF TIDES"
        assert all(r.exec_id == exec_id and r.artifact_id.startswith(exec_id) for r in refs)

    @pytest.mark.parametrize("kind", ARTIFACT_TYPES)
    def test_every_artifact_type_is_accepted(self, kind: str) -> None:
        """Each documented type label can be given to ``save``."""
        exec_id = finished(typed_save.run(kind))
        (saved,) = [r for r in KitaruClient().artifacts.list(exec_id) if r.origin == "saved"]
        assert (saved.kind, saved.load()) == (kind, kind)

    @pytest.mark.parametrize(
        ("case", "fragment"),
        [
            ("bad-type", "type='picture' is not an artifact type; use one of prompt, response"),
            ("empty-name", "An artifact name must be a non-empty string"),
            ("name-not-str", "An artifact name must be a non-empty string"),
            ("tags-not-str", "tags= must be a list of strings"),
            ("unstorable", "Artifact 'x' is a value of type builtins.object"),
        ],
    )
    def test_bad_arguments_raise_usage_errors(self, case: str, fragment: str) -> None:
        """Bad names, types, tags or values raise KitaruUsageError inside the checkpoint."""
        exec_id = finished(bad_save.run(case))
        assert fragment in KitaruClient().executions.get(exec_id).result()
        assert not [r for r in KitaruClient().artifacts.list(exec_id) if r.origin == "saved"]

    def test_save_only_runs_inside_a_checkpoint(self) -> None:
        """``save`` in a flow body or outside a flow raises KitaruContextError."""
        with pytest.raises(KitaruContextError, match=r"inside a @checkpoint"):
            kt.save("x", 1)
        with pytest.raises(KitaruUserCodeError) as caught:
            saves_in_body.run().wait(timeout=TIMEOUT)
        assert caught.value.error_type.endswith("KitaruContextError")
        assert "kitaru.save() can only run inside a @checkpoint" in caught.value.error_message

    def test_each_attempt_keeps_what_it_saved_and_load_gives_the_latest(self) -> None:
        """A retried checkpoint's attempts each keep their artifact; ``load`` takes the last."""
        exec_id = finished(saves_twice.run())
        saved = [r for r in KitaruClient().artifacts.list(exec_id) if r.origin == "saved"]
        assert [(r.attempt, r.load()) for r in saved] == [(1, 1), (2, 2)]
        assert kt.load(exec_id, "progress") == 2


@flow
def typed_save(kind: str) -> str:
    return save_as(kind)  # type: ignore[return-value]


@checkpoint
def save_as(kind: str) -> str:
    kt.save("thing", kind, type=kind)
    return kind


class TestLoad:
    @pytest.mark.slow
    def test_load_by_name_anywhere(self, tmp_path: Path) -> None:
        """``kitaru.load`` works here, in a flow body, in a checkpoint and in another process."""
        source = finished(study.run("tides"))
        assert kt.load(source, "sources") == SOURCES
        assert loads_in_body.run(source).wait(timeout=TIMEOUT) == SOURCES
        assert loads_in_step.run(source).wait(timeout=TIMEOUT) == "draft about tides"
        other = subprocess.run(
            [sys.executable, "-c", f"import kitaru; print(kitaru.load({source!r}, 'research'))"],
            cwd=tmp_path,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert other.returncode == 0, other.stderr
        assert other.stdout.strip() == "summary of tides"

    def test_checkpoint_outputs_load_by_identity_or_name(self) -> None:
        """A call identity gives that call's output; a saved artifact wins over an output."""
        source = finished(study.run("tides"))
        assert kt.load(source, "research") == "summary of tides"
        assert kt.load(source, "review_2") == "SUMMARY OF TIDES"
        assert kt.load(source, "review") == "SUMMARY OF TIDES"

    def test_a_name_of_one_call_made_with_id_loads_it(self) -> None:
        """A checkpoint name loads its output when only one call of it has one."""
        exec_id = finished(single_id.run())
        assert kt.load(exec_id, "step") == 70

    def test_a_name_of_several_id_calls_is_ambiguous(self) -> None:
        """A name whose calls all have ``id=`` names them all: it is refused, listing them."""
        exec_id = finished(only_ids.run())
        with pytest.raises(KitaruStateError, match=r"names several checkpoint outputs \(a, b\)"):
            kt.load(exec_id, "step")
        assert kt.load(exec_id, "b") == 20

    def test_a_name_saved_by_several_checkpoints_is_ambiguous(self) -> None:
        """Artifacts of one name from two calls are refused by name; each loads by id."""
        exec_id = finished(study.run("tides"))
        with pytest.raises(KitaruStateError) as caught:
            kt.load(exec_id, "verdict")
        message = str(caught.value)
        assert "Several checkpoints saved an artifact 'verdict' (review, review_2)" in message
        ids = [r.artifact_id for r in KitaruClient().artifacts.list(exec_id) if r.name == "verdict"]
        assert all(artifact_id in message for artifact_id in ids)
        assert [KitaruClient().artifacts.get(i).load() for i in ids] == [{"ok": True}] * 2

    def test_unknown_names_list_what_there_is(self) -> None:
        """An unknown name raises KitaruStateError naming every available artifact."""
        exec_id = finished(study.run("tides"))
        with pytest.raises(KitaruStateError) as caught:
            kt.load(exec_id, "nothing")
        assert "Available: draft, research, review, review_2, sources, verdict." in str(
            caught.value
        )
        with pytest.raises(KitaruStateError, match="No execution"):
            kt.load("no-such-execution", "sources")
        with pytest.raises(KitaruStateError, match="No artifact"):
            KitaruClient().artifacts.get(f"{exec_id}:999")

    def test_get_finds_an_artifact_by_its_id(self) -> None:
        """Every id ``list`` gives is accepted by ``get``, which loads the same value."""
        exec_id = finished(study.run("tides"))
        client = KitaruClient()
        for ref in client.artifacts.list(exec_id):
            again = client.artifacts.get(ref.artifact_id)
            assert (again.name, again.kind, again.origin) == (ref.name, ref.kind, ref.origin)
            assert again.load() == ref.load()


@flow
def single_id() -> int:
    return step(7, id="only")  # type: ignore[return-value]


class TestModelArtifacts:
    def test_prompts_and_responses_are_artifacts(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Model calls in a checkpoint and in the flow body list their prompt and response."""
        monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "mocked reply")
        exec_id = finished(talks_to_models.run("tides"))
        refs = {r.name: r for r in KitaruClient().artifacts.list(exec_id) if r.origin == "llm"}
        assert set(refs) == {
            "asks_model.llm_1.prompt",
            "asks_model.llm_1.response",
            "headline.prompt",
            "headline.response",
        }
        assert refs["asks_model.llm_1.prompt"].load() == [
            {"role": "user", "content": "Inside: tides"}
        ]
        assert refs["asks_model.llm_1.prompt"].kind == "prompt"
        assert refs["asks_model.llm_1.response"].kind == "response"
        assert refs["headline.response"].load() == "mocked reply"
        assert refs["headline.prompt"].producing_call == "headline"
        assert kt.load(exec_id, "headline.prompt") == [
            {"role": "user", "content": "Outside: tides"}
        ]
        assert kt.load(exec_id, "headline") == "mocked reply"


class TestArtifactsOfReplays:
    def test_a_reused_checkpoint_brings_its_saved_artifacts(self) -> None:
        """A replay that copies a checkpoint can load what that checkpoint saved."""
        source = finished(study.run("tides"))
        replayed = finished(study.replay(source, from_="review"))
        assert kt.load(replayed, "sources") == SOURCES
        assert kt.load(replayed, "draft") == "draft about tides"
        saved = [
            (r.name, r.producing_call, r.attempt)
            for r in KitaruClient().artifacts.list(replayed)
            if r.origin == "saved"
        ]
        assert saved == [
            ("sources", "research", 1),
            ("draft", "research", 1),
            ("verdict", "review", 1),
            ("verdict", "review_2", 1),
        ]

    def test_an_overridden_checkpoint_brings_none(self) -> None:
        """An overridden call did not run: the replay holds no artifact saved by it."""
        source = finished(study.run("tides"))
        replayed = finished(
            study.replay(source, from_="review", overrides={"checkpoint.research": "given"})
        )
        assert kt.load(replayed, "research") == "given"
        with pytest.raises(KitaruStateError, match="no artifact or checkpoint output 'sources'"):
            kt.load(replayed, "sources")
