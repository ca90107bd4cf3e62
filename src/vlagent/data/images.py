"""Image sources read in place: a folder (recursively) or a zip archive, no extraction.

Images are named by their path inside the source (posix separators). A zip whose members all
sit under one top folder (``image.zip`` → ``image/abc.jpg``) is named without that folder, so
a folder and its zip give the same names.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError

from vlagent.errors import DataError, ImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
DEFAULT_MAX_PIXELS = 64_000_000


def is_image_name(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES and not PurePosixPath(
        name
    ).name.startswith(".")


def load_image(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode bytes into an RGB image, or raise :class:`ImageError` with a one-line reason."""
    if not data:
        raise ImageError(f"{name}: the file is empty")
    try:
        img = Image.open(io.BytesIO(data))
        width, height = img.size  # header only: nothing decoded yet
        if width * height > max_pixels:
            raise ImageError(
                f"{name}: image too large ({width}x{height} = {width * height:,} pixels > "
                f"{max_pixels:,}; raise VLAGENT_MAX_IMAGE_PIXELS to allow it)"
            )
        img.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image, or a corrupt one") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: image too large ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: corrupt image ({exc})") from None
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def load_image_file(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open one image file from disk with the same checks as a source."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image")
    return load_image(path.read_bytes(), str(path), max_pixels)


class ImageSource:
    """A read-only collection of named image files."""

    root: Path

    def names(self) -> list[str]:
        raise NotImplementedError

    def read_bytes(self, name: str) -> bytes:
        raise NotImplementedError

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in set(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def open(self, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
        return load_image(self.read_bytes(name), name, max_pixels)

    def close(self) -> None:  # pragma: no cover - trivial
        pass

    def __enter__(self) -> "ImageSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FolderSource(ImageSource):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._names: list[str] | None = None

    def names(self) -> list[str]:
        if self._names is None:
            self._names = sorted(
                p.relative_to(self.root).as_posix()
                for p in self.root.rglob("*")
                if p.is_file() and is_image_name(p.name)
            )
        return self._names

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (self.root / name).is_file()

    def read_bytes(self, name: str) -> bytes:
        path = self.root / name
        if not path.is_file():
            raise ImageError(f"{name}: no such image in {self.root}")
        return path.read_bytes()


class ZipSource(ImageSource):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        try:
            self._zip = zipfile.ZipFile(self.root)
        except zipfile.BadZipFile:
            raise DataError(f"{self.root}: not a valid zip archive") from None
        members = [
            i.filename for i in self._zip.infolist() if not i.is_dir() and is_image_name(i.filename)
        ]
        tops = {PurePosixPath(m).parts[0] for m in members if len(PurePosixPath(m).parts) > 1}
        strip = (
            next(iter(tops)) + "/"
            if len(tops) == 1 and all(len(PurePosixPath(m).parts) > 1 for m in members)
            else ""
        )
        self._members = {m[len(strip) :]: m for m in members if "__MACOSX" not in m}
        self._names = sorted(self._members)

    def names(self) -> list[str]:
        return self._names

    def __contains__(self, name: object) -> bool:
        return name in self._members

    def read_bytes(self, name: str) -> bytes:
        member = self._members.get(name)
        if member is None:
            raise ImageError(f"{name}: no such image in {self.root}")
        return self._zip.read(member)

    def close(self) -> None:
        self._zip.close()


def open_source(path: str | Path) -> ImageSource:
    """Open an image folder or a ``.zip`` of images."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such image folder or zip file")
    if path.is_dir():
        return FolderSource(path)
    if zipfile.is_zipfile(path):
        return ZipSource(path)
    raise DataError(f"{path}: expected an image folder or a .zip of images")
