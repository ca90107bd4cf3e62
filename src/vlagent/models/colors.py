"""``colors(image, k)``: the dominant colours of the main object, named as a shopper would, in
Chinese and English.

No model: the image is shrunk, the background is masked out (the uniform colour most of the
border has, as far as it reaches from the border: a white product drawn on white is kept), the
remaining pixels are clustered with k-means in CIELAB (centre-weighted when there is no uniform
background), and each cluster is named by :func:`name_term`:

* a near-neutral colour (CIELAB chroma below :data:`ACHROMATIC_CHROMA`) is white, black or grey
  by its lightness alone, so a lit white product is white, not "light grey";
* any other colour takes the term of its nearest reference colours by CIEDE2000
  (``colour.delta_E(..., method="CIE 2000")`` from colour-science): the 949 colours of the XKCD
  colour survey (``matplotlib.colors.XKCD_COLORS``, the names 222 500 people gave to colours
  on their screens), each mapped to a shopper's term by its head word (``dusty rose`` → pink,
  ``navy blue`` → navy, ``bluegreen`` → green); :data:`K_NEAREST` of them vote, weighted by
  closeness.

The terms (:data:`TERMS`) are the eleven basic colour terms plus 青 / teal (cyan: one of
Chinese's five traditional colours, and a group of its own in the CSS named colours), and six
shopper terms, each under a basic term: navy (blue), burgundy (red), olive (green), khaki
(brown), beige (white). Clusters with the same term are merged.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from typing import Any, NamedTuple

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from vlagent.models.context import ToolContext
from vlagent.models.threads import one_openmp_thread
from vlagent.settings import Settings

MODEL_ID = "colors-ciede2000-xkcd-v2"
THUMB_SIDE = 96  # the colours are clustered on a thumbnail this size
MASK_SIDE = 192  # the background is found on one twice as large (a product's 1-px outline survives)
BACKGROUND_DELTA_E = 12.0  # a pixel this close (CIE76) to the border colour may be background
MIN_FRACTION = 0.03  # colours below this share of the object are not reported
#: below this CIELAB chroma a colour is neutral: white, grey or black by its lightness alone
ACHROMATIC_CHROMA = 10.0
WHITE_LIGHTNESS = 88.0  # L* at or above: white (CSS gainsboro, L* 87.8, is still grey)
BLACK_LIGHTNESS = 20.0  # L* at or below: black
K_NEAREST = 5  # reference colours that vote on a colour's term


class Term(NamedTuple):
    zh: str
    en: str
    basic: str  # the basic colour term it belongs to (a key of TERMS)


TERMS: dict[str, Term] = {
    "red": Term("红色", "red", "red"),
    "orange": Term("橙色", "orange", "orange"),
    "yellow": Term("黄色", "yellow", "yellow"),
    "green": Term("绿色", "green", "green"),
    "teal": Term("青色", "teal", "teal"),
    "blue": Term("蓝色", "blue", "blue"),
    "purple": Term("紫色", "purple", "purple"),
    "pink": Term("粉色", "pink", "pink"),
    "brown": Term("棕色", "brown", "brown"),
    "grey": Term("灰色", "grey", "grey"),
    "black": Term("黑色", "black", "black"),
    "white": Term("白色", "white", "white"),
    # shopper terms, each under its basic term
    "navy": Term("深蓝色", "navy", "blue"),
    "burgundy": Term("酒红色", "burgundy", "red"),
    "olive": Term("军绿色", "olive", "green"),
    "khaki": Term("卡其色", "khaki", "brown"),
    "beige": Term("米色", "beige", "white"),
}

#: the head words of the XKCD survey's colour names → the term they name. A name whose head
#: word is not here (``puce``, ``periwinkle``, ``mauve``: between two terms; ``dust``, ``bile``)
#: or that names two colours (``blue/green``) is left out of the references.
_HEAD_WORDS = {
    "red": "red scarlet crimson cherry blood ruby carmine vermillion tomato strawberry lipstick rouge raspberry "
    "cranberry brick watermelon",
    "burgundy": "burgundy maroon wine claret bordeaux merlot mulberry",
    "orange": "orange tangerine pumpkin mango apricot peach coral terracotta terracota amber butterscotch squash melon",
    "yellow": "yellow gold golden lemon canary mustard butter banana sunflower dandelion maize custard straw ochre "
    "ocher ocre goldenrod saffron marigold manilla",
    "green": "green lime mint sage emerald jade forest grass leaf moss fern pine spruce evergreen shamrock pistachio "
    "avocado pea kiwi apple chartreuse celadon asparagus algae lichen seaweed viridian wintergreen spearmint "
    "celery pear tea seafoam",
    "olive": "olive camo swamp drab",
    "teal": "teal turquoise aqua cyan aquamarine petrol ocean sea topaz",
    "blue": "blue sky azure azul cobalt sapphire cerulean ultramarine denim cornflower royal",
    "navy": "navy midnight marine",
    "purple": "purple violet lavender lavendar lilac liliac plum indigo eggplant aubergine grape amethyst orchid "
    "heliotrope wisteria heather iris",
    "pink": "pink rose rosa blush salmon bubblegum carnation magenta fuchsia",
    "brown": "brown chocolate coffee mocha cocoa chestnut mahogany auburn sienna siena umber sepia russet rust copper "
    "bronze caramel cinnamon hazel leather mud dirt earth clay adobe",
    "khaki": "khaki tan camel taupe toupe sand sandy desert fawn putty mushroom stone sandstone",
    "beige": "beige cream creme ecru parchment eggshell ivory",
    "grey": "grey gray silver charcoal gunmetal slate steel cement",
    "black": "black",
    "white": "white",
}
HEAD_WORDS: dict[str, str] = {w: term for term, words in _HEAD_WORDS.items() for w in words.split()}
#: ``bluish`` / ``purpley`` alone name the colour of their stem
_SUFFIXED = re.compile(r"^(red|blu|green|grey|pink|purpl|yellow|brown|orang|teal)[ed]?(?:ish|y)$")
_STEMS = {"blu": "blue", "purpl": "purple", "orang": "orange"}
_BASIC_WORDS = sorted(
    ("red", "blue", "green", "grey", "gray", "pink", "purple", "yellow", "brown", "orange", "white", "black"),
    key=len, reverse=True,
)  # fmt: skip
#: a modifier that makes a shopper term of a name whose head is its basic term: ``navy blue``,
#: ``olive green``, ``army green``, ``wine red``
_MODIFIERS = {
    "navy": "navy", "midnight": "navy", "marine": "navy", "olive": "olive", "army": "olive", "military": "olive",
    "camo": "olive", "camouflage": "olive", "khaki": "olive", "wine": "burgundy", "burgundy": "burgundy",
}  # fmt: skip
_LIGHT = {"pale", "light"}


def term_for_name(name: str) -> str | None:
    """The term a colour name gives (the XKCD survey's ``dusty rose`` → ``pink``), or None when
    the name is not clearly one colour. English colour names are head-final: the last word is
    the colour (``blue green`` is a green, ``greenish blue`` a blue)."""
    name = name.lower().replace("egg shell", "eggshell").replace("terra cotta", "terracotta").replace("golden rod", "goldenrod")
    if "/" in name or " with " in name or " and " in name:
        return None
    *mods, last = name.replace("'s", "").split()
    if m := _SUFFIXED.match(last):
        last = _STEMS.get(m.group(1), m.group(1))
    if last not in HEAD_WORDS:  # joined words: bluegrey, orangered, lightblue
        last = next((w for w in _BASIC_WORDS if last.endswith(w)), last)
    term = HEAD_WORDS.get("grey" if last == "gray" else last)
    if term is None:
        return None
    if term == "beige" and "dark" in mods:
        return "khaki"
    if term == "orange" and last == "peach" and _LIGHT & set(mods):  # a light peach is a beige
        return "beige"
    for mod in mods:
        shopper = _MODIFIERS.get(mod)
        if shopper and TERMS[shopper].basic == TERMS[term].basic:
            return shopper
    return term


class NamedColor(BaseModel):
    name_zh: str
    name_en: str
    basic_zh: str = Field(description="the basic colour term it belongs to (navy → 蓝色)")
    basic_en: str
    rgb: list[int]
    hex: str
    fraction: float = Field(description="share of the main object's pixels (0-1)")


def probe(settings: Settings) -> str | None:  # noqa: ARG001 - same signature as the other probes
    for module, package in (("sklearn", "scikit-learn"), ("colour", "colour-science"), ("scipy", "scipy")):
        if importlib.util.find_spec(module) is None:
            return f"colors: {package} is not installed (pip install {package})"
    return None


# --- colour science (colour-science) ---------------------------------------------------------
def _colour() -> Any:
    import colour  # colour-science: ~1 s to import, so only when a colour is measured

    return colour


def rgb_to_lab(rgb: Any) -> np.ndarray:
    """sRGB (0-255, shape (..., 3)) → CIELAB (D65)."""
    colour = _colour()
    return np.asarray(colour.XYZ_to_Lab(colour.sRGB_to_XYZ(np.asarray(rgb, dtype=np.float64) / 255.0)))


class References(NamedTuple):
    names: list[str]
    terms: list[str]
    lab: np.ndarray


@functools.lru_cache(maxsize=1)
def references() -> References:
    """The XKCD survey's colours whose name gives a term (:func:`term_for_name`)."""
    from matplotlib.colors import XKCD_COLORS, to_rgb

    names, terms, rgbs = [], [], []
    for key, value in XKCD_COLORS.items():
        name = key.removeprefix("xkcd:")
        if (term := term_for_name(name)) is not None:
            names.append(name)
            terms.append(term)
            rgbs.append(to_rgb(value))
    return References(names, terms, rgb_to_lab(np.array(rgbs) * 255.0))


def name_term(rgb: Any, refs: References | None = None) -> str:
    """The term (a key of :data:`TERMS`) a shopper would give an sRGB colour (0-255)."""
    lab = rgb_to_lab(np.asarray(rgb, dtype=np.float64).reshape(3))
    if float(np.hypot(lab[1], lab[2])) < ACHROMATIC_CHROMA:
        return "white" if lab[0] >= WHITE_LIGHTNESS else "black" if lab[0] <= BLACK_LIGHTNESS else "grey"
    refs = refs or references()
    distance = np.asarray(_colour().delta_E(refs.lab, lab[None, :], method="CIE 2000"))
    votes: dict[str, float] = {}
    for i in np.argsort(distance, kind="stable")[:K_NEAREST]:
        votes[refs.terms[i]] = votes.get(refs.terms[i], 0.0) + 1.0 / (float(distance[i]) + 1e-3)
    return max(votes, key=votes.__getitem__)


def name_color(rgb: Any) -> tuple[str, str]:
    """(Chinese, English) name of an sRGB colour (0-255)."""
    term = TERMS[name_term(rgb)]
    return term.zh, term.en


# --- segmentation + clustering --------------------------------------------------------------
def _border(arr: np.ndarray) -> np.ndarray:
    h, w = arr.shape[:2]
    b = max(1, min(h, w) // 20)
    return np.concatenate(
        [arr[:b].reshape(-1, 3), arr[-b:].reshape(-1, 3), arr[:, :b].reshape(-1, 3), arr[:, -b:].reshape(-1, 3)]
    )


def _touches_border(mask: np.ndarray) -> np.ndarray:
    """The parts of ``mask`` connected (4-neighbours) to the image's border."""
    from scipy import ndimage

    labels, _ = ndimage.label(mask)
    h, w = mask.shape
    b = max(1, min(h, w) // 20)
    frame = np.zeros_like(mask)
    frame[:b], frame[-b:], frame[:, :b], frame[:, -b:] = True, True, True, True
    edge = np.unique(labels[frame & mask])
    return np.isin(labels, edge[edge > 0])


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


def object_mask(lab: np.ndarray) -> np.ndarray | None:
    """The main object's pixels (h, w), or None when the background is not uniform.

    The background is the border's dominant colour as far as it reaches from the border: a
    region of that colour enclosed by the object (a white sneaker outlined on white, a label's
    paper inside its frame) is the object's when it is at least as large as the rest of it —
    a same-colour product is not read as its shading alone — and a hole (a handbag's handle)
    otherwise.
    """
    h, w = lab.shape[:2]
    border = _border(lab)
    bg = np.median(border, axis=0)
    if np.mean(np.linalg.norm(border - bg, axis=1) < BACKGROUND_DELTA_E) < 0.6:
        return None
    near = np.linalg.norm(lab - bg, axis=2) < BACKGROUND_DELTA_E
    background = _touches_border(near)
    enclosed = near & ~background
    other = ~near
    keep = other | enclosed if enclosed.sum() >= other.sum() else other
    if keep.mean() < 0.01:  # nothing but background: the image is one colour
        return np.ones((h, w), dtype=bool)
    inner = _erode(_erode(keep))  # drop the object's outline: its pixels are blends with the background
    return inner if inner.sum() >= 0.3 * keep.sum() else keep


def _thumb(image: Image.Image, side: int) -> np.ndarray:
    thumb = image.convert("RGB").copy()
    thumb.thumbnail((side, side), Image.Resampling.BILINEAR)
    return np.asarray(thumb, dtype=np.float64)


def dominant_colors(image: Image.Image, k: int = 3) -> list[NamedColor]:
    """The main object's ``k`` dominant named colours, largest share first."""
    from sklearn.cluster import KMeans

    rgb = _thumb(image, THUMB_SIDE)
    h, w = rgb.shape[:2]
    lab = rgb_to_lab(rgb)

    mask = object_mask(rgb_to_lab(_thumb(image, MASK_SIDE)))
    pixels_lab = lab.reshape(-1, 3)
    pixels_rgb = rgb.reshape(-1, 3)
    if mask is None:  # no uniform background: weight the centre
        keep, weights = np.ones(h * w, dtype=bool), _centre_weights(h, w)
    else:  # the mask at the thumbnail's size: a pixel is the object's when most of it is
        small = Image.fromarray(mask.astype(np.uint8) * 255).resize((w, h), Image.Resampling.BOX)
        keep, weights = np.asarray(small).ravel() >= 128, np.ones(h * w)
        if not keep.any():
            keep[:] = True
    x, xr, wt = pixels_lab[keep], pixels_rgb[keep], weights[keep]

    n_clusters = int(min(k + 2, len(np.unique(np.round(x), axis=0))))
    km = KMeans(n_clusters=max(1, n_clusters), n_init=3, random_state=0)
    # a few thousand pixels: one thread (vlagent.models.threads: 3-10x faster on a busy machine)
    with one_openmp_thread("sklearn"):
        labels = km.fit_predict(x, sample_weight=wt)

    merged: dict[str, list[float]] = {}
    total = float(wt.sum())
    for c in range(km.n_clusters):
        sel = labels == c
        mass = float(wt[sel].sum())
        if mass <= 0:
            continue
        mean_rgb = (xr[sel] * wt[sel, None]).sum(axis=0) / mass
        acc = merged.setdefault(name_term(mean_rgb), [0.0, 0.0, 0.0, 0.0])
        acc[0] += mass
        acc[1:] = [a + m * mass for a, m in zip(acc[1:], mean_rgb)]
    out: list[NamedColor] = []
    for term, (mass, *sums) in sorted(merged.items(), key=lambda kv: -kv[1][0]):
        frac = mass / total
        if frac < MIN_FRACTION and out:
            continue
        rgb_i = [int(round(s / mass)) for s in sums]
        t, basic = TERMS[term], TERMS[TERMS[term].basic]
        named = NamedColor(
            name_zh=t.zh, name_en=t.en, basic_zh=basic.zh, basic_en=basic.en, rgb=rgb_i,
            hex="#{:02x}{:02x}{:02x}".format(*rgb_i), fraction=round(frac, 3),
        )  # fmt: skip
        out.append(named)
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


#: a colour covering less of the image than this is left out of the facts (background specks)
MINOR = 0.1


def main_names(colors: list[dict[str, Any]] | None, lang: str) -> list[str]:
    """The names worth stating, largest first: the main colour, and others covering ≥ MINOR."""
    key = "name_zh" if lang == "zh" else "name_en"
    return [str(c[key]) for n, c in enumerate(colors or []) if n == 0 or float(c["fraction"]) >= MINOR]


def summarize(colors: list[dict[str, Any]], lang: str) -> str:
    """``主要是红色，还有白色`` / ``mainly red, also white`` (the per-image facts).

    Names only: with percentages in the facts, small models wrote "the colour is 98%".
    """
    names = main_names(colors, lang)
    if not names:
        return ""
    if lang == "zh":
        return f"主要是{names[0]}" + (f"，还有{'、'.join(names[1:])}" if len(names) > 1 else "")
    return f"mainly {names[0]}" + (f", also {', '.join(names[1:])}" if len(names) > 1 else "")


