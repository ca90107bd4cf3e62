"""Dominant colours of the main object, named zh + en; background ignored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vlagent.tools.colors import PALETTE, dominant_colors, make_colors_tool, name_color

WHITE = (255, 255, 255)


def dress(fill: tuple[int, int, int], bg: tuple[int, int, int] = WHITE, trim: tuple[int, int, int] | None = None) -> Image.Image:
    """A dress-shaped trapezoid (≈ 30 % of the picture) on a plain background."""
    img = Image.new("RGB", (300, 400), bg)
    draw = ImageDraw.Draw(img)
    draw.polygon([(120, 60), (180, 60), (240, 360), (60, 360)], fill=fill)
    if trim:
        draw.rectangle([60, 300, 240, 360], fill=trim)  # a hem band, ≈ 20 % of the dress
    return img


def names(img: Image.Image, k: int = 3) -> list[str]:
    return [c.name_en for c in dominant_colors(img, k)]


def save(img: Image.Image, path: Path) -> str:
    img.save(path)
    return str(path)


def test_red_dress_on_white_is_red_not_white(vision_ctx, tmp_path: Path) -> None:
    tool = make_colors_tool(vision_ctx())
    msg = tool.invoke(
        {"type": "tool_call", "name": "colors", "args": {"image": save(dress((200, 20, 30)), tmp_path / "d.jpg")}, "id": "c"}
    )
    first = msg.artifact[0]
    assert (first["name_zh"], first["name_en"]) == ("红色", "red")
    assert first["fraction"] > 0.9
    assert all(c["name_en"] != "white" for c in msg.artifact)  # the background is not a colour of the dress
    assert msg.content.startswith("主要颜色: 红色 (") and "| main colours: red (" in msg.content
    assert first["hex"] == "#{:02x}{:02x}{:02x}".format(*first["rgb"])


@pytest.mark.parametrize(
    ("fill", "trim", "bg", "expected"),
    [
        ((20, 30, 70), None, WHITE, ["navy"]),
        ((30, 120, 40), (240, 200, 0), WHITE, ["green", "yellow"]),
        ((240, 150, 170), None, WHITE, ["pink"]),
        ((10, 10, 10), (255, 255, 255), (200, 200, 200), ["black", "white"]),  # white trim on a grey backdrop
        ((250, 250, 250), None, (120, 120, 120), ["white"]),  # white shirt on grey
        ((190, 170, 130), None, WHITE, ["khaki"]),
        ((30, 90, 220), None, (245, 235, 215), ["blue"]),  # on a beige backdrop
    ],
)
def test_object_colours_in_order(fill, trim, bg, expected) -> None:  # type: ignore[no-untyped-def]
    assert names(dress(fill, bg, trim)) == expected


def test_jpeg_noise_and_outline_do_not_add_colours(tmp_path: Path) -> None:
    path = tmp_path / "d.jpg"
    dress((200, 20, 30)).save(path, quality=60)
    assert names(Image.open(path)) == ["red"]


def test_non_uniform_background_weights_the_centre() -> None:
    # a backdrop shading from beige to light grey-blue: no single border colour to mask
    x = np.linspace(0.0, 1.0, 240)[None, :, None]
    backdrop = (1 - x) * np.array([235, 220, 190]) + x * np.array([170, 185, 205])
    img = Image.fromarray(np.repeat(backdrop, 240, axis=0).astype(np.uint8))
    ImageDraw.Draw(img).ellipse([60, 50, 180, 190], fill=(0, 150, 0))  # ≈ 23 % of the picture
    assert names(img, 1) == ["green"]


def test_one_colour_image_and_k_limit() -> None:
    assert names(Image.new("RGB", (64, 64), (0, 0, 200))) == ["blue"]
    three = Image.new("RGB", (300, 100), WHITE)
    draw = ImageDraw.Draw(three)
    for i, fill in enumerate([(220, 0, 0), (0, 0, 220), (250, 220, 0)]):
        draw.rectangle([20 + 90 * i, 20, 100 + 90 * i, 80], fill=fill)
    assert sorted(names(three, 3)) == ["blue", "red", "yellow"]
    assert len(names(three, 1)) == 1


def test_palette_names() -> None:
    assert name_color((255, 0, 0)) == ("红色", "red")
    assert name_color((0, 0, 90)) == ("深蓝色", "navy")
    assert name_color((245, 222, 179)) == ("米色", "beige")
    assert name_color((128, 0, 40)) == ("酒红色", "burgundy")
    for zh, en, points in PALETTE:  # every representative point names its own colour
        assert all(name_color(p) == (zh, en) for p in points), en


def test_cached_per_image_and_k(vision_ctx, tmp_path: Path) -> None:
    ctx = vision_ctx()
    tool = make_colors_tool(ctx)
    path = save(dress((200, 20, 30)), tmp_path / "d.png")
    first = tool.invoke({"type": "tool_call", "name": "colors", "args": {"image": path}, "id": "c"}).artifact
    again = tool.invoke({"type": "tool_call", "name": "colors", "args": {"image": path}, "id": "c"}).artifact
    assert again == first and ctx.cache.hits == 1
    tool.invoke({"image": path, "k": 1})
    assert ctx.cache.misses == 2


def test_the_facts_name_colours_without_percentages_and_drop_specks() -> None:
    from vlagent.tools.colors import summarize

    found = [
        {"name_zh": "粉色", "name_en": "pink", "fraction": 0.8},
        {"name_zh": "酒红色", "name_en": "burgundy", "fraction": 0.15},
        {"name_zh": "灰色", "name_en": "grey", "fraction": 0.05},
    ]
    assert summarize(found, "zh") == "主要是粉色，还有酒红色"
    assert summarize(found, "en") == "mainly pink, also burgundy"
    assert summarize(found[:1], "en") == "mainly pink" and summarize([], "zh") == ""
