"""The built-in question types, one :class:`~vlagent.agent.questions.QuestionCard` each.

Declared in the order ``for t in spec.types`` lists them (:data:`ORDER`: the evals' tables, the
static examples); the classifier prompt's order is ``prompt_rank``. A card is the one place a
type's tools (its ``plan``), its fallback fields and its deciders (the answers the facts settle)
are named; the sentences they say are ``prompts/sentences.<lang>.txt``. The learned classifier
knows the built-in types from the shipped labelled questions.
"""

from __future__ import annotations

from vlagent.agent.calls import ByLang, Call, PlanInput, Q, has_query_or_no_image, has_results, image_without_query, missing
from vlagent.agent.facts import (
    MAX_ORDINAL, Decision, Facts, cannot_see, colour_answer, colour_of_each, describe, nothing_to_describe, seen_by_model,
    vision_answer, which_colour, which_one,
)  # fmt: skip
from vlagent.agent.questions import QuestionCard

MAX_COMPARE_IMAGES = MAX_ORDINAL
RETRIEVE_K = 10
SEARCH = "search the catalogue"
DESCRIBE_PROMPT = ByLang("请描述这张图片中的商品。", "Describe the product in this image.")


def ocr_question(inp: PlanInput) -> str:
    """The OCR prompt: the question plus the text OCR read in round 0."""
    text = "\n".join(t for t in inp.results.get("ocr", ()) if t.strip())
    return f"{inp.question}\n(OCR text in the image:\n{text})"


# --- the answers the facts settle, per card ---------------------------------------------------
# Each reads the cues the understanding pass wrote, never the question's text.


def _few(facts: Facts) -> bool:
    """No more images than a sentence can tell apart (more: the LLM answers from the facts)."""
    return len(facts.images) <= MAX_ORDINAL


def decide_compare(facts: Facts) -> Decision | None:
    """"Which one is red / is the cap?" from the one image whose facts say so; a colour question:
    each image's colour; a question that needs sight, when nothing here saw the images."""
    if not _few(facts):
        return None
    return (
        which_colour(facts) or which_one(facts) or (colour_of_each(facts) if facts.cues.colour else None)
        or cannot_see(facts)
    )  # fmt: skip


def decide_vqa(facts: Facts) -> Decision | None:
    """A colour-only question with no vision model's answer: the measured colours are the answer,
    whatever an LLM would write; a question that needs sight when nothing saw the image."""
    if not _few(facts):
        return None
    if facts.cues.colour_only and not vision_answer(facts) and (found := colour_answer(facts.only(1), short=True)) is not None:
        return found
    return cannot_see(facts.only(1))


def decide_describe(facts: Facts) -> Decision | None:
    """Nothing saw the image and it has no title: say what is known; a Chinese description with
    no vision model: the title restated (English needs the title translated: the LLM)."""
    if not _few(facts):
        return None
    if (said := nothing_to_describe(facts)) is not None:
        return said
    first = facts.images[0] if facts.images else None
    if facts.voice.lang == "zh" and first is not None and not seen_by_model(first, facts):
        described = describe(facts)
        return Decision(described) if described else None
    return None


def fallback_vqa(facts: Facts) -> str | None:
    if facts.cues.colour_only and not vision_answer(facts):
        found = colour_answer(facts, short=True)
        return found.text if found else None
    return None


def fallback_compare(facts: Facts) -> str | None:
    return facts.render() if facts.images else None


BUILTIN = (
    # describe the given image
    QuestionCard(
        name="describe", prompt_rank=2, min_images=1, answer="facts",
        fallback_fields=("vqa", "caption", "title", "colors", "ocr_text"),
        decide=decide_describe, fallback=describe,
        prompt_line="a general description of the whole attached image (描述, 介绍一下, what is in this picture).",
        plan=(
            Call("caption", {"style": "detailed", "lang": Q.lang}),
            Call("colors"),
            Call("ocr"),
            Call("vqa", {"question": DESCRIBE_PROMPT}, images="first"),
        ),
    ),
    # find the image that best matches a title / description
    QuestionCard(
        name="retrieve", prompt_rank=0, answer="list", query=True, what_is_missing=SEARCH,
        prompt_line="find the catalogue image that matches a product title or description (请匹配到与…最相关的图片, "
        "find the picture of…), or images similar to the attached one; query = that title, copied.",
        plan=(
            Call(("clip_search", "title_search"), {"text": Q.query, "k": RETRIEVE_K}, when=has_query_or_no_image),
            Call("image_search", {"k": RETRIEVE_K}, images="first", when=image_without_query),
        ),
    ),
    # a question about the image: colour, fabric, style, count, who/what
    QuestionCard(
        name="vqa", prompt_rank=3, min_images=1, answer="facts", single_source=True,
        fallback_fields=("vqa", "title", "caption", "ocr_text", "colors"),  # a colour question is decided by the facts
        decide=decide_vqa, fallback=fallback_vqa,
        prompt_line="one specific visual detail of the attached image: colour, pattern, fabric, style, count, fit "
        "(什么颜色, 图案, what colour).",
        plan=(
            Call("vqa", {"question": Q.question}, images="all"),
            Call("colors"),
            Call("ocr"),
            Call("caption", {"style": "concise", "lang": Q.lang}, when=missing("vqa")),
        ),
    ),
    # read or use the text in the image
    QuestionCard(
        name="ocr", prompt_rank=4, min_images=1, answer="transcript", single_source=True,
        fallback_fields=("ocr_text", "vqa"),
        prompt_line="anything printed or written on it: label, tag, 吊牌, 洗标, brand, size, price, logo text "
        "(写的什么, what does it say).",
        plan=(
            Call("ocr", images="each", limit=2),
            Call("vqa", {"question": ocr_question}, images="all", limit=2, round=1, when=has_results("ocr")),
        ),
    ),
    # several images
    QuestionCard(
        name="compare", prompt_rank=5, min_images=2, answer="facts",
        fallback_fields=("vqa", "colors", "caption"),
        decide=decide_compare, fallback=fallback_compare,
        prompt_line="two or more images or products (区别, 哪个更, which one).",
        plan=(
            Call("colors", images="each", limit=MAX_COMPARE_IMAGES),
            Call("caption", {"style": "concise", "lang": Q.lang}, images="each", limit=MAX_COMPARE_IMAGES),
            Call("ocr", images="each", limit=MAX_COMPARE_IMAGES),
            Call("vqa", {"question": Q.question}, images="all", limit=MAX_COMPARE_IMAGES),
        ),
    ),
    # no image needed
    QuestionCard(
        name="chat", prompt_rank=6, answer="llm", needs_evidence=False,
        prompt_line="no image needed: greetings, 退货, shipping, general advice.",
        fallback_text={
            "zh": "我是商品图片问答助手：可以描述图片、按标题找图、推荐相似商品、回答颜色面料等问题、读取标签文字。",
            "en": "I answer questions about product images: describe, find by title, recommend similar items, "
            "colours, fabric, label text.",
        },
    ),
    # more like these (likes / dislikes: images or text)
    QuestionCard(
        name="recommend", prompt_rank=1, answer="list", what_is_missing=SEARCH,
        fallback_fields=("results",),
        prompt_line="suggest catalogue products from what the shopper likes or dislikes, images or text "
        "(推荐几款类似的, 推荐相配的…, show me more like this).",
        plan=(Call("recommend", {"likes": Q.likes, "k": 5, "lang": Q.lang}, images="none"),),
    ),
    # does the image fit this product description? (the competition's 是否符合描述; CLIP's last step)
    QuestionCard(
        name="match", prompt_rank=7, min_images=1, max_images=1, answer="summary", summary_tool="match", query=True,
        fallback_fields=("match",), single_source=True,
        what_is_missing="check the image against the text",
        prompt_line="does the attached image fit a given product description or title? yes or no "
        "(这张图片是否符合…的描述, 这是…吗, does this image match …); query = that description, copied.",
        plan=(Call("match", {"text": Q.query}, images="first"),),
    ),
)

#: the built-in types in the order the evals' tables list them
ORDER = tuple(c.name for c in BUILTIN)
