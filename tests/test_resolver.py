"""Image names resolve only inside the allowed roots; catalogue rows with missing images; odd
image files decode upright in 8-bit RGB; GBK member names in zips."""

from __future__ import annotations

import io
import logging
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtures_data import MISSING_NAME, Catalogue, product_bytes
from vlagent.data.annotations import Annotation, read_annotations, split_present, usable_rows
from vlagent.data.images import load_image, open_source
from vlagent.data.resolver import ImageResolver
from vlagent.errors import ImageError, ImageNotAllowedError
from vlagent.settings import Settings
from vlagent.models.context import ToolContext


@pytest.fixture()
def shop(tmp_path: Path, catalogue: Catalogue) -> Path:
    """tmp/shop/images (a copy of the catalogue) and tmp/shop/secret.jpg beside it."""
    root = tmp_path / "shop"
    images = root / "images"
    images.mkdir(parents=True)
    for name in catalogue.names:
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        (images / name).write_bytes(catalogue.path(name).read_bytes())
    (root / "secret.jpg").write_bytes(product_bytes("dress_red.jpg"))
    return root


def resolver(shop: Path, **kw) -> ImageResolver:  # type: ignore[no-untyped-def]
    return ImageResolver.from_paths([shop / "images"], **kw)


def test_the_tool_context_re_exports_nothing() -> None:
    import vlagent.models.context as context

    assert not hasattr(context, "LoadedImage") and not hasattr(context, "ToolUnavailable")


@pytest.mark.parametrize(
    "name",
    ["dress_red.jpg", "shoes/boots_black.png", "image/dress_red.jpg", "shoes/../dress_red.jpg", "ABS"],
)
def test_names_inside_the_catalogue_resolve(shop: Path, name: str) -> None:
    name = str(shop / "images" / "dress_red.jpg") if name == "ABS" else name
    r = resolver(shop)
    assert r.load(name).image.size[0] > 0


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("../secret.jpg", "leaves the catalogue folder images"),
        ("shoes/../../secret.jpg", "leaves the catalogue folder images"),
        ("SECRET", "outside the allowed image folders"),
        ("/etc/passwd", "outside the allowed image folders"),
        ("link.jpg", "leaves the catalogue folder images"),
    ],
)
def test_names_outside_the_roots_are_refused(shop: Path, name: str, words: str) -> None:
    (shop / "images" / "link.jpg").symlink_to(shop / "secret.jpg")
    name = str(shop / "secret.jpg") if name == "SECRET" else name
    r = resolver(shop)
    with pytest.raises(ImageNotAllowedError, match=words) as exc:
        r.read_bytes(name)
    assert str(exc.value).startswith(f"{name}: ")
    with pytest.raises(ImageNotAllowedError):
        r.load(name)
    with pytest.raises(ImageNotAllowedError):
        r.hash_of(name)


def test_a_symlink_inside_the_catalogue_is_fine(shop: Path) -> None:
    (shop / "images" / "alias.jpg").symlink_to(shop / "images" / "dress_red.jpg")
    assert resolver(shop).read_bytes("alias.jpg") == (shop / "images" / "dress_red.jpg").read_bytes()


def test_not_found_names_the_catalogue_by_name_not_by_path(shop: Path) -> None:
    with pytest.raises(ImageError, match="nope.jpg: image not found") as exc:
        resolver(shop).read_bytes("nope.jpg")
    assert not isinstance(exc.value, ImageNotAllowedError)
    assert str(shop) not in str(exc.value)


def test_named_files_are_allowed_and_only_they(shop: Path) -> None:
    other = shop / "other.jpg"
    other.write_bytes(product_bytes("shirt_blue.jpg"))
    r = resolver(shop, files=[shop / "secret.jpg"])
    assert r.read_bytes(str(shop / "secret.jpg"))
    with pytest.raises(ImageNotAllowedError):
        r.read_bytes(str(other))
    r.allow(other)  # a file attached at run time (chat /image)
    assert r.read_bytes(str(other))


def test_a_relative_named_file_is_found_from_the_working_directory(shop: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(shop)
    r = ImageResolver(files=["secret.jpg"])
    assert r.read_bytes("secret.jpg") == (shop / "secret.jpg").read_bytes()


def test_roots_from_settings_and_added_at_run_time(shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "u.jpg").write_bytes(product_bytes("hat_green.png"))
    monkeypatch.setenv("VLAGENT_IMAGE_ROOTS", os.pathsep.join([str(shop), str(tmp_path / "nothing")]))
    settings = Settings(home=tmp_path / "home")
    assert settings.image_roots == [shop, tmp_path / "nothing"]
    ctx = ToolContext.from_settings(settings, [shop / "images"], use_cache=False, allow_files=[])
    assert ctx.resolver.read_bytes(str(shop / "secret.jpg"))  # under a settings root
    with pytest.raises(ImageNotAllowedError):
        ctx.resolver.read_bytes(str(uploads / "u.jpg"))
    ctx.resolver.allow(uploads)  # a session's upload folder
    assert ctx.resolver.read_bytes(str(uploads / "u.jpg"))
    assert uploads.resolve() in ctx.resolver.roots
    monkeypatch.setenv("VLAGENT_IMAGE_ROOTS", f'["{uploads}"]')
    assert Settings(home=tmp_path / "home").image_roots == [uploads]


def test_allowing_a_zip_adds_it_as_a_source(catalogue: Catalogue) -> None:
    r = ImageResolver()
    r.allow(catalogue.zip)
    assert r.read_bytes("dress_red.jpg") == catalogue.path("dress_red.jpg").read_bytes()


def test_gbk_member_names_in_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "gbk.zip"
    data = product_bytes("dress_red.jpg")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("XXXXXXXXXX.jpg", data)  # 14 bytes, like the GBK name below
        zf.writestr("utf8名字.jpg", data)  # Python sets the UTF-8 flag itself
    raw = path.read_bytes().replace(b"XXXXXXXXXX.jpg", "红色连衣裙.jpg".encode("gbk"))
    path.write_bytes(raw)
    with open_source(path) as source:
        assert sorted(source.names()) == sorted(["红色连衣裙.jpg", "utf8名字.jpg"])
        assert source.read_bytes("红色连衣裙.jpg") == data


# --------------------------------------------------------------------------- odd images


def _png(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_16_bit_images_are_scaled_not_clipped() -> None:
    arr = np.tile(np.linspace(0, 65535, 64), (16, 1)).astype(np.uint16)
    img = load_image(_png(Image.fromarray(arr)), "grey16.png")
    row = np.asarray(img)[8, :, 0]
    assert img.mode == "RGB" and row[0] < 10 and 100 < row[32] < 160 and row[-1] > 245


def test_exif_orientation_is_applied() -> None:
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = img.getexif()
    exif[0x0112] = 6
    assert load_image(_png(img, "JPEG", exif=exif.tobytes()), "r.jpg").size == (20, 40)


def test_cmyk_and_animated_images_decode_to_rgb() -> None:
    cmyk = load_image(_png(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"), "c.jpg")
    assert cmyk.mode == "RGB" and cmyk.getpixel((4, 4))[0] > 200
    frames = [Image.new("P", (10, 10), i) for i in range(3)]
    gif = load_image(_png(frames[0], "GIF", save_all=True, append_images=frames[1:]), "a.gif")
    assert gif.mode == "RGB" and gif.size == (10, 10)


# --------------------------------------------------------------------------- annotation rows


def test_rows_naming_missing_images_are_split_off(catalogue: Catalogue, annotation_variants) -> None:  # type: ignore[no-untyped-def]
    rows = read_annotations(annotation_variants.missing_file)
    with open_source(catalogue.zip) as source:
        present, missing = split_present(rows, [source])
    assert [r.image for r in missing] == [MISSING_NAME]
    assert [r.image for r in present] == catalogue.names


def test_usable_rows_warn_with_a_count_and_the_first_names(catalogue: Catalogue, caplog: pytest.LogCaptureFixture) -> None:
    rows = [Annotation(image=n, title="t") for n in catalogue.names]
    rows += [Annotation(image=f"ghost{k}.jpg", title="g") for k in range(7)]
    rows += [Annotation(image=catalogue.names[0], title="again")]
    with open_source(catalogue.folder) as source, caplog.at_level(logging.WARNING):
        kept = usable_rows(rows, [source])
    assert [r.image for r in kept] == catalogue.names and kept[0].title == "t"
    assert "7 annotation row(s) name images missing from the catalogue" in caplog.text
    assert "ghost0.jpg, ghost1.jpg, ghost2.jpg, ghost3.jpg, ghost4.jpg and 2 more" in caplog.text
    assert f"1 annotation row(s) name an image a second time (the first title is used): {catalogue.names[0]}" in caplog.text
    assert usable_rows(rows, []) == rows[:-1]  # no catalogue: nothing to check against


def test_the_agent_never_offers_a_missing_row(catalogue: Catalogue, annotation_variants, tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    from vlagent import build_agent

    settings = Settings(
        home=tmp_path / "home", clip_backend="none", caption_backend="none", vqa_backend="none",
        ocr_backend="none", llm_backend="none",
    )  # fmt: skip
    with caplog.at_level(logging.WARNING):
        agent = build_agent(settings, images=[catalogue.folder], annotations=annotation_variants.missing_file)
    assert f"name images missing from the catalogue (never offered as candidates): {MISSING_NAME}" in caplog.text
    assert MISSING_NAME not in agent.parts.titles
    hits = agent.parts.tools["title_search"].invoke({"text": "不存在的商品", "k": 50})
    assert MISSING_NAME not in hits and len(hits.splitlines()) == len(catalogue.names)
