"""Cheap checks and lazy, once-per-process loading for the tools' Hugging Face models.

``model_reason`` tells whether a model named by a hub id or a local directory can be loaded
here *without loading it* (no weights read, no network). ``LazyModel`` loads it on first use,
once per process, under a lock; a load failure becomes :class:`ToolUnavailable` with one line.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

from PIL import Image

from vlagent.tools.base import ToolUnavailable

T = TypeVar("T")


def hf_offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover - very old huggingface_hub
        return False


def model_reason(tool: str, model: str, env: str) -> str | None:
    """None if ``model`` (hub id or local dir) can be loaded here; else a one-line reason."""
    if importlib.util.find_spec("transformers") is None:
        return f"{tool}: transformers is not installed (pip install transformers)"
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            return f"{tool}: {model} has no config.json (not a transformers model folder); set {env}=DIR"
        return None
    if path.exists() or model.startswith(("/", "./", "../", "~")):
        return f"{tool}: model folder {model} does not exist; set {env}=DIR"
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "config.json")
    except Exception:  # an id that is not a valid repo id
        cached = None
    if isinstance(cached, str):
        return None
    if hf_offline():
        return (
            f"{tool}: model {model} is not a local dir and not in the HF cache (offline); "
            f"set {env}=DIR or download it first (hf download {model})"
        )
    return None  # online: downloaded from the hub on first use


class LazyModel(Generic[T]):
    """Build something expensive on first ``get()``, once, thread-safe; remember a failure."""

    def __init__(self, what: str, build: Callable[[], T]) -> None:
        self.what = what
        self._build = build
        self._lock = threading.Lock()
        self._value: T | None = None
        self._error: str | None = None

    @property
    def loaded(self) -> bool:
        return self._value is not None

    def get(self) -> T:
        if self._value is not None:
            return self._value
        with self._lock:
            if self._value is None:
                if self._error is not None:
                    raise ToolUnavailable(self._error)
                try:
                    self._value = self._build()
                except ToolUnavailable as exc:
                    self._error = str(exc)
                    raise
                except Exception as exc:  # noqa: BLE001 - any loader failure is one clear line
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                    self._error = f"{self.what}: could not load ({type(exc).__name__}: {first})"
                    raise ToolUnavailable(self._error) from exc
        return self._value


_REGISTRY: dict[tuple[str, ...], LazyModel[Any]] = {}
_REGISTRY_LOCK = threading.Lock()


def shared(key: tuple[str, ...], what: str, build: Callable[[], T]) -> LazyModel[T]:
    """The process-wide ``LazyModel`` for ``key`` (one load per model and device per process)."""
    with _REGISTRY_LOCK:
        lazy = _REGISTRY.get(key)
        if lazy is None:
            lazy = _REGISTRY[key] = LazyModel(what, build)
    return lazy  # type: ignore[return-value]


def shrink(image: Image.Image, max_side: int) -> Image.Image:
    """A copy no larger than ``max_side`` on its longer side (aspect kept); small ones unchanged."""
    w, h = image.size
    if max(w, h) <= max_side:
        return image
    scale = max_side / max(w, h)
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)

