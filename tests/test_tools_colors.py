"""Dominant colours of the main object, named zh + en as a shopper would; background ignored.

The naming is measured on named colours it was not built from: the CSS named colours under the
groups the CSS / X11 colour tables are published in (a separate set), and the XKCD survey's
colours held out of the references five folds at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vlagent.tools.colors import make_colors_tool
from vlagent.models.colors import (
    TERMS, References, dominant_colors, name_color, name_term, references, term_for_name,
)

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


# --- naming: named colours with their basic term -----------------------------------------------

#: the CSS named colours (matplotlib.colors.CSS4_COLORS, one spelling each) under the colour
#: groups the CSS / X11 colour tables are published in ("Pink colors", "Red colors", ...; grey
#: and black split); cyan is teal. Some groups are not what a shopper says (khaki is a yellow,
#: maroon a brown, salmon a red, magenta a purple), so the naming is held to an accuracy, not
#: to every point.
CSS_GROUPS = {
    "pink": "mediumvioletred deeppink palevioletred hotpink lightpink pink",
    "red": "darkred red firebrick crimson indianred lightcoral salmon darksalmon lightsalmon",
    "orange": "orangered tomato darkorange coral orange",
    "yellow": "darkkhaki gold khaki peachpuff yellow palegoldenrod moccasin papayawhip lightgoldenrodyellow "
    "lemonchiffon lightyellow",
    "brown": "maroon brown saddlebrown sienna chocolate darkgoldenrod peru rosybrown goldenrod sandybrown tan "
    "burlywood wheat navajowhite bisque blanchedalmond cornsilk",
    "green": "darkgreen green darkolivegreen forestgreen seagreen olive olivedrab mediumseagreen limegreen lime "
    "springgreen mediumspringgreen darkseagreen mediumaquamarine yellowgreen lawngreen chartreuse lightgreen "
    "greenyellow palegreen",
    "teal": "teal darkcyan lightseagreen cadetblue darkturquoise mediumturquoise turquoise aqua cyan aquamarine "
    "paleturquoise lightcyan",
    "blue": "midnightblue navy darkblue mediumblue blue royalblue steelblue dodgerblue deepskyblue cornflowerblue "
    "skyblue lightskyblue lightsteelblue lightblue powderblue",
    "purple": "indigo purple darkmagenta darkviolet darkslateblue blueviolet darkorchid fuchsia magenta slateblue "
    "mediumslateblue mediumorchid mediumpurple orchid violet plum thistle lavender rebeccapurple",
    "white": "mistyrose antiquewhite linen beige whitesmoke lavenderblush oldlace aliceblue seashell ghostwhite "
    "honeydew floralwhite azure mintcream snow ivory white",
    "grey": "darkslategray dimgray slategray gray lightslategray darkgray silver lightgray gainsboro",
    "black": "black",
}


def css_colours() -> list[tuple[str, str, tuple[int, int, int]]]:
    from matplotlib.colors import CSS4_COLORS, to_rgb

    return [
        (name, group, tuple(round(c * 255) for c in to_rgb(CSS4_COLORS[name])))  # type: ignore[misc]
        for group, names in CSS_GROUPS.items()
        for name in names.split()
    ]


def basic(rgb: tuple[int, int, int], refs: References | None = None) -> str:
    return TERMS[name_term(rgb, refs)].basic


def test_css_named_colours_take_their_groups_basic_term() -> None:
    colours = css_colours()
    assert len(colours) == 141  # every CSS colour once (grey/gray spellings are one colour)
    wrong = [f"{name}: {group} → {basic(rgb)}" for name, group, rgb in colours if basic(rgb) != group]
    assert 1 - len(wrong) / len(colours) >= 0.74, wrong  # measured 0.745 (the hand-kept palette: 0.738)
    clear = {  # the CSS colours whose group no shopper would dispute
        "red": "red darkred crimson firebrick", "orange": "orange darkorange", "yellow": "yellow gold",
        "green": "green darkgreen forestgreen lime seagreen olive", "teal": "teal darkcyan turquoise cyan",
        "blue": "blue navy mediumblue royalblue dodgerblue skyblue", "purple": "purple indigo darkviolet rebeccapurple",
        "pink": "pink hotpink deeppink lightpink", "brown": "saddlebrown sienna", "white": "white snow whitesmoke ivory",
        "grey": "gray dimgray darkgray silver", "black": "black",
    }  # fmt: skip
    rgb_of = {name: rgb for name, _, rgb in colours}
    assert [(n, g) for g, names in clear.items() for n in names.split() if basic(rgb_of[n]) != g] == []


def test_xkcd_colours_held_out_of_the_references_take_their_names_term() -> None:
    refs = references()
    folds, right = 5, 0
    for fold in range(folds):
        train = [i for i in range(len(refs.names)) if i % folds != fold]
        sub = References([refs.names[i] for i in train], [refs.terms[i] for i in train], refs.lab[train])
        for i in range(fold, len(refs.names), folds):
            from matplotlib.colors import XKCD_COLORS, to_rgb

            rgb = tuple(round(c * 255) for c in to_rgb(XKCD_COLORS["xkcd:" + refs.names[i]]))
            right += basic(rgb, sub) == TERMS[refs.terms[i]].basic  # type: ignore[arg-type]
    assert right / len(refs.names) >= 0.86  # measured 0.874 (the hand-kept palette: 0.770)


@pytest.mark.parametrize(
    ("rgb", "term"),
    [
        ((30, 30, 210), "blue"),  # the hand-kept palette said purple
        ((0, 0, 255), "blue"), ((255, 0, 0), "red"), ((0, 128, 0), "green"), ((255, 255, 0), "yellow"),
        ((0, 128, 128), "teal"), ((64, 224, 208), "teal"), ((0, 180, 180), "teal"),  # read as blue before
        ((139, 69, 19), "brown"), ((150, 75, 0), "brown"), ((120, 60, 30), "brown"),  # read as red before
        ((128, 0, 128), "purple"), ((255, 192, 203), "pink"), ((255, 165, 0), "orange"),
        ((20, 30, 70), "navy"), ((128, 0, 40), "burgundy"), ((85, 107, 47), "olive"), ((190, 170, 130), "khaki"),
        ((245, 222, 179), "beige"),
        ((250, 250, 250), "white"), ((235, 235, 235), "white"), ((200, 200, 200), "grey"), ((128, 128, 128), "grey"),
        ((15, 15, 18), "black"), ((40, 40, 40), "black"), ((60, 60, 60), "grey"),
    ],
)  # fmt: skip
def test_named_points(rgb: tuple[int, int, int], term: str) -> None:
    assert name_term(rgb) == term
    assert name_color(rgb) == (TERMS[term].zh, TERMS[term].en)


@pytest.mark.parametrize(
    ("name", "term"),
    [
        ("dusty rose", "pink"), ("navy blue", "navy"), ("bluegreen", "green"), ("greenish blue", "blue"),
        ("blue green", "green"), ("olive green", "olive"), ("army green", "olive"), ("wine red", "burgundy"),
        ("purplish", "purple"), ("light peach", "beige"), ("dark beige", "khaki"), ("robin's egg blue", "blue"),
        ("blue/green", None), ("puce", None), ("blue with a hint of purple", None), ("navy green", "green"),
    ],
)  # fmt: skip
def test_survey_names_map_to_terms_by_their_head_word(name: str, term: str | None) -> None:
    assert term_for_name(name) == term


def test_every_term_is_named_in_both_languages_under_a_basic_term() -> None:
    basics = {t.basic for t in TERMS.values()}
    assert basics == {"red", "orange", "yellow", "green", "teal", "blue", "purple", "pink", "brown", "grey", "black", "white"}
    assert all(TERMS[b].basic == b for b in basics)
    assert all(t.zh.endswith("色") and t.en for t in TERMS.values())
    assert set(references().terms) == set(TERMS) - {"white", "black"} | {"white", "black"}


def sneaker(fill: tuple[int, int, int], bg: tuple[int, int, int], edge: tuple[int, int, int]) -> Image.Image:
    """A shoe drawn in the background's own colour, outlined (as a product photo's edge is)."""
    img = Image.new("RGB", (384, 384), bg)
    draw = ImageDraw.Draw(img)
    draw.polygon([(40, 180), (150, 130), (210, 170), (300, 190), (310, 230), (40, 230)], fill, edge)
    draw.polygon([(80, 270), (190, 220), (250, 260), (340, 280), (350, 320), (80, 320)], fill, edge)
    return img


@pytest.mark.parametrize(
    ("fill", "bg", "edge", "expected"),
    [((245, 245, 245), WHITE, (90, 90, 90), "white"), ((12, 12, 12), (0, 0, 0), (120, 120, 120), "black")],
)
def test_a_product_in_its_backgrounds_colour_is_that_colour_not_grey(fill, bg, edge, expected) -> None:  # type: ignore[no-untyped-def]
    assert names(sneaker(fill, bg, edge), 1) == [expected]


def test_the_sample_white_sneakers_are_white() -> None:
    sample = Path(__file__).resolve().parents[1] / "evals" / "suites" / "sample" / "images" / "white_sneakers.jpg"
    found = dominant_colors(Image.open(sample))
    assert found[0].name_en == "white" and found[0].fraction > 0.6
    assert (found[0].basic_zh, found[0].basic_en) == ("白色", "white")


def test_a_hole_in_the_product_is_not_its_colour() -> None:
    img = dress((130, 80, 40))
    ImageDraw.Draw(img).ellipse([130, 180, 170, 220], fill=WHITE)  # a handle's opening, inside the bag
    assert names(img) == ["brown"]


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
    from vlagent.models.colors import summarize

    found = [
        {"name_zh": "粉色", "name_en": "pink", "fraction": 0.8},
        {"name_zh": "酒红色", "name_en": "burgundy", "fraction": 0.15},
        {"name_zh": "灰色", "name_en": "grey", "fraction": 0.05},
    ]
    assert summarize(found, "zh") == "主要是粉色，还有酒红色"
    assert summarize(found, "en") == "mainly pink, also burgundy"
    assert summarize(found[:1], "en") == "mainly pink" and summarize([], "zh") == ""
