"""``train_annotation.csv``: image file name + (Chinese) product title.

Columns are found by name (English or Chinese headers); a file with no header line whose
first cell is an image file name is read as ``name,title`` rows. The file may be UTF-8 with or
without a BOM, or GB18030; comma, tab, or ``|`` separated.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from pydantic import BaseModel

from vlagent.data.images import is_image_name
from vlagent.errors import DataError

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
