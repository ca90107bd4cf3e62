"""What every tool shares: how image names become images, the settings, the on-disk cache.

Tools take image *names* (strings the LLM and the user can write): a file name inside the
configured catalogue (image folder or zip), or a path inside the allowed roots.
:class:`~vlagent.data.resolver.ImageResolver` turns a name into a decoded
RGB image plus the content hash that keys the cache, and refuses names outside the roots.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from vlagent.cache import DiskCache
from vlagent.data.annotations import Annotation
from vlagent.data.resolver import ImageResolver
from vlagent.settings import Settings

T = TypeVar("T")


@dataclass
class ToolContext:
    """Everything a tool needs at run time; built once per agent.

    ``annotations``: the catalogue's rows (titles); ``auto_index``: retrieval may index the
    catalogue when its index is incomplete; :meth:`once` keeps what several tools share (the
    CLIP retriever serves ``clip_search``, ``image_search`` and ``recommend``)."""

    settings: Settings
    resolver: ImageResolver = field(default_factory=ImageResolver)
    cache: DiskCache | None = None
    annotations: list[Annotation] = field(default_factory=list)
    auto_index: bool = True
    _shared: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)  # shared things build on each other

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        image_paths: list[str | Path] | None = None,
        use_cache: bool = True,
        allow_files: list[str | Path] | None = None,
        annotations: list[Annotation] | None = None,
        auto_index: bool = True,
    ) -> "ToolContext":
        """``image_paths``: the catalogue; ``allow_files``: image files named explicitly (the
        command line); ``settings.image_roots``: more folders images may come from."""
        resolver = ImageResolver.from_paths(
            list(image_paths or []), settings.max_image_pixels,
            files=list(allow_files or []), roots=list(settings.image_roots),
        )  # fmt: skip
        cache = DiskCache(settings.cache_dir / "tools.sqlite") if use_cache else None
        return cls(settings=settings, resolver=resolver, cache=cache, annotations=list(annotations or []), auto_index=auto_index)

    @property
    def titles(self) -> dict[str, str]:
        return {a.image: a.title for a in self.annotations if a.title}

    def once(self, key: str, build: Callable[[], T]) -> T:
        """``build()`` once per context (a failure is not remembered: the next caller retries)."""
        with self._lock:
            if key not in self._shared:
                self._shared[key] = build()
            return self._shared[key]  # type: ignore[no-any-return]

    def cached(self, kind: str, model_id: str, image_name: str, extra: str, compute):  # type: ignore[no-untyped-def]
        """Run ``compute()`` once per (kind, model, image content, extra); cache it on disk."""
        if self.cache is None:
            return compute()
        key = DiskCache.key(kind, model_id, self.resolver.hash_of(image_name), extra)
        return self.cache.get_or_compute(key, compute)
