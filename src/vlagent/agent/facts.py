"""Per-image facts for compare and describe answers, and the answers the facts decide exactly.

:func:`collect` groups a turn's tool results by image: image 1 with its title, colours, OCR
text, caption (each tool's own summary), then image 2, and so on; answers about all images at
once (the VLM's) follow. :func:`render` gives the LLM that fixed structure. Where the facts
settle the question without an LLM, :func:`decide` states them:

* "which one is the cap?" / "Which of these shows shoes?" when exactly one image's title (or
  caption) names the thing asked about — and, when no fact of any image (title, category,
  caption, VLM answer, OCR text) names it, that nothing here can tell, and which facts were
  missing (:class:`Decision` ``missing``), instead of an LLM's guess;
* "which one is red?", "how do the colours differ?", "what colour is each?" from each image's
  colours;
* "what colour is it?" with no VLM answer and no LLM (or a failed one): the colours as a
  sentence in the question's language, not the tool's line (:func:`fallback`; the title's
  colour word when it names the same colour: a seller's 藏青色 is the pixels' blue);
* a question that needs sight (what it is, what animal, which suits work) when no fact says what
  the image shows: that it cannot be told, and what is known;
* a description with no title, caption or VLM answer says that only colours/text are known;
* a Chinese description when the title is all there is (no caption, no VLM answer): the title
  restated as one sentence (:func:`describe`, also the answer when there is no LLM at all).

OCR text reaches a sentence, or the facts, only when it reads as words (:func:`readable_text`):
a stray "A", "90" or "11 111K" read off a seam is not the product's text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from vlagent.agent.types import QuestionType
from vlagent.agent.registry import tool_specs

#: the answer writer's own fact (the catalogue title); the tools' facts are named by their specs
TITLE = "title"
TITLE_LABEL = {"zh": "标题", "en": "Title"}


def field_of(kind: str) -> str:
    """The template field of the tool whose spec's ``fact`` is ``kind`` (``read``: the text
    reader's), else ``kind`` itself."""
    return next((s.field for s in tool_specs() if s.fact == kind and s.field), kind)


def fact_fields() -> set[str]:
    """The fields of the tools that declare a kind of fact (the others are stated as they are)."""
    return {s.field for s in tool_specs() if s.fact and s.field}


def labels(lang: str) -> dict[str, str]:
    """{field: its facts line label} in ``lang`` (zh, else en): the title's and the tools' specs'."""
    lang = "zh" if lang == "zh" else "en"
    out = {TITLE: TITLE_LABEL[lang]}
    for spec in tool_specs():
        if spec.field and spec.label and spec.field not in out:
            out[spec.field] = spec.label.get(lang) or spec.label.get("en") or spec.field
    return out

ORDINALS = {
    "zh": ["第一张", "第二张", "第三张", "第四张"],
    "en": ["first", "second", "third", "fourth"],
}


@dataclass
class ImageFacts:
    name: str
    facts: dict[str, list[str]] = field(default_factory=dict)  # field → texts
    main_color: tuple[str, str] | None = None  # (zh, en) of the largest colour
    colours: list[dict[str, Any]] = field(default_factory=list)  # the colours tool's output, largest first

    def add(self, key: str, text: str) -> None:
        if key == field_of("read"):
            text = readable_text(text)
        if text.strip():
            self.facts.setdefault(key, []).append(text.strip())

    def get(self, key: str) -> str:
        return "；".join(self.facts.get(key, []))

    def measure(self, found: dict[str, Any]) -> None:
        """A tool's structured facts (``ToolSpec.structured``): the first colours found stay."""
        if found and self.main_color is None:
            self.main_color = found.get("main_color")
            self.colours = list(found.get("colours") or [])


def render(images: list[ImageFacts], shared: dict[str, str], lang: str) -> str:
    """The facts in a fixed structure, image by image."""
    names = labels(lang)
    lines: list[str] = []
    for n, img in enumerate(images, 1):
        lines.append(f"图{n}（{img.name}）：" if lang == "zh" else f"Image {n} ({img.name}):")
        if not img.facts:
            lines.append("  - （没有可用信息）" if lang == "zh" else "  - (nothing known)")
        for key, texts in img.facts.items():
            lines.append(f"  - {names.get(key, key)}：{'；'.join(texts)}" if lang == "zh" else f"  - {names.get(key, key)}: {'; '.join(texts)}")
    for key, text in shared.items():
        if text.strip():
            head = names.get(key, key)
            lines.append(f"{head}（所有图片）：{text}" if lang == "zh" else f"{head} (all images): {text}")
    return "\n".join(lines)


# --- answers the facts decide ---------------------------------------------------------------

#: English words for the kinds of things in titles → the Chinese characters that name them;
#: English words that share a Chinese word are synonyms (a caption's "hat" names the cap asked)
KINDS = {
    "shoe": "鞋", "shoes": "鞋", "sneaker": "鞋", "sneakers": "鞋", "boot": "靴", "boots": "靴", "sandal": "凉鞋",
    "cap": "帽", "hat": "帽", "dress": "裙", "skirt": "裙", "shirt": "衫", "blouse": "衫", "t-shirt": "T恤",
    "tshirt": "T恤", "trousers": "裤", "pants": "裤", "jeans": "裤", "shorts": "短裤", "bag": "包", "handbag": "包",
    "backpack": "背包", "wallet": "钱包", "hoodie": "卫衣", "sweater": "毛衣", "jacket": "夹克", "coat": "外套",
    "sock": "袜", "socks": "袜", "glove": "手套", "gloves": "手套", "scarf": "围巾", "belt": "腰带",
    "glasses": "眼镜", "sunglasses": "眼镜", "watch": "手表", "phone": "手机", "cat": "猫", "kitten": "猫",
    "dog": "狗", "puppy": "狗", "bird": "鸟", "cup": "杯", "mug": "杯", "bottle": "瓶", "camera": "相机",
    "rocket": "火箭", "astronaut": "宇航员", "car": "车", "label": "标签", "tag": "吊牌", "toy": "玩具",
    "book": "书", "lamp": "灯", "chair": "椅", "flower": "花",
}  # fmt: skip
_WHICH_ZH = re.compile(r"(?:哪一个|哪个|哪一张|哪张|哪件|哪一件|哪款)[^，。？?]*?(?:是|有|属于)(?:一[个顶件双只张条款])?([^，。？?\s]{1,8})")
_WHICH_EN = re.compile(
    r"which\b[^?]*?\b(?:shows?|is|has|contains?|are)\s+(?:a |an |the |some )?(?:pair of )?([a-z\-]+)", re.IGNORECASE
)
_COLOUR_DIFF = re.compile(r"颜色.{0,6}(?:不同|区别|差别|一样|相同)|(?:不同|区别).{0,4}颜色|colou?rs?\b.{0,30}\b(?:differ|same)|difference.{0,20}colou?r", re.IGNORECASE)
_COLOUR_EACH = re.compile(
    r"(?:分别|各自?|每[一]?[件张个款]).{0,4}(?:是)?(?:什么|啥|哪种)颜色|(?:什么|啥)颜色.{0,3}分别"
    r"|what colou?rs? (?:is|are) (?:each|both|they|these|the two)|colou?rs? of (?:each|both)",
    re.IGNORECASE,
)
#: what a question about one image's colour asks; one with another ask in it goes to the LLM
_COLOUR_ASK = re.compile(
    r"(?:什么|啥|哪种|哪些|几种)颜色|颜色是(?:什么|啥)|什么色|\b(?:what|which) colou?rs?\b|\bcolou?rs? is (?:it|this)\b",
    re.IGNORECASE,
)
_OTHER_ASK = re.compile(r"什么|哪|多少|几|怎么|如何|吗|\b(?:what|which|how|where|who|why|does)\b", re.IGNORECASE)
_ABOUT_COLOUR = re.compile(r"颜色|色|colou?r", re.IGNORECASE)
#: a seller's colour word in a title → the basic colour it is (most by the character before 色)
SELLER_COLOURS = {"藏青": "蓝色", "藏蓝": "蓝色", "卡其": "棕色", "咖啡": "棕色", "驼": "棕色", "米": "白色", "银": "灰色", "金": "黄色", "玫红": "粉色"}
BASIC_BY_CHAR = {
    "红": "红色", "橙": "橙色", "橘": "橙色", "黄": "黄色", "绿": "绿色", "青": "青色", "蓝": "蓝色", "紫": "紫色", "粉": "粉色",
    "棕": "棕色", "褐": "棕色", "灰": "灰色", "黑": "黑色", "白": "白色",
}  # fmt: skip
BASIC_EN = {
    "红色": "red", "橙色": "orange", "黄色": "yellow", "绿色": "green", "青色": "teal", "蓝色": "blue", "紫色": "purple",
    "粉色": "pink", "棕色": "brown", "灰色": "grey", "黑色": "black", "白色": "white",
}  # fmt: skip
_TITLE_COLOUR = re.compile(r"([\u4e00-\u9fff]{1,2})色")
#: the first character of a two-character colour word (深蓝色, 米白色, 藏青色), not of a word before it (女款红色)
_COLOUR_MODIFIERS = set("深浅淡亮暗纯米藏酒军墨天宝湖玫枣卡咖驼银金土橘") | set("红橙黄绿青蓝紫粉棕褐灰黑白")
_EN_COLOUR = re.compile(r"\b(" + "|".join(BASIC_EN.values()) + r"|gray)\b", re.IGNORECASE)


@dataclass
class Decision:
    """An answer the facts settle, and the facts no image had (the title's and the sight tools' fields)."""

    text: str
    missing: list[str] = field(default_factory=list)


def _kind(question: str) -> tuple[str, list[str]] | None:
    """(the kind asked, the words that name it) when the question asks which image is a known
    kind of thing ("哪一个是帽子", "Which shows shoes?"); None for anything else ("哪一个更便宜")."""
    m = _WHICH_ZH.search(question) or _WHICH_EN.search(question)
    if not m:
        return None
    asked = m.group(1).strip()
    if asked.isascii():
        word = asked.lower()
        zh = KINDS.get(word) or KINDS.get(word.rstrip("s")) or KINDS.get(word + "s")
        if zh is None:
            return None
        terms = [zh, *(en for en, z in KINDS.items() if z == zh)]
    else:
        word = re.sub(r"^(?:商品|产品|东西)", "", asked).rstrip("的")
        zh_kinds = {z for z in KINDS.values() if z in word}
        if not word or not zh_kinds or _ABOUT_COLOUR.search(word):
            return None
        terms = [word, word.rstrip("子"), *zh_kinds, *(en for en, z in KINDS.items() if z in zh_kinds)]
    return asked, sorted({t for t in terms if t}, key=len, reverse=True)


def _names(text: str, terms: list[str]) -> bool:
    text = text.lower()
    return any((re.search(rf"\b{re.escape(t)}(?:e?s)?\b", text) if t.isascii() else t in text) for t in (t.lower() for t in terms))


def _decisive(img: ImageFacts) -> str:
    """The facts that say what an image is: its title (or zero-shot category) and caption."""
    return " ".join([img.get(TITLE), img.get(field_of("seen"))])


#: the kinds of facts that can say what an image shows, in the order a sentence names them
SIGHT = (TITLE, "seen", "answer", "read")
SIGHT_LABELS = {
    "zh": {TITLE: "标题", "seen": "图片说明", "answer": "视觉模型回答", "read": "图中文字"},
    "en": {TITLE: "title", "answer": "vision-model answer", "read": "text in the image"},
}


def _sight_labels(lang: str) -> dict[str, str]:
    """The sight kinds' words in a sentence (English: what a model saw, by its tool's label)."""
    if lang == "zh":
        return SIGHT_LABELS["zh"]
    return {**SIGHT_LABELS["en"], "seen": labels("en").get(field_of("seen"), "description").lower()}


def _shared_answer(shared: dict[str, str]) -> str:
    """The vision model's answer about all the images ("" for none)."""
    return shared.get(field_of("answer"), "").strip()


def _present(images: list[ImageFacts], shared: dict[str, str]) -> tuple[list[str], list[str]]:
    """(the sight facts some image has, those none has: fields). A plugin tool's fact counts as
    seen: it answers questions the built-in tools cannot (``toy_weight``: "净重 42 克")."""
    have, missing = _sight(images, shared)
    return [field_of(k) for k in have] + sorted({k for i in images for k in _other_fields(i)}), [field_of(k) for k in missing]


def _sight(images: list[ImageFacts], shared: dict[str, str]) -> tuple[list[str], list[str]]:
    """(the sight kinds some image has, those none has)."""
    have = [k for k in SIGHT if (_shared_answer(shared) if k == "answer" else any(i.get(field_of(k)) for i in images))]
    return have, [k for k in SIGHT if k not in have]


def _joined(words: list[str], lang: str, last: str) -> str:
    if lang == "zh":
        return "、".join(words[:-1]) + (last if len(words) > 1 else "") + words[-1]
    return ", ".join(words[:-1]) + (f" {last} " if len(words) > 1 else "") + words[-1]


def _a(kind: str) -> str:
    return kind if kind.endswith("s") else f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind}"


def _cannot_tell_which(asked: str, images: list[ImageFacts], shared: dict[str, str], lang: str) -> Decision:
    kinds, missing_kinds = _sight(images, shared)
    have, missing = _present(images, shared)
    names = _sight_labels(lang)
    said = [names[k] for k in kinds] + have[len(kinds):]  # a plugin's field, by its name
    lacking = [names[k] for k in missing_kinds]
    if lang == "zh":
        parts = [f"图片的{_joined(said, lang, '和')}都没有提到{asked}"] if have else []
        if missing:
            parts.append(f"没有{_joined(lacking, lang, '或')}" + ("" if have else "可以说明图片里是什么"))
        return Decision(f"无法判断哪一张图片是{asked}：" + "；".join(parts) + "。", missing)
    parts = [f"no image's {_joined(said, lang, 'or')} mentions {_a(asked)}"] if have else []
    if missing:
        parts.append(f"there is no {_joined(lacking, lang, 'or')}" + ("" if have else " to say what the images show"))
    return Decision(f"I cannot tell which image shows {_a(asked)}: " + "; ".join(parts) + ".", missing)


def which_one(question: str, images: list[ImageFacts], shared: dict[str, str], lang: str) -> Decision | None:
    """The image that is the thing asked about, when exactly one image's title or caption names
    it; that it cannot be told, when no fact of any image names it and no vision model answered."""
    found = _kind(question)
    if found is None or len(images) < 2:
        return None
    asked, terms = found
    hits = [n for n, img in enumerate(images) if _names(_decisive(img), terms)]
    if len(hits) == 1:
        n = hits[0]
        img = images[n]
        title = img.get(TITLE)
        if lang == "zh":
            return Decision(f"{ORDINALS['zh'][n]}图片（{img.name}）是{asked}" + (f"：{title}。" if title else "。"))
        return Decision(f"The {ORDINALS['en'][n]} image ({img.name}) shows {_a(asked)}" + (f": {title}." if title else "."))
    if hits or _shared_answer(shared):  # several name it, or a vision model saw them: the LLM reads which
        return None
    if any(_names(" ".join(" ".join(v) for v in img.facts.values()), terms) for img in images):
        return None  # the text on an image (or a plugin's fact) names it: the LLM weighs that
    return _cannot_tell_which(asked, images, shared, lang)


def title_colour(text: str) -> tuple[str, str] | None:
    """(the colour word, the basic colour it is) of the first colour a title names:
    ``女款藏青色衬衫`` → (藏青色, 蓝色); None when it names none (``纯色``, ``特色`` are no colour)."""
    for m in _TITLE_COLOUR.finditer(text):
        word = m.group(1)
        if len(word) == 2 and word[0] not in _COLOUR_MODIFIERS:
            word = word[1:]
        basic = next((b for key, b in SELLER_COLOURS.items() if word.endswith(key)), None) or BASIC_BY_CHAR.get(word[-1])
        if basic is not None:
            return word + "色", basic
    return None


def _colour_of(words: str) -> str | None:
    """The basic colour (zh) a question's colour word names (``红色的``, ``白的``, ``black``)."""
    if m := _EN_COLOUR.search(words):
        en = m.group(1).lower().replace("gray", "grey")
        return next(zh for zh, e in BASIC_EN.items() if e == en)
    if found := title_colour(words):
        return found[1]
    chars = [BASIC_BY_CHAR[ch] for ch in words if ch in BASIC_BY_CHAR]
    return chars[0] if len(chars) == 1 and len(words) <= 3 else None  # "红的", "白"


#: a colour covering less of the object than this is not named in an answer (as in the facts)
MINOR = 0.1


def _basics(img: ImageFacts) -> list[str]:
    """The basic colours (zh) the image's colours worth naming belong to."""
    return [str(c.get("basic_zh") or c.get("name_zh") or "") for n, c in enumerate(img.colours) if n == 0 or float(c.get("fraction", 0)) >= MINOR]


def which_colour(question: str, images: list[ImageFacts], lang: str) -> Decision | None:
    """"哪一个是红色的？" / "Which one is black?": the image whose colours include it."""
    m = _WHICH_ZH.search(question) or _WHICH_EN.search(question)
    if not m or len(images) < 2 or any(not i.colours for i in images):
        return None
    asked = m.group(1).strip().rstrip("的")
    basic = _colour_of(asked)
    if basic is None:
        return None
    hits = [n for n, img in enumerate(images) if basic in _basics(img)]
    if len(hits) != 1:
        return None  # none or several: the LLM words it from the facts
    n, img = hits[0], images[hits[0]]
    if lang == "zh":
        return Decision(f"{ORDINALS['zh'][n]}图片（{img.name}）是{basic}的。")
    return Decision(f"The {ORDINALS['en'][n]} image ({img.name}) is {BASIC_EN[basic]}.")


def colour_difference(question: str, images: list[ImageFacts], lang: str) -> Decision | None:
    """Each image's main colour, when the question asks how the colours differ or what each is."""
    each = _COLOUR_EACH.search(question)
    if not (each or _COLOUR_DIFF.search(question)) or len(images) < 2 or any(i.main_color is None for i in images):
        return None
    colours: list[tuple[str, str]] = [i.main_color for i in images]  # type: ignore[misc]
    if lang == "zh":
        parts = [f"{ORDINALS['zh'][n]}（{img.name}）是{c[0]}" for n, (img, c) in enumerate(zip(images, colours))]
        if each:
            return Decision("，".join(parts) + "。")
        if len({c[0] for c in colours}) == 1:
            return Decision(f"颜色相同：都是{colours[0][0]}。")
        return Decision("颜色不同：" + "，".join(parts) + "。")
    parts = [f"the {ORDINALS['en'][n]} ({img.name}) is {c[1]}" for n, (img, c) in enumerate(zip(images, colours))]
    if each:
        sentence = ", ".join(parts) + "."
        return Decision(sentence[0].upper() + sentence[1:])
    if len({c[1] for c in colours}) == 1:
        return Decision(f"The same colour: both are {colours[0][1]}.")
    return Decision("They differ: " + ", ".join(parts) + ".")


def colour_answer(question: str, images: list[ImageFacts], shared: dict[str, str], lang: str) -> Decision | None:
    """"这件衣服是什么颜色的？" with no VLM answer: the measured colours as one sentence (the
    title's colour word when it names the same colour; both, when they differ)."""
    img = images[0] if images else None
    if img is None or not img.colours or _shared_answer(shared) or not _COLOUR_ASK.search(question):
        return None
    if _OTHER_ASK.search(_COLOUR_ASK.sub("", question)):
        return None  # "什么颜色，什么面料？": more than a colour is asked
    key = "name_zh" if lang == "zh" else "name_en"
    names = [str(c[key]) for n, c in enumerate(img.colours) if n == 0 or float(c.get("fraction", 0)) >= MINOR]
    seller = title_colour(img.get(TITLE))
    if seller is not None and seller[1] != _basics(img)[0]:  # the title and the pixels disagree: say both
        if lang == "zh":
            return Decision(f"商品标题写的是{seller[0]}；图片中测得的主要颜色是{names[0]}。")
        return Decision(f"The title says {BASIC_EN[seller[1]]}; the image measures mainly {names[0]}.")
    if seller is not None and lang == "zh":
        names[0] = seller[0]  # the seller's word for the same colour: 藏青色, 米白色
    rest = [n for n in names[1:] if n != names[0]]
    if lang == "zh":
        return Decision(f"这件商品的主要颜色是{names[0]}" + (f"，还有{'、'.join(rest)}" if rest else "") + "。")
    return Decision(f"The main colour is {names[0]}" + (f", with some {' and '.join(rest)}" if rest else "") + ".")


def cannot_see(question: str, images: list[ImageFacts], shared: dict[str, str], lang: str) -> Decision | None:
    """A question that needs sight (not one about colours) when no image has a fact that says
    what it shows (a title, a caption, a VLM answer, readable text): say so, and what is known."""
    if not images or _ABOUT_COLOUR.search(question) or _present(images, shared)[0]:
        return None
    missing = _present(images, shared)[1]
    coloured = [(n, i.main_color) for n, i in enumerate(images) if i.main_color]
    if lang == "zh":
        known = "，".join(
            f"主要颜色是{c[0]}" if len(images) == 1 else f"{ORDINALS['zh'][n]}主要是{c[0]}" for n, c in coloured
        )  # fmt: skip
        head = "无法回答：这里没有视觉模型的回答，图片也没有标题、图片说明或可读的文字"
        return Decision(head + (f"；只知道{known}。" if known else "。"), missing)
    known = ", ".join(
        f"its main colour is {c[1]}" if len(images) == 1 else f"the {ORDINALS['en'][n]} is mainly {c[1]}" for n, c in coloured
    )  # fmt: skip
    what = "the image has" if len(images) == 1 else "the images have"
    head = f"I cannot tell: there is no vision-model answer here, and {what} no title, caption or readable text"
    return Decision(head + (f"; I only know that {known}." if known else "."), missing)


def _seen(img: ImageFacts, shared: dict[str, str]) -> str:
    """What a vision model said the image shows: its caption, else the VLM's answer ("" for none)."""
    return img.get(field_of("seen")) or _shared_answer(shared)


def _stated(img: ImageFacts, keys: list[str], lang: str) -> list[str]:
    """``图中文字：纯棉`` / ``text in the image: cotton``: facts quoted under their label."""
    names = labels(lang)
    if lang == "zh":
        return [f"{names.get(k, k)}：{img.get(k)}" for k in keys]
    return [f"{names.get(k, k).lower()}: {img.get(k)}" for k in keys]


def nothing_to_describe(images: list[ImageFacts], shared: dict[str, str], lang: str) -> str | None:
    """A description needs a title, a caption or a VLM answer; say so when there is none."""
    img = images[0] if images else None
    if img is None or img.get(TITLE) or _seen(img, shared):
        return None
    known = []
    if img.main_color:
        known.append(f"主要颜色是{img.main_color[0]}" if lang == "zh" else f"its main colour is {img.main_color[1]}")
    known += _stated(img, [k for k in img.facts if k not in (TITLE, field_of("seen"), field_of("colours"))], lang)
    if lang == "zh":
        head = "无法描述商品本身：这里没有视觉模型，图片也没有标题"
        return head + ("；只知道" + "，".join(known) + "。" if known else "。")
    head = "I cannot describe the product itself: no vision model is available here and the image has no title"
    return head + ("; I only know that " + ", and ".join(known) + "." if known else ".")


#: a word: 3+ Latin letters with a vowel among them (COTTON, SIZE; not "111K", "XKQ"), or 2+
#: Chinese characters
_WORDY = re.compile(r"(?<![A-Za-z])(?=[A-Za-z]*[AEIOUYaeiouy])[A-Za-z]{3,}(?![A-Za-z])|[\u4e00-\u9fff]{2,}")


def readable_text(text: str) -> str:
    """OCR text worth quoting in a sentence or the facts: text with a word in it (not a stray
    "A", "m", "0", "90" or "11 111K" read off a seam, a shadow or a button)."""
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
    """Fields of tools that declare no kind of fact (a plugin's): stated as they are."""
    kinds = fact_fields()
    return [k for k in img.facts if k != TITLE and k not in kinds]


def describe(images: list[ImageFacts], shared: dict[str, str], lang: str) -> str | None:
    """A one-sentence description built from the first image's facts alone (no LLM): what it
    is (the title, or the caption / VLM answer), its main colour when the title names no colour
    (a shaded white sneaker measures grey: the seller's 白色 wins), and readable text on it.
    None when there is nothing that says what the image shows."""
    img = images[0] if images else None
    if img is None:
        return None
    title, seen = img.get(TITLE), _seen(img, shared)
    text = readable_text(img.get(field_of("read")))
    colour = None if title_colour(title) else img.main_color  # a title's own colour wins over the pixels
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


def decide(qtype: QuestionType, question: str, images: list[ImageFacts], shared: dict[str, str], lang: str) -> Decision | None:
    """An answer the facts settle exactly, or None (then the LLM writes it from the facts)."""
    if len(images) > len(ORDINALS["en"]):
        return None  # more images than the plan compares: the LLM answers from the facts
    if qtype is QuestionType.compare:
        return (
            which_colour(question, images, lang) or which_one(question, images, shared, lang)
            or colour_difference(question, images, lang) or cannot_see(question, images, shared, lang)
        )  # fmt: skip
    if qtype is QuestionType.vqa:  # a colour question goes to the LLM (and to colour_answer without one)
        return cannot_see(question, images[:1], shared, lang)
    if qtype is QuestionType.describe:
        if (said := nothing_to_describe(images, shared, lang)) is not None:
            return Decision(said, _present(images[:1], shared)[1])
        if lang == "zh" and images and not _seen(images[0], shared):  # no vision model: the title restated is all there is to say
            described = describe(images, shared, lang)
            return Decision(described) if described else None
        return None  # English needs the Chinese title translated; a caption or VLM answer, the LLM
    return None


def fallback(qtype: QuestionType, question: str, images: list[ImageFacts], shared: dict[str, str], lang: str) -> str | None:
    """The answer from the facts when no LLM answered (there is none, or it failed): a
    description, a colour sentence, or each image's facts for a comparison; None: the graph's
    tool-result fallback."""
    if qtype is QuestionType.describe:
        return describe(images, shared, lang)
    if qtype is QuestionType.vqa:
        found = colour_answer(question, images, shared, lang)
        return found.text if found else None
    if qtype is QuestionType.compare and images:
        return render(images, shared, lang)
    return None
