"""The data layer on well-formed and malformed inputs: annotations, image sources, query.json."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from fixtures_data import (
    BOMB_SIZE,
    CATALOGUE,
    EXTRA_QUERIES,
    GOOD_QUERIES,
    HUGE_SIZE,
    MISSING_NAME,
    MIXED_QUERIES,
    AnnotationVariants,
    BadImages,
    Catalogue,
    QueryFiles,
)
from PIL import Image, ImageFile

from vlagent.data.annotations import read_annotations
from vlagent.data.queries import read_queries, write_queries
from vlagent.data.images import FolderSource, ZipSource, load_image, load_image_file, open_source
from vlagent.errors import DataError, ImageError


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    return msg


# --------------------------------------------------------------------------- annotations


def test_catalogue_csv_utf8_bom(catalogue: Catalogue) -> None:
    assert catalogue.csv.read_bytes().startswith(b"\xef\xbb\xbf")
    rows = read_annotations(catalogue.csv)
    assert [r.image for r in rows] == catalogue.names
    assert {r.image: r.title for r in rows} == catalogue.titles
    assert not rows[0].image.startswith("\ufeff")


@pytest.mark.parametrize("variant", ["gb18030", "tsv", "utf8", "extra_columns", "no_header"])
def test_annotation_variants_read_the_same(
    variant: str, annotation_variants: AnnotationVariants, catalogue: Catalogue
) -> None:
    rows = read_annotations(getattr(annotation_variants, variant))
    assert {r.image: r.title for r in rows} == catalogue.titles
    assert len(rows) == len(catalogue.names)


def test_quoted_title_with_a_comma_is_one_field(catalogue: Catalogue) -> None:
    titles = {r.image: r.title for r in read_annotations(catalogue.csv)}
    assert titles["skirt_yellow.png"] == "黄色半身裙,百褶短裙"
    assert '"黄色半身裙,百褶短裙"' in catalogue.csv.read_text(encoding="utf-8-sig")


def test_crlf_line_endings(tmp_path: Path, catalogue: Catalogue) -> None:
    text = catalogue.csv.read_text(encoding="utf-8-sig").replace("\n", "\r\n")
    path = tmp_path / "crlf.csv"
    path.write_bytes(text.encode("utf-8"))
    assert {r.image: r.title for r in read_annotations(path)} == catalogue.titles


def test_row_naming_a_missing_file(annotation_variants: AnnotationVariants, catalogue: Catalogue) -> None:
    rows = read_annotations(annotation_variants.missing_file)
    assert rows[-1].image == MISSING_NAME
    with open_source(catalogue.folder) as source:
        assert MISSING_NAME not in source
        missing = [r.image for r in rows if r.image not in source]
        assert missing == [MISSING_NAME]
        with pytest.raises(ImageError) as exc:
            source.read_bytes(MISSING_NAME)
    assert MISSING_NAME in one_line(exc) and str(catalogue.folder) in str(exc.value)


def test_header_only_gives_no_rows(annotation_variants: AnnotationVariants) -> None:
    assert read_annotations(annotation_variants.header_only) == []


@pytest.mark.parametrize(
    ("variant", "words"),
    [
        ("empty", "empty"),
        ("no_title_column", "no title column"),
        ("undecodable", "cannot decode"),
        ("missing", "no such annotations file"),
    ],
)
def test_bad_annotation_files(variant: str, words: str, annotation_variants: AnnotationVariants) -> None:
    path = getattr(annotation_variants, variant)
    with pytest.raises(DataError) as exc:
        read_annotations(path)
    msg = one_line(exc)
    assert str(path) in msg and words in msg


# --------------------------------------------------------------------------- image sources


def test_folder_and_zip_give_same_names_and_bytes(catalogue: Catalogue) -> None:
    with open_source(catalogue.folder) as folder, open_source(catalogue.zip) as zipped:
        assert isinstance(folder, FolderSource) and isinstance(zipped, ZipSource)
        assert folder.names() == zipped.names() == catalogue.names
        assert len(folder) == len(zipped) == len(CATALOGUE)
        for name in catalogue.names:
            assert name in folder and name in zipped
            assert folder.read_bytes(name) == zipped.read_bytes(name) == catalogue.path(name).read_bytes()


@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_source_decodes_every_mode_to_rgb(kind: str, catalogue: Catalogue) -> None:
    with open_source(getattr(catalogue, kind)) as source:
        for name in source:
            img = source.open(name)
            assert img.mode == "RGB"
            assert img.size == CATALOGUE[name][3]
    raw_modes = {Image.open(catalogue.path(n)).mode for n in catalogue.names}
    assert {"RGB", "RGBA", "P", "L"} <= raw_modes  # the conversions above were exercised


def test_catalogue_images_are_distinct(catalogue: Catalogue) -> None:
    data = [catalogue.path(n).read_bytes() for n in catalogue.names]
    assert len(set(data)) == len(data)
    with open_source(catalogue.folder) as source:
        red = source.open("dress_red.jpg").getpixel((48, 64))
    assert red[0] > 150 and red[1] < 80 and red[2] < 80  # the dress is red in its middle


def test_zip_without_top_folder_and_with_mac_junk(tmp_path: Path, catalogue: Catalogue) -> None:
    path = tmp_path / "flat.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name in catalogue.names[:3]:
            zf.writestr(name, catalogue.path(name).read_bytes())
        zf.writestr("__MACOSX/._" + catalogue.names[0], b"junk")
        zf.writestr(".DS_Store", b"junk")
        zf.writestr("readme.txt", b"not an image")
    with open_source(path) as source:
        assert source.names() == catalogue.names[:3]
        assert source.open(catalogue.names[0]).mode == "RGB"


def test_folder_ignores_non_images_and_hidden_files(tmp_path: Path, catalogue: Catalogue) -> None:
    name = catalogue.names[0]
    (tmp_path / name).write_bytes(catalogue.path(name).read_bytes())
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / ".hidden.jpg").write_bytes(b"x")
    assert open_source(tmp_path).names() == [name]


def test_unknown_name_in_zip(catalogue: Catalogue) -> None:
    with open_source(catalogue.zip) as source, pytest.raises(ImageError) as exc:
        source.read_bytes("nope.jpg")
    msg = one_line(exc)
    assert "nope.jpg" in msg and str(catalogue.zip) in msg


def test_open_source_errors(tmp_path: Path, catalogue: Catalogue) -> None:
    bogus_zip = tmp_path / "broken.zip"
    bogus_zip.write_bytes(b"PK\x03\x04 this is not really a zip")
    for path, words in [
        (tmp_path / "nowhere", "no such image folder"),
        (catalogue.csv, "expected an image folder or a .zip"),
        (bogus_zip, "expected an image folder or a .zip"),
    ]:
        with pytest.raises(DataError) as exc:
            open_source(path)
        msg = one_line(exc)
        assert str(path) in msg and words in msg


# --------------------------------------------------------------------------- bad images


@pytest.mark.parametrize(
    ("attr", "words"),
    [
        ("missing", "no such file"),
        ("empty", "empty"),
        ("truncated", "corrupt"),
        ("random", "not an image"),
        ("text", "not an image"),
        ("huge", "too large"),
        ("bomb", "too large"),
    ],
)
def test_bad_image_files(attr: str, words: str, bad_images: BadImages) -> None:
    path = getattr(bad_images, attr)
    with pytest.raises(ImageError) as exc:
        load_image_file(path)
    msg = one_line(exc)
    assert str(path) in msg and words in msg


def test_directory_is_not_an_image(bad_images: BadImages) -> None:
    with pytest.raises(ImageError) as exc:
        load_image_file(bad_images.folder)
    assert "directory" in one_line(exc)


@pytest.mark.parametrize("attr", ["huge", "bomb"])
def test_huge_image_refused_from_its_header(
    attr: str, bad_images: BadImages, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = getattr(bad_images, attr)
    assert path.stat().st_size < 100_000  # small on disk, huge in pixels
    decoded: list[object] = []
    real_load = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile) -> object:
        decoded.append(self)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    with pytest.raises(ImageError) as exc:
        load_image(path.read_bytes(), path.name)
    assert decoded == []
    msg = one_line(exc)
    width, height = HUGE_SIZE if attr == "huge" else BOMB_SIZE
    assert path.name in msg and "too large" in msg
    if attr == "huge":  # refused by our own limit, with the setting to change
        assert f"{width}x{height}" in msg and "VLAGENT_MAX_IMAGE_PIXELS" in msg
    load_image(bad_images.good[1].read_bytes(), "good.png")  # the spy does see decoding
    assert len(decoded) >= 1


def test_huge_png_header_is_what_it_claims(bad_images: BadImages) -> None:
    with Image.open(bad_images.huge) as img:  # header only
        assert img.size == HUGE_SIZE and img.mode == "1"


def test_max_pixels_applies_to_ordinary_images(catalogue: Catalogue) -> None:
    name = "dress_red.jpg"
    with pytest.raises(ImageError) as exc:
        load_image(catalogue.path(name).read_bytes(), name, max_pixels=1000)
    msg = one_line(exc)
    assert name in msg and "96x128" in msg
    assert load_image(catalogue.path(name).read_bytes(), name, max_pixels=96 * 128).size == (96, 128)


@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_source_with_bad_files(kind: str, bad_images: BadImages) -> None:
    with open_source(getattr(bad_images, kind)) as source:
        assert set(bad_images.bad_names) < set(source.names())
        for name, words in bad_images.bad_names.items():
            with pytest.raises(ImageError) as exc:
                source.open(name)
            msg = one_line(exc)
            assert name in msg and words in msg, msg
        good = [n for n in source.names() if n not in bad_images.bad_names]
        assert sorted(good) == ["good.jpg", "good.png", "good_copy.jpg"]
        assert all(source.open(n).mode == "RGB" for n in good)
        assert source.read_bytes("good.jpg") == source.read_bytes("good_copy.jpg")


# --------------------------------------------------------------------------- query.json


@pytest.mark.parametrize("variant", ["good", "bom"])
def test_good_queries(variant: str, query_files: QueryFiles) -> None:
    qf = read_queries(getattr(query_files, variant))
    assert qf.problems == []
    assert qf.valid_indices == list(range(len(GOOD_QUERIES)))
    assert qf.raw == GOOD_QUERIES
    assert [qf.items[i].question for i in qf.valid_indices] == [q["question"] for q in GOOD_QUERIES]
    assert qf.items[4].images == ["trousers_black.png", "hat_green.png"]
    assert qf.items[1].images == [] and qf.items[0].images == ["dress_red.jpg"]


def test_full_width_comma_separates_images() -> None:
    from vlagent.data.queries import QueryItem

    item = QueryItem(question="比较", related_image="a.jpg， b.jpg")
    assert item.images == ["a.jpg", "b.jpg"]


def test_extra_fields_are_kept(query_files: QueryFiles) -> None:
    qf = read_queries(query_files.extras)
    assert qf.problems == []
    assert qf.items[0].extras() == {
        "id": 7,
        "gold_answer": "一条粉色的羊毛围巾。",
        "meta": {"source": "dev", "tags": ["describe"]},
    }
    assert qf.items[1].extras() == {"id": 3, "gold_image": "shoes/boots_black.png"}


def test_round_trip_keeps_every_field_and_the_order(query_files: QueryFiles, tmp_path: Path) -> None:
    qf = read_queries(query_files.extras)
    filled = {0: {"answer": "粉色围巾"}, 1: {"related_image": "shoes/boots_black.png"}}
    out = tmp_path / "out" / "result.json"
    write_queries(out, qf.raw, filled)
    written = json.loads(out.read_text(encoding="utf-8"))
    assert [obj["id"] for obj in written] == [7, 3, 5]
    assert [list(obj) for obj in written] == [list(obj) for obj in EXTRA_QUERIES]  # key order too
    expected = [dict(obj) for obj in EXTRA_QUERIES]
    expected[0]["answer"] = "粉色围巾"
    expected[1]["related_image"] = "shoes/boots_black.png"
    assert written == expected
    assert "粉色围巾" in out.read_text(encoding="utf-8")  # not \\u-escaped
    assert sorted(p.name for p in out.parent.iterdir()) == ["result.json"]  # no temp files left
    again = read_queries(out)
    assert again.raw == expected and again.problems == []
    assert EXTRA_QUERIES[0]["answer"] == ""  # the input list was not mutated


def test_round_trip_keeps_unusable_items(query_files: QueryFiles, tmp_path: Path) -> None:
    qf = read_queries(query_files.missing_fields)
    out = tmp_path / "mixed.json"
    write_queries(out, qf.raw, {0: {"answer": "一条红裙子"}})
    written = json.loads(out.read_text(encoding="utf-8"))
    assert len(written) == len(MIXED_QUERIES)
    assert written[3] == MIXED_QUERIES[3] and written[1] == MIXED_QUERIES[1]
    assert written[0]["answer"] == "一条红裙子"
    assert "answer" not in written[2]  # a missing field is not invented when nothing was filled


def test_item_problems_are_reported_not_fatal_to_the_file(query_files: QueryFiles) -> None:
    qf = read_queries(query_files.missing_fields)
    assert qf.valid_indices == [0, 2, 5]
    problems = {p.index: p for p in qf.problems}
    assert set(problems) == {1, 2, 3, 4}
    assert problems[1].fatal and "question" in problems[1].message
    assert not problems[2].fatal and "answer" in problems[2].message
    assert problems[3].fatal and "not an object" in problems[3].message
    assert problems[4].fatal and "answer" in problems[4].message
    assert str(problems[1]).startswith("item 1:")
    assert qf.items[2].answer == ""


def test_empty_questions(query_files: QueryFiles) -> None:
    qf = read_queries(query_files.empty_question)
    assert qf.valid_indices == [0]
    assert [(p.index, p.fatal) for p in qf.problems] == [(1, True), (2, True)]
    assert all("empty question" in p.message for p in qf.problems)


def test_duplicates_are_flagged_and_kept(query_files: QueryFiles) -> None:
    qf = read_queries(query_files.duplicates)
    assert qf.valid_indices == [0, 1, 2, 3]
    assert [(p.index, p.fatal) for p in qf.problems] == [(2, False)]
    assert "duplicate of item 0" in qf.problems[0].message


def test_null_fields_read_as_empty_and_written_back_unchanged(tmp_path: Path) -> None:
    raw = [
        {"question": "请匹配到与 红色连衣裙 最相关的图片。", "related_image": None, "answer": None},
        {"question": "你好", "related_image": "", "answer": ""},
    ]
    path = tmp_path / "nulls.json"
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    qf = read_queries(path)
    assert qf.valid_indices == [0, 1] and qf.problems == []
    assert qf.items[0].images == [] and qf.items[0].answer == ""
    assert qf.raw == raw
    write_queries(path, qf.raw, {0: {"related_image": "dress_red.jpg"}})
    assert json.loads(path.read_text(encoding="utf-8"))[0] == {**raw[0], "related_image": "dress_red.jpg"}


def test_empty_list(query_files: QueryFiles) -> None:
    qf = read_queries(query_files.empty_list)
    assert qf.raw == [] and qf.items == {} and qf.problems == []


def test_a_gb18030_query_file_reads_like_utf8(query_files: QueryFiles) -> None:
    assert read_queries(query_files.not_utf8).items == read_queries(query_files.good).items


@pytest.mark.parametrize(
    ("variant", "words"),
    [
        ("malformed", "malformed JSON at line 3"),
        ("not_a_list", "expected a JSON list"),
        ("missing", "no such query file"),
    ],
)
def test_bad_query_files(variant: str, words: str, query_files: QueryFiles) -> None:
    path = getattr(query_files, variant)
    with pytest.raises(DataError) as exc:
        read_queries(path)
    msg = one_line(exc)
    assert str(path) in msg and words in msg
