"""What every tool shares: how image names become images, the settings, the on-disk cache.

Tools take image *names* (strings the LLM and the user can write): a path on disk, or a file
name inside the configured catalogue (image folder or zip). :class:`ImageResolver` turns a
name into a decoded RGB image plus the content hash that keys the cache.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image

from vlagent.cache import DiskCache
from vlagent.data.annotations import Annotation
from vlagent.data.images import ImageSource, load_image, open_source
from vlagent.errors import ImageError, ToolUnavailable  # noqa: F401 - re-exported
from vlagent.fileio import content_hash
from vlagent.settings import Settings

T = TypeVar("T")


@dataclass
class LoadedImage:
    name: str
    image: Image.Image
    hash: str


class ImageResolver:
    """Resolve image names against the file system and the catalogue; decode each once."""

    def __init__(self, sources: list[ImageSource] | None = None, max_pixels: int = 64_000_000):
        self.sources = list(sources or [])
        self.max_pixels = max_pixels
        self._lock = threading.Lock()
        self._memo: dict[str, LoadedImage] = {}
        self._hashes: dict[str, str] = {}  # name → content hash (small: no pixels)

    @classmethod
    def from_paths(cls, paths: list[str | Path], max_pixels: int = 64_000_000) -> "ImageResolver":
        return cls([open_source(p) for p in paths], max_pixels)

    def read_bytes(self, name: str) -> bytes:
        path = Path(name).expanduser()
        if path.is_file():
            return path.read_bytes()
        for source in self.sources:
            if name in source:
                return source.read_bytes(name)
            base = Path(name).name
            if base != name and base in source:
                return source.read_bytes(base)
        where = ", ".join(str(s.root) for s in self.sources) or "no catalogue configured"
        raise ImageError(f"{name}: image not found (looked on disk and in {where})")

    def load(self, name: str) -> LoadedImage:
        with self._lock:
            hit = self._memo.get(name)
        if hit is not None:
            return hit
        data = self.read_bytes(name)
        loaded = LoadedImage(name=name, image=load_image(data, name, self.max_pixels), hash=content_hash(data))
        with self._lock:
            if len(self._memo) > 256:
                self._memo.clear()
            self._memo[name] = loaded
            self._hashes[name] = loaded.hash
        return loaded

    def hash_of(self, name: str) -> str:
        """Content hash without decoding (for cache look-ups before any model work).

        Remembered per name, so the several tools a question calls on one image read it once."""
        with self._lock:
            hit = self._hashes.get(name)
        if hit is None:
            hit = content_hash(self.read_bytes(name))
            with self._lock:
                self._hashes[name] = hit
        return hit


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
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        image_paths: list[str | Path] | None = None,
        use_cache: bool = True,
        annotations: list[Annotation] | None = None,
        auto_index: bool = True,
    ) -> "ToolContext":
        resolver = ImageResolver.from_paths(list(image_paths or []), settings.max_image_pixels)
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
