"""Per-image facts for compare, describe and vqa answers, and the answers the facts settle.

:class:`Facts` groups a turn's tool results by image: image 1 with its title, colours, OCR
text, caption (each tool's own summary), then image 2, and so on; answers about all images at
once (the VLM's) follow. :meth:`Facts.render` gives the LLM that fixed structure. Where the
facts settle the question without an LLM, a question card's ``decide`` states them (the
built-in cards' deciders are :mod:`vlagent.agent.cards`, built from the functions here). They
read the question's :class:`Cues` (written once by the understanding pass), never its text:

* "which one is the cap?" / "Which of these shows shoes?" (``cues.which``) when exactly one
  image's title (or caption) names the thing asked about — and, for a known kind of thing
  (:data:`KINDS`, either language) that no fact names, that nothing here can tell, and which
  facts were missing (:class:`Decision` ``missing``), instead of an LLM's guess;
* "which one is red?" from each image's colours; a colour question about several images
  (``cues.colour``): each image's main colour;
* "what colour is it?" (``cues.colour_only``) with no vision model's answer: the measured colours
  in the question's language (the title's colour word when it names the same colour: a
  seller's 藏青色 is the pixels' blue; both when they differ); an LLM answer to a colour
  question that leaves the measured colour out gets it put first (:func:`keep_colour`);
* a question that needs sight (what it is, what animal, which suits work) when no fact says what
  the image shows: that it cannot be told, and what is known;
* a description with no title, caption or VLM answer says that only colours/text are known;
* a Chinese description when the title is all there is (no caption, no VLM answer): the title
  restated as one sentence (:func:`describe`, also the answer when there is no LLM at all).

Every sentence is a template in the question's language (:class:`Voice`: ``prompts/sentences.<lang>.txt``
and the card's own ``<card>.sentences.<lang>.txt``), never a string in this code.

OCR text reaches a sentence, or the facts, only when it reads as words (:func:`readable_text`):
a stray "A", "90" or "11 111K" read off a seam is not the product's text. Colour words are the
colours tool's vocabulary (:func:`vlagent.index.attributes.colour_words`), the one the attribute
index searches with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from string import Template
from typing import Any

from vlagent.agent.language import detect_language
from vlagent.agent.toolspec import ToolSpec
from vlagent.agent.types import Cues
from vlagent.index.attributes import ColourWords
from vlagent.index.attributes import colour_words as attribute_colour_words

#: the answer writer's own fact (the catalogue title); the tools' facts are named by their specs
TITLE = "title"
#: the kinds of facts that can say what an image shows, in the order a sentence names them
SIGHT = (TITLE, "seen", "answer", "read")
#: how many images a sentence can tell apart (``ordinal_1`` .. ``ordinal_4``)
MAX_ORDINAL = 4


class Voice:
    """How facts are said in one language: the sentence book (``key = text``, :mod:`vlagent.agent.prompts`)
    and what the tools' specs say about their facts (which field holds which kind, its label)."""

    def __init__(self, lang: str, sentences: Mapping[str, str], tools: Iterable[ToolSpec]) -> None:
        self.lang = "zh" if lang == "zh" else "en"
        self.sentences = sentences
        tools = list(tools)
        self.kinds = {t.fact: t.field for t in reversed(tools) if t.fact and t.field}
        self.fact_fields = {t.field for t in tools if t.fact and t.field}
        self.labels = {TITLE: self.word("label_title")}
        for t in tools:
            if t.field and t.label and t.field not in self.labels:
                self.labels[t.field] = t.label.get(self.lang) or t.label.get("en") or t.field

    def say(self, key: str, **values: Any) -> str:
        """The sentence ``key`` with ``values`` put in (a missing key or value names itself)."""
        try:
            return Template(self.sentences[key]).substitute({k: str(v) for k, v in values.items()})
        except KeyError as exc:
            raise KeyError(f"sentence {key!r} ({self.lang}): no {exc.args[0]!r} in the sentence book or its values") from None

    def word(self, key: str, default: str = "") -> str:
        return self.sentences.get(key, default)

    def field(self, kind: str) -> str:
        """The template field of the tool whose spec's ``fact`` is ``kind``, else ``kind`` itself."""
        return self.kinds.get(kind, kind)

    def ordinal(self, n: int) -> str:
        return self.word(f"ordinal_{n + 1}")

    def pick(self, pair: tuple[str, str]) -> str:
        """Of a (Chinese, English) pair, the one in this language."""
        return pair[0] if self.lang == "zh" else pair[1]

    def joined(self, words: list[str], last: str) -> str:
        """``a、b和c`` / ``a, b or c``: ``last`` is the connective's key (``and``, ``or``)."""
        head = self.word("list_sep").join(words[:-1])
        return head + (self.word(last) if len(words) > 1 else "") + words[-1]

    def sight_label(self, kind: str) -> str:
        """A sight kind's words in a sentence (what a model saw: its tool's label, lower case, where the book has none)."""
        return self.word(f"sight_{kind}") or self.labels.get(self.field(kind), "description").lower()


@dataclass
class ImageFacts:
    name: str
    facts: dict[str, list[str]] = field(default_factory=dict)  # field → texts
    main_color: tuple[str, str] | None = None  # (zh, en) of the largest colour
    colours: list[dict[str, Any]] = field(default_factory=list)  # the colours tool's output, largest first

    def add(self, key: str, text: str) -> None:
        if text.strip():
            self.facts.setdefault(key, []).append(text.strip())

    def get(self, key: str) -> str:
        return "；".join(self.facts.get(key, []))

    def measure(self, found: dict[str, Any]) -> None:
        """A tool's structured facts (``ToolSpec.structured``): the first colours found stay."""
        if found and self.main_color is None:
            self.main_color = found.get("main_color")
            self.colours = list(found.get("colours") or [])


@dataclass
class Facts:
    """What a question card's ``decide`` and ``fallback`` see: each image's facts, the answers
    about all images at once (``shared``: the VLM's), the question's cues, and the voice."""

    images: list[ImageFacts]
    shared: dict[str, str]
    cues: Cues
    voice: Voice

    def say(self, key: str, **values: Any) -> str:
        return self.voice.say(key, **values)

    def only(self, n: int) -> "Facts":
        """The same facts about the first ``n`` images."""
        return Facts(self.images[:n], self.shared, self.cues, self.voice)

    def render(self) -> str:
        """The facts in a fixed structure, image by image."""
        v = self.voice
        lines: list[str] = []
        for n, img in enumerate(self.images, 1):
            lines.append(v.say("image_head", n=n, name=img.name))
            if not img.facts:
                lines.append("  - " + v.word("nothing_known"))
            for key, texts in img.facts.items():
                lines.append("  - " + v.say("fact_line", label=v.labels.get(key, key), texts=v.word("fact_sep").join(texts)))
        for key, text in self.shared.items():
            if text.strip():
                lines.append(v.say("shared_line", label=v.labels.get(key, key), text=text))
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


def colour_name(en: str, voice: Voice) -> str:
    """A basic colour (English) in the voice's language."""
    return voice.pick((zh_name(en), en))


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


def _decisive(img: ImageFacts, voice: Voice) -> str:
    """The facts that say what an image is: its title (or zero-shot category) and caption."""
    return " ".join([img.get(TITLE), img.get(voice.field("seen"))])


def vision_answer(facts: Facts) -> str:
    """The vision model's answer about all the images ("" for none)."""
    return facts.shared.get(facts.voice.field("answer"), "").strip()


def _present(facts: Facts) -> tuple[list[str], list[str]]:
    """(the sight facts some image has, those none has: fields). A plugin tool's fact counts as
    seen: it answers questions the built-in tools cannot (``toy_weight``: "净重 42 克")."""
    have, missing = _sight(facts)
    field_of = facts.voice.field
    others = sorted({k for i in facts.images for k in _other_fields(i, facts.voice)})
    return [field_of(k) for k in have] + others, [field_of(k) for k in missing]


def _sight(facts: Facts) -> tuple[list[str], list[str]]:
    """(the sight kinds some image has, those none has)."""
    field_of = facts.voice.field
    have = [k for k in SIGHT if (vision_answer(facts) if k == "answer" else any(i.get(field_of(k)) for i in facts.images))]
    return have, [k for k in SIGHT if k not in have]


def _a(kind: str) -> str:
    return kind if kind.endswith("s") else f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind}"


def _cannot_tell_which(asked: str, facts: Facts) -> Decision:
    v = facts.voice
    kinds, missing_kinds = _sight(facts)
    have, missing = _present(facts)
    said = [v.sight_label(k) for k in kinds] + have[len(kinds):]  # a plugin's field, by its name
    lacking = [v.sight_label(k) for k in missing_kinds]
    parts = [v.say("which_unmentioned", facts=v.joined(said, "which_unmentioned_join"), asked=asked, a_asked=_a(asked))] if have else []
    if missing:
        parts.append(v.say("which_lacking" if have else "which_lacking_all", facts=v.joined(lacking, "or")))
    return Decision(v.say("which_unknown", asked=asked, a_asked=_a(asked), reasons=v.word("reason_sep").join(parts)), missing)


def which_one(facts: Facts) -> Decision | None:
    """The image that is the thing asked about (``Cues.which``), when exactly one image's title
    or caption names it; that it cannot be told, when no fact of any image names it and no
    vision model answered."""
    asked, images, v = facts.cues.which, facts.images, facts.voice
    if not asked or len(images) < 2 or colour_words().find(asked):
        return None
    terms, known = _terms(asked)
    hits = [n for n, img in enumerate(images) if _names(_decisive(img, v), terms)]
    if len(hits) == 1:
        n = hits[0]
        img = images[n]
        title = img.get(TITLE)
        key = "which_is_titled" if title else "which_is"
        return Decision(v.say(key, ordinal=v.ordinal(n), name=img.name, asked=asked, a_asked=_a(asked), title=title))
    if hits or vision_answer(facts):  # several name it, or a vision model saw them: the LLM reads which
        return None
    if any(_names(" ".join(" ".join(t) for t in img.facts.values()), terms) for img in images):
        return None  # the text on an image (or a plugin's fact) names it: the LLM weighs that
    if not known:
        return None  # not a kind of thing this table knows ("哪件是更便宜的"): the LLM reads the facts
    return _cannot_tell_which(asked, facts)


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


def which_colour(facts: Facts) -> Decision | None:
    """"哪一个是红色的？" / "Which one is black?" (``Cues.which`` a colour): the image whose colours include it."""
    asked, images, v = facts.cues.which, facts.images, facts.voice
    named = colour_words().find(asked) if asked else []
    if not named or len(images) < 2 or any(not i.colours for i in images):
        return None
    basic = basic_of(named[0])
    hits = [n for n, img in enumerate(images) if basic in _basics(img)]
    if len(hits) != 1:
        return None  # none or several: the LLM words it from the facts
    n, img = hits[0], images[hits[0]]
    return Decision(v.say("which_colour", ordinal=v.ordinal(n), name=img.name, colour=colour_name(basic, v)))


def colour_of_each(facts: Facts) -> Decision | None:
    """A colour question over several images: each image's main colour (the same one: said once)."""
    images, v = facts.images, facts.voice
    if len(images) < 2 or any(i.main_color is None for i in images):
        return None
    colours = [v.pick(i.main_color) for i in images]  # type: ignore[arg-type]
    if len(set(colours)) == 1:
        return Decision(v.say("colours_same", colour=colours[0]))
    each = [v.say("colour_of", ordinal=v.ordinal(n), name=img.name, colour=c) for n, (img, c) in enumerate(zip(images, colours))]
    return Decision(v.say("colours_differ", each=v.word("each_sep").join(each)))


def colour_answer(facts: Facts, short: bool = False) -> Decision | None:
    """A colour question about one image: the measured colours in the question's language (the
    title's colour word when it names the same colour; both, when they differ). ``short``: the
    colours are the whole answer, said in a word or two as the vqa answers are ("白色", "白色，还有灰色",
    "White, with some grey"); else a sentence that can lead another answer."""
    v = facts.voice
    img = facts.images[0] if facts.images else None
    if img is None or not img.colours:
        return None
    key = "name_zh" if v.lang == "zh" else "name_en"
    names = [str(c[key]) for n, c in enumerate(img.colours) if n == 0 or float(c.get("fraction", 0)) >= MINOR]
    seller = title_colour(img.get(TITLE))
    if seller is not None and seller[1] != _basics(img)[0]:  # the title and the pixels disagree: say both
        said = seller[0] if detect_language(seller[0]) == v.lang else seller[1]
        return Decision(v.say("title_and_pixels", title_colour=said, colour=names[0]))
    if seller is not None and detect_language(seller[0]) == v.lang:
        names[0] = seller[0]  # the seller's word for the same colour, in the answer's language: 藏青色, 米白色
    rest = [n for n in names[1:] if n != names[0]]
    lead = v.say("colour_short" if short else "colour_long", colour=names[0], Colour=names[0][:1].upper() + names[0][1:])
    more = v.say("colour_more", others=v.word("others_sep").join(rest)) if rest else ""
    return Decision(lead + more + ("" if short else v.word("end")))


def names_colour(text: str, images: list[ImageFacts]) -> bool:
    """``text`` names one of the measured colours of an image (any language, any shade of it)."""
    said = {basic_of(en) for en in colour_words().find(text)}
    return any(basic in said for img in images for basic in _basics(img))


def cannot_see(facts: Facts) -> Decision | None:
    """A question that needs sight (not one about colours) when no image has a fact that says
    what it shows (a title, a caption, a VLM answer, readable text): say so, and what is known."""
    images, v = facts.images, facts.voice
    if not images or facts.cues.colour or _present(facts)[0]:
        return None
    missing = _present(facts)[1]
    one = len(images) == 1
    known = v.word("known_sep").join(
        v.say("main_colour_is", colour=v.pick(c)) if one else v.say("nth_mainly", ordinal=v.ordinal(n), colour=v.pick(c))
        for n, c in ((n, i.main_color) for n, i in enumerate(images)) if c
    )  # fmt: skip
    head = v.word("cannot_see_one" if one else "cannot_see_many")
    return Decision(head + (v.say("known_tail", known=known) if known else v.word("end")), missing)


def seen_by_model(img: ImageFacts, facts: Facts) -> str:
    """What a vision model said the image shows: its caption, else the VLM's answer ("" for none)."""
    return img.get(facts.voice.field("seen")) or vision_answer(facts)


def _stated(img: ImageFacts, keys: list[str], voice: Voice) -> list[str]:
    """``图中文字：纯棉`` / ``text in the image: cotton``: facts quoted under their label."""
    out = []
    for k in keys:
        label = voice.labels.get(k, k)
        out.append(voice.say("stated", label=label, label_lower=label.lower(), value=img.get(k)))
    return out


def nothing_to_describe(facts: Facts) -> Decision | None:
    """A description needs a title, a caption or a VLM answer; say so when there is none."""
    v = facts.voice
    img = facts.images[0] if facts.images else None
    if img is None or img.get(TITLE) or seen_by_model(img, facts):
        return None
    known = [v.say("main_colour_is", colour=v.pick(img.main_color))] if img.main_color else []
    known += _stated(img, [k for k in img.facts if k not in (TITLE, v.field("seen"), v.field("colours"))], v)
    tail = v.say("known_tail", known=v.word("described_known_sep").join(known)) if known else v.word("end")
    return Decision(v.word("cannot_describe") + tail, _present(facts.only(1))[1])


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


def _other_fields(img: ImageFacts, voice: Voice) -> list[str]:
    """Fields of tools that declare no kind of fact (a plugin's): stated as they are."""
    return [k for k in img.facts if k != TITLE and k not in voice.fact_fields]


def describe(facts: Facts) -> str | None:
    """A one-sentence description built from the first image's facts alone (no LLM): what it
    is, its main colour when the title names no colour (a shaded white sneaker measures grey:
    the seller's 白色 wins), and readable text on it. In Chinese the title leads, restated as a
    noun phrase (``一件红色的无袖连衣裙``); in English what a vision model saw, then the title.
    None when there is nothing that says what the image shows."""
    v = facts.voice
    img = facts.images[0] if facts.images else None
    if img is None:
        return None
    title, seen = img.get(TITLE), seen_by_model(img, facts)
    text = readable_text(img.get(v.field("read")))
    colour = None if title_colour(title) else img.main_color  # a title's own colour wins over the pixels
    if title and v.lang == "zh":  # Chinese grammar: the title as a noun phrase with its measure word
        head, *rest = title.split()
        parts = [_one_of(head), *rest]
    elif seen:  # an English answer cannot restate a Chinese title: what a model saw leads
        parts = [v.say("seen_as", seen=seen if v.lang == "zh" else seen.rstrip("."))]
        if title:
            parts.append(v.say("titled", title=title))
    elif title:
        parts = [v.say("shows", title=title)]
    else:
        return None
    if colour and v.pick(colour):
        parts.append(v.say("describe_colour", colour=v.pick(colour)))
    if text:
        parts.append(v.say("describe_text", text=text))
    sentence = v.word("describe_sep").join(parts + _stated(img, _other_fields(img, v), v)) + v.word("end")
    return sentence[0].upper() + sentence[1:]


def keep_colour(text: str, facts: Facts) -> str:
    """An LLM's answer to a colour question, with the measured colour put first when the LLM
    left it out ("Main colours", "I cannot tell"): it may phrase around the fact, not replace it."""
    images = facts.images
    if not facts.cues.colour or not images or names_colour(text, images):
        return text
    stated = colour_of_each(facts) if len(images) >= 2 else colour_answer(facts.only(1))
    if stated is None:
        return text
    return f"{stated.text}{'' if facts.voice.lang == 'zh' else ' '}{text}".strip()
