"""Image names → image bytes, only from allowed places.

A name resolves against, in order:

1. the catalogue sources (image folders or zips): the name as given, or its file name
   (``image/abc.jpg`` finds ``abc.jpg``);
2. files named explicitly (``ask --image``, chat ``/image``): exactly those files;
3. allowed roots (``VLAGENT_IMAGE_ROOTS``, per-session upload folders added with
   :meth:`ImageResolver.allow`): any file under them.

Everything else is refused with :class:`ImageNotAllowedError`: a ``..`` that climbs out of a
root, an absolute path outside the roots, a symlink inside a root that points out of it.
Paths are compared after resolving symlinks (``Path.resolve``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from vlagent.data.images import FolderSource, ImageSource, base_name, is_image_name, load_image, open_source
from vlagent.errors import ImageError, ImageNotAllowedError
from vlagent.fileio import content_hash

DEFAULT_MAX_PIXELS = 64_000_000
ALLOWED_WHERE = "the catalogue (--images), files named on the command line, VLAGENT_IMAGE_ROOTS"


@dataclass
class LoadedImage:
    name: str
    image: Image.Image
    hash: str


def _real(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


class ImageResolver:
    """Resolve image names inside the allowed roots; decode each image once.

    ``sources``: the catalogue (already open). ``files``: image files named explicitly.
    ``roots``: folders whose files may be read. Thread-safe; :meth:`allow` adds a root or a
    file at run time (an upload folder, a file attached in chat).
    """

    def __init__(
        self,
        sources: list[ImageSource] | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        *,
        files: Iterable[str | Path] = (),
        roots: Iterable[str | Path] = (),
        memo: int = 256,
    ) -> None:
        self.sources = list(sources or [])
        self.max_pixels = max_pixels
        self.memo = memo  # decoded images kept (the tools a question calls on one image decode it once)
        self._lock = threading.Lock()
        self._files: set[Path] = set()
        self._roots: list[Path] = []
        self._memo: dict[str, LoadedImage] = {}
        self._hashes: dict[str, str] = {}  # name → content hash (small: no pixels)
        for f in files:
            self.allow(f)
        for r in roots:
            self.allow_root(r)

    @classmethod
    def from_paths(
        cls,
        paths: list[str | Path],
        max_pixels: int = DEFAULT_MAX_PIXELS,
        *,
        files: Iterable[str | Path] = (),
        roots: Iterable[str | Path] = (),
        memo: int = 256,
    ) -> "ImageResolver":
        """Open the catalogue ``paths`` (folders or zips) as sources."""
        return cls([open_source(p) for p in paths], max_pixels, files=files, roots=roots, memo=memo)

    # ------------------------------------------------------------------ the allow-list

    def allow(self, path: str | Path) -> None:
        """Allow a folder (every file under it), a zip of images (a source) or one file."""
        p = Path(path).expanduser()
        if p.is_dir():
            self.allow_root(p)
        elif p.is_file() and not is_image_name(p.name) and p.suffix.lower() == ".zip":
            source = open_source(p)
            with self._lock:
                self.sources.append(source)
        else:  # a file (or one that does not exist yet: it is refused as "not found" later)
            with self._lock:
                self._files.add(_real(p))

    def allow_root(self, path: str | Path) -> None:
        real = _real(path)
        with self._lock:
            if real not in self._roots:
                self._roots.append(real)

    @property
    def roots(self) -> list[Path]:
        """Folders whose files may be read: the folder sources' roots and the allowed roots."""
        with self._lock:
            folders = [_real(s.root) for s in self.sources if isinstance(s, FolderSource)]
            return folders + list(self._roots)

    @property
    def files(self) -> set[Path]:
        with self._lock:
            return set(self._files)

    def _where(self) -> str:
        names = [Path(s.root).name for s in self.sources]
        return ", ".join(names) if names else "no catalogue given"

    # ------------------------------------------------------------------ resolving

    def locate(self, name: str) -> tuple[ImageSource | None, str]:
        """Where ``name`` is: ``(source, name in it)`` or ``(None, real path on disk)``.

        Raises :class:`ImageNotAllowedError` for a name outside the allowed places and
        :class:`ImageError` for one that is nowhere."""
        name = str(name).strip()
        if not name:
            raise ImageError("an empty image name")
        with self._lock:
            sources = list(self.sources)
        for source in sources:  # folder sources refuse names that leave their root
            if name in source:
                return source, name
        base = base_name(name, strip=False)
        for source in sources:
            if base != name and base in source:
                return source, base
        relative = not Path(name).expanduser().is_absolute()
        for source in sources:
            if relative and isinstance(source, FolderSource) and source.escapes(name):
                raise ImageNotAllowedError(
                    f"{name}: leaves the catalogue folder {source.root.name} (a '..' or a symlink pointing out)"
                )
        path = Path(name).expanduser()
        if not path.is_absolute() and not path.exists():
            # a relative name that is no catalogue name and no file here: nothing to read
            raise ImageError(f"{name}: image not found (looked in {self._where()})")
        real = path.resolve()
        if not real.exists():
            if path.is_symlink():
                raise ImageError(f"{name}: a broken symlink")
            raise ImageError(f"{name}: image not found (looked in {self._where()})")
        if real in self.files or any(_inside(real, root) for root in self.roots):
            if not real.is_file():
                raise ImageError(f"{name}: is a directory, not an image")
            return None, str(real)
        raise ImageNotAllowedError(f"{name}: outside the allowed image folders ({ALLOWED_WHERE})")

    def check(self, name: str) -> None:
        """Raise as :meth:`read_bytes` would, without reading the file."""
        self.locate(name)

    def read_bytes(self, name: str) -> bytes:
        source, where = self.locate(name)
        if source is not None:
            return source.read_bytes(where)
        try:
            return Path(where).read_bytes()
        except OSError as exc:
            raise ImageError(f"{name}: cannot read ({exc.strerror or exc})") from None

    def load(self, name: str) -> LoadedImage:
        with self._lock:
            hit = self._memo.get(name)
        if hit is not None:
            return hit
        data = self.read_bytes(name)
        loaded = LoadedImage(name=name, image=load_image(data, name, self.max_pixels), hash=content_hash(data))
        with self._lock:
            if len(self._memo) >= self.memo:
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

    def close(self) -> None:
        for source in self.sources:
            source.close()
