"""``colors(image, k)``: the dominant colours of the main object, named in Chinese and English.

No model: the image is shrunk, a uniform background (the colour most of the border has) is
masked out, the remaining pixels are clustered with k-means in CIELAB (centre-weighted when
there is no uniform background), and each cluster is named by the nearest palette colour in
CIELAB. Clusters with the same name are merged.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
from langchain_core.tools import BaseTool, StructuredTool
from PIL import Image
from pydantic import BaseModel, Field

from vlagent.settings import Settings
from vlagent.tools.base import ToolContext
from vlagent.tools.spec import ToolSpec

MODEL_ID = "colors-lab-kmeans-v1"
THUMB_SIDE = 96
BACKGROUND_DELTA_E = 12.0  # a pixel this close (CIE76) to the border colour is background
MIN_FRACTION = 0.03  # colours below this share of the object are not reported

#: (Chinese name, English name, representative sRGB points)
PALETTE: list[tuple[str, str, list[tuple[int, int, int]]]] = [
    ("红色", "red", [(255, 0, 0), (220, 20, 40), (190, 25, 30), (230, 60, 60)]),
    ("酒红色", "burgundy", [(128, 0, 32), (110, 20, 40), (140, 30, 50)]),
    ("白色", "white", [(255, 255, 255), (245, 245, 245), (235, 236, 238)]),
    ("黑色", "black", [(0, 0, 0), (25, 25, 25), (40, 40, 45)]),
    ("灰色", "grey", [(128, 128, 128), (170, 170, 170), (95, 95, 100), (200, 200, 200)]),
    ("蓝色", "blue", [(0, 0, 255), (30, 100, 220), (65, 105, 225), (40, 80, 180)]),
    ("浅蓝色", "light blue", [(135, 206, 235), (173, 216, 230), (120, 170, 220)]),
    ("深蓝色", "navy", [(0, 0, 128), (25, 35, 80), (20, 30, 60), (30, 50, 110)]),
    ("青色", "cyan", [(0, 200, 200), (0, 128, 128), (64, 224, 208)]),
    ("绿色", "green", [(0, 128, 0), (0, 200, 0), (34, 139, 34), (60, 180, 75)]),
    ("军绿色", "olive", [(85, 107, 47), (107, 142, 35), (110, 110, 60)]),
    ("黄色", "yellow", [(255, 255, 0), (255, 215, 0), (240, 220, 50)]),
    ("橙色", "orange", [(255, 165, 0), (255, 128, 0), (240, 120, 30)]),
    ("粉色", "pink", [(255, 192, 203), (255, 105, 180), (240, 150, 170), (250, 170, 190)]),
    ("紫色", "purple", [(128, 0, 128), (148, 0, 211), (150, 100, 200), (110, 60, 150)]),
    ("棕色", "brown", [(139, 69, 19), (120, 80, 50), (101, 67, 33), (150, 100, 60)]),
    ("米色", "beige", [(245, 245, 220), (238, 225, 200), (232, 220, 190)]),
    ("卡其色", "khaki", [(195, 176, 145), (189, 170, 120), (175, 155, 110)]),
]


class ColorsArgs(BaseModel):
    image: str = Field(description="file name or path of the image")
    k: int = Field(3, ge=1, le=8, description="how many colours to report")


class NamedColor(BaseModel):
    name_zh: str
    name_en: str
    rgb: list[int]
    hex: str
    fraction: float = Field(description="share of the main object's pixels (0-1)")


def probe(settings: Settings) -> str | None:  # noqa: ARG001 - same signature as the other probes
    if importlib.util.find_spec("sklearn") is None:
        return "colors: scikit-learn is not installed (pip install scikit-learn)"
    return None


# --- colour science -------------------------------------------------------------------------
_XYZ_FROM_RGB = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (0-255, shape (..., 3)) → CIELAB (D65)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _XYZ_FROM_RGB.T / _WHITE_D65
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


_PALETTE_NAMES = [(zh, en) for zh, en, points in PALETTE for _ in points]
_PALETTE_LAB = rgb_to_lab(np.array([p for _, _, points in PALETTE for p in points]))


def name_color(rgb: tuple[int, int, int] | list[int] | np.ndarray) -> tuple[str, str]:
    """(Chinese, English) name of the nearest palette colour in CIELAB."""
    lab = rgb_to_lab(np.asarray(rgb, dtype=np.float64).reshape(1, 3))
    return _PALETTE_NAMES[int(np.argmin(((_PALETTE_LAB - lab) ** 2).sum(axis=1)))]


# --- segmentation + clustering --------------------------------------------------------------
def _border(arr: np.ndarray) -> np.ndarray:
    h, w = arr.shape[:2]
    b = max(1, min(h, w) // 20)
    return np.concatenate(
        [arr[:b].reshape(-1, 3), arr[-b:].reshape(-1, 3), arr[:, :b].reshape(-1, 3), arr[:, -b:].reshape(-1, 3)]
    )


def _erode(mask: np.ndarray) -> np.ndarray:
    """Pixels whose 4 neighbours are all in ``mask`` (one step of binary erosion)."""
    out = mask.copy()
    out[1:] &= mask[:-1]
    out[:-1] &= mask[1:]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    return out


def _centre_weights(h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    d2 = ((ys - (h - 1) / 2) / (h / 2)) ** 2 + ((xs - (w - 1) / 2) / (w / 2)) ** 2
    return np.exp(-d2 / (2 * 0.45**2)).ravel()


def dominant_colors(image: Image.Image, k: int = 3) -> list[NamedColor]:
    """The main object's ``k`` dominant named colours, largest share first."""
    from sklearn.cluster import KMeans

    thumb = image.convert("RGB").copy()
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR)
    rgb = np.asarray(thumb, dtype=np.float64)
    h, w = rgb.shape[:2]
    lab = rgb_to_lab(rgb)

    # background = the border's dominant colour, when it covers most of the border
    border = _border(lab)
    bg = np.median(border, axis=0)
    uniform = np.mean(np.linalg.norm(border - bg, axis=1) < BACKGROUND_DELTA_E) >= 0.6
    pixels_lab = lab.reshape(-1, 3)
    pixels_rgb = rgb.reshape(-1, 3)
    weights = np.ones(len(pixels_lab))
    if uniform:
        keep = np.linalg.norm(pixels_lab - bg, axis=1) >= BACKGROUND_DELTA_E
        if keep.mean() < 0.01:  # nothing but background: the image is one colour
            keep[:] = True
        else:  # drop the object's outline: its pixels are blends with the background
            inner = _erode(keep.reshape(h, w)).ravel()
            if inner.sum() >= 0.3 * keep.sum():
                keep = inner
    else:
        keep = np.ones(len(pixels_lab), dtype=bool)
        weights = _centre_weights(h, w)
    x, xr, wt = pixels_lab[keep], pixels_rgb[keep], weights[keep]

    n_clusters = int(min(k + 2, len(np.unique(np.round(x), axis=0))))
    km = KMeans(n_clusters=max(1, n_clusters), n_init=3, random_state=0)
    labels = km.fit_predict(x, sample_weight=wt)

    merged: dict[tuple[str, str], list[float]] = {}
    total = float(wt.sum())
    for c in range(km.n_clusters):
        sel = labels == c
        mass = float(wt[sel].sum())
        if mass <= 0:
            continue
        mean_rgb = (xr[sel] * wt[sel, None]).sum(axis=0) / mass
        name = name_color(mean_rgb)
        acc = merged.setdefault(name, [0.0, 0.0, 0.0, 0.0])
        acc[0] += mass
        acc[1:] = [a + m * mass for a, m in zip(acc[1:], mean_rgb)]
    out: list[NamedColor] = []
    for (zh, en), (mass, *sums) in sorted(merged.items(), key=lambda kv: -kv[1][0]):
        frac = mass / total
        if frac < MIN_FRACTION and out:
            continue
        rgb_i = [int(round(s / mass)) for s in sums]
        out.append(
            NamedColor(
                name_zh=zh, name_en=en, rgb=rgb_i, hex="#{:02x}{:02x}{:02x}".format(*rgb_i), fraction=round(frac, 3)
            )
        )
    return out[:k]


def render(colors: list[dict[str, Any]]) -> str:
    if not colors:
        return "主要颜色: 无 | main colours: none"
    zh = ", ".join(f"{c['name_zh']} ({c['fraction']:.0%})" for c in colors)
    en = ", ".join(f"{c['name_en']} ({c['fraction']:.0%})" for c in colors)
    return f"主要颜色: {zh} | main colours: {en}"


def colors_of(ctx: ToolContext, name: str, k: int = 3) -> list[dict[str, Any]]:
    def compute() -> list[dict[str, Any]]:
        return [c.model_dump() for c in dominant_colors(ctx.resolver.load(name).image, k)]

    return ctx.cached("colors", MODEL_ID, name, f"k={k}", compute)


def make_colors_tool(ctx: ToolContext) -> BaseTool:
    def colors(image: str, k: int = 3) -> tuple[str, list[dict[str, Any]]]:
        found = colors_of(ctx, image, k)
        return render(found), found

    return StructuredTool.from_function(
        colors,
        name="colors",
        description=(
            "Dominant colours of the main object in an image (background ignored), named in "
            "Chinese and English with their share, e.g. 红色/red 64%."
        ),
        args_schema=ColorsArgs,
        response_format="content_and_artifact",
    )


#: a colour covering less of the image than this is left out of the facts (background specks)
MINOR = 0.1


def summarize(colors: list[dict[str, Any]], lang: str) -> str:
    """``主要是红色，还有白色`` / ``mainly red, also white`` (the per-image facts).

    Names only: with percentages in the facts, small models wrote "the colour is 98%".
    """
    key, sep = ("name_zh", "、") if lang == "zh" else ("name_en", ", ")
    names = [str(c[key]) for n, c in enumerate(colors or []) if n == 0 or float(c["fraction"]) >= MINOR]
    if not names:
        return ""
    if lang == "zh":
        return f"主要是{names[0]}" + (f"，还有{sep.join(names[1:])}" if len(names) > 1 else "")
    return f"mainly {names[0]}" + (f", also {sep.join(names[1:])}" if len(names) > 1 else "")


SPECS = [
    ToolSpec(
        name="colors", args=ColorsArgs, factory=make_colors_tool, probe=lambda ctx: probe(ctx.settings),
        field="colors", images="first", summarize=summarize,
    ),
]  # fmt: skip
