"""Recording where a flow function lives, and importing it again in another process."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import threading
from pathlib import Path
from typing import Any

from kitaru.errors import KitaruRuntimeError
from kitaru.journal.events import FlowRef
from kitaru.runtime.values import MAIN_MODULE_ALIASES

__all__ = ["flow_ref", "import_flow", "qualified_name", "register_flow"]

_registry: dict[tuple[str, str], Any] = {}
_MAIN_ALIAS = "__kitaru_main_"
_script_lock = threading.RLock()


def _module_name(func: Any) -> str:
    module = func.__module__
    if module == "__main__":
        # `python -m pkg.mod` runs a real, importable module under the name __main__.
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        if spec is not None and spec.name and spec.name != "__main__":
            return str(spec.name)
    if module in MAIN_MODULE_ALIASES:
        return "__main__"
    return str(module)


def qualified_name(func: Any) -> str:
    """``module:QualName`` of a function, method, nested function or lambda.

    Scripts are named ``__main__`` whichever way they were loaded, so a call recorded
    by ``python my_agent.py`` and one made on resume agree.
    """
    qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
    if getattr(func, "__module__", None) is None:
        return f"{type(func).__module__}:{qualname}"
    return f"{_module_name(func)}:{qualname}"


def _import_root(module_name: str, file: Path) -> str | None:
    """The folder ``module_name`` is importable from, read off its file's path.

    A module found through PYTHONPATH (or any sys.path entry other than the program's
    own folder) can then be imported again by a process that lacks that setting.
    """
    parts = module_name.split(".")
    package_dir = file.parent if file.stem == "__init__" else None
    if package_dir is None and file.stem != parts[-1]:
        return None
    folder = package_dir if package_dir is not None else file.parent
    expected = parts if package_dir is not None else parts[:-1]
    for part in reversed(expected):
        if folder.name != part:
            return None  # an unusual loader: fall back to the program's folder
        folder = folder.parent
    return str(folder)


def flow_ref(func: Any) -> FlowRef:
    """Describe where ``func`` (a flow's function) can be imported from."""
    module_name = _module_name(func)
    module = sys.modules.get(func.__module__)
    file = getattr(module, "__file__", None)
    resolved = Path(file).resolve() if file else None
    root = _import_root(module_name, resolved) if resolved and module_name != "__main__" else None
    return FlowRef(
        module=module_name,
        qualname=func.__qualname__,
        file=str(resolved) if resolved else None,
        sys_path=root
        or (str(Path(sys.path[0]).resolve()) if sys.path and sys.path[0] else os.getcwd()),
    )


def register_flow(flow: Any) -> None:
    """Remember a flow defined in this process, so resuming it needs no import."""
    ref = flow_ref(flow.func)
    _registry[(ref.module, ref.qualname)] = flow


def import_flow(ref: FlowRef) -> Any:
    """Return the flow object that ``ref`` names, importing its module if needed."""
    known = _registry.get((ref.module, ref.qualname))
    if known is not None:
        return known
    try:
        if ref.module == "__main__":
            module = _load_script(ref)
        else:
            if ref.sys_path and ref.sys_path not in sys.path:
                sys.path.insert(0, ref.sys_path)
            module = importlib.import_module(ref.module)
        obj: Any = module
        for part in ref.qualname.split("."):
            obj = getattr(obj, part)
    except Exception as exc:
        where = f" (file {ref.file})" if ref.file else ""
        raise KitaruRuntimeError(
            f"Cannot import flow {ref.qualname} from module {ref.module}{where}: "
            f"{type(exc).__name__}: {exc}. Run the command from the project the flow belongs "
            "to, or make its module importable (PYTHONPATH), then try again."
        ) from exc
    from kitaru.flow import Flow

    if not isinstance(obj, Flow):
        raise KitaruRuntimeError(
            f"{ref.module}.{ref.qualname} is no longer a @flow (it is {type(obj).__name__}). "
            "Restore the @flow decorator to resume this execution."
        )
    return obj


def _load_script(ref: FlowRef) -> Any:
    """Import a script that ran as ``__main__`` under an alias (its main block stays off).

    Each script file gets its own alias, so flows of several scripts can be resumed
    in one process (``resume --all``); a lock keeps parallel resumes from seeing a
    half-executed module.
    """
    if not ref.file:
        raise FileNotFoundError("the flow was defined in an interactive session")
    alias = f"{_MAIN_ALIAS}{hashlib.blake2b(ref.file.encode(), digest_size=6).hexdigest()}"
    with _script_lock:
        loaded = sys.modules.get(alias)
        if loaded is not None:
            return loaded
        script_dir = str(Path(ref.file).parent)
        if script_dir not in sys.path:
            sys.path.insert(0, script_dir)
        spec = importlib.util.spec_from_file_location(alias, ref.file)
        if spec is None or spec.loader is None:
            raise FileNotFoundError(ref.file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[alias] = module
        MAIN_MODULE_ALIASES.add(alias)
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(alias, None)
            MAIN_MODULE_ALIASES.discard(alias)
            raise
        return module
