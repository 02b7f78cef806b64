"""Recording where a flow function lives, and importing it again in another process.

Resuming or replaying an execution in a new process imports the flow's module (or
script, under an alias so its main block stays off). A ``.run()`` at the module's top
level would then start a second execution and repeat its side effects, so while this
module imports one, ``Flow.run`` and ``Flow.replay`` raise ``UnguardedRunError``
instead. The import stops there; the flow is still found if it was defined above that
line (a warning says to add the guard), since everything a flow needs is usually
defined before the line that starts it. If it was not, the resume fails with the
same advice.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import threading
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from kitaru.errors import FlowImportError, KitaruRuntimeError, KitaruUsageError, UnguardedRunError
from kitaru.journal.events import FlowRef
from kitaru.runtime.values import MAIN_MODULE_ALIASES

__all__ = [
    "UnguardedRunError",
    "check_not_importing",
    "flow_ref",
    "import_flow",
    "qualified_name",
    "register_flow",
]

_registry: dict[tuple[str, str], Any] = {}
_MAIN_ALIAS = "__kitaru_main_"
_script_lock = threading.RLock()
_importing: ContextVar[str | None] = ContextVar("kitaru_importing_flow", default=None)
"""The module or script this thread is importing to resume or replay a flow."""


def check_not_importing(flow_name: str, method: str) -> None:
    """Refuse to start an execution from a module kitaru is importing to resume one."""
    where = _importing.get()
    if where is None:
        return
    raise UnguardedRunError(
        f"{flow_name}.{method}() was reached while kitaru imported {where} to resume or "
        "replay an execution; it would start a second execution. Put the code that "
        'starts the flow under `if __name__ == "__main__":` in that file.',
        flow=flow_name,
        module=where,
    )


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
    where = ref.file if ref.module == "__main__" and ref.file else ref.module
    token = _importing.set(where)
    try:
        obj = _import_flow_object(ref)
    finally:
        _importing.reset(token)
    # Every ``@flow`` registers itself when it is defined, so an object that is not among
    # the registered ones is not a flow. (The runtime sits below ``kitaru.flow`` and
    # knows flows only through this registry.)
    if not any(obj is known for known in _registry.values()):
        raise KitaruRuntimeError(
            f"{ref.module}.{ref.qualname} is no longer a @flow (it is {type(obj).__name__}). "
            "Restore the @flow decorator to resume this execution."
        )
    return obj


def _import_flow_object(ref: FlowRef) -> Any:
    try:
        module = _load_script(ref) if ref.module == "__main__" else _load_module(ref)
        obj: Any = module
        for part in ref.qualname.split("."):
            obj = getattr(obj, part)
    except UnguardedRunError as exc:
        # The module stopped at a `.run()` on its top level. What it defined above that
        # line is there (and registered); the flow is used if it is among it.
        found = _registry.get((ref.module, ref.qualname))
        if found is None:
            raise KitaruUsageError(
                f"Cannot resume flow {ref.qualname}: importing {exc.module} reached "
                f"{exc.flow}.run() on its top level before {ref.qualname} was defined. Put "
                'the code that starts the flow under `if __name__ == "__main__":`, then '
                "try again."
            ) from None
        _log().warning(
            "flow module has an unguarded .run(); it was imported only up to that call",
            imported=exc.module,
            flow=ref.qualname,
            advice='put the code that starts the flow under `if __name__ == "__main__":`',
        )
        return found
    except Exception as exc:
        where = f" (file {ref.file})" if ref.file else ""
        raise FlowImportError(
            f"Cannot import flow {ref.qualname} from module {ref.module}{where}: "
            f"{type(exc).__name__}: {exc}. Run the command from the project the flow belongs "
            "to, or make its module importable (PYTHONPATH), then try again.",
            module=ref.module,
            qualname=ref.qualname,
        ) from exc
    return obj


def _log() -> Any:
    from kitaru._logging import get_logger

    return get_logger()


def _load_module(ref: FlowRef) -> Any:
    """Import ``ref.module``; one stopped by an unguarded ``.run()`` stays half-imported.

    Importing it again (to resolve a type defined in it, say) would run its top level,
    and that ``.run()``, a second time. The lock keeps parallel resumes from seeing the
    module in ``sys.modules`` before its top level has run.
    """
    # One import at a time: another thread (resume --all resumes several executions at
    # once) must not pick up this module from sys.modules while its top level still runs.
    with _script_lock:
        if ref.sys_path and ref.sys_path not in sys.path:
            sys.path.insert(0, ref.sys_path)
        loaded = sys.modules.get(ref.module)
        if loaded is not None:
            return loaded
        parent, _, child = ref.module.rpartition(".")
        if parent:
            importlib.import_module(parent)
        spec = importlib.util.find_spec(ref.module)
        if spec is None or spec.loader is None:
            raise ModuleNotFoundError(f"No module named {ref.module!r}", name=ref.module)
        module = importlib.util.module_from_spec(spec)
        sys.modules[ref.module] = module
        try:
            spec.loader.exec_module(module)
        except UnguardedRunError:
            pass  # keep what the top level defined before that call
        except BaseException:
            sys.modules.pop(ref.module, None)
            raise
        if parent:
            setattr(sys.modules[parent], child, module)
        return sys.modules.get(ref.module, module)


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
        except UnguardedRunError:
            # Keep what the script defined before that call: loading it again would run
            # its top level again.
            raise
        except BaseException:
            sys.modules.pop(alias, None)
            MAIN_MODULE_ALIASES.discard(alias)
            raise
        return module
