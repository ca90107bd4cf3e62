"""The built-in question types, one :class:`~vlagent.agent.questions.QuestionCard` each.

Declared in the classifier prompt's order (``prompt_rank``), registered in :data:`ORDER`. A card
is the one place a type's tools (its ``plan``) and fallback fields are named; the learned
classifier knows the built-in types from the shipped labelled questions.
"""

from __future__ import annotations

from vlagent.agent.plan import (
    DESCRIBE_PROMPT, MAX_COMPARE_IMAGES, RETRIEVE_K, Call, Q, has_ocr_text, has_query_or_no_image,
    image_without_query, missing,
)  # fmt: skip
from vlagent.agent.questions import QuestionCard, register_question_type

SEARCH = "search the catalogue"

BUILTIN = (
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
    # more like these (likes / dislikes: images or text)
    QuestionCard(
        name="recommend", prompt_rank=1, answer="list", what_is_missing=SEARCH,
        fallback_fields=("results",),
        prompt_line="suggest catalogue products from what the shopper likes or dislikes, images or text "
        "(推荐几款类似的, 推荐相配的…, show me more like this).",
        plan=(Call("recommend", {"likes": Q.likes, "k": 5, "lang": Q.lang}, images="none"),),
    ),
    # describe the given image
    QuestionCard(
        name="describe", prompt_rank=2, min_images=1, answer="facts",
        fallback_fields=("vqa", "caption", "title", "colors", "ocr_text"),
        prompt_line="a general description of the whole attached image (描述, 介绍一下, what is in this picture).",
        plan=(
            Call("caption", {"style": "detailed", "lang": Q.lang}),
            Call("colors"),
            Call("ocr"),
            Call("vqa", {"question": DESCRIBE_PROMPT}, images="first"),
        ),
    ),
    # a question about the image: colour, fabric, style, count, who/what
    QuestionCard(
        name="vqa", prompt_rank=3, min_images=1, answer="facts", single_source=True,
        fallback_fields=("vqa", "title", "caption", "ocr_text", "colors"),  # a colour question is decided by the facts
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
            Call("vqa", {"question": Q.ocr_question}, images="all", limit=2, round=1, when=has_ocr_text),
        ),
    ),
    # several images
    QuestionCard(
        name="compare", prompt_rank=5, min_images=2, answer="facts",
        fallback_fields=("vqa", "colors", "caption"),
        prompt_line="two or more images or products (区别, 哪个更, which one).",
        plan=(
            Call("colors", images="each", limit=MAX_COMPARE_IMAGES),
            Call("caption", {"style": "concise", "lang": Q.lang}, images="each", limit=MAX_COMPARE_IMAGES),
            Call("ocr", images="each", limit=MAX_COMPARE_IMAGES),
            Call("vqa", {"question": Q.question}, images="all", limit=MAX_COMPARE_IMAGES),
        ),
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
)

#: the order of ``for t in QuestionType`` (the evals' tables, the static examples)
ORDER = ("describe", "retrieve", "vqa", "ocr", "compare", "chat", "recommend", "match")
for _card in sorted(BUILTIN, key=lambda c: ORDER.index(c.name)):
    register_question_type(_card)
