"""The local secrets store: kitaru/_secrets.py."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from kitaru._secrets import (
    SecretNotFoundError,
    delete_secret,
    get_secret,
    list_secrets,
    secrets_path,
    set_secret,
    write_private_json,
)
from kitaru.errors import KitaruUsageError

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


class TestStoreAndRead:
    def test_set_then_get_returns_the_values(self) -> None:
        """A stored secret reads back with exactly its values."""
        keys = set_secret("openai-creds", {"OPENAI_API_KEY": "sk-one"})
        assert keys == ["OPENAI_API_KEY"]
        assert get_secret("openai-creds") == {"OPENAI_API_KEY": "sk-one"}

    def test_set_merges_into_an_existing_secret(self) -> None:
        """Setting keys on an existing secret updates those keys and keeps the others."""
        set_secret("creds", {"A": "1", "B": "2"})
        keys = set_secret("creds", {"B": "20", "C": "30"})
        assert keys == ["A", "B", "C"]
        assert get_secret("creds") == {"A": "1", "B": "20", "C": "30"}

    def test_list_gives_names_and_keys_but_no_values(self) -> None:
        """Listing shows each secret's key names, sorted, and never a value."""
        set_secret("zeta", {"K2": "v2", "K1": "v1"})
        set_secret("alpha", {"X": "hidden-value"})
        listed = list_secrets()
        assert listed == {"alpha": ["X"], "zeta": ["K1", "K2"]}
        assert "hidden-value" not in json.dumps(listed)

    def test_delete_removes_only_that_secret(self) -> None:
        """Deleting a secret leaves the others in place."""
        set_secret("one", {"K": "1"})
        set_secret("two", {"K": "2"})
        delete_secret("one")
        assert list_secrets() == {"two": ["K"]}

    def test_get_returns_a_copy(self) -> None:
        """Changing the dict get_secret returned does not change the stored secret."""
        set_secret("creds", {"K": "v"})
        get_secret("creds")["K"] = "changed"
        assert get_secret("creds") == {"K": "v"}

    def test_no_file_means_no_secrets(self) -> None:
        """Before anything is stored there are no secrets and no file."""
        assert list_secrets() == {}
        assert not secrets_path().exists()


class TestMissingSecrets:
    def test_get_missing_secret_says_how_to_create_it(self) -> None:
        """Reading an unknown secret raises SecretNotFoundError with the command to create it."""
        with pytest.raises(SecretNotFoundError, match=r"kitaru secrets set nope --KEY=VALUE"):
            get_secret("nope")

    def test_delete_missing_secret_raises(self) -> None:
        """Deleting an unknown secret raises SecretNotFoundError naming it."""
        with pytest.raises(SecretNotFoundError, match="'nope'") as info:
            delete_secret("nope")
        assert info.value.name == "nope"


class TestValidation:
    @pytest.mark.parametrize("name", ["", "-lead", "has space", "a/b", "x" * 101, "é"])
    def test_bad_secret_names_are_refused(self, name: str) -> None:
        """Secret names must start with a letter or digit and use only safe characters."""
        with pytest.raises(KitaruUsageError, match="Invalid secret name"):
            set_secret(name, {"K": "v"})

    @pytest.mark.parametrize("key", ["", "1ABC", "with-dash", "a b"])
    def test_bad_keys_are_refused(self, key: str) -> None:
        """Keys must look like environment variable names."""
        with pytest.raises(KitaruUsageError, match="Invalid key"):
            set_secret("creds", {key: "v"})

    def test_empty_value_is_refused(self) -> None:
        """A key with an empty value is refused, and nothing is stored."""
        with pytest.raises(KitaruUsageError, match="non-empty text value"):
            set_secret("creds", {"K": ""})
        assert list_secrets() == {}

    def test_no_keys_is_refused(self) -> None:
        """Storing a secret with no keys at all is refused."""
        with pytest.raises(KitaruUsageError, match="at least one key"):
            set_secret("creds", {})


@posix_only
class TestFilePermissions:
    def test_secrets_file_is_owner_only(self) -> None:
        """The secrets file is created with mode 0600."""
        set_secret("creds", {"K": "v"})
        assert stat.S_IMODE(secrets_path().stat().st_mode) == 0o600

    def test_config_dir_created_owner_only(self, kitaru_env: Path) -> None:
        """A config dir created for secrets gets mode 0700, whatever the umask."""
        old_umask = os.umask(0o022)
        try:
            set_secret("creds", {"K": "v"})
        finally:
            os.umask(old_umask)
        assert stat.S_IMODE(kitaru_env.stat().st_mode) == 0o700

    def test_mode_stays_0600_after_updates(self) -> None:
        """Rewriting the file on update keeps it owner-only."""
        set_secret("creds", {"K": "v"})
        set_secret("creds", {"K2": "v2"})
        delete_secret("creds")
        assert stat.S_IMODE(secrets_path().stat().st_mode) == 0o600

    def test_file_readable_by_others_is_refused(self) -> None:
        """A secrets file others can read is refused with the chmod that fixes it."""
        set_secret("creds", {"K": "v"})
        secrets_path().chmod(0o644)
        with pytest.raises(KitaruUsageError, match=r"chmod 600"):
            get_secret("creds")

    def test_write_leaves_no_temp_files(self, kitaru_env: Path) -> None:
        """An atomic write replaces the file and leaves no temp file behind."""
        set_secret("creds", {"K": "v"})
        set_secret("creds", {"K": "w"})
        assert sorted(p.name for p in kitaru_env.iterdir()) == ["secrets.json"]


class TestFileFormat:
    def test_file_is_readable_json_with_a_version(self) -> None:
        """The file is indented JSON with a format version."""
        set_secret("creds", {"K": "v"})
        text = secrets_path().read_text()
        assert json.loads(text) == {"version": 1, "secrets": {"creds": {"K": "v"}}}
        assert "\n  " in text

    def test_corrupt_file_error_names_the_file_without_values(self) -> None:
        """A broken secrets file is reported with its path, never with its contents."""
        set_secret("creds", {"K": "v"})
        secrets_path().write_text('{"version": 1, "secrets": {"creds": {"K": 5}}}')
        with pytest.raises(KitaruUsageError, match="secrets file") as info:
            list_secrets()
        assert str(secrets_path()) in str(info.value)

    def test_newer_format_version_is_reported(self) -> None:
        """A file from a newer kitaru is reported, not mis-read."""
        set_secret("creds", {"K": "v"})
        secrets_path().write_text('{"version": 2, "secrets": {}}')
        with pytest.raises(KitaruUsageError, match="upgrade kitaru"):
            list_secrets()

    def test_failed_write_keeps_the_old_file(self, tmp_path: Path) -> None:
        """If encoding fails, the previous file is untouched and no temp file remains."""
        target = tmp_path / "out" / "data.json"
        write_private_json(target, {"a": 1})
        with pytest.raises(TypeError):
            write_private_json(target, {"a": object()})
        assert json.loads(target.read_text()) == {"a": 1}
        assert [p.name for p in target.parent.iterdir()] == ["data.json"]
