"""Per-image facts for compare and describe answers, and the answers the facts decide exactly.

:func:`collect` groups a turn's tool results by image: image 1 with its title, colours, OCR
text, caption (each tool's own summary), then image 2, and so on; answers about all images at
once (the VLM's) follow. :func:`render` gives the LLM that fixed structure. Where the facts
settle the question without an LLM, :func:`decide` states them:

* "which one is the cap?" / "Which of these shows shoes?" when exactly one image's title (or
  caption) names the thing asked about;
* "how do the colours differ?" from each image's main colour;
* a description with no title, caption or VLM answer says that only colours/text are known;
* a Chinese description when the title is all there is (no caption, no VLM answer): the title
  restated as one sentence (:func:`describe`, also the answer when there is no LLM at all).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from vlagent.agent.types import QuestionType

LABELS = {
    "zh": {"title": "标题", "colors": "颜色", "ocr_text": "图中文字", "caption": "图片说明（英文）", "vqa": "视觉模型回答"},
    "en": {"title": "Title", "colors": "Colours", "ocr_text": "Text in the image", "caption": "Caption", "vqa": "Vision model answer"},
}
ORDINALS = {
    "zh": ["第一张", "第二张", "第三张", "第四张"],
    "en": ["first", "second", "third", "fourth"],
}


@dataclass
class ImageFacts:
    name: str
    facts: dict[str, list[str]] = field(default_factory=dict)  # field → texts
    main_color: tuple[str, str] | None = None  # (zh, en) of the largest colour

    def add(self, key: str, text: str) -> None:
        if text.strip():
            self.facts.setdefault(key, []).append(text.strip())

    def get(self, key: str) -> str:
        return "；".join(self.facts.get(key, []))


def render(images: list[ImageFacts], shared: dict[str, str], lang: str) -> str:
    """The facts in a fixed structure, image by image."""
    labels = LABELS["zh" if lang == "zh" else "en"]
    lines: list[str] = []
    for n, img in enumerate(images, 1):
        lines.append(f"图{n}（{img.name}）：" if lang == "zh" else f"Image {n} ({img.name}):")
        if not img.facts:
            lines.append("  - （没有可用信息）" if lang == "zh" else "  - (nothing known)")
        for key, texts in img.facts.items():
            lines.append(f"  - {labels.get(key, key)}：{'；'.join(texts)}" if lang == "zh" else f"  - {labels.get(key, key)}: {'; '.join(texts)}")
    for key, text in shared.items():
        if text.strip():
            head = labels.get(key, key)
            lines.append(f"{head}（所有图片）：{text}" if lang == "zh" else f"{head} (all images): {text}")
    return "\n".join(lines)


# --- answers the facts decide ---------------------------------------------------------------

#: English words for the product kinds in titles → the Chinese characters that name them
KINDS = {
    "shoe": "鞋", "shoes": "鞋", "sneaker": "鞋", "sneakers": "鞋", "boot": "靴", "boots": "靴",
    "cap": "帽", "hat": "帽", "dress": "裙", "skirt": "裙", "shirt": "衫", "t-shirt": "T恤",
    "tshirt": "T恤", "trousers": "裤", "pants": "裤", "jeans": "裤", "bag": "包", "handbag": "包",
    "hoodie": "卫衣", "cat": "猫", "dog": "狗", "cup": "杯", "mug": "杯", "camera": "相机",
    "rocket": "火箭", "label": "标签", "tag": "吊牌",
}
_WHICH_ZH = re.compile(r"(?:哪一个|哪个|哪一张|哪张|哪件|哪一件|哪款)[^，。？?]*?(?:是|有|属于)(?:一[个顶件双只张条款])?([^，。？?\s]{1,8})")
_WHICH_EN = re.compile(
    r"which\b[^?]*?\b(?:shows?|is|has|contains?|are)\s+(?:a |an |the |some )?(?:pair of )?([a-z\-]+)", re.IGNORECASE
)
_COLOUR_DIFF = re.compile(r"颜色.{0,6}(?:不同|区别|差别|一样|相同)|(?:不同|区别).{0,4}颜色|colou?rs?\b.{0,30}\b(?:differ|same)|difference.{0,20}colou?r", re.IGNORECASE)


def _kind_terms(word: str) -> list[str]:
    word = word.strip().lower().rstrip("s") if word.isascii() else word.strip()
    if word.isascii():
        zh = KINDS.get(word) or KINDS.get(word + "s")
        return [t for t in (zh, word) if t]
    word = re.sub(r"^(?:商品|产品|东西)", "", word)
    terms = [word]
    if len(word) > 1:  # 帽子 → 帽, 鞋子 → 鞋
        terms.append(word.rstrip("子"))
    return [t for t in terms if t]


def _mentions(img: ImageFacts, terms: list[str]) -> bool:
    text = " ".join([img.get("title"), img.get("caption")]).lower()
    return any(t.lower() in text for t in terms)


def which_one(question: str, images: list[ImageFacts], lang: str) -> str | None:
    """The image that is the thing asked about, when exactly one image's facts name it."""
    m = _WHICH_ZH.search(question) or _WHICH_EN.search(question)
    if not m or len(images) < 2:
        return None
    asked = m.group(1)
    terms = _kind_terms(asked)
    hits = [n for n, img in enumerate(images) if _mentions(img, terms)]
    if len(hits) != 1:
        return None
    n = hits[0]
    img = images[n]
    title = img.get("title")
    if lang == "zh":
        return f"{ORDINALS['zh'][n]}图片（{img.name}）是{asked}" + (f"：{title}。" if title else "。")
    return f"The {ORDINALS['en'][n]} image ({img.name}) shows {asked}" + (f": {title}." if title else ".")


def colour_difference(question: str, images: list[ImageFacts], lang: str) -> str | None:
    """Each image's main colour, when the question asks how the colours differ."""
    if not _COLOUR_DIFF.search(question) or len(images) < 2 or any(i.main_color is None for i in images):
        return None
    colours = [i.main_color for i in images]  # type: ignore[misc]
    if lang == "zh":
        if len({c[0] for c in colours}) == 1:  # type: ignore[index]
            return f"颜色相同：都是{colours[0][0]}。"  # type: ignore[index]
        parts = [f"{ORDINALS['zh'][n]}（{img.name}）是{c[0]}" for n, (img, c) in enumerate(zip(images, colours))]  # type: ignore[index]
        return "颜色不同：" + "，".join(parts) + "。"
    if len({c[1] for c in colours}) == 1:  # type: ignore[index]
        return f"The same colour: both are {colours[0][1]}."  # type: ignore[index]
    parts = [f"the {ORDINALS['en'][n]} ({img.name}) is {c[1]}" for n, (img, c) in enumerate(zip(images, colours))]  # type: ignore[index]
    return "They differ: " + ", ".join(parts) + "."


def _seen(img: ImageFacts, shared: dict[str, str]) -> str:
    """What a vision model said the image shows: its caption, else the VLM's answer ("" for none)."""
    return img.get("caption") or shared.get("vqa", "").strip()


def _stated(img: ImageFacts, keys: list[str], lang: str) -> list[str]:
    """``图中文字：纯棉`` / ``text in the image: cotton``: facts quoted under their label."""
    labels = LABELS["zh" if lang == "zh" else "en"]
    if lang == "zh":
        return [f"{labels.get(k, k)}：{img.get(k)}" for k in keys]
    return [f"{labels.get(k, k).lower()}: {img.get(k)}" for k in keys]


def nothing_to_describe(images: list[ImageFacts], shared: dict[str, str], lang: str) -> str | None:
    """A description needs a title, a caption or a VLM answer; say so when there is none."""
    img = images[0] if images else None
    if img is None or img.get("title") or _seen(img, shared):
        return None
    known = []
    if img.main_color:
        known.append(f"主要颜色是{img.main_color[0]}" if lang == "zh" else f"its main colour is {img.main_color[1]}")
    known += _stated(img, [k for k in img.facts if k not in ("title", "caption", "colors")], lang)
    if lang == "zh":
        head = "无法描述商品本身：这里没有视觉模型，图片也没有标题"
        return head + ("；只知道" + "，".join(known) + "。" if known else "。")
    head = "I cannot describe the product itself: no vision model is available here and the image has no title"
    return head + ("; I only know that " + ", and ".join(known) + "." if known else ".")


_WORDY = re.compile(r"[A-Za-z]{3,}|[\u4e00-\u9fff]{2,}")


def readable_text(text: str) -> str:
    """OCR text worth quoting in a description: a word of 3+ letters or 2+ Chinese characters
    (not a stray "A", "90" or "111K" read off a seam or a shadow)."""
    return text if _WORDY.search(text) else ""


#: the measure word a product kind takes ("一双鞋", "一只猫"); the kind nearest the end of the
#: title's head word decides
MEASURES = (
    ("鞋", "双"), ("靴", "双"), ("袜", "双"), ("手套", "副"), ("眼镜", "副"), ("猫", "只"), ("狗", "只"),
    ("帽", "顶"), ("裤", "条"), ("半身裙", "条"), ("围巾", "条"), ("裙", "件"), ("衣", "件"), ("衫", "件"),
    ("T恤", "件"), ("外套", "件"), ("夹克", "件"), ("相机", "台"), ("手机", "部"),
)
_COLOUR_HEAD = re.compile(r"^([\u4e00-\u9fff]{1,2}色)(?!的)(?=[\u4e00-\u9fffA-Za-z])")


def _one_of(head: str) -> str:
    """``红色无袖连衣裙`` → ``一件红色的无袖连衣裙``: the title's head word as a noun phrase."""
    # a Chinese noun phrase ends with its head noun: 连帽卫衣 is a 衣 (件), not a 帽 (顶)
    found = [(head.rfind(kind) + len(kind), m) for kind, m in MEASURES if kind in head]
    measure = max(found)[1] if found else "个"
    return f"一{measure}" + _COLOUR_HEAD.sub(r"\1的", head)


def _other_fields(img: ImageFacts) -> list[str]:
    """Fields of tools beyond the built-in ones (a plugin's): stated as they are."""
    return [k for k in img.facts if k not in LABELS["en"]]


def describe(images: list[ImageFacts], shared: dict[str, str], lang: str) -> str | None:
    """A one-sentence description built from the first image's facts alone (no LLM): what it
    is (the title, or the caption / VLM answer), its main colour when the title names no colour
    (a shaded white sneaker measures grey: the seller's 白色 wins), and readable text on it.
    None when there is nothing that says what the image shows."""
    img = images[0] if images else None
    if img is None:
        return None
    title, seen = img.get("title"), _seen(img, shared)
    text = readable_text(img.get("ocr_text"))
    colour = None if "色" in title else img.main_color  # a title's own colour wins over the pixels
    if lang == "zh":
        if title:
            head, *rest = title.split()
            parts = [_one_of(head), *rest]
        elif seen:
            parts = [f"图片说明：{seen}"]
        else:
            return None
        if colour and colour[0]:
            parts.append(f"主要颜色是{colour[0]}")
        if text:
            parts.append(f"图上文字“{text}”")
        return "，".join(parts + _stated(img, _other_fields(img), lang)) + "。"
    if seen:
        parts = [seen.rstrip(".")]
        if title:
            parts.append(f"titled {title}")
    elif title:
        parts = [f"The image shows {title}"]
    else:
        return None
    if colour and colour[1]:
        parts.append(f"mainly {colour[1]}")
    if text:
        parts.append(f'with the text "{text}"')
    parts += _stated(img, _other_fields(img), lang)
    sentence = ", ".join(parts) + "."
    return sentence[0].upper() + sentence[1:]


def decide(qtype: QuestionType, question: str, images: list[ImageFacts], shared: dict[str, str], lang: str) -> str | None:
    """An answer the facts settle exactly, or None (then the LLM writes it from the facts)."""
    if len(images) > len(ORDINALS["en"]):
        return None  # more images than the plan compares: the LLM answers from the facts
    if qtype is QuestionType.compare:
        return which_one(question, images, lang) or colour_difference(question, images, lang)
    if qtype is QuestionType.describe:
        if (said := nothing_to_describe(images, shared, lang)) is not None:
            return said
        if lang == "zh" and images and not _seen(images[0], shared):  # no vision model: the title restated is all there is to say
            return describe(images, shared, lang)
        return None  # English needs the Chinese title translated; a caption or VLM answer, the LLM
    return None
