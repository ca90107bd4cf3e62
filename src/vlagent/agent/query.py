r"""The text a retrieve or match question carries: the title or description it copies.

The type is already decided (:mod:`vlagent.agent.understand`); this only cuts the frame off the
copied text, which no classifier does: "请匹配到与 <标题> 最相关的图片。", "找一张 <描述> 的图",
"Find the picture of <description>", "这张图片符合“<描述>”吗？", "Is this a <description>?".
In order:

1. a quoted span (“…”, "…", 「…」, 『…』, 《…》): the copied text;
2. else the text after a colon near the start ("按这段描述找图：…", "Title says: …");
3. then the frame's words are cut from both ends: a run of tokens (a Chinese character, a Latin
   word, a punctuation mark) that are **frame words**. The frame words are learned from the
   labelled questions (:func:`learn_frame_words`, at ``vlagent classifier train``): tokens seen
   at least twice in the words around a labelled query and at least 70 % of the time there
   rather than inside queries (both thresholds chosen by 5-fold cross-validation on the
   labelled retrieve and match questions). They ship in the classifier's weights file.

An empty result means "search by the attached image" ("找和这张图相似的图片").

**Linear time on any input**: one tokenising pass, then two walks from the ends.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable

from vlagent.agent.language import IMAGE_NAME, clean_query, fold_space

#: a quoted span (the longest-standing way to copy a title into a question)
_QUOTED = re.compile(r"[\"“「『《]([^\"”」』》\n]{2,}?)[\"”」』》]")
#: a colon near the start: the frame before it, the copied text after it
_COLON = re.compile(r"[:：]")
COLON_WINDOW = 64
#: a token: a Latin word (with digits, apostrophes, hyphens, dots), one CJK character, or one other mark
_TOKEN = re.compile(r"[a-z0-9][a-z0-9'\-.]*|[\u4e00-\u9fff]|[^\sa-z0-9\u4e00-\u9fff]", re.IGNORECASE)

MIN_COUNT = 2
MIN_SHARE = 0.7


def _tokens(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(0).lower(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def _prepared(question: str) -> str:
    return IMAGE_NAME.sub(" ", fold_space(question)).strip()


def learn_frame_words(examples: Iterable[tuple[str, str]], min_count: int = MIN_COUNT, min_share: float = MIN_SHARE) -> list[str]:
    """Frame words from (question, its labelled query) pairs: tokens of the text around the
    query seen ``min_count`` times or more, and ``min_share`` of the time there, not inside queries."""
    around: Counter[str] = Counter()
    inside: Counter[str] = Counter()
    for question, query in examples:
        text, q = _prepared(question), query.strip()
        at = text.lower().find(q.lower()) if q else -1
        if at < 0:
            continue
        around.update(t for t, _, _ in _tokens(text[:at]) + _tokens(text[at + len(q):]))
        inside.update(t for t, _, _ in _tokens(q))
    return sorted(w for w, n in around.items() if n >= min_count and n / (n + inside[w]) >= min_share)


def copied_text(question: str, frame_words: Collection[str]) -> str:
    """The title or description a question copies ("" when it is all frame: search by image)."""
    text = _prepared(question)
    quoted = _QUOTED.search(text)
    if quoted:
        return clean_query(quoted.group(1))
    colon = _COLON.search(text, 0, COLON_WINDOW)
    if colon:
        text = text[colon.end():]
    for _ in range(4):  # cleaning can bare more frame ("… 最相关的图片": 的 stops the walk, 最 is left)
        tokens = _tokens(text)
        start, end = 0, len(tokens)
        while start < end and tokens[start][0] in frame_words:
            start += 1
        while end > start and tokens[end - 1][0] in frame_words:
            end -= 1
        if start >= end:
            return ""
        cleaned = clean_query(text[tokens[start][1] : tokens[end - 1][2]])
        if cleaned == text:
            break
        text = cleaned
    return text


__all__ = ["copied_text", "learn_frame_words"]
