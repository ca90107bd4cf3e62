"""The cues an answer needs from the question's words, read once into the :class:`Intent`.

The type says most of it (an ocr question is answered from the text read; a compare question
from each image's facts). What the type cannot say, and the answer writer needs:

* ``colour`` / ``colour_only``: a question about colour, and one that asks nothing else; then
  the colours the tool measured are the answer (each image's, for several), whatever an LLM
  would write;
* ``which``: "哪一个是帽子？" / "Which one is red?" over several images: the thing asked about;
* ``transcribe``: "标签上写了什么？" / "What does it say?": the text as read is the answer.

A handful of short patterns, each a bounded run of literals (linear time on any input).
"""

from __future__ import annotations

import re

from vlagent.agent.language import fold_space
from vlagent.agent.types import Cues

#: a question about colour (the colour words themselves are the colours tool's vocabulary)
_COLOUR = re.compile(r"颜色|颜涩|什么色|啥色|colou?r", re.IGNORECASE)
#: the colour ask itself, removed before looking for another ask
_COLOUR_ASK = re.compile(
    r"(?:是)?(?:什么|啥|哪种|哪些)(?:颜色|颜涩|色)|颜色是(?:什么|啥)|颜色|"
    r"\b(?:what|which)(?: is| are|'s)?(?: the)? colou?rs?(?: is| are| of)?|colou?rs?\b",
    re.IGNORECASE,
)
#: another ask left in the question ("什么颜色，什么面料？", "款式、颜色、材质"): a question word, a
#: list of aspects, or another attribute named
_OTHER_ASK = re.compile(
    r"什么|啥|哪|多少|几|怎么|如何|、|材质|面料|款式|尺码|"
    r"\b(?:what|which|how|where|who|why|does|is it|material|fabric|style|size)\b",
    re.IGNORECASE,
)
#: "哪一个是帽子" / "which one is red": the thing asked about
_WHICH_ZH = re.compile(r"(?:哪一?个|哪一?张|哪一?件|哪款)[^，。？?]*?(?:是|有)(?:一[个顶件双只张条款])?([^，。？?\s]{1,8})")
_WHICH_EN = re.compile(r"\bwhich\b[^?]*?\b(?:shows?|is|has|contains?|are)\s+(?:a |an |the |some )?(?:pair of )?([a-z\-]+)", re.IGNORECASE)
#: a request for the text itself, not for something derived from it ("吊牌上的价格是多少" is not one)
_TRANSCRIBE = re.compile(
    r"写(?:的|了|着)(?:是)?(?:什么|啥)|识别.{0,8}文字|读出|读一下|念一下|文字内容|(?:全部|所有)的?文字|"
    r"\bwhat does .{0,40}\bsay\b|\bwhat(?: is|'s) (?:written|printed)\b|\btranscribe\b|\bread (?:out |me )?(?:the|all|what)\b",
    re.IGNORECASE,
)


def read_cues(question: str, images: list[str]) -> Cues:
    """The cues of one question (with its images)."""
    text = fold_space(question)
    colour = bool(_COLOUR.search(text))
    which = ""
    if len(images) >= 2:
        m = _WHICH_ZH.search(text) or _WHICH_EN.search(text)
        which = m.group(1).strip().rstrip("的") if m else ""
    return Cues(
        colour=colour,
        colour_only=colour and not _OTHER_ASK.search(_COLOUR_ASK.sub(" ", text)),
        which=which,
        transcribe=bool(_TRANSCRIBE.search(text)),
    )


__all__ = ["read_cues"]
