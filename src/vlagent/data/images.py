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

from PIL import Image, ImageOps, UnidentifiedImageError

from vlagent.errors import DataError, ImageError, ImageNotAllowedError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
DEFAULT_MAX_PIXELS = 64_000_000


def base_name(name: str, *, strip: bool = True) -> str:
    """``/data/catalogue/abc.jpg`` or ``C:\\shop\\abc.jpg`` → ``abc.jpg``: what an image is called
    wherever a path must not show (the LLM, traces, answers) and how titles are keyed; the one
    way to take an image's base name. ``strip=False`` keeps surrounding blanks (a name looked
    up as given)."""
    return (name.strip() if strip else name).replace("\\", "/").rsplit("/", 1)[-1]


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
    return to_rgb(img, name)


def to_rgb(img: Image.Image, name: str = "image") -> Image.Image:
    """Upright 8-bit RGB: EXIF orientation applied; 16-bit and float images scaled, not clipped
    (PIL's own ``convert`` clips 16-bit grey to white); CMYK, palette, alpha, grey converted;
    an animated image gives its first frame (the one ``load`` decoded)."""
    try:
        img = ImageOps.exif_transpose(img) or img
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the image
        pass
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        arr = np.clip(arr, 0, top) * (255.0 / top)
        img = Image.fromarray(arr.astype(np.uint8), mode="L")
    if img.mode != "RGB":
        try:
            img = img.convert("RGB")
        except (OSError, ValueError) as exc:
            raise ImageError(f"{name}: cannot convert its {img.mode} pixels to RGB ({exc})") from None
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
    """Every image file under ``root``; a name that leaves it (``..``, a symlink) is refused."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._real_root = self.root.resolve()
        self._names: list[str] | None = None

    def names(self) -> list[str]:
        if self._names is None:
            self._names = sorted(
                p.relative_to(self.root).as_posix()
                for p in self.root.rglob("*")
                if p.is_file() and is_image_name(p.name)
            )
        return self._names

    def escapes(self, name: str) -> bool:
        """True when ``name`` exists under ``root`` as written but really lies outside it."""
        path = self.root / name
        if not (path.exists() or path.is_symlink()):
            return False
        real = path.resolve()
        return not real.is_relative_to(self._real_root)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or not name:
            return False
        path = self.root / name
        return path.is_file() and path.resolve().is_relative_to(self._real_root)

    def read_bytes(self, name: str) -> bytes:
        if self.escapes(name):
            raise ImageNotAllowedError(
                f"{name}: leaves the catalogue folder {self.root.name} (a '..' or a symlink pointing out)"
            )
        path = self.root / name
        if not path.is_file():
            raise ImageError(f"{name}: no such image in {self.root}")
        return path.read_bytes()


def member_name(info: zipfile.ZipInfo) -> str:
    """A zip member's name as its writer meant it.

    Without the UTF-8 flag, ``zipfile`` decodes names as CP437; archives made on Chinese
    Windows hold GBK there (and some tools write UTF-8 without the flag)."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        raw = info.filename.encode("cp437")
    except UnicodeEncodeError:
        return info.filename
    for encoding in ("utf-8", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return info.filename


class ZipSource(ImageSource):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        try:
            self._zip = zipfile.ZipFile(self.root)
        except zipfile.BadZipFile:
            raise DataError(f"{self.root}: not a valid zip archive") from None
        infos = {
            member_name(i): i
            for i in self._zip.infolist()
            if not i.is_dir() and is_image_name(member_name(i)) and "__MACOSX" not in i.filename
        }
        members = list(infos)
        tops = {PurePosixPath(m).parts[0] for m in members if len(PurePosixPath(m).parts) > 1}
        strip = (
            next(iter(tops)) + "/"
            if len(tops) == 1 and all(len(PurePosixPath(m).parts) > 1 for m in members)
            else ""
        )
        self._members = {m[len(strip) :]: infos[m] for m in members}
        self._names = sorted(self._members)

    def names(self) -> list[str]:
        return self._names

    def __contains__(self, name: object) -> bool:
        return name in self._members

    def read_bytes(self, name: str) -> bytes:
        member = self._members.get(name)
        if member is None:
            raise ImageError(f"{name}: no such image in {self.root}")
        try:
            return self._zip.read(member)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise ImageError(f"{name}: cannot be read from {self.root.name} ({exc})") from None

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
