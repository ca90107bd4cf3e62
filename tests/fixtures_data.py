"""Data fixtures: a tiny synthetic product catalogue, CSV variants, bad images, query files.

Everything is built ONCE per test session under ``tmp_path_factory`` (well under a second) and
must be treated as READ-ONLY by tests (copy it to ``tmp_path`` before changing anything).
The builders are plain functions too (``make_catalogue(root)`` ...) for tests that need a
private copy.

Fixtures (the contract other areas build on)
--------------------------------------------
``catalogue`` -> :class:`Catalogue` (frozen dataclass)
    ``root``    the folder holding everything below.
    ``folder``  ``root/image``: 12 images drawn with PIL, distinct shapes and colours, JPEG and
                PNG (RGB, RGBA, palette and grayscale modes, sizes 64..128 px), two of them in a
                subfolder (``shoes/``). File names are ``CATALOGUE`` keys, e.g.
                ``dress_red.jpg``, ``shirt_blue.jpg``, ``trousers_black.png``,
                ``shoes/sneaker_white.jpg``.
    ``zip``     ``root/image.zip``: the same files under the top folder ``image/`` (so
                ``open_source(zip).names() == names``; bytes identical to the folder's).
    ``csv``     ``root/train_annotation.csv``: UTF-8 *with BOM*, header ``image,title``, one row
                per image in ``names`` order, Chinese product titles (one title contains a
                comma and is quoted).
    ``titles``  ``dict[name, title]`` (the CSV's content).
    ``names``   ``list[str]``: the image names, sorted (== ``FolderSource(folder).names()``).
    ``colours`` ``dict[name, (r, g, b)]``: the main colour each product is drawn in.
    ``path(name)`` -> ``folder / name``.

``annotation_variants`` -> :class:`AnnotationVariants` (frozen dataclass of CSV paths, all
    describing the catalogue's images unless said otherwise)
    ``gb18030``        GB18030 bytes, Chinese headers ``图片名,商品标题``.
    ``tsv``            tab separated, UTF-8, header ``image_name\\ttext``.
    ``utf8``           plain UTF-8 (no BOM), header ``image,title``.
    ``missing_file``   UTF-8 with BOM; the catalogue rows plus one row naming
                       ``MISSING_NAME`` (``no_such_product.jpg``) that is in no source.
    ``extra_columns``  UTF-8, header ``id,商品标题,price,图片名称`` (columns in another order).
    ``no_header``      UTF-8, no header line: ``name,title`` rows only.
    ``empty``          a 0-byte file.
    ``header_only``    header line, no rows.
    ``no_title_column`` header ``image,price``: no title column.
    ``undecodable``    bytes that are neither UTF-8 nor GB18030.
    ``missing``        a path that does not exist.

``bad_images`` -> :class:`BadImages` (frozen dataclass)
    ``missing``     a path that does not exist (``missing.jpg``).
    ``empty``       a 0-byte ``empty.jpg``.
    ``truncated``   ``truncated.jpg``: the first half of a valid JPEG (header decodes, pixels don't).
    ``random``      ``random.jpg``: 2 KiB of random bytes.
    ``text``        ``text.png``: UTF-8 text with a ``.png`` suffix.
    ``huge``        ``huge.png``: a valid 1-bit PNG of ``HUGE_SIZE`` = 9000x9000 (81 M pixels,
                    > the default 64 M ``max_pixels``, < PIL's own bomb limit) — ~10 KB on disk;
                    the loader must refuse it from the header, without decoding.
    ``bomb``        ``bomb.png``: a valid 1-bit PNG of ``BOMB_SIZE`` = 20000x20000 (400 M pixels,
                    PIL raises DecompressionBombError on open).
    ``good``        ``good.jpg`` / ``good.png``: two valid images (tuple of paths).
    ``duplicate``   ``good_copy.jpg``: same bytes as ``good[0]``.
    ``folder``      the folder holding all of the above (except ``missing``): an image source
                    where 3 images are fine (good.jpg, good.png, good_copy.jpg) and 6 are bad.
    ``zip``         the same files in ``bad.zip`` (no top folder).
    ``bad_names``   ``dict[name, reason-word]`` for the 6 bad files in ``folder`` (the word the
                    error message contains: ``empty``, ``corrupt``, ``not an image``, ``too large``).

``query_files`` -> :class:`QueryFiles` (frozen dataclass of paths to ``query.json`` variants)
    ``good``            ``GOOD_QUERIES`` (6 items over the catalogue: describe, retrieve (empty
                        ``related_image``), vqa, ocr (English), compare (two images, comma
                        separated), chitchat (no image)).
    ``extras``          ``EXTRA_QUERIES``: items carrying ``id``, ``gold_answer``,
                        ``gold_image``, a nested ``meta`` object, in a non-sorted id order.
    ``malformed``       not valid JSON (a trailing comma on line 3).
    ``not_a_list``      a JSON object ``{"questions": [...]}``.
    ``missing_fields``  ``MIXED_QUERIES``: [ok, no "question", no "answer" (non-fatal),
                        a string instead of an object, "answer": 3 (wrong type), ok].
    ``empty_question``  [ok, question "", question "   "].
    ``duplicates``      [a, b, a again (same question + image), b with another image].
    ``bom``             ``GOOD_QUERIES`` written as UTF-8 with a BOM.
    ``not_utf8``        GB18030 bytes.
    ``missing``         a path that does not exist.
    ``empty_list``      ``[]``.
"""

from __future__ import annotations

import csv
import io
import json
import random
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from vlagent.settings import Settings

# --------------------------------------------------------------------------- the catalogue

#: name -> (Chinese title, kind of drawing, main colour, size, save mode)
CATALOGUE: dict[str, tuple[str, str, tuple[int, int, int], tuple[int, int], str]] = {
    "dress_red.jpg": ("红色连衣裙女夏季长裙", "dress", (220, 20, 30), (96, 128), "RGB"),
    "shirt_blue.jpg": ("蓝色男士衬衫长袖纯棉", "shirt", (30, 60, 200), (112, 96), "RGB"),
    "trousers_black.png": ("黑色休闲裤男直筒长裤", "trousers", (15, 15, 15), (80, 120), "RGB"),
    "skirt_yellow.png": ("黄色半身裙,百褶短裙", "skirt", (240, 200, 20), (96, 96), "RGBA"),
    "tshirt_white.jpg": ("白色T恤圆领短袖", "shirt", (245, 245, 245), (100, 100), "RGB"),
    "hat_green.png": ("绿色棒球帽遮阳帽", "hat", (20, 160, 60), (64, 64), "P"),
    "bag_brown.jpg": ("棕色真皮手提包女包", "bag", (130, 80, 40), (120, 100), "RGB"),
    "scarf_pink.jpg": ("粉色羊毛围巾冬季保暖", "scarf", (240, 130, 170), (128, 64), "RGB"),
    "jacket_grey.jpg": ("灰色羽绒服外套加厚", "shirt", (128, 128, 128), (110, 120), "L"),
    "socks_purple.png": ("紫色棉袜五双装", "socks", (130, 40, 170), (72, 96), "RGB"),
    "shoes/sneaker_white.jpg": ("白色运动鞋男跑步鞋", "shoe", (250, 250, 250), (128, 80), "RGB"),
    "shoes/boots_black.png": ("黑色马丁靴女短靴", "boot", (20, 20, 20), (96, 112), "RGB"),
}

MISSING_NAME = "no_such_product.jpg"
HUGE_SIZE = (9000, 9000)
BOMB_SIZE = (20000, 20000)


def plain_agent_settings(tmp_path: Path) -> Settings:
    """Settings for an agent with no model at all (no LLM, OCR, caption, VQA, CLIP): what a test
    of the agent's own plumbing builds it with (a plugin tool, a question card)."""
    return Settings(
        home=tmp_path / "home", device="cpu", llm_backend="none", ocr_backend="none",
        caption_backend="none", vqa_backend="none", clip_model=str(tmp_path / "no-clip-here"),
    )  # fmt: skip


def one_image_folder(tmp_path: Path, name: str, colour: tuple[int, int, int]) -> Path:
    """``tmp_path/images`` holding one 64x48 image of one colour."""
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (64, 48), colour).save(folder / name)
    return folder


def catalogue_characters() -> str:
    """Every character used in the catalogue titles and the query files (for tiny vocabularies)."""
    texts = [t for t, *_ in CATALOGUE.values()]
    texts += [q["question"] for q in GOOD_QUERIES + EXTRA_QUERIES]
    return "".join(sorted({ch for text in texts for ch in text if not ch.isspace()}))


def _background(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    # light products on a dark background and vice versa, so every shape is visible
    return (40, 40, 60) if sum(colour) > 600 else (235, 235, 225)


def draw_product(kind: str, colour: tuple[int, int, int], size: tuple[int, int]) -> Image.Image:
    """A flat drawing of one product (deterministic)."""
    w, h = size
    img = Image.new("RGB", size, _background(colour))
    d = ImageDraw.Draw(img)
    X = lambda f: int(f * w)  # noqa: E731
    Y = lambda f: int(f * h)  # noqa: E731
    if kind == "dress":
        d.polygon([(X(0.4), Y(0.1)), (X(0.6), Y(0.1)), (X(0.85), Y(0.9)), (X(0.15), Y(0.9))], fill=colour)
    elif kind == "shirt":
        d.polygon(
            [(X(0.3), Y(0.15)), (X(0.7), Y(0.15)), (X(0.95), Y(0.35)), (X(0.8), Y(0.45)),
             (X(0.72), Y(0.4)), (X(0.72), Y(0.9)), (X(0.28), Y(0.9)), (X(0.28), Y(0.4)),
             (X(0.2), Y(0.45)), (X(0.05), Y(0.35))],
            fill=colour,
        )  # fmt: skip
        d.line([(X(0.5), Y(0.15)), (X(0.5), Y(0.9))], fill=(0, 0, 0), width=1)
    elif kind == "trousers":
        d.rectangle([X(0.25), Y(0.1), X(0.75), Y(0.3)], fill=colour)
        d.rectangle([X(0.25), Y(0.3), X(0.47), Y(0.92)], fill=colour)
        d.rectangle([X(0.53), Y(0.3), X(0.75), Y(0.92)], fill=colour)
    elif kind == "skirt":
        d.polygon([(X(0.35), Y(0.25)), (X(0.65), Y(0.25)), (X(0.9), Y(0.75)), (X(0.1), Y(0.75))], fill=colour)
        for i in range(1, 6):
            d.line([(X(0.35 + 0.06 * i - 0.06), Y(0.25)), (X(0.1 + 0.16 * i - 0.16), Y(0.75))], fill=(0, 0, 0))
    elif kind == "hat":
        d.pieslice([X(0.15), Y(0.25), X(0.85), Y(0.95)], 180, 360, fill=colour)
        d.rectangle([X(0.5), Y(0.55), X(0.98), Y(0.62)], fill=colour)
    elif kind == "bag":
        d.arc([X(0.3), Y(0.1), X(0.7), Y(0.6)], 180, 360, fill=colour, width=max(2, w // 30))
        d.rectangle([X(0.15), Y(0.35), X(0.85), Y(0.9)], fill=colour)
    elif kind == "scarf":
        d.rectangle([X(0.05), Y(0.35), X(0.95), Y(0.6)], fill=colour)
        for i in range(8):
            d.line([(X(0.1 + 0.1 * i), Y(0.6)), (X(0.1 + 0.1 * i), Y(0.75))], fill=colour, width=2)
    elif kind == "socks":
        for dx in (0.0, 0.35):
            d.rectangle([X(0.15 + dx), Y(0.1), X(0.35 + dx), Y(0.7)], fill=colour)
            d.ellipse([X(0.1 + dx), Y(0.6), X(0.5 + dx), Y(0.85)], fill=colour)
    elif kind == "shoe":
        d.ellipse([X(0.05), Y(0.45), X(0.95), Y(0.85)], fill=colour)
        d.rectangle([X(0.1), Y(0.3), X(0.5), Y(0.65)], fill=colour)
        d.line([(X(0.05), Y(0.8)), (X(0.95), Y(0.8))], fill=(90, 90, 90), width=3)
    elif kind == "boot":
        d.rectangle([X(0.3), Y(0.05), X(0.6), Y(0.75)], fill=colour)
        d.rectangle([X(0.3), Y(0.6), X(0.9), Y(0.9)], fill=colour)
    else:  # pragma: no cover - table typo
        raise ValueError(kind)
    return img


def _encode(img: Image.Image, name: str, mode: str) -> bytes:
    if mode == "RGBA":
        img = img.convert("RGBA")
    elif mode == "P":
        img = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    elif mode == "L":
        img = img.convert("L")
    buf = io.BytesIO()
    if name.lower().endswith((".jpg", ".jpeg")):
        img.save(buf, format="JPEG", quality=90)
    else:
        img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def product_bytes(name: str) -> bytes:
    """The encoded file of one catalogue image (deterministic)."""
    _title, kind, colour, size, mode = CATALOGUE[name]
    return _encode(draw_product(kind, colour, size), name, mode)


def write_csv(path: Path, header: tuple[str, str], rows: list[tuple[str, str]], *,
              encoding: str = "utf-8", delimiter: str = ",") -> Path:
    """Write a small CSV (quoting titles that contain the delimiter)."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


@dataclass(frozen=True)
class Catalogue:
    root: Path
    folder: Path
    zip: Path
    csv: Path
    titles: dict[str, str]
    names: list[str]
    colours: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    def path(self, name: str) -> Path:
        return self.folder / name


def make_catalogue(root: Path) -> Catalogue:
    """Build the catalogue (folder, zip, CSV) under ``root``."""
    root = Path(root)
    folder = root / "image"
    folder.mkdir(parents=True, exist_ok=True)
    names = sorted(CATALOGUE)
    zip_path = root / "image.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("image/", b"")  # a directory entry, as zip tools write it
        for name in names:
            data = product_bytes(name)
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            zf.writestr(f"image/{name}", data)
    titles = {name: CATALOGUE[name][0] for name in names}
    csv_path = write_csv(
        root / "train_annotation.csv", ("image", "title"),
        [(n, titles[n]) for n in names], encoding="utf-8-sig",
    )  # fmt: skip
    return Catalogue(
        root=root, folder=folder, zip=zip_path, csv=csv_path, titles=titles, names=names,
        colours={n: CATALOGUE[n][2] for n in names},
    )  # fmt: skip


@pytest.fixture(scope="session")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    return make_catalogue(tmp_path_factory.mktemp("catalogue"))


# --------------------------------------------------------------------------- CSV variants


@dataclass(frozen=True)
class AnnotationVariants:
    gb18030: Path
    tsv: Path
    utf8: Path
    missing_file: Path
    extra_columns: Path
    no_header: Path
    empty: Path
    header_only: Path
    no_title_column: Path
    undecodable: Path
    missing: Path


def make_annotation_variants(root: Path, titles: dict[str, str]) -> AnnotationVariants:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = list(titles.items())
    extra = root / "extra_columns.csv"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "商品标题", "price", "图片名称"])
    for i, (name, title) in enumerate(rows):
        w.writerow([i, title, f"{99 + i}.00", name])
    extra.write_text(buf.getvalue(), encoding="utf-8")
    (root / "empty.csv").write_bytes(b"")
    body = io.StringIO()
    csv.writer(body, lineterminator="\n").writerows(rows)
    (root / "no_header.csv").write_text(body.getvalue(), encoding="utf-8")
    write_csv(root / "header_only.csv", ("image", "title"), [])
    write_csv(root / "no_title.csv", ("image", "price"), [(n, "10") for n, _ in rows])
    (root / "undecodable.csv").write_bytes(b"image,title\n\xff\xfe\xff\xfe.jpg,\xff\xff\xff\n")
    return AnnotationVariants(
        gb18030=write_csv(root / "gb18030.csv", ("图片名", "商品标题"), rows, encoding="gb18030"),
        tsv=write_csv(root / "annotations.tsv", ("image_name", "text"), rows, delimiter="\t"),
        utf8=write_csv(root / "utf8.csv", ("image", "title"), rows),
        missing_file=write_csv(
            root / "missing_file.csv", ("image", "title"),
            rows + [(MISSING_NAME, "不存在的商品")], encoding="utf-8-sig",
        ),  # fmt: skip
        extra_columns=extra,
        no_header=(root / "no_header.csv"),
        empty=root / "empty.csv",
        header_only=root / "header_only.csv",
        no_title_column=root / "no_title.csv",
        undecodable=root / "undecodable.csv",
        missing=root / "no_such_annotations.csv",
    )


@pytest.fixture(scope="session")
def annotation_variants(
    tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue
) -> AnnotationVariants:
    return make_annotation_variants(tmp_path_factory.mktemp("annotations"), catalogue.titles)


# --------------------------------------------------------------------------- bad images


def big_png(width: int, height: int) -> bytes:
    """A valid, all-black 1-bit PNG of any size, small on disk (built without PIL)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed pixels
    comp = zlib.compressobj(9)
    parts = [comp.compress(row * 100) for _ in range(height // 100)]
    parts.append(comp.compress(row * (height % 100)))
    parts.append(comp.flush())
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )  # fmt: skip


@dataclass(frozen=True)
class BadImages:
    folder: Path
    zip: Path
    missing: Path
    empty: Path
    truncated: Path
    random: Path
    text: Path
    huge: Path
    bomb: Path
    good: tuple[Path, Path]
    duplicate: Path
    bad_names: dict[str, str]


def make_bad_images(root: Path) -> BadImages:
    folder = Path(root) / "bad"
    folder.mkdir(parents=True, exist_ok=True)
    good_jpg = product_bytes("dress_red.jpg")
    files = {
        "good.jpg": good_jpg,
        "good.png": product_bytes("socks_purple.png"),
        "good_copy.jpg": good_jpg,
        "empty.jpg": b"",
        "truncated.jpg": good_jpg[: len(good_jpg) // 2],
        "random.jpg": b"\x00\x01" + random.Random(0).randbytes(2046),
        "text.png": "这不是图片 / this is not an image\n".encode(),
        "huge.png": big_png(*HUGE_SIZE),
        "bomb.png": big_png(*BOMB_SIZE),
    }
    zip_path = Path(root) / "bad.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        for name, data in files.items():
            (folder / name).write_bytes(data)
            zf.writestr(name, data)
    return BadImages(
        folder=folder, zip=zip_path, missing=folder / "missing.jpg",
        empty=folder / "empty.jpg", truncated=folder / "truncated.jpg",
        random=folder / "random.jpg", text=folder / "text.png", huge=folder / "huge.png",
        bomb=folder / "bomb.png", good=(folder / "good.jpg", folder / "good.png"),
        duplicate=folder / "good_copy.jpg",
        bad_names={
            "empty.jpg": "empty", "truncated.jpg": "corrupt", "random.jpg": "not an image",
            "text.png": "not an image", "huge.png": "too large", "bomb.png": "too large",
        },
    )  # fmt: skip


@pytest.fixture(scope="session")
def bad_images(tmp_path_factory: pytest.TempPathFactory) -> BadImages:
    return make_bad_images(tmp_path_factory.mktemp("bad_images"))


# --------------------------------------------------------------------------- query files

GOOD_QUERIES: list[dict[str, Any]] = [
    {"question": "请对给定的图片进行描述。", "related_image": "dress_red.jpg", "answer": ""},
    {"question": "请匹配到与 蓝色男士衬衫长袖纯棉 最相关的图片。", "related_image": "", "answer": ""},
    {"question": "这款衬衫的面料是什么？", "related_image": "shirt_blue.jpg", "answer": ""},
    {"question": "What does the label say?", "related_image": "bag_brown.jpg", "answer": ""},
    {"question": "这两件商品哪个颜色更深？", "related_image": "trousers_black.png,hat_green.png", "answer": ""},
    {"question": "你好", "related_image": "", "answer": ""},
]

EXTRA_QUERIES: list[dict[str, Any]] = [
    {"id": 7, "question": "请对给定的图片进行描述。", "related_image": "scarf_pink.jpg", "answer": "",
     "gold_answer": "一条粉色的羊毛围巾。", "meta": {"source": "dev", "tags": ["describe"]}},
    {"id": 3, "question": "请匹配到与 黑色马丁靴女短靴 最相关的图片。", "related_image": "", "answer": "",
     "gold_image": "shoes/boots_black.png"},
    {"id": 5, "question": "这顶帽子是什么颜色？", "related_image": "hat_green.png", "answer": "",
     "gold_answer": "绿色"},
]  # fmt: skip

MIXED_QUERIES: list[Any] = [
    {"question": "请对给定的图片进行描述。", "related_image": "dress_red.jpg", "answer": ""},
    {"related_image": "shirt_blue.jpg", "answer": ""},
    {"question": "这是什么？", "related_image": "hat_green.png"},
    "请描述这张图片",
    {"question": "这是什么颜色？", "related_image": "hat_green.png", "answer": 3},
    {"question": "你好", "related_image": "", "answer": ""},
]


@dataclass(frozen=True)
class QueryFiles:
    good: Path
    extras: Path
    malformed: Path
    not_a_list: Path
    missing_fields: Path
    empty_question: Path
    duplicates: Path
    bom: Path
    not_utf8: Path
    missing: Path
    empty_list: Path


def make_query_files(root: Path) -> QueryFiles:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)

    def dump(name: str, obj: Any, encoding: str = "utf-8") -> Path:
        path = root / name
        path.write_bytes(json.dumps(obj, ensure_ascii=False, indent=2).encode(encoding))
        return path

    malformed = root / "malformed.json"
    malformed.write_text(
        '[\n  {"question": "你好", "related_image": "", "answer": ""},\n]\n', encoding="utf-8"
    )
    a = {"question": "请对给定的图片进行描述。", "related_image": "dress_red.jpg", "answer": ""}
    b = {"question": "这是什么颜色？", "related_image": "hat_green.png", "answer": ""}
    return QueryFiles(
        good=dump("query.json", GOOD_QUERIES),
        extras=dump("extras.json", EXTRA_QUERIES),
        malformed=malformed,
        not_a_list=dump("not_a_list.json", {"questions": GOOD_QUERIES}),
        missing_fields=dump("missing_fields.json", MIXED_QUERIES),
        empty_question=dump(
            "empty_question.json",
            [a, {"question": "", "related_image": "x.jpg", "answer": ""},
             {"question": "   ", "related_image": "", "answer": ""}],
        ),  # fmt: skip
        duplicates=dump("duplicates.json", [a, b, dict(a), {**b, "related_image": "bag_brown.jpg"}]),
        bom=dump("bom.json", GOOD_QUERIES, encoding="utf-8-sig"),
        not_utf8=dump("gb18030.json", GOOD_QUERIES, encoding="gb18030"),
        missing=root / "no_such_query.json",
        empty_list=dump("empty_list.json", []),
    )


@pytest.fixture(scope="session")
def query_files(tmp_path_factory: pytest.TempPathFactory) -> QueryFiles:
    return make_query_files(tmp_path_factory.mktemp("queries"))
