"""What every reading of a question shares: its language, the image names written in it, its
text folded, a copied title cleaned. Structure only: no keyword decides a question's type.
"""

from __future__ import annotations

import re

from vlagent.agent.types import Language

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
IMAGE_NAME = re.compile(
    r"(?<![\w.\-/\\])([\w\-\u4e00-\u9fff]+(?:[./\\][\w\-\u4e00-\u9fff]+)*\.(?:jpe?g|png|webp|bmp|gif|tiff?))\b",
    re.IGNORECASE,
)
_QUOTES = "\"'“”‘’「」『』《》<>【】[]()（）"
_TRAIL = " \t\r\n。.,，!！?？;；:：、~"


def detect_language(text: str) -> Language:
    """zh when CJK 'words' (characters / 1.5) are at least as many as Latin words."""
    cjk = len(_CJK.findall(text))
    if cjk == 0:
        return "en"
    latin = len(_LATIN_WORD.findall(IMAGE_NAME.sub(" ", text)))
    return "zh" if cjk / 1.5 >= latin else "en"


def mentioned_images(text: str) -> list[str]:
    """Image file names written in the question (``abc.jpg``, ``images/x.png``)."""
    return [m.group(1) for m in IMAGE_NAME.finditer(text)]


def merge_images(given: list[str], text: str) -> list[str]:
    out: dict[str, None] = {}  # insertion-ordered set: a text naming thousands of files stays linear
    for name in [*given, *mentioned_images(text)]:
        name = name.strip()
        if name:
            out.setdefault(name)
    return list(out)


_SPACE_RUN = re.compile(r"\s+")


def fold_space(text: str) -> str:
    r"""``text`` stripped, each whitespace run folded to one character: a line break when the
    run holds one (``.`` still stops at line ends, as it did on the raw text), else a space.

    The rules read this form, so no ``\s*`` or ``\s+`` in a pattern matches more than one
    character and none backtracks over a long run of spaces."""
    return _SPACE_RUN.sub(lambda m: "\n" if "\n" in m.group() else " ", text.strip())


def clean_query(text: str) -> str:
    """A retrieval title without wrapping quotes, filler and trailing punctuation."""
    q = text.strip().strip(_TRAIL)
    for _ in range(3):
        q = q.strip().strip(_TRAIL)
        if len(q) >= 2 and q[0] in _QUOTES and q[-1] in _QUOTES:
            q = q[1:-1]
    q = re.sub(r"^(?:一张|一个|一件|一条|一双|一款|一只|一下|出|下)\s*", "", q)
    q = re.sub(r"^(?:the|an?|some|all)\s+", "", q, flags=re.IGNORECASE)
    q = re.sub(r"(?:相关|相似|匹配|对应)?的?$", "", q) if re.search(r"[\u4e00-\u9fff]$", q) else q
    q = q.strip().strip(_TRAIL)
    if len(q) >= 2 and q[0] in _QUOTES and q[-1] in _QUOTES:
        q = q[1:-1].strip()
    return q


__all__ = ["IMAGE_NAME", "clean_query", "detect_language", "fold_space", "mentioned_images", "merge_images"]
