r"""Is a question an image-text matching question ("does this image fit this description?"), and
which description does it check? :func:`match_description` answers with the description, or None.

Wordings (zh and en), the description marked ``D``:

* a frame, a colon, then D: ``这张图片是否符合这个产品的描述：D？``, ``Does this image match: D?``
  (the text before the colon names matching: 符合 / 相符 / 吻合 / 一致 / match / fit / correspond);
* a frame before D: ``这张图片符合D吗？``, ``图片与“D”这个描述相符吗？``, ``这是不是D？``, ``这是D吗？``,
  ``图中是D吗？``, ``Does this picture fit the description D?``, ``Is this a picture of D?``,
  ``Is this a D?``;
* D before a frame: ``D，这张图片符合吗？``, ``D - does this image match?``.

Not a match question: a description that asks (什么 / 哪 / 多少 / what / which / how: ``这是什么？``,
``Is this a what?``), a title search (``请匹配到与 D 最相关的图片``: no frame here starts that way),
a question about one attribute (``这件衣服是不是纯棉的？``: the frames point at the image, not at
a product word).

**Linear time, by construction.** The question is folded (:func:`vlagent.agent.rules.fold_space`,
one pass); then each frame is a bounded run of literals matched only inside a window: a frame at
the start against the first :data:`PREFIX_WINDOW` characters (``match(text, 0, PREFIX_WINDOW)``),
a closing frame against the last :data:`TAIL_WINDOW` (``search(text, len - TAIL_WINDOW)``), a
colon looked for in the first window; the only patterns that read the whole description are
literal alternations (:data:`_ASKS`), one pass each. No pattern has a nested quantifier.
"""

from __future__ import annotations

import re

from vlagent.agent.questions import RuleHit, RuleInput
from vlagent.agent.rules import fold_space

PREFIX_WINDOW = 96  # a frame at the start is shorter than this
TAIL_WINDOW = 64  # a closing frame is shorter than this

#: set to a list (tests): every regex call is recorded as (pattern, pos, endpos)
_TRACE: list[tuple[str, int, int]] | None = None


def _match(p: re.Pattern[str], text: str, pos: int, endpos: int) -> re.Match[str] | None:
    if _TRACE is not None:
        _TRACE.append((p.pattern, pos, endpos))
    return p.match(text, pos, endpos)


def _search(p: re.Pattern[str], text: str, pos: int, endpos: int) -> re.Match[str] | None:
    if _TRACE is not None:
        _TRACE.append((p.pattern, pos, endpos))
    return p.search(text, pos, endpos)


_IMG_ZH = r"(?:请问|请判断|请问一下)?(?:这张|这幅|这个|该|此|上面的|上面|给定的|给定)?(?:商品图片|商品图|图片|图像|照片|图|商品)(?:中的商品|里的商品|上的商品|中的|里的|中|里|上)?"
_REF_ZH = r"(?:请问)?(?:这张图片|这张图|这幅图|这个商品|这件商品|这款商品|图片中|图片里|图片上|图中|图里|图上|这个|这件|这款|这)(?:的商品)?"
_IMG_EN = r"(?:this|the|that|your|my) (?:image|picture|photo|photograph|pic|product image|product photo)"
_DESC_EN = r"(?:the |this |that |a |an )?(?:product description|description|title|caption|text)?"
_END = r"[？?。.!！]*\Z"

#: (frame at the start, closing frame, the closing frame is required)
_FRAMES: list[tuple[re.Pattern[str], re.Pattern[str], bool]] = [
    (  # 这张图片（是否）符合 D（这个描述）吗？
        re.compile(_IMG_ZH + r"(?:是否|是不是|能否|可否)?(?:符合|吻合|契合|对应)(?:以下|下面|下列|这个|这条|这段|该|此)?(?:产品|商品)?的?(?:描述|说明|标题|文案|介绍)?[:：,， ]?"),
        re.compile(r"(?:这个|这一|该|此|的)?(?:描述|说明|标题)?(?:吗|么|嘛)?" + _END),
        False,
    ),
    (  # 图片与 D（这个描述）相符吗？
        re.compile(_IMG_ZH + r"(?:和|与|跟)(?:以下|下面|这个|这段|该)?(?:产品|商品)?的?(?:描述|说明|标题|文字)?[:：,， ]?"),
        re.compile(r"(?:这个|这一|该|此|的)?(?:描述|说明|标题|文字)?(?:是否|是不是|能否)?(?:相符|一致|吻合|符合|匹配|对得上)(?:吗|么|嘛)?" + _END),
        True,
    ),
    (  # 这是不是 D？
        re.compile(_REF_ZH + r"是不是"),
        re.compile(r"(?:吗|呢)?" + _END),
        False,
    ),
    (  # 这是 D 吗？
        re.compile(_REF_ZH + r"(?:就是|是)"),
        re.compile(r"(?:吗|么)" + _END),
        True,
    ),
    (  # does this image match (the description) D?
        re.compile(r"(?:please )?(?:does|do|would|will|can) " + _IMG_EN + r" (?:match|fit|suit|correspond to|agree with) " + _DESC_EN + r"(?: of)?[:,]? ?", re.IGNORECASE),
        re.compile(r"[?.!]*\Z"),
        False,
    ),
    (  # is this (really) a picture of D?
        re.compile(r"(?:is|was) (?:this|it|that) (?:really |actually )?(?:a |an )?(?:picture|photo|image|photograph|pic|shot) of ", re.IGNORECASE),
        re.compile(r"[?.!]*\Z"),
        False,
    ),
    (  # is this a D?
        re.compile(r"(?:is|was) (?:this|it|that) (?:really |actually )?(?:a|an) ", re.IGNORECASE),
        re.compile(r"\?+\Z"),
        True,
    ),
]
#: D, then a closing frame: ``D，这张图片符合吗？``, ``D - does this picture match?``
_CLOSERS: list[re.Pattern[str]] = [
    re.compile(r"[，,。.;；:： —\-]*(?:请问)?(?:这张|这幅|该|此|给定的)?(?:图片|图像|照片|图)(?:是否|是不是|能否)?(?:符合|吻合|相符|对得上|一致)(?:这个|该|此|这段|上述|以上)?(?:描述|说明|标题)?(?:吗|么|嘛)?" + _END),
    re.compile(r"[,.;:!? \-]*(?:does|do|would|will) " + _IMG_EN + r" (?:match|fit)(?: it| this| that| the description| this description| the text)?[?.!]*\Z", re.IGNORECASE),
]
#: the text before a colon says "match": 这张图片是否符合这个产品的描述：
_COLON_HEAD = re.compile(r"符合|相符|吻合|一致|契合|\bmatch|\bfit|\bcorrespond", re.IGNORECASE)
#: a description that asks something is a question of another kind (这是什么？)
_ASKS = re.compile(r"什么|哪|多少|几个|几件|几种|怎么|怎样|如何|为什么|为何|谁|\bwhat\b|\bwhich\b|\bhow\b|\bwhere\b|\bwhy\b|\bwho\b|\bwhose\b", re.IGNORECASE)
_LEAD = re.compile(r"(?:一张|一个|一件|一条|一双|一款|一只|the |an |a )", re.IGNORECASE)
_QUOTES = "\"'“”‘’「」『』《》<>【】"
_STRIP = " \t\n,，。.!！?？;；:：、~-—"


def _clean(desc: str) -> str | None:
    d = desc.strip(_STRIP)
    for _ in range(2):
        d = d.strip(_STRIP).strip(_QUOTES).strip(_STRIP)
    if (m := _match(_LEAD, d, 0, min(len(d), 8))) is not None:
        d = d[m.end() :].strip(_STRIP)
    if len(d) < 2 or _search(_ASKS, d, 0, len(d)):
        return None
    return d


def match_description(question: str) -> str | None:
    """The description an image-text matching question checks the image against, or None when
    the question is not one (module docstring: the wordings). Linear in the question's length."""
    text = fold_space(question)
    n = len(text)
    if n < 3:
        return None
    head_end = min(n, PREFIX_WINDOW)
    tail_start = max(0, n - TAIL_WINDOW)
    # 1. frame：D
    colon = min((i for i in (text.find("：", 0, head_end), text.find(":", 0, head_end)) if i >= 0), default=-1)
    if colon > 0 and _search(_COLON_HEAD, text, 0, colon) and not _search(_ASKS, text, 0, colon):
        body_start = colon + 1
        tail = _TAIL_AFTER_COLON
        m = _search(tail, text, max(body_start, tail_start), n)
        return _clean(text[body_start : m.start() if m else n])
    # 2. frame D (closing frame)
    for prefix, closer, required in _FRAMES:
        start = _match(prefix, text, 0, head_end)
        if start is None or start.end() >= n:
            continue
        end = _search(closer, text, max(start.end(), tail_start), n)
        if end is None and required:
            continue
        return _clean(text[start.end() : end.start() if end else n])
    # 3. D, closing frame
    for closer in _CLOSERS:
        end = _search(closer, text, tail_start, n)
        if end is not None and end.start() > 0:
            return _clean(text[: end.start()])
    return None


_TAIL_AFTER_COLON = re.compile(r"(?:这个|该|的)?(?:描述|说明)?(?:吗|么|嘛)?" + _END)

__all__ = ["PREFIX_WINDOW", "TAIL_WINDOW", "match_description"]


def match_rule(r: RuleInput) -> RuleHit | None:
    """The ``match`` card's rule step: a matching frame around a description, about one image
    (two or more images asking "which one fits" compare them); the description is the query."""
    if len(r.images) > 1 or not r.visual:
        return None
    description = match_description(r.text)
    return RuleHit("match", description) if description else None
