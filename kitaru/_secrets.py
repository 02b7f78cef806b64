"""Named secrets (groups of ``KEY=VALUE`` pairs) kept on this machine for their owner.

All secrets live in one JSON file, ``secrets.json`` in the config dir, shaped
``{"version": 1, "secrets": {"openai-creds": {"OPENAI_API_KEY": "..."}}}``. The file is
mode 0600 in a dir created 0700, and it is always replaced atomically, so a crash never
leaves half a file. A secrets file that other users can read is refused, not fixed in
silence: the user should learn that it was exposed.

Values leave this module only through :func:`get_secret`. Error messages name secrets and
keys, never values.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from kitaru._config import config_dir
from kitaru.errors import KitaruUsageError, SecretNotFoundError

__all__ = [
    "MASK",
    "SecretNotFoundError",
    "delete_secret",
    "get_secret",
    "list_secrets",
    "secrets_path",
    "set_secret",
    "stored_values",
    "validate_secret_name",
    "write_private_json",
]

SECRETS_FILE_NAME = "secrets.json"
MASK = "********"
_FORMAT_VERSION = 1
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


class _SecretsFile(msgspec.Struct, forbid_unknown_fields=True):
    version: int
    secrets: dict[str, dict[str, str]]


def secrets_path() -> Path:
    """Return the path of the secrets file."""
    return config_dir() / SECRETS_FILE_NAME


def validate_secret_name(name: object) -> str:
    """Return ``name`` if it is a valid secret name, else raise ``KitaruUsageError``."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise KitaruUsageError(
            f"Invalid secret name {name!r}: use letters, digits, '_', '.' or '-', starting "
            "with a letter or digit (at most 100 characters), e.g. openai-creds."
        )
    return name


def set_secret(name: str, values: Mapping[str, str]) -> list[str]:
    """Create secret ``name`` or merge ``values`` into it; return all its key names, sorted."""
    validate_secret_name(name)
    if not values:
        raise KitaruUsageError(
            f"Give at least one key for secret '{name}', e.g. --OPENAI_API_KEY=<key>."
        )
    for key, value in values.items():
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
            raise KitaruUsageError(
                f"Invalid key {key!r} for secret '{name}': use letters, digits and '_', not "
                "starting with a digit, e.g. OPENAI_API_KEY."
            )
        if not isinstance(value, str) or not value:
            raise KitaruUsageError(f"Key {key} of secret '{name}' needs a non-empty text value.")
    stored = _read()
    merged = {**stored.get(name, {}), **values}
    stored[name] = merged
    _write(stored)
    return sorted(merged)


def get_secret(name: str) -> dict[str, str]:
    """Return a copy of secret ``name``'s values; raise ``SecretNotFoundError`` if absent."""
    validate_secret_name(name)
    stored = _read()
    if name not in stored:
        raise SecretNotFoundError(name)
    return dict(stored[name])


def stored_values() -> list[str]:
    """Return every value of every stored secret, for blanking them out of messages."""
    return [value for values in _read().values() for value in values.values()]


def list_secrets() -> dict[str, list[str]]:
    """Return every secret's name mapped to its sorted key names (never the values)."""
    return {name: sorted(values) for name, values in sorted(_read().items())}


def delete_secret(name: str) -> None:
    """Delete secret ``name``; raise ``SecretNotFoundError`` if absent."""
    validate_secret_name(name)
    stored = _read()
    if name not in stored:
        raise SecretNotFoundError(name)
    del stored[name]
    _write(stored)


def write_private_json(path: Path, data: Any) -> None:
    """Atomically replace ``path`` with ``data`` as indented JSON that only the owner can read.

    Writes a 0600 temp file in the same dir, flushes it to disk, then ``os.replace``s it
    over ``path``; readers see the old file or the new one, never a mix. A missing dir is
    created 0700.
    """
    directory = path.parent
    if not directory.exists():
        directory.mkdir(parents=True, exist_ok=True)
        # mkdir's mode is filtered by the umask; set it explicitly so it holds.
        with contextlib.suppress(OSError):
            directory.chmod(0o700)
    encoded = msgspec.json.format(msgspec.json.encode(data, order="sorted"), indent=2) + b"\n"
    # mkstemp creates the file 0600, so the content is never readable by others.
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(encoded)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def _read() -> dict[str, dict[str, str]]:
    path = secrets_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    _refuse_if_exposed(path)
    try:
        parsed = msgspec.json.decode(raw, type=_SecretsFile)
    except msgspec.DecodeError as exc:
        # msgspec's messages give positions and key paths, never the values themselves.
        raise KitaruUsageError(
            f"The secrets file {path} is not valid ({exc}); fix it by hand or delete it "
            "and store the secrets again with `kitaru secrets set`."
        ) from None
    if parsed.version != _FORMAT_VERSION:
        raise KitaruUsageError(
            f"The secrets file {path} has format version {parsed.version}, but this kitaru "
            f"reads version {_FORMAT_VERSION}; upgrade kitaru to use it."
        )
    return parsed.secrets


def _write(secrets: dict[str, dict[str, str]]) -> None:
    write_private_json(secrets_path(), {"version": _FORMAT_VERSION, "secrets": secrets})


def _refuse_if_exposed(path: Path) -> None:
    if sys.platform == "win32":  # POSIX mode bits do not describe Windows ACLs
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KitaruUsageError(
            f"The secrets file {path} can be read by other users (mode {mode:04o}); "
            f"restrict it with `chmod 600 {path}` and rotate any keys that may have leaked."
        )
