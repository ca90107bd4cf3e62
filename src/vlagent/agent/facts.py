"""Per-image facts for compare and describe answers, and the answers the facts decide exactly.

:func:`collect` groups a turn's tool results by image: image 1 with its title, colours, OCR
text, caption (each tool's own summary), then image 2, and so on; answers about all images at
once (the VLM's) follow. :func:`render` gives the LLM that fixed structure. Where the facts
settle the question without an LLM, :func:`decide` states them. It reads the question's
:class:`Cues` (written once by the understanding pass), never the question's text:

* "which one is the cap?" / "Which of these shows shoes?" (``cues.which``) when exactly one
  image's title (or caption) names the thing asked about — and, for a known kind of thing
  (:data:`KINDS`, either language) that no fact names, that nothing here can tell, and which
  facts were missing (:class:`Decision` ``missing``), instead of an LLM's guess;
* "which one is red?" from each image's colours; a colour question about several images
  (``cues.colour``): each image's main colour;
* "what colour is it?" (``cues.colour_only``) with no vision model's answer: the measured colours
  as a sentence in the question's language, whatever an LLM would write (the title's colour word when it names the
  same colour: a seller's 藏青色 is the pixels' blue; both when they differ); an LLM answer to a
  colour question that leaves the measured colour out gets it put first (:func:`keep_colour`);
* a question that needs sight (what it is, what animal, which suits work) when no fact says what
  the image shows: that it cannot be told, and what is known;
* a description with no title, caption or VLM answer says that only colours/text are known;
* a Chinese description when the title is all there is (no caption, no VLM answer): the title
  restated as one sentence (:func:`describe`, also the answer when there is no LLM at all).

OCR text reaches a sentence, or the facts, only when it reads as words (:func:`readable_text`):
a stray "A", "90" or "11 111K" read off a seam is not the product's text. Colour words are the
colours tool's vocabulary (:func:`vlagent.index.attributes.colour_words`), the one the attribute
index searches with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from vlagent.agent.types import Cues, QuestionType
from vlagent.index.attributes import ColourWords
from vlagent.index.attributes import colour_words as attribute_colour_words
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

#: a colour covering less of the object than this is not named in an answer (as in the facts)
MINOR = 0.1


def colour_words() -> ColourWords:
    """The one colour vocabulary: the colours tool's terms (the attribute index reads the same)."""
    return attribute_colour_words()


def basic_of(en: str) -> str:
    """The basic colour (English) a colour term belongs to: navy → blue."""
    return colour_words().basic_of.get(en, en)


def zh_name(en: str) -> str:
    return colour_words().zh_of.get(en, en)


@dataclass
class Decision:
    """An answer the facts settle, and the facts no image had (the title's and the sight tools' fields)."""

    text: str
    missing: list[str] = field(default_factory=list)


#: English words for the kinds of things in titles → the Chinese characters that name them:
#: "Which shows shoes?" over Chinese titles (白色运动鞋) is settled without an LLM; English words
#: that share a Chinese word are synonyms (a caption's "hat" names the cap asked about)
KINDS = {
    "shoe": "鞋", "sneaker": "鞋", "boot": "靴", "sandal": "凉鞋", "cap": "帽", "hat": "帽", "dress": "裙",
    "skirt": "裙", "shirt": "衫", "blouse": "衫", "t-shirt": "T恤", "trousers": "裤", "pants": "裤", "jeans": "裤",
    "shorts": "短裤", "bag": "包", "handbag": "包", "backpack": "背包", "wallet": "钱包", "hoodie": "卫衣",
    "sweater": "毛衣", "jacket": "夹克", "coat": "外套", "sock": "袜", "glove": "手套", "scarf": "围巾", "belt": "腰带",
    "glasses": "眼镜", "sunglasses": "眼镜", "watch": "手表", "phone": "手机", "cat": "猫", "dog": "狗", "bird": "鸟",
    "cup": "杯", "mug": "杯", "bottle": "瓶", "camera": "相机", "rocket": "火箭", "astronaut": "宇航员", "car": "车",
    "toy": "玩具", "book": "书", "lamp": "灯", "chair": "椅", "flower": "花",
}  # fmt: skip


def _terms(asked: str) -> tuple[list[str], bool]:
    """(the words that name what was asked, in both languages where :data:`KINDS` knows it;
    whether it knew it): ``shoes`` → shoes, shoe, 鞋, sneaker; ``帽子`` → 帽子, 帽, cap, hat."""
    word = re.sub(r"^(?:商品|产品|东西)", "", asked.strip()).rstrip("的")
    if word.isascii():
        word = word.lower()
        singular = word[:-1] if word.endswith("s") and word[:-1] in KINDS else word
        zh = KINDS.get(singular)
        terms = {word, singular} | ({zh, *(en for en, z in KINDS.items() if z == zh)} if zh else set())
        return sorted((t for t in terms if t), key=len, reverse=True), zh is not None
    zh_kinds = {z for z in KINDS.values() if z in word}
    terms = {word, word.rstrip("子"), *zh_kinds, *(en for en, z in KINDS.items() if z in zh_kinds)}
    return sorted((t for t in terms if t), key=len, reverse=True), bool(zh_kinds)


def _names(text: str, terms: list[str]) -> bool:
    text = text.lower()
    return any((re.search(rf"\b{re.escape(t)}(?:e?s)?\b", text) if t.isascii() else t in text) for t in terms)


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


def which_one(asked: str, images: list[ImageFacts], shared: dict[str, str], lang: str) -> Decision | None:
    """The image that is the thing asked about (``Cues.which``), when exactly one image's title
    or caption names it; that it cannot be told, when no fact of any image names it and no
    vision model answered."""
    if not asked or len(images) < 2 or colour_words().find(asked):
        return None
    terms, known = _terms(asked)
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
    if not known:
        return None  # not a kind of thing this table knows ("哪件是更便宜的"): the LLM reads the facts
    return _cannot_tell_which(asked, images, shared, lang)


def title_colour(text: str) -> tuple[str, str] | None:
    """(the colour word as the title writes it, the basic colour it is, in English) of the first
    colour a title names: ``女款藏青色衬衫`` → (藏青色, blue); None when it names none."""
    found = colour_words().words(text)
    if not found:
        return None
    word, en = found[0]
    return word, basic_of(en)


def _basics(img: ImageFacts) -> list[str]:
    """The basic colours (English) of the image's colours worth naming."""
    return [
        str(c.get("basic_en") or basic_of(str(c.get("name_en") or "")))
        for n, c in enumerate(img.colours) if n == 0 or float(c.get("fraction", 0)) >= MINOR
    ]  # fmt: skip


def which_colour(asked: str, images: list[ImageFacts], lang: str) -> Decision | None:
    """"哪一个是红色的？" / "Which one is black?" (``Cues.which`` a colour): the image whose colours include it."""
    named = colour_words().find(asked) if asked else []
    if not named or len(images) < 2 or any(not i.colours for i in images):
        return None
    basic = basic_of(named[0])
    hits = [n for n, img in enumerate(images) if basic in _basics(img)]
    if len(hits) != 1:
        return None  # none or several: the LLM words it from the facts
    n, img = hits[0], images[hits[0]]
    if lang == "zh":
        return Decision(f"{ORDINALS['zh'][n]}图片（{img.name}）是{zh_name(basic)}的。")
    return Decision(f"The {ORDINALS['en'][n]} image ({img.name}) is {basic}.")


def colour_of_each(images: list[ImageFacts], lang: str) -> Decision | None:
    """A colour question over several images: each image's main colour (the same one: said once)."""
    if len(images) < 2 or any(i.main_color is None for i in images):
        return None
    colours: list[tuple[str, str]] = [i.main_color for i in images]  # type: ignore[misc]
    if lang == "zh":
        if len({c[0] for c in colours}) == 1:
            return Decision(f"颜色相同：都是{colours[0][0]}。")
        parts = [f"{ORDINALS['zh'][n]}（{img.name}）是{c[0]}" for n, (img, c) in enumerate(zip(images, colours))]
        return Decision("颜色不同：" + "，".join(parts) + "。")
    if len({c[1] for c in colours}) == 1:
        return Decision(f"The same colour: both are {colours[0][1]}.")
    parts = [f"the {ORDINALS['en'][n]} ({img.name}) is {c[1]}" for n, (img, c) in enumerate(zip(images, colours))]
    return Decision("They differ: " + ", ".join(parts) + ".")


def colour_answer(images: list[ImageFacts], lang: str, short: bool = False) -> Decision | None:
    """A colour question about one image: the measured colours in the question's language (the
    title's colour word when it names the same colour; both, when they differ). ``short``: the
    colours are the whole answer, said in a word or two as the vqa answers are ("白色", "白色，还有灰色",
    "White, with some grey"); else a sentence that can lead another answer."""
    img = images[0] if images else None
    if img is None or not img.colours:
        return None
    key = "name_zh" if lang == "zh" else "name_en"
    names = [str(c[key]) for n, c in enumerate(img.colours) if n == 0 or float(c.get("fraction", 0)) >= MINOR]
    seller = title_colour(img.get(TITLE))
    if seller is not None and seller[1] != _basics(img)[0]:  # the title and the pixels disagree: say both
        if lang == "zh":
            return Decision(f"商品标题写的是{seller[0]}；图片中测得的主要颜色是{names[0]}。")
        return Decision(f"The title says {seller[1]}; the image measures mainly {names[0]}.")
    if seller is not None and lang == "zh":
        names[0] = seller[0]  # the seller's word for the same colour: 藏青色, 米白色
    rest = [n for n in names[1:] if n != names[0]]
    end = "" if short else ("。" if lang == "zh" else ".")
    if lang == "zh":
        lead = names[0] if short else f"这件商品的主要颜色是{names[0]}"
        return Decision(lead + (f"，还有{'、'.join(rest)}" if rest else "") + end)
    lead = names[0][:1].upper() + names[0][1:] if short else f"The main colour is {names[0]}"
    return Decision(lead + (f", with some {' and '.join(rest)}" if rest else "") + end)


def names_colour(text: str, images: list[ImageFacts]) -> bool:
    """``text`` names one of the measured colours of an image (any language, any shade of it)."""
    said = {basic_of(en) for en in colour_words().find(text)}
    return any(basic in said for img in images for basic in _basics(img))


def cannot_see(cues: Cues, images: list[ImageFacts], shared: dict[str, str], lang: str) -> Decision | None:
    """A question that needs sight (not one about colours) when no image has a fact that says
    what it shows (a title, a caption, a VLM answer, readable text): say so, and what is known."""
    if not images or cues.colour or _present(images, shared)[0]:
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


def decide(qtype: QuestionType, cues: Cues, images: list[ImageFacts], shared: dict[str, str], lang: str) -> Decision | None:
    """An answer the facts settle exactly, or None (then the LLM writes it from the facts).

    Read from the :class:`Cues` the understanding pass wrote, never from the question's text: a
    colour question is answered from the measured colours (each image's, for several); "which
    one is X" from the image whose facts name X."""
    if len(images) > len(ORDINALS["en"]):
        return None  # more images than the plan compares: the LLM answers from the facts
    if qtype is QuestionType.compare:
        return (
            which_colour(cues.which, images, lang) or which_one(cues.which, images, shared, lang)
            or (colour_of_each(images, lang) if cues.colour else None) or cannot_see(cues, images, shared, lang)
        )  # fmt: skip
    if qtype is QuestionType.vqa:
        if cues.colour_only and not _shared_answer(shared) and (found := colour_answer(images[:1], lang, short=True)) is not None:
            return found  # no vision model: the measured colours are the answer, whatever an LLM would write
        return cannot_see(cues, images[:1], shared, lang)
    if qtype is QuestionType.describe:
        if (said := nothing_to_describe(images, shared, lang)) is not None:
            return Decision(said, _present(images[:1], shared)[1])
        if lang == "zh" and images and not _seen(images[0], shared):  # no vision model: the title restated is all there is to say
            described = describe(images, shared, lang)
            return Decision(described) if described else None
        return None  # English needs the Chinese title translated; a caption or VLM answer, the LLM
    return None


def keep_colour(text: str, cues: Cues, images: list[ImageFacts], lang: str) -> str:
    """An LLM's answer to a colour question, with the measured colour put first when the LLM
    left it out ("Main colours", "I cannot tell"): it may phrase around the fact, not replace it."""
    if not cues.colour or not images or names_colour(text, images):
        return text
    stated = colour_of_each(images, lang) if len(images) >= 2 else colour_answer(images[:1], lang)
    if stated is None:
        return text
    return f"{stated.text}{'' if lang == 'zh' else ' '}{text}".strip()


def fallback(qtype: QuestionType, cues: Cues, images: list[ImageFacts], shared: dict[str, str], lang: str) -> str | None:
    """The answer from the facts when no LLM answered (there is none, or it failed): a
    description, a colour sentence, or each image's facts for a comparison; None: the graph's
    tool-result fallback."""
    if qtype is QuestionType.describe:
        return describe(images, shared, lang)
    if qtype is QuestionType.vqa and cues.colour_only and not _shared_answer(shared):
        found = colour_answer(images, lang, short=True)
        return found.text if found else None
    if qtype is QuestionType.compare and images:
        return render(images, shared, lang)
    return None
