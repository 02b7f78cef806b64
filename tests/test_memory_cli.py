"""``kitaru memory ...`` as a user runs it: the real command in a new process."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, assert_clean_error, child_env, kitaru

SCOPE = ("--scope", "repo_docs", "--scope-type", "namespace")


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The kitaru command of this checkout, started outside the repository."""
    return kitaru("memory", *args, cwd=tmp_path, env=child_env(PYTHONPATH=str(REPO), **env))


def as_json(tmp_path: Path, *args: str, **env: str) -> Any:
    result = run(tmp_path, *args, "-o", "json", **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


class TestReadAndWrite:
    @pytest.mark.slow
    def test_set_then_get_as_json(self, tmp_path: Path) -> None:
        """set parses JSON values; get -o json gives the entry and its value."""
        written = as_json(tmp_path, "set", "style/release_notes", '{"tone": "concise"}', *SCOPE)
        assert (written["version"], written["value_type"]) == (1, "dict")
        assert written["execution_id"] is None
        read = as_json(tmp_path, "get", "style/release_notes", *SCOPE)
        assert read["value"] == {"tone": "concise"}
        assert read["value_format"] == "json"
        assert read["artifact_id"] == written["artifact_id"]

    @pytest.mark.slow
    def test_a_value_that_is_not_json_is_stored_as_text(self, tmp_path: Path) -> None:
        """set keeps a value that does not parse as JSON as the raw string."""
        as_json(tmp_path, "set", "greeting", "hello there", *SCOPE)
        assert as_json(tmp_path, "get", "greeting", *SCOPE)["value"] == "hello there"

    @pytest.mark.slow
    def test_list_history_delete_and_scopes(self, tmp_path: Path) -> None:
        """delete writes a tombstone: list hides the key, history shows all its versions."""
        as_json(tmp_path, "set", "k", "1", *SCOPE)
        as_json(tmp_path, "set", "k", "2", *SCOPE)
        as_json(tmp_path, "set", "other", "3", *SCOPE)
        tombstone = as_json(tmp_path, "delete", "k", *SCOPE)
        assert (tombstone["version"], tombstone["is_deleted"]) == (3, True)
        assert [e["key"] for e in as_json(tmp_path, "list", *SCOPE)] == ["other"]
        history = as_json(tmp_path, "history", "k", *SCOPE)
        assert [(e["version"], e["is_deleted"]) for e in history] == [
            (3, True),
            (2, False),
            (1, False),
        ]
        assert as_json(tmp_path, "scopes") == [
            {"scope": "repo_docs", "scope_type": "namespace", "entry_count": 1}
        ]

    @pytest.mark.slow
    def test_text_output_names_what_was_done(self, tmp_path: Path) -> None:
        """Text output says what was saved, and get prints the value."""
        saved = run(tmp_path, "set", "k", "[1, 2]", *SCOPE)
        assert saved.returncode == 0, saved.stderr
        assert "Saved memory k in repo_docs (namespace): version 1 (list)." in saved.stdout
        shown = run(tmp_path, "get", "k", *SCOPE)
        assert "k  v1  list" in shown.stdout
        assert "detached" in shown.stdout


class TestPurge:
    @pytest.mark.slow
    def test_purge_keeps_the_newest_versions(self, tmp_path: Path) -> None:
        """purge --keep 1 deletes older versions for good; history shows only the newest."""
        for value in ("1", "2", "3"):
            as_json(tmp_path, "set", "k", value, *SCOPE)
        result = as_json(tmp_path, "purge", "k", "--keep", "1", *SCOPE)
        assert (result["versions_deleted"], result["keys_affected"]) == (2, 1)
        assert [e["version"] for e in as_json(tmp_path, "history", "k", *SCOPE)] == [3]

    @pytest.mark.slow
    def test_purge_scope_with_deleted_keys(self, tmp_path: Path) -> None:
        """purge-scope --include-deleted also removes tombstoned keys entirely."""
        as_json(tmp_path, "set", "live", "1", *SCOPE)
        as_json(tmp_path, "set", "live", "2", *SCOPE)
        as_json(tmp_path, "set", "gone", "1", *SCOPE)
        as_json(tmp_path, "delete", "gone", *SCOPE)
        result = as_json(tmp_path, "purge-scope", "--keep", "1", "--include-deleted", *SCOPE)
        assert (result["versions_deleted"], result["keys_affected"]) == (3, 2)
        assert_clean_error(run(tmp_path, "history", "gone", *SCOPE), "No memory history found")


class TestCompaction:
    @pytest.mark.slow
    def test_compact_then_read_the_log(self, tmp_path: Path) -> None:
        """compact writes the model's summary as a new version; compaction-log lists it."""
        model = {"KITARU_LLM_MOCK_RESPONSE": "short summary", "KITARU_DEFAULT_MODEL": "openai/x"}
        as_json(tmp_path, "set", "notes", '"a long note"', *SCOPE)
        result = as_json(tmp_path, "compact", "--key", "notes", *SCOPE, **model)
        assert (result["entry"]["version"], result["sources_read"]) == (2, 1)
        assert as_json(tmp_path, "get", "notes", *SCOPE)["value"] == "short summary"
        (record,) = as_json(tmp_path, "compaction-log", *SCOPE)
        assert (record["operation"], record["target_key"]) == ("compact", "notes")
        shown = run(tmp_path, "compaction-log", *SCOPE)
        assert "compact  notes -> notes v2" in shown.stdout


class TestErrors:
    @pytest.mark.slow
    @pytest.mark.parametrize(
        ("args", "fragment"),
        [
            (("list", "--scope-type", "namespace"), "Missing required option `--scope`"),
            (("list", "--scope", "x"), "Missing required option `--scope-type`"),
            (("list", "--scope", "x", "--scope-type", "project"), "'namespace', 'flow' or"),
            (("get", "nope", *SCOPE), "No memory entry found for key `nope`"),
            (("delete", "nope", *SCOPE), "No memory entry found for key `nope`"),
            (("set", "a:b", "1", *SCOPE), "no colons"),
            (("purge", "k", "--keep", "-1", *SCOPE), "keep"),
            (("compact", *SCOPE, "--key", "nope"), "found no current value for key 'nope'"),
            (("compact", *SCOPE, "--keys", "a"), "requires `target_key`"),
            (("reindex", "--apply"), "not available in this version of kitaru, and not needed"),
        ],
    )
    def test_errors_are_one_line_with_exit_1(
        self, tmp_path: Path, args: tuple[str, ...], fragment: str
    ) -> None:
        """Bad input gives one line on stderr saying what to do, and exit code 1."""
        for output in ("text", "json"):
            result = run(tmp_path, *args, "-o", output)
            assert_clean_error(result, fragment)
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
            assert result.stdout == ""
