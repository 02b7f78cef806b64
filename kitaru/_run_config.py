"""Run configuration: stack, image, cache and retries, and how they are resolved.

Each setting is taken from the first layer that sets it (highest first):

1. the invocation: ``my_flow.run(..., stack=, image=, cache=, retries=)``;
2. the flow: ``@flow(stack=, image=, cache=, retries=)``;
3. the process: ``kitaru.configure(...)``;
4. the environment: ``KITARU_STACK``, ``KITARU_IMAGE``, ``KITARU_CACHE``, ``KITARU_RETRIES``;
5. defaults: the active stack, no image, caching off, no retries.

The result is frozen into the execution when it starts (``ExecutionStarted.spec``), so
a resume uses it whatever the resuming process's configuration says, and a replay
starts from it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from kitaru import _telemetry as tracing
from kitaru.errors import KitaruUsageError
from kitaru.journal.events import ExecutionSpec

__all__ = [
    "CACHE_ENV",
    "IMAGE_ENV",
    "RETRIES_ENV",
    "STACK_ENV",
    "FrozenExecutionSpec",
    "ImageSettings",
    "KitaruConfig",
    "QueuePlacement",
    "ResolvedExecutionConfig",
    "Settings",
    "coerce_image",
    "configure",
    "environment_config",
    "merge_layers",
    "queue_placement",
    "runtime_layer",
    "settings",
]

STACK_ENV = "KITARU_STACK"
IMAGE_ENV = "KITARU_IMAGE"
CACHE_ENV = "KITARU_CACHE"
RETRIES_ENV = "KITARU_RETRIES"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _clean_string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise KitaruUsageError(f"{what} must be a string, got {type(value).__name__}.")
    cleaned = value.strip()
    if not cleaned:
        raise KitaruUsageError(f"{what} cannot be empty; give a value or leave it unset.")
    return cleaned


def _clean_strings(value: Any, what: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise KitaruUsageError(f"{what} must be a list of strings, got {value!r}.")
    return [_clean_string(item, f"Each entry of {what}") for item in value]


@dataclass(frozen=True, kw_only=True)
class ImageSettings:
    """The container image an execution is meant to run in.

    The stacks of this version run flows in the current Python environment, so the
    image is validated and recorded with the execution, not built.
    """

    base_image: str | None = None
    requirements: list[str] | None = None
    dockerfile: str | None = None
    build_context_root: str | None = None
    environment: dict[str, str] | None = None
    secret_environment_from: list[str] | None = None
    apt_packages: list[str] | None = None
    replicate_local_python_environment: bool | None = None
    image_tag: str | None = None
    target_repository: str | None = None
    user: str | None = None
    platform: str | None = None

    def __post_init__(self) -> None:
        for name in (
            "base_image",
            "dockerfile",
            "build_context_root",
            "image_tag",
            "target_repository",
            "user",
            "platform",
        ):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _clean_string(value, f"Image {name}"))
        for name in ("requirements", "secret_environment_from", "apt_packages"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _clean_strings(value, f"Image {name}"))
        if self.environment is not None:
            if not isinstance(self.environment, Mapping):
                raise KitaruUsageError(
                    f"Image environment must be a mapping of names to values, "
                    f"got {self.environment!r}."
                )
            environment = {
                _clean_string(key, "An image environment name"): str(value)
                for key, value in self.environment.items()
            }
            object.__setattr__(self, "environment", environment)
        replicate = self.replicate_local_python_environment
        if replicate is not None and not isinstance(replicate, bool):
            raise KitaruUsageError(
                f"Image replicate_local_python_environment must be true or false, "
                f"got {replicate!r}."
            )

    def is_empty(self) -> bool:
        """Whether no field is set."""
        return not self.to_dict()

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set, as plain JSON-ready values."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ImageSettings:
        """Build from a dict; ``parent_image`` is read as ``base_image``."""
        data = dict(data)
        if "parent_image" in data and "base_image" not in data:
            data["base_image"] = data.pop("parent_image")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(key) for key in data if key not in known)
        if unknown:
            raise KitaruUsageError(
                f"Unknown image setting {', '.join(map(repr, unknown))}; the fields are "
                f"{', '.join(sorted(known))}."
            )
        return cls(**data)


def coerce_image(value: Any) -> ImageSettings | None:
    """Accept an image as ``ImageSettings``, a dict of its fields, or a base image string."""
    if value is None or isinstance(value, ImageSettings):
        return value
    if isinstance(value, str):
        return ImageSettings(base_image=_clean_string(value, "Image"))
    if isinstance(value, Mapping):
        return ImageSettings.from_mapping(value)
    raise KitaruUsageError(
        f"image must be an ImageSettings, a dict of its fields or a base image name, "
        f"got {type(value).__name__}."
    )


def _check_retries(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise KitaruUsageError(f"retries must be a whole number >= 0, got {value!r}.")
    return value


def _check_cache(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise KitaruUsageError(f"cache must be True, False or None, got {value!r}.")


@dataclass(frozen=True)
class QueuePlacement:
    """Where ``.run()`` puts an execution for ``kitaru worker`` processes."""

    queue: str = "default"
    """Only workers started with ``--queue`` naming it claim the execution."""
    priority: int = 0
    """Higher is claimed first; equal priorities go in the order they were queued."""


def queue_placement(queue: Any, priority: Any) -> QueuePlacement | None:
    """The ``queue=`` and ``priority=`` run options, checked; None when neither is given."""
    if queue is None and priority is None:
        return None
    if queue is not None:
        queue = _clean_string(queue, "queue")
        if "," in queue:
            raise KitaruUsageError(f"queue {queue!r} is not valid; use a name without ','.")
    if priority is not None and (
        isinstance(priority, bool) or not isinstance(priority, int) or abs(priority) >= 2**31
    ):
        raise KitaruUsageError(
            f"priority must be a whole number between -2147483647 and 2147483647, got {priority!r}."
        )
    return QueuePlacement(
        queue=queue if queue is not None else "default",
        priority=priority if priority is not None else 0,
    )


@dataclass(frozen=True, kw_only=True)
class KitaruConfig:
    """One layer of configuration; ``None`` leaves a setting to the layers below."""

    stack: str | None = None
    image: ImageSettings | None = None
    cache: bool | None = None
    retries: int | None = None
    server_url: str | None = None
    auth_token: str | None = None
    project: str | None = None

    def __post_init__(self) -> None:
        for name in ("stack", "auth_token", "project", "server_url"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _clean_string(value, name))
        object.__setattr__(self, "image", coerce_image(self.image))
        _check_cache(self.cache)
        _check_retries(self.retries)

    def to_dict(self) -> dict[str, Any]:
        """The settings that are set; the image as a dict."""
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                data[f.name] = value.to_dict() if isinstance(value, ImageSettings) else value
        return data


@dataclass(frozen=True, kw_only=True)
class ResolvedExecutionConfig:
    """The settings an execution runs with, every layer applied."""

    stack: str
    image: ImageSettings | None
    cache: bool
    retries: int


@dataclass(frozen=True, kw_only=True)
class FrozenExecutionSpec:
    """What an execution recorded about its configuration when it started."""

    version: int
    resolved_execution: ResolvedExecutionConfig
    flow_defaults: KitaruConfig
    store: str
    """The journal store of the stack, where the execution is recorded."""
    runner: str
    """How the stack executes flows; ``in-process`` for every stack of this version."""

    @classmethod
    def from_event(cls, spec: ExecutionSpec) -> FrozenExecutionSpec:
        return cls(
            version=spec.version,
            resolved_execution=ResolvedExecutionConfig(
                stack=spec.stack,
                image=coerce_image(spec.image),
                cache=spec.cache,
                retries=spec.retries,
            ),
            flow_defaults=KitaruConfig(
                stack=spec.flow_defaults.get("stack"),
                image=spec.flow_defaults.get("image"),
                cache=spec.flow_defaults.get("cache"),
                retries=spec.flow_defaults.get("retries"),
            ),
            store=spec.store,
            runner=spec.runner,
        )


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise KitaruUsageError(f"{name}={raw!r} is not understood; set it to true or false.")


def environment_config(environ: Mapping[str, str] | None = None) -> KitaruConfig:
    """The layer ``KITARU_STACK``, ``KITARU_IMAGE``, ``KITARU_CACHE``, ``KITARU_RETRIES`` set."""
    env = os.environ if environ is None else environ
    stack = env.get(STACK_ENV) or None
    cache = _parse_bool(CACHE_ENV, env[CACHE_ENV]) if env.get(CACHE_ENV) else None
    retries: int | None = None
    raw_retries = env.get(RETRIES_ENV)
    if raw_retries:
        try:
            retries = int(raw_retries.strip())
        except ValueError:
            retries = -1
        if retries < 0:
            raise KitaruUsageError(
                f"{RETRIES_ENV}={raw_retries!r} is not a whole number >= 0; fix or unset it."
            )
    image: ImageSettings | None = None
    raw_image = env.get(IMAGE_ENV, "").strip()
    if raw_image:
        if raw_image.startswith("{"):
            try:
                data = json.loads(raw_image)
            except json.JSONDecodeError as exc:
                raise KitaruUsageError(
                    f"{IMAGE_ENV} is not valid JSON ({exc}); give a JSON object of image "
                    "settings or a plain image name."
                ) from None
            image = coerce_image(data)
        else:
            image = coerce_image(raw_image)
    return KitaruConfig(stack=stack, image=image, cache=cache, retries=retries)


def _merge_images(images: list[ImageSettings]) -> ImageSettings | None:
    """Field by field, highest first; ``environment`` maps are merged key by key."""
    if not images:
        return None
    chosen: dict[str, Any] = {}
    environment: dict[str, str] = {}
    for image in images:
        for name, value in image.to_dict().items():
            if name == "environment":
                environment = {**value, **environment}
            else:
                chosen.setdefault(name, value)
    if environment:
        chosen["environment"] = environment
    return ImageSettings(**chosen)


def merge_layers(*layers: KitaruConfig | None) -> KitaruConfig:
    """Combine layers given highest first: each setting comes from the first that sets it.

    Images combine field by field, so a flow's ``requirements`` and a process-wide
    ``base_image`` both apply.
    """
    chosen: dict[str, Any] = {}
    images: list[ImageSettings] = []
    for layer in layers:
        if layer is None:
            continue
        if layer.image is not None:
            images.append(layer.image)
        for f in fields(layer):
            value = getattr(layer, f.name)
            if value is not None and f.name != "image" and f.name not in chosen:
                chosen[f.name] = value
    return KitaruConfig(image=_merge_images(images), **chosen)


@dataclass(frozen=True)
class Settings:
    """The cache and retries defaults ``kitaru.configure`` set (with their defaults)."""

    cache: bool = False
    """Reuse checkpoint outputs across executions. Off by default: a new execution of
    an agent should not skip a side effect because an earlier one had the same inputs."""
    retries: int = 0


_UNSET: Any = object()
_layer: KitaruConfig | None = None
_layer_lock = threading.Lock()


def runtime_layer() -> KitaruConfig:
    """What ``kitaru.configure`` set in this process (None: not set)."""
    return _layer if _layer is not None else KitaruConfig()


def settings() -> Settings:
    """The configured cache and retries defaults of this process."""
    layer = runtime_layer()
    return Settings(
        cache=bool(layer.cache),
        retries=layer.retries if layer.retries is not None else 0,
    )


def configure(
    *,
    stack: str | None = _UNSET,
    image: Any = _UNSET,
    cache: bool | None = _UNSET,
    retries: int | None = _UNSET,
    project: str | None = _UNSET,
    otel: bool | None = _UNSET,
) -> KitaruConfig:
    """Set process-wide run defaults; an omitted argument is unchanged, ``None`` clears it.

    ``stack``, ``image``, ``cache`` and ``retries`` apply to flows started later in this
    process unless the flow or the run sets them. ``project`` is kept for programs
    written for Kitaru's servers; this version has no projects. ``otel=True`` emits
    OpenTelemetry spans for executions run afterwards (``False`` never; ``None`` leaves it
    to ``KITARU_OTEL``); it needs ``pip install 'kitaru[otel]'``.
    """
    global _layer  # noqa: PLW0603  (one process-wide value, swapped atomically)
    changes = {
        name: value
        for name, value in (
            ("stack", stack),
            ("image", image),
            ("cache", cache),
            ("retries", retries),
            ("project", project),
        )
        if value is not _UNSET
    }
    with _layer_lock:
        current = runtime_layer()
        values = {
            name: getattr(current, name)
            for name in ("stack", "image", "cache", "retries", "project")
        }
        values.update(changes)
        layer = KitaruConfig(**values)  # validates before anything changes
        if otel is not _UNSET:
            tracing.set_enabled(otel)
        _layer = layer
        return _layer
