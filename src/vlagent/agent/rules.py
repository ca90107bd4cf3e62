"""The rule-based question classifier: keywords and regexes, Chinese and English, no model.

``classify_rules(question, images)`` tries the question cards' rules (``QuestionCard.rule``, the
detectors below) by their ``rule_priority``; the built-in ones decide in this order (first match wins):

0. **recommend** — a request for suggestions from the catalogue, from liked / disliked images or
   text: "推荐几款类似的", "根据这张图推荐一款相配的地毯", "我喜欢…不喜欢…", "show me more like this",
   "recommend something similar", "suggest …" (not a "请匹配到与 <标题> 最相关的图片" title search,
   not "尺码推荐" shop service).
1. **retrieve** — a search request: "请匹配到与 <标题> 最相关的图片", "找出/检索/搜索 … 的图片",
   "帮我找一条 …" (no image), "find the image that best matches …", "which picture shows …",
   "show me pictures of …". ``query`` is the title/description (quotes and punctuation
   stripped). With two or more images, "which picture shows …" is a *compare* question instead.
2. **chat** — shop-service words (退货, 发货, 优惠, refund, shipping …): no image needed.
3. **compare** — compare words (比较/对比/区别/哪个更/compare/difference/which one …) with an
   image or a visual reference, or two or more images (unless it is a reading question).
4. **ocr** — reading words (上面写/写的什么/文字/字样/read the text/what does … say/printed),
   or label words (标签/吊牌/洗标/品牌/label/tag/brand) unless the question asks for a visual
   attribute of the label itself (吊牌是什么颜色的 → vqa).
5. **describe** — 描述/介绍一下这张/describe/what is in this picture, with an image or a
   visual reference; without either it is a general question (chat).
6. **vqa** — any other question with an image or a visual reference (这张图/图中/this photo).
7. **chat** — everything else (greetings, general questions, no image).

``language`` is ``zh`` when the instruction (the question without a retrieval title) has at
least as many CJK "words" (CJK characters / 1.5) as Latin words, else ``en``; so "What does the
吊牌 say?" is English and "请匹配到与 Nike Air Max 90 最相关的图片" is Chinese.
``images`` are the given images followed by any image file names mentioned in the text.

**Linear time on any input.** The rules read the question with each whitespace run folded to
one character (:func:`fold_space`), and every pattern is a bounded run of literals (``.{0,60}``
at most; keyword tables through :class:`Keywords`), a capture that runs to the line's end, or a
``PREFIX (?P<q>.+?) TAIL`` title capture searched through :class:`TitlePattern`, which keeps
``re.search`` from scanning to the end of the line from every place PREFIX matches. 200,000
characters of any text classify in a fraction of a second (``benchmarks/rules_bench.py``
prints the figures; the question length limit, ``Settings.question_max_chars``, is the entry
points' job).
"""

from __future__ import annotations

import re

from vlagent.agent.questions import RuleHit, RuleInput, question_cards
from vlagent.agent.types import Classification, Language, QuestionType

# ----------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------
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


class TitlePattern:
    r"""A title capture ``PREFIX (?P<q>.+?) TAIL`` that searches :func:`fold_space` text in
    linear time and finds what ``re.search`` finds.

    ``re.search`` tries every start; wherever PREFIX matches, the lazy ``.+?`` grows to the end
    of its line when no TAIL follows, so k places on one line where PREFIX matches cost k × n
    steps (``"和" * 20000``: seconds; 200,000 characters: hours). A title lies on one line and
    its TAIL starts on that line (or right after its line break), so on a line where a TAIL
    stands, every PREFIX match before that TAIL succeeds. ``search`` looks only at the lines
    that have a TAIL, each from a little before its start (a PREFIX may end the line above) to
    the end of its last TAIL (lines that close together are one stretch): every start that
    fails there fails within a few characters. The first stretch with a match holds the
    leftmost start, matched again from there over the whole text (a title may run on past a
    line break; one more line's scan at most).

    ``pattern`` is the whole regex, ``tail`` what follows the capture's ``\s*``: both bounded
    runs of literals around the capture (no ``^``, ``\b`` or lookaround)."""

    #: more than the longest PREFIX (with its ``\s*``) can be
    SLACK = 32

    def __init__(self, pattern: str, tail: str, flags: int = 0) -> None:
        self.pattern = re.compile(pattern, flags)
        self.tail = re.compile(f"(?=({tail}))", flags)  # every TAIL, overlapping ones too

    def search(self, text: str) -> re.Match[str] | None:
        closes: dict[int, int] = {}  # start of a title's line → end of the last TAIL that can close it
        line_start = prev_start = scanned = 0
        for m in self.tail.finditer(text):
            start = m.start()
            nl = text.rfind("\n", scanned, start)  # every character is looked at once
            if nl >= 0:  # a new line: the one above starts after the last break before nl
                prev_start, line_start = text.rfind("\n", scanned, nl) + 1 or line_start, nl + 1
            scanned = start
            # a TAIL at the very start of a line closes a title on the line above
            key = prev_start if start == line_start > 0 else line_start
            closes[key] = max(closes.get(key, 0), m.end(1))
        stretches: list[list[int]] = []  # lines close together are searched in one go
        for begin, end in closes.items():
            begin = max(0, begin - self.SLACK)
            if stretches and begin <= stretches[-1][1] + self.SLACK:
                stretches[-1][1] = end
            else:
                stretches.append([begin, end])
        for begin, end in stretches:
            found = self.pattern.search(text, begin, end)
            if found:  # from that start, the match re.search makes (it may cross a line break)
                return self.pattern.match(text, found.start()) or found
        return None


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


# ----------------------------------------------------------------------------------------
# keyword tables
# ----------------------------------------------------------------------------------------
_PIC_ZH = r"(?:图片|图像|照片|相片|商品图|产品图|图)"
_PIC_EN = r"(?:images?|pictures?|photos?|pics?|product (?:images?|photos?|shots?))"

#: what ends a title in "请匹配到与 <标题> 最相关的图片" / "和 <标题> 最相似的图" / "找 <标题> 的图片" ...
_TITLE_TAIL = r"最(?:为)?(?:相关|相似|匹配|接近|符合|吻合|对应|贴切)的?(?:一张)?" + _PIC_ZH
_PAIR_TAIL = r"最(?:相关|相似|匹配|接近|符合)的(?:一张)?" + _PIC_ZH
_OF_TAIL = r"(?:相关|相符|匹配|对应)?的(?:商品)?" + _PIC_ZH
_PIC_TAIL = r"的" + _PIC_ZH
_WHERE_TAIL = r"的" + _PIC_ZH + r"(?:在哪|有吗|有哪些)"

#: (pattern, group with the query); tried in order on the whole (folded) question. A lazy title
#: capture followed by a tail goes through TitlePattern (linear time); a capture that runs to
#: the end (``(?P<q>.+)``) matches at the first place its prefix does.
_RETRIEVE_PATTERNS: list[TitlePattern | re.Pattern[str]] = [
    TitlePattern(
        r"(?:匹配|找|检索|搜索|查找|选出|挑出|找到|找出)[到出]?(?:一张|一下)?\s*(?:与|和|跟|同)\s*(?P<q>.+?)\s*"
        + _TITLE_TAIL,
        _TITLE_TAIL,
    ),
    TitlePattern(r"(?:与|和|跟)\s*(?P<q>.+?)\s*" + _PAIR_TAIL, _PAIR_TAIL),
    TitlePattern(
        r"(?:找出|找到|找一下|找一张|检索|搜索|搜一下|搜一搜|查找|帮我找|给我找|请找|找|搜)(?:出|到)?(?:一张|一下|所有)?\s*"
        r"(?:与|和|跟)?\s*(?P<q>.+?)\s*" + _OF_TAIL,
        _OF_TAIL,
    ),
    re.compile(r"哪(?:一)?张" + _PIC_ZH + r"?(?:是|展示了?|显示了?|里是|中是|最符合|符合|对应|拍的是)\s*(?P<q>.+)"),
    TitlePattern(r"有没有\s*(?P<q>.+?)\s*" + _PIC_TAIL, _PIC_TAIL),
    TitlePattern(r"(?:我想看看?|想看看?|给我看看?|看一下)\s*(?P<q>.+?)\s*" + _PIC_TAIL, _PIC_TAIL),
    re.compile(
        r"\b(?:find|get|retrieve|locate|pick|select|search for|look for|looking for)\s+(?:me\s+)?"
        r"(?:the|an?|all|some)?\s*(?:best\s+)?(?:matching\s+)?" + _PIC_EN + r"\s+"
        r"(?:that|which)?\s*(?:best\s+|most\s+closely\s+)?"
        r"(?:matche?s?|matching|fits?|corresponds? to|of|showing|shows?|with|for|depicting|depicts|containing|contains|related to)(?:\s+|\s*[:：]\s*)"
        r"(?:the\s+(?:title|description|text)\s*)?[:：]?\s*(?P<q>.+)",
        re.IGNORECASE,
    ),
    re.compile(
        r"\bwhich\s+(?:one\s+of\s+the\s+)?" + _PIC_EN + r"\s+(?:best\s+)?"
        r"(?:shows?|matche?s?|is|contains?|has|depicts?|fits?|corresponds? to)(?:\s+|\s*[:：]\s*)"
        r"(?:the\s+(?:title|description|text)\s*)?[:：]?\s*(?P<q>.+)",
        re.IGNORECASE,
    ),
    re.compile(
        r"\b(?:show|give|send)\s+me\s+(?:the\s+|an?\s+|some\s+)?" + _PIC_EN + r"\s+(?:of|for|with|showing)\s+(?P<q>.+)",
        re.IGNORECASE,
    ),
    re.compile(r"\bsearch\s+(?:the\s+catalog(?:ue)?\s+)?for\s+(?P<q>.+)", re.IGNORECASE),
    TitlePattern(r"(?P<q>.+?)\s*" + _WHERE_TAIL, _WHERE_TAIL, re.IGNORECASE),
]

#: with no image: "帮我找一条红色连衣裙" / "find a red floral dress"
_RETRIEVE_NO_IMAGE = [
    re.compile(
        r"^(?:请|麻烦)?(?:帮我|给我)?(?:找|搜|搜索|查找|检索|推荐)(?:一下|出|到)?(?:一条|一件|一双|一个|一款|一只|一些|几张|几款)?\s*(?P<q>.+)"
    ),
    re.compile(
        r"^(?:please\s+)?(?:find|search for|look for|show me|i(?:'m| am) looking for)\s+(?P<q>.+)",
        re.IGNORECASE,
    ),
]


class Keywords:
    r"""A keyword table searched as two regexes: its CJK words (no flags, so ``re`` skips straight
    to the places where one of their first characters stands) and its Latin words (any case,
    mostly ``\b``-delimited, which ``re`` has to try at every position). ``search`` answers as the
    single alternation ``cjk|latin`` would (a match, or None; not necessarily the leftmost one),
    several times faster on long text (``benchmarks/rules_bench.py``)."""

    def __init__(self, cjk: str, latin: str) -> None:
        self.cjk = re.compile(cjk)
        self.latin = re.compile(latin, re.IGNORECASE)
        self.pattern = f"{cjk}|{latin}"

    def search(self, text: str) -> re.Match[str] | None:
        return self.cjk.search(text) or self.latin.search(text)


#: "find similar pictures" with an image: image-to-image search, empty query
_SIMILAR = Keywords(
    r"(?:相似|类似|同款|差不多)的?(?:商品|款式)?" + _PIC_ZH + r"?",
    r"\bsimilar\s+(?:images?|pictures?|photos?|products?|items?)\b",
)
#: a captured "title" that only points at the attached image ("和这张图相似的图片")
_SELF_REF = re.compile(
    r"(?:这张|该|此|上面的?|这幅|这个|这件|这款)?(?:图|图片|照片|商品|图中的?商品)(?:相似|类似)?|"
    r"(?:this|the|that)\s+(?:one|image|picture|photo|product|item)",
    re.IGNORECASE,
)
#: "请匹配到与 <标题> 最相关的图片": a title search even when the title contains 推荐 / recommend
_TITLE_SEARCH = _RETRIEVE_PATTERNS[0]
_SIMILAR_VERB = Keywords(r"找|搜|检索|推荐", r"\bfind\b|\bsearch\b|\bshow\b|\bretrieve\b")

#: recommendation wording: suggestions from the catalogue, from likes / dislikes (images or text)
_RECOMMEND = Keywords(
    r"推荐|推介|还有(?:没有)?(?:别的|其他|其它|更多|类似)|更多(?:类似|相似|同类|这样)|再来(?:几|一)|"
    r"类似的(?:还有|款式有|商品有)|(?:我|比较)喜欢.{0,20}(?:不喜欢|不要|别)|不喜欢.{0,20}(?:换|推|找|来)|猜我喜欢",
    r"\brecommend|\bsuggest|\bmore (?:like|items like|products like) (?:this|these|that|it)\b|"
    r"\b(?:anything|something|items?|products?) (?:similar|like (?:this|these|that))\b|"
    r"\bI (?:like|love|prefer)\b.{0,60}\b(?:don't|do not|dislike|hate|not)\b|\bwhat (?:else )?would go (?:well )?with\b|"
    r"\b(?:goes|go|pair|match) (?:well )?with (?:this|these|it)\b",
)

_SERVICE = Keywords(
    r"退货|退款|退换|换货|发货|快递|物流|运费|包邮|优惠|优惠券|折扣|打折|满减|客服|订单|付款|支付|会员|积分|保修|售后|"
    r"发票|七天无理由|到货|下单|库存|有货|尺码推荐|怎么选尺码",
    r"\breturn policy\b|\breturns?\b|\brefunds?\b|\bshipping\b|\bdelivery\b|\bdeliver\b|\border\b|\bdiscounts?\b|"
    r"\bcoupons?\b|\bpayment\b|\bpay\b|\bwarranty\b|\bin stock\b|\bexchange\b|\binvoice\b",
)
_GREETING = re.compile(
    r"^(?:你好|您好|嗨|哈喽|早上好|晚上好|谢谢|多谢|再见|hi|hello|hey|thanks|thank you|good (?:morning|evening)|bye)\b",
    re.IGNORECASE,
)

_COMPARE = Keywords(
    r"比较|对比|比一比|相比|比起|区别|差别|差异|不同之处|有什么不同|有何不同|不一样|一样吗|相同吗|哪个更|哪件更|哪双更|哪条更|"
    r"哪款更|哪只更|哪一个更|哪一件|哪一双|哪一款|两张|两件|两款|两双|两条|两个包|这几张|这几件|这些图|分别",
    r"\bcompare\b|\bcomparison\b|\bdifferen(?:ce|t|ces)\b|\bdiffer\b|\bwhich one\b|\bwhich is (?:better|cheaper|more|less|lighter|warmer)|"
    r"\bversus\b|\bvs\.?\b|\bboth\b|\bthe two\b|\bthese (?:two|three|images|pictures|photos)\b|\bsame\b|\bsimilarit",
)

_READ = Keywords(
    r"上面写|上写|写(?:的|了|着)(?:是)?(?:什么|啥|哪)|写的是|写着|文字|字样|印(?:的|着|了)(?:什么|啥)?字|印的是什么|"
    r"印着什么|什么字|多少码|几码|尺码是多少|哪些字|读一下|读出|识别.{0,6}(?:文字|字|内容)|标注(?:的|了)|显示的?(?:尺码|价格|成分|日期)",
    r"\bread\b|\bsays?\b|\bwritten\b|\bprinted\b|\btext\b|\bwords?\b|\bwording\b|\bspell",
)
#: a request to transcribe the text ("识别标签上的文字", "What does the label say?"), not to use it
_TRANSCRIBE = Keywords(
    r"识别.{0,8}(?:文字|字|内容)|读出|读一下|念一下|抄(?:写|下)|(?:全部|所有)(?:的)?文字|文字内容|"
    r"(?:上面|上)?写(?:的|了|着)(?:是)?(?:什么|啥)(?:字|内容)?[？?。.]?$",
    r"\bwhat does .{0,40}\bsay\b|\bwhat(?: is|'s) (?:written|printed)\b|\btranscribe\b|\bread (?:out |me )?(?:the|all|what)\b",
)


def asks_to_transcribe(question: str) -> bool:
    """True when the answer is the text itself (the OCR result), not something derived from it."""
    return bool(_TRANSCRIBE.search(question.strip()))


_LABEL = Keywords(
    r"标签|吊牌|洗标|水洗标|洗涤说明|洗涤标|尺码标|尺码牌|领标|商标|品牌名|品牌|牌子|条形码|条码|二维码|价签|价格标签|"
    r"成分表|成分标|说明书|包装上|货号|型号",
    r"logo|\blabels?\b|\btags?\b|\bbrand(?:\s+name)?\b|\blogo\b|\bbarcode\b|\bcare instructions?\b|\bwashing instructions?\b|"
    r"\bsize (?:tag|label)\b|\bprice tag\b|\bsku\b|\bmodel number\b",
)
#: visual attributes of a label itself ("吊牌是什么颜色的") keep a label question a VQA question
_ATTRIBUTE = Keywords(
    r"颜色|什么色|哪种色|形状|材质|面料|多大|位置|在哪|挂在|几个",
    r"\bcolou?r\b|\bshape\b|\bmaterial\b|\bwhere\b|\bhow many\b",
)

_DESCRIBE = Keywords(
    r"描述|描写|介绍一下(?:这|图|它)|介绍(?:这张|这件|这款|图)|说说(?:这张|这件|图)|讲讲(?:这张|这件|图)|讲一下(?:这张|图)|"
    r"看看这张图|这张图(?:片)?(?:里|中|上)?(?:有什么|是什么|讲的是什么|拍的是什么|拍了什么)[？?。]?$|"
    r"图(?:片|像)?(?:里|中|上)(?:有什么|是什么)[？?。]?$|图(?:片)?(?:的)?内容",
    r"\bdescribe\b|\bdescription\b|\bdescribing\b|\bcaption\b|"
    r"\bwhat(?:'s| is) (?:in|shown in|on) (?:this|the) (?:image|picture|photo)\b|"
    r"\btell me about (?:this|the) (?:image|picture|photo|product|item)\b|\bwhat does (?:this|the) (?:image|picture|photo) show\b",
)

_VISUAL_REF = Keywords(
    r"这张|那张|图片|图像|照片|图中|图里|图上|这幅|该图|上图|图中的|图片中|画面|"
    r"这件|这款|这双|这条|这只|这个包|这顶|这副|这套|它的|它是",
    r"\bthis (?:image|picture|photo|pic|shot|shirt|dress|item|product|one|bag|shoe|shoes|jacket|coat|skirt|pair|hat)\b|"
    r"\bthe (?:image|picture|photo|pic)\b|\bin the (?:image|picture|photo)\b|\bshown\b|\bpictured\b",
)


# ----------------------------------------------------------------------------------------
# the rule classifier
# ----------------------------------------------------------------------------------------
def retrieval_query(question: str, images: list[str]) -> str | None:
    """The title a retrieval question searches for; None when it is not a retrieval question.

    An empty string means "search by the given image" (相似图片 / similar images).
    """
    text = fold_space(question)
    for pattern in _RETRIEVE_PATTERNS:
        m = pattern.search(text)
        if m:
            q = clean_query(IMAGE_NAME.sub("", m.group("q")))
            if q and _SELF_REF.fullmatch(q):
                return "" if images else None
            if q and not _looks_like_question_tail(q):
                return q
    if images and _SIMILAR.search(text) and _SIMILAR_VERB.search(text):
        return ""
    if not images:
        for pattern in _RETRIEVE_NO_IMAGE:
            m = pattern.search(text)
            if m:
                q = clean_query(re.sub(r"的?" + _PIC_ZH + r"$", "", m.group("q").strip().strip(_TRAIL)))
                if q and not _SERVICE.search(q):
                    return q
    return None


def _looks_like_question_tail(q: str) -> bool:
    """'哪张图片是什么颜色' style captures are not titles."""
    return bool(re.fullmatch(r"(?:什么|啥|哪|多少|谁|what|which|how).*", q, flags=re.IGNORECASE))


# each detector is one question card's step (``QuestionCard.rule``, :mod:`vlagent.agent.cards`);
# the card's ``rule_priority`` gives the order of the list in the module docstring
def recommend_rule(r: RuleInput) -> RuleHit | None:
    """0: recommendation wording, not shop service, not a title search."""
    if _RECOMMEND.search(r.text) and not _SERVICE.search(r.text) and not _TITLE_SEARCH.search(r.text):
        return RuleHit("recommend")
    return None


def retrieve_rule(r: RuleInput) -> RuleHit | None:
    """1: a search request (with two or more images, "which picture shows …" compares)."""
    query = retrieval_query(r.text, r.images)
    if query is None:
        return None
    if len(r.images) >= 2 and re.search(r"哪(?:一)?张|\bwhich\b", r.text, re.IGNORECASE):
        return RuleHit("compare")
    return RuleHit("retrieve", query)


def service_rule(r: RuleInput) -> RuleHit | None:
    """2: shop-service words: chat."""
    return RuleHit("chat") if _SERVICE.search(r.text) else None


def compare_rule(r: RuleInput) -> RuleHit | None:
    """3: comparison wording with something to look at, or two or more images (not reading)."""
    if (r.compare_words and r.visual) or (len(r.images) >= 2 and not r.reading):
        return RuleHit("compare")
    return None


def ocr_rule(r: RuleInput) -> RuleHit | None:
    """4: reading wording, or label wording (a visual attribute of the label itself: vqa)."""
    if r.reading and (r.visual or r.label):
        return RuleHit("ocr")
    if r.label and (r.visual or not _GREETING.search(r.text)):
        if _ATTRIBUTE.search(r.text) and r.images:
            return RuleHit("vqa")
        if r.visual or re.search(r"这|那|\bthis\b|\bthe\b", r.text, re.IGNORECASE):
            return RuleHit("ocr")
    return None


def describe_rule(r: RuleInput) -> RuleHit | None:
    """5: description wording: describe with something to look at, else chat."""
    if _DESCRIBE.search(r.text):
        return RuleHit("describe" if r.visual else "chat")
    return None


def vqa_rule(r: RuleInput) -> RuleHit | None:
    """6: anything else with an image or a visual reference."""
    return RuleHit("vqa") if r.visual else None


#: 7: what no card's rule claims
DEFAULT_TYPE = "chat"


def rule_input(question: str, images: list[str] | None = None) -> RuleInput:
    """The question folded, its images merged, and the wording every rule may ask about."""
    text = fold_space(question)
    imgs = merge_images([i for i in (images or []) if i], text)
    return RuleInput(
        text=text, images=imgs, visual=bool(imgs) or bool(_VISUAL_REF.search(text)), reading=bool(_READ.search(text)),
        label=bool(_LABEL.search(text)), compare_words=bool(_COMPARE.search(text)),
    )  # fmt: skip


def classify_rules(question: str, images: list[str] | None = None) -> Classification:
    """Classify ``question`` (with the attached ``images``) by keywords and regexes only: the
    registered cards' rules by ascending ``rule_priority``, the first hit wins."""
    r = rule_input(question, images)
    hit = RuleHit(DEFAULT_TYPE)
    for card in sorted((c for c in question_cards() if c.rule is not None), key=lambda c: c.rule_priority):
        found = card.rule(r)  # type: ignore[misc]
        if found is not None:
            hit = found
            break
    lang_text = r.text.replace(hit.query, " ") if hit.query else r.text
    return Classification(type=QuestionType(hit.type), language=detect_language(lang_text), query=hit.query, images=r.images)


__all__ = [
    "IMAGE_NAME",
    "Keywords",
    "TitlePattern",
    "classify_rules",
    "compare_rule",
    "describe_rule",
    "ocr_rule",
    "recommend_rule",
    "retrieve_rule",
    "rule_input",
    "service_rule",
    "vqa_rule",
    "clean_query",
    "detect_language",
    "fold_space",
    "mentioned_images",
    "merge_images",
    "retrieval_query",
]
