"""Uploaded images: checked (type, size, decodable) and kept in one private folder per session."""

from __future__ import annotations

import re
import shutil
import urllib.request
from pathlib import Path, PurePosixPath

from vlagent.data.images import load_image
from vlagent.errors import ImageError

#: the image types an upload may be (by name; the bytes must decode as an image too)
UPLOAD_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


class UploadError(ImageError):
    """An upload refused: wrong type, undecodable, or too many of them."""


class UploadTooLargeError(UploadError):
    """An upload over the size limit."""


def _human(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"


def safe_name(filename: str) -> str:
    """The file name part only, with anything but letters, digits, ``._-`` replaced."""
    base = PurePosixPath(str(filename).replace("\\", "/")).name
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = re.sub(r"[^\w.-]+", "_", stem, flags=re.UNICODE).strip("._") or "upload"
    return f"{stem[:80]}.{suffix.lower()}" if suffix else stem[:80]


def decode_data_url(url: str) -> tuple[str, bytes]:
    """``data:image/png;base64,...`` → (``.png``, bytes); anything else is an :class:`UploadError`."""
    head = url[:64].lower()
    if not head.startswith("data:"):
        raise UploadError(
            f"image_url {url[:40]!r}...: only data: URLs (data:image/png;base64,...) are accepted"
        )
    mime = head[5:].split(";", 1)[0].split(",", 1)[0]
    if not mime.startswith("image/"):
        raise UploadError(f"image_url of type {mime or 'unknown'!r}: only image/* data URLs are accepted")
    try:
        with urllib.request.urlopen(url) as fh:  # the standard library's data: URL decoder
            data = fh.read()
    except (ValueError, OSError) as exc:
        raise UploadError(f"image_url: not a valid base64 data URL ({exc})") from None
    suffix = "." + mime.split("/", 1)[1].replace("jpeg", "jpg").split("+")[0]
    return suffix, data


class UploadFolder:
    """One session's uploads: a private folder; names handed to the agent are paths inside it."""

    def __init__(self, root: Path, max_bytes: int, max_pixels: int, max_files: int = 64) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.max_files = max_files

    def check_size(self, name: str, size: int) -> None:
        if size > self.max_bytes:
            raise UploadTooLargeError(f"{name}: {_human(size)} is over the {_human(self.max_bytes)} upload limit")

    def add(self, filename: str, data: bytes) -> Path:
        """Check and store one upload; returns its path (an :class:`UploadError` names what is wrong)."""
        name = safe_name(filename)
        if not name.lower().endswith(UPLOAD_SUFFIXES):
            raise UploadError(f"{name}: not an accepted image type ({', '.join(s[1:] for s in UPLOAD_SUFFIXES)})")
        self.check_size(name, len(data))
        load_image(data, name, self.max_pixels)  # ImageError: empty, corrupt, not an image, too large
        if len(self.names()) >= self.max_files:
            raise UploadError(f"{name}: this session already holds {self.max_files} uploads")
        path = self.root / name
        n = 1
        while path.exists() and path.read_bytes() != data:
            stem, _, suffix = name.rpartition(".")
            path = self.root / f"{stem}-{n}.{suffix}"
            n += 1
        path.write_bytes(data)
        return path

    def add_file(self, path: str | Path, filename: str | None = None) -> Path:
        """Store a file the web framework already received (size checked before it is read)."""
        path = Path(path)
        name = safe_name(filename or path.name)
        self.check_size(name, path.stat().st_size)
        return self.add(name, path.read_bytes())

    def owns(self, path: str | Path) -> bool:
        try:
            resolved = Path(path).resolve()
        except OSError:
            return False
        return resolved.parent == self.root.resolve() and resolved.is_file()

    def lookup(self, name: str) -> Path | None:
        """The stored upload called ``name`` (its file name), if this session has one."""
        candidate = self.root / safe_name(name)
        return candidate if candidate.is_file() else None

    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir()) if self.root.is_dir() else []

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
