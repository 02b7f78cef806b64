"""Stacks: named places where executions are recorded and run.

A stack names a journal store and how its executions are executed. The built-in
``local`` stack runs flows in the calling process and records them in the default
journal (``$KITARU_STORE``, else ``kitaru.db`` in the config dir). ``create_stack``
adds stacks with a store of their own; the active one is kept in ``stacks.json`` in
the config dir. Every stack of this version runs flows in the current process and
Python environment.

Which store an execution goes to: a stack named for it (``run(stack=)``,
``@flow(stack=)``, ``kitaru.configure(stack=)`` or ``KITARU_STACK``) sends it to that
stack's store. Otherwise ``KITARU_STORE``, when set, wins over the active stack: an
explicit variable in the environment beats a selection saved on disk earlier.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kitaru._config import (
    SQLITE_URL_PREFIX,
    STORE_ENV,
    config_dir,
    store_location,
    store_url,
)
from kitaru.errors import (
    KitaruFeatureNotAvailableError,
    KitaruStateError,
    KitaruUsageError,
)

__all__ = [
    "LOCAL_STACK",
    "RUNNER_IN_PROCESS",
    "RUNNER_WORKERS",
    "StackInfo",
    "connect",
    "create_stack",
    "current_stack",
    "default_stack_name",
    "delete_stack",
    "list_stacks",
    "normalize_store_url",
    "stack_runner",
    "stack_store",
    "use_stack",
]

LOCAL_STACK = "local"
RUNNER_IN_PROCESS = "in-process"
"""Flows run on a thread of the process that starts them; ``.run()`` blocks by default."""
RUNNER_WORKERS = "workers"
"""``.run()`` records the execution and queues it; ``kitaru worker`` processes run it."""
STACKS_FILE = "stacks.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_POSTGRES_PREFIXES = ("postgresql://", "postgres://", "postgresql+psycopg://")


@dataclass(frozen=True)
class StackInfo:
    """A stack as ``list_stacks()`` and ``current_stack()`` report it."""

    id: str
    name: str
    is_active: bool
    store: str
    """The journal store's location (a file path, or the URL the stack was created with)."""
    runner: str = RUNNER_IN_PROCESS
    is_managed: bool = True
    """False for the built-in ``local`` stack, True for stacks made by ``create_stack``."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "is_active": self.is_active,
            "is_managed": self.is_managed,
            "store": self.store,
            "runner": self.runner,
        }


def _stacks_path() -> Path:
    return config_dir() / STACKS_FILE


def _read() -> dict[str, Any]:
    path = _stacks_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"active": LOCAL_STACK, "stacks": {}}
    except (OSError, ValueError) as exc:
        raise KitaruUsageError(
            f"The stack list {path} cannot be read ({exc}); fix or delete that file."
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("stacks"), dict):
        raise KitaruUsageError(
            f"The stack list {path} is not in the expected shape; fix or delete that file."
        )
    data.setdefault("active", LOCAL_STACK)
    return data


@contextlib.contextmanager
def _editing() -> Iterator[dict[str, Any]]:
    """Read, change and write the stack list, one process at a time."""
    path = _stacks_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(STACKS_FILE + ".lock"), "a+b") as lock:
        # Two `kitaru stack create` at once must not drop one of the two stacks.
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        data = _read()
        yield data
        tmp = path.with_name(f"{STACKS_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)


def _local_store() -> str:
    return store_location(store_url())


def normalize_store_url(url: str) -> str:
    """A store URL as a stack keeps it: ``sqlite:///`` with an absolute path, or another
    backend's URL as given (``config.store_url``)."""
    from kitaru._stores import backend_of

    if not isinstance(url, str) or not url.strip():
        raise KitaruUsageError("A store URL is required, e.g. sqlite:///path/to/kitaru.db.")
    if url.strip() == SQLITE_URL_PREFIX:
        raise KitaruUsageError("The store URL 'sqlite:///' has no path; add the journal file.")
    location = store_url(url)
    backend_of(location)  # a scheme no backend serves is refused before it is kept
    return location


def _info(name: str, record: dict[str, Any] | None, active: str) -> StackInfo:
    if record is None:
        return StackInfo(
            id=LOCAL_STACK,
            name=LOCAL_STACK,
            is_active=active == LOCAL_STACK,
            store=_local_store(),
            is_managed=False,
        )
    return StackInfo(
        id=str(record["id"]),
        name=name,
        is_active=active == name,
        store=str(record["store"]),
        runner=str(record.get("runner", RUNNER_IN_PROCESS)),
    )


def _find(data: dict[str, Any], name_or_id: str) -> str:
    """The name of the stack called (or with the id) ``name_or_id``."""
    if not isinstance(name_or_id, str) or not name_or_id.strip():
        raise KitaruUsageError("A stack name or id is required.")
    wanted = name_or_id.strip()
    if wanted == LOCAL_STACK:
        return LOCAL_STACK
    stacks: dict[str, Any] = data["stacks"]
    if wanted in stacks:
        return wanted
    for name, record in stacks.items():
        if str(record.get("id")) == wanted:
            return str(name)
    names = ", ".join([LOCAL_STACK, *sorted(stacks)])
    raise KitaruUsageError(
        f"No stack '{wanted}'. Stacks: {names}. Create it with `kitaru stack create {wanted}`."
    )


def list_stacks() -> list[StackInfo]:
    """Every stack, ``local`` first, with the active one marked."""
    data = _read()
    active = data["active"]
    return [_info(LOCAL_STACK, None, active)] + [
        _info(name, record, active) for name, record in sorted(data["stacks"].items())
    ]


def current_stack() -> StackInfo:
    """The active stack (the one ``kitaru stack use`` selected; ``local`` by default)."""
    data = _read()
    active = str(data["active"])
    if active != LOCAL_STACK and active not in data["stacks"]:
        raise KitaruUsageError(
            f"The active stack '{active}' no longer exists; select one with "
            "`kitaru stack use local`."
        )
    return _info(active, data["stacks"].get(active), active)


def use_stack(name_or_id: str) -> StackInfo:
    """Make a stack the active one, for this and later processes."""
    with _editing() as data:
        name = _find(data, name_or_id)
        data["active"] = name
    return _info(name, data["stacks"].get(name), name)


def create_stack(
    name: str,
    *,
    activate: bool = True,
    labels: dict[str, str] | None = None,
    store: str | None = None,
    workers: bool = False,
) -> StackInfo:
    """Create a stack recording into ``store`` (default: its own file in the config dir).

    ``store`` is a ``sqlite:///PATH`` URL, a file path or a ``postgresql://`` URL.
    ``labels`` are kept with it. With ``workers``, executions started on the stack are
    queued in its store and run by ``kitaru worker`` processes (PostgreSQL stores only).
    """
    if not isinstance(name, str) or not _NAME.match(name.strip()):
        raise KitaruUsageError(
            f"Stack name {name!r} is not valid; use letters, digits, '.', '_' and '-' "
            "(at most 64, starting with a letter or digit)."
        )
    name = name.strip()
    if name == LOCAL_STACK:
        raise KitaruUsageError("'local' is the built-in stack; choose another name.")
    location = normalize_store_url(
        store if store is not None else str(config_dir() / "stacks" / f"{name}.db")
    )
    if location.startswith(_POSTGRES_PREFIXES):
        from kitaru.journal.postgres import check_url

        check_url(location)
    if workers and not location.startswith(_POSTGRES_PREFIXES):
        raise KitaruUsageError(
            f"--workers needs a store that worker processes share, and {location} is a "
            "SQLite file; give the stack a PostgreSQL store (--store postgresql://...)."
        )
    with _editing() as data:
        if name in data["stacks"]:
            raise KitaruStateError(
                f"A stack '{name}' already exists (store {data['stacks'][name]['store']}); "
                f"delete it first with `kitaru stack delete {name}`, or pick another name."
            )
        record = {
            "id": str(uuid.uuid4()),
            "store": location,
            "runner": RUNNER_WORKERS if workers else RUNNER_IN_PROCESS,
            "created_at": time.time(),
            "labels": dict(labels or {}),
        }
        data["stacks"][name] = record
        if activate:
            data["active"] = name
    return _info(name, record, data["active"])


def delete_stack(name_or_id: str, *, recursive: bool = False, force: bool = False) -> None:
    """Forget a stack; its journal file is kept. The active stack needs ``force=True``.

    ``recursive`` is accepted for compatibility: stacks here own no other components.
    """
    del recursive
    with _editing() as data:
        name = _find(data, name_or_id)
        if name == LOCAL_STACK:
            raise KitaruUsageError("The built-in 'local' stack cannot be deleted.")
        if data["active"] == name:
            if not force:
                raise KitaruStateError(
                    f"'{name}' is the active stack; switch with `kitaru stack use local` "
                    "first, or delete it with --force (the active stack becomes 'local')."
                )
            data["active"] = LOCAL_STACK
        del data["stacks"][name]


def stack_store(name: str) -> str:
    """Where the stack ``name`` records executions (a path or URL ``open_store`` takes)."""
    if name == LOCAL_STACK:
        return _local_store()
    data = _read()
    record = data["stacks"].get(name)
    if record is None:
        record_name = _find(data, name)  # accepts an id, or raises naming the stacks
        record = data["stacks"].get(record_name)
        if record is None:
            return _local_store()
    return str(record["store"])


def stack_runner(name: str) -> str:
    """How the stack ``name`` runs executions: ``in-process`` or ``workers``."""
    if name == LOCAL_STACK:
        return RUNNER_IN_PROCESS
    data = _read()
    record = data["stacks"].get(name) or data["stacks"].get(_find(data, name))
    return RUNNER_IN_PROCESS if record is None else str(record.get("runner", RUNNER_IN_PROCESS))


def default_stack_name() -> str:
    """The stack used when a run names none: configure(), KITARU_STACK, else the active one."""
    from kitaru._run_config import environment_config, runtime_layer

    named = runtime_layer().stack or environment_config().stack
    if named:
        return named
    if os.environ.get(STORE_ENV):
        return LOCAL_STACK
    return current_stack().name


def connect(
    server_url: str,
    *,
    api_key: str | None = None,
    refresh: bool = False,
    project: str | None = None,
    no_verify_ssl: bool = False,
    ssl_ca_cert: str | None = None,
    cloud_api_url: str | None = None,
    timeout: int | None = None,
) -> StackInfo:
    """Connect to a journal store: select (creating if needed) a stack for its URL.

    A Kitaru server URL (``http(s)://``) raises ``KitaruFeatureNotAvailableError``;
    executions here are recorded in a store, so connect to its ``sqlite:///`` URL.
    The server options (``api_key``, ``project``, ...) apply to servers only.
    """
    del api_key, refresh, project, no_verify_ssl, ssl_ca_cert, cloud_api_url, timeout
    url = server_url.strip() if isinstance(server_url, str) else ""
    if url.startswith(("http://", "https://")):
        raise KitaruFeatureNotAvailableError(
            f"Connecting to a Kitaru server ({url}) is not available in this version: "
            "executions are recorded in a journal store. Connect to the store instead, "
            "e.g. kitaru.connect('sqlite:///path/to/kitaru.db'), or create a stack for it "
            "with `kitaru stack create NAME --store sqlite:///PATH`."
        )
    if "://" not in url:
        raise KitaruUsageError(
            f"{server_url!r} is not a store URL; give sqlite:///PATH (or postgresql://...)."
        )
    location = normalize_store_url(url)
    data = _read()
    for name, record in sorted(data["stacks"].items()):
        if record.get("store") == location:
            return use_stack(name)
    if location == store_url():
        return use_stack(LOCAL_STACK)
    base = "postgres" if location.startswith(_POSTGRES_PREFIXES) else Path(location).stem
    base = re.sub(r"[^A-Za-z0-9_.-]", "-", base).strip("-.") or "store"
    base = base if base != LOCAL_STACK else "local-store"
    name, n = base, 2
    while name in data["stacks"]:
        name, n = f"{base}-{n}", n + 1
    return create_stack(name, store=location, activate=True)
