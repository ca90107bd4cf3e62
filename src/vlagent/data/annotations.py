"""``train_annotation.csv``: image file name + (Chinese) product title.

Columns are found by name (English or Chinese headers); a file with no header line whose
first cell is an image file name is read as ``name,title`` rows. The file may be UTF-8 with or
without a BOM, or GB18030; comma, tab, or ``|`` separated.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from vlagent.data.images import ImageSource, base_name, is_image_name
from vlagent.errors import DataError

log = logging.getLogger(__name__)

IMAGE_COLUMNS = (
    "image", "image_name", "imagename", "image_id", "img", "img_name", "image_path", "file",
    "filename", "file_name", "path", "related_image", "图片", "图片名", "图片名称", "图像", "文件名",
)  # fmt: skip
TITLE_COLUMNS = (
    "title", "text", "caption", "description", "desc", "product_title", "name", "label",
    "标题", "商品标题", "文本", "描述", "文本描述", "商品名称", "名称",
)  # fmt: skip
ENCODINGS = ("utf-8-sig", "gb18030")


class Annotation(BaseModel):
    image: str
    title: str


def _decode(raw: bytes, path: Path) -> str:
    for enc in ENCODINGS:
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    raise DataError(f"{path}: cannot decode as UTF-8 or GB18030")


def _find(header: list[str], candidates: tuple[str, ...]) -> int | None:
    norm = [h.strip().lower().replace(" ", "_") for h in header]
    for cand in candidates:
        if cand in norm:
            return norm.index(cand)
    return None


def read_annotations(path: str | Path) -> list[Annotation]:
    """Read the annotations file; rows with an empty image name are dropped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such annotations file")
    text = _decode(path.read_bytes(), path)
    if not text.strip():
        raise DataError(f"{path}: the annotations file is empty")
    first = text.splitlines()[0]
    try:
        dialect = csv.Sniffer().sniff(first, delimiters=",\t|")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    header, body = rows[0], rows[1:]
    img_col, title_col = _find(header, IMAGE_COLUMNS), _find(header, TITLE_COLUMNS)
    if img_col is None and title_col is None and len(header) >= 2 and is_image_name(header[0].strip()):
        # no header line at all: every row is "file name, title"
        img_col, title_col, body = 0, 1, rows
    if img_col is None or title_col is None:
        missing = "image file name" if img_col is None else "title"
        raise DataError(
            f"{path}: no {missing} column in header {header!r} "
            f"(expected one of {IMAGE_COLUMNS if img_col is None else TITLE_COLUMNS})"
        )
    out: list[Annotation] = []
    for row in body:
        if len(row) <= max(img_col, title_col):
            continue
        image = row[img_col].strip()
        if image:
            out.append(Annotation(image=image, title=row[title_col].strip()))
    return out


def in_sources(image: str, sources: Sequence[ImageSource]) -> bool:
    """Whether a row's image is in the catalogue (by its name, or its file name)."""
    base = base_name(image, strip=False)
    return any(image in s or (base != image and base in s) for s in sources)


def split_present(
    rows: Sequence[Annotation], sources: Sequence[ImageSource]
) -> tuple[list[Annotation], list[Annotation]]:
    """(rows whose image is in ``sources``, rows whose image is missing), in input order."""
    present: list[Annotation] = []
    missing: list[Annotation] = []
    for row in rows:
        (present if in_sources(row.image, sources) else missing).append(row)
    return present, missing


def split_duplicates(rows: Sequence[Annotation]) -> tuple[list[Annotation], list[Annotation]]:
    """(the first row per image, the later rows naming an image again)."""
    seen: set[str] = set()
    first: list[Annotation] = []
    again: list[Annotation] = []
    for row in rows:
        (again if row.image in seen else first).append(row)
        seen.add(row.image)
    return first, again


def names_preview(names: Sequence[str], shown: int = 5) -> str:
    """``a.jpg, b.jpg, c.jpg and 7 more``."""
    head = ", ".join(names[:shown])
    return head + (f" and {len(names) - shown} more" if len(names) > shown else "")


def usable_rows(rows: Sequence[Annotation], sources: Sequence[ImageSource]) -> list[Annotation]:
    """The rows the agent may offer as candidates: one per image, only images in ``sources``.

    Logs a warning with the count and the first few names of rows whose image is missing, and
    of duplicate rows. With no catalogue at all nothing can be checked: the rows are kept."""
    unique, again = split_duplicates(rows)
    if again:
        log.warning(
            "%d annotation row(s) name an image a second time (the first title is used): %s",
            len(again), names_preview([r.image for r in again]),
        )  # fmt: skip
    if not sources:
        return unique
    present, missing = split_present(unique, sources)
    if missing:
        log.warning(
            "%d annotation row(s) name images missing from the catalogue (never offered as candidates): %s",
            len(missing), names_preview([r.image for r in missing]),
        )  # fmt: skip
    return present
