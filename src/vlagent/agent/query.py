r"""The text a retrieve or match question carries: the title or description it copies.

The type is already decided (:mod:`vlagent.agent.understand`); this only cuts the frame off the
copied text, which no classifier can do: "请匹配到与 <标题> 最相关的图片。", "找一张 <描述> 的图",
"Find the picture of <description>", "这张图片符合“<描述>”吗？", "Is this a <description>?".
In order: a quoted span; the text after a colon near the start; else the question without its
leading and trailing frame words. :func:`search_text` returns "" for a search by the attached
image ("找和这张图相似的图片").

**Linear time on any input**: the frames are anchored runs of literals (``^`` or ``$``, no
nested quantifier); the quoted span is one lazy scan for its closing mark.
"""

from __future__ import annotations

import re

from vlagent.agent.language import IMAGE_NAME, clean_query, fold_space

#: a quoted span (the longest-standing way to copy a title into a question)
_QUOTED = re.compile(r"[\"“「『《]([^\"”」』》\n]{2,}?)[\"”」』》]")
#: a colon near the start: the frame before it, the copied text after it
_COLON = re.compile(r"[:：]")
COLON_WINDOW = 64

_ZH_HEAD = re.compile(
    r"^(?:请|麻烦|帮我|给我|帮忙|帮|能不能|可以|图库里|我)*"
    r"(?:匹配到?|找出?|找到|找下图|找图|求图|搜索?|搜一下图?|检索|查找|看看|看下|要看|想看|想要|有没有|"
    r"哪一?张(?:图片?)?是|按这段描述找图)"
    r"(?:一下|一张|一个|一件|一条|一双|一款|出|到)*(?:与|和|跟|同)?"
)
_ZH_TAIL = re.compile(
    r"(?:最?(?:相关|相似|匹配|符合|对应)|有关)?的?(?:商品)?(?:图片|照片|图)?(?:是哪张|吗|呢|在哪|有吗|有图不|有图吗)?$"
)
_EN_HEAD = re.compile(
    r"^(?:please |can you |could you |i'?m |i am |i need )*"
    r"(?:find|search for|search|look for|looking for|show me|get me|retrieve|the photo of|the picture of|"
    r"is there an? (?:picture|photo|image) of|any (?:pics|pictures|photos) of|"
    r"which (?:product )?(?:picture|image|photo) (?:shows|matches|is))"
    r"(?: me)?(?: the| a| an| some)?(?: (?:best )?(?:matching )?(?:image|picture|photo|pic)s?)?"
    r"(?: (?:that|which))?(?: best)?(?: (?:matches|of|for|showing|with|fits))?(?: the (?:title|description))?",
    re.IGNORECASE,
)
_EN_TAIL = re.compile(r"(?: (?:image|picture|photo|pic)s?)$", re.IGNORECASE)

_MATCH_HEAD = re.compile(
    r"^(?:请问|请判断|这张图是不是|是那个|这个就是|这个是|这货是)?(?:这张图片?|这张|图片|图中|图里|这个|这件|这款|这|"
    r"is (?:this|that|it)(?: an? (?:picture|image|photo) of)?|(?:this is )?supposed to be|"
    r"does this(?: image| picture| photo)?(?: match| fit)?)"
    r"(?:是否|是不是|符合|与|和|是|那种|a |an |the )*",
    re.IGNORECASE,
)
_MATCH_TAIL = re.compile(
    r"(?:这个描述|的描述|这个标题)?(?:吗这个|吗|嘛|么|不|, right| - does (?:this|the) (?:picture|photo|image) fit)?$", re.IGNORECASE
)
#: a "title" that only points at the attached image ("和这张图相似的")
_SELF = re.compile(r"^(?:这张|这个|该|此)?(?:图片?|照片|商品)?(?:相似|类似)?$|^(?:this|that|the) (?:one|image|picture|photo)$", re.IGNORECASE)


def _quoted(text: str) -> str:
    m = _QUOTED.search(text)
    return m.group(1).strip() if m else ""


def _after_colon(text: str) -> str:
    m = _COLON.search(text, 0, COLON_WINDOW)
    return text[m.end():].strip() if m else ""


def _strip(text: str, head: re.Pattern[str], tail: re.Pattern[str]) -> str:
    out = clean_query(text)
    out = head.sub("", out, count=1).strip()
    out = tail.sub("", clean_query(out), count=1).strip()
    return clean_query(out)


def search_text(question: str, images: list[str]) -> str:
    """What a retrieve question searches for; "" to search by the attached image."""
    text = IMAGE_NAME.sub(" ", fold_space(question)).strip()
    found = _quoted(text) or _after_colon(text)
    if found:
        return clean_query(found)
    heads, tails = (_ZH_HEAD, _ZH_TAIL) if re.search(r"[\u4e00-\u9fff]", text[:4]) else (_EN_HEAD, _EN_TAIL)
    q = _strip(text, heads, tails)
    if images and (not q or _SELF.match(q)):
        return ""
    return q or clean_query(text)


def match_text(question: str) -> str:
    """The description a match question checks the image against."""
    text = IMAGE_NAME.sub(" ", fold_space(question)).strip()
    found = _quoted(text) or _after_colon(text)
    if found:
        return _MATCH_TAIL.sub("", clean_query(found), count=1).strip() or clean_query(found)
    return _strip(text, _MATCH_HEAD, _MATCH_TAIL) or clean_query(text)


__all__ = ["match_text", "search_text"]
