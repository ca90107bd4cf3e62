"""Image-text matching: does this image fit this product description?

:func:`match_image_text` weighs what is available here, each signal a vote (yes / no / none)
with a score in [0, 1] and one line of why, zh and en:

* **blip** (``Settings.match_blip_model``): BLIP's ITM probability
  (:mod:`vlagent.models.blip_itm`); yes at ``match_blip_yes``, no at ``match_blip_no``. BLIP's
  text encoder read English captions only: a description with Chinese characters is not sent
  to it (its score would be noise; ``details["blip"]`` says it was skipped).
* **clip**: CLIP's image-text cosine *calibrated against the catalogue*
  (:class:`ClipCalibrator`): the raw cosine of one pair says little (random, small or other
  models put every pair at 0.2-0.3), so the percentile of the text among the catalogue's
  titles for this image (how many titles the image prefers to it), and of the image among the
  catalogue's images for this text, decides: yes at ``match_clip_yes_percentile``, no at
  ``match_clip_no_percentile``, unsure between; with fewer than ``match_min_catalogue``
  titles/images the rank means nothing and CLIP gives no vote.
* **title** (the image has a catalogue title; e5 embeddings, :class:`TitleCalibrator`): where the
  image's own title ranks among the catalogue's titles for the text (``match_title_*``); the
  colours the title names are checked against the text's too.
* **colour**: the colours the text names (:func:`vlagent.index.attributes.colour_words`) against
  the image's measured colours (the colour tool, CIEDE2000 names): their share of the main
  object at ``match_colour_yes_share`` agrees, below ``match_colour_no_share`` contradicts
  ("图中主色是红色，描述写的是蓝色"). A related shade (navy for blue) counts half.
* **label**: the label words of the text (capitals, digits: ``XL``, ``100%``, ``SHANHAI``; and its
  Chinese two-character words) found in the image's OCR text. Latin label words none of which
  the label carries contradict (when OCR read text at all); Chinese words only ever agree.

The verdict: no votes at all → ``unsure`` ("cannot tell": no title, nothing named to check);
only yes votes → ``yes``; only no votes → ``no``; both → ``unsure``, naming both. An image with
no title (the competition's question images) is judged on what is seen alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from vlagent.index.attributes import RELATED, colour_words, label_words

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from vlagent.settings import Settings

Verdict = Literal["yes", "no", "unsure"]


class MatchResult(BaseModel):
    verdict: Verdict
    score: float = Field(ge=0.0, le=1.0, description="how well the text fits the image (0-1)")
    by: str = Field(description="the signal(s) that decided: blip, clip, title, colour, label, none")
    why: dict[str, str] = Field(description="one line of why: {'zh': ..., 'en': ...}")
    details: dict[str, Any] = Field(default_factory=dict, description="every signal: vote, score, numbers")

    def reason(self, lang: str) -> str:
        return self.why.get("zh" if lang == "zh" else "en", "")


@dataclass
class Signal:
    name: str
    vote: int  # +1 yes, -1 no, 0 no vote
    score: float
    zh: str
    en: str
    weight: float = 1.0
    numbers: Mapping[str, Any] | None = None

    def detail(self) -> dict[str, Any]:
        return {"vote": self.vote, "score": round(self.score, 4), "why": self.en, **dict(self.numbers or {})}


def _percentile(value: float, pool: np.ndarray) -> float:
    """The share of ``pool`` strictly below ``value``, ties counting half (1.0: above them all)."""
    if pool.size == 0:
        return 0.5
    below = float(np.sum(pool < value - 1e-7))
    ties = float(np.sum(np.abs(pool - value) <= 1e-7))
    return (below + 0.5 * ties) / float(pool.size)


def _vote(p: float, yes: float, no: float) -> int:
    return 1 if p >= yes else -1 if p <= no else 0


_CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
BLIP_ENGLISH_ONLY = "the description is not English: BLIP's ITM head reads English only"


def blip_reads(text: str) -> bool:
    """Whether BLIP's ITM head can read ``text``: no Chinese (CJK) characters in it."""
    return _CJK_CHAR.search(text) is None


# --------------------------------------------------------------------------------------------
# CLIP, calibrated against the catalogue
# --------------------------------------------------------------------------------------------
class ClipCalibrator:
    """A CLIP encoder and the catalogue it is calibrated against: the titles' text vectors (and
    the catalogue images' vectors, when given), encoded once.

    ``encoder``: anything with ``encode_images`` / ``encode_texts`` returning L2-normalised rows
    (:class:`vlagent.models.clip.ClipEncoder`)."""

    def __init__(self, encoder: Any, titles: Sequence[str], image_vectors: np.ndarray | None = None) -> None:
        self.encoder = encoder
        self.titles = [t for t in dict.fromkeys(t.strip() for t in titles) if t]
        self._title_vectors: np.ndarray | None = None
        self.image_vectors = None if image_vectors is None or not len(image_vectors) else np.asarray(image_vectors, dtype=np.float32)

    @property
    def title_vectors(self) -> np.ndarray:
        if self._title_vectors is None:
            self._title_vectors = np.asarray(self.encoder.encode_texts(self.titles), dtype=np.float32)
        return self._title_vectors

    def rank(self, image: "Image.Image", text: str) -> dict[str, Any]:
        """The cosine, and where the text ranks among the titles for the image (``text_rank``,
        1 = best, among ``text_pool`` titles plus the text) and the image among the catalogue's
        images for the text (``image_rank``), each with its percentile."""
        img = np.asarray(self.encoder.encode_images([image]), dtype=np.float32)[0]
        txt = np.asarray(self.encoder.encode_texts([text]), dtype=np.float32)[0]
        cosine = float(img @ txt)
        out: dict[str, Any] = {"cosine": round(cosine, 4)}
        keep = [i for i, t in enumerate(self.titles) if t != text.strip()]  # the text itself is not a rival
        if keep:
            sims = self.title_vectors[keep] @ img
            out.update(text_rank=1 + int(np.sum(sims > cosine + 1e-7)), text_pool=len(keep),
                       text_percentile=round(_percentile(cosine, sims), 4))  # fmt: skip
        if self.image_vectors is not None:
            vecs = self.image_vectors[self.image_vectors @ img < 0.999]  # the image itself is not a rival
            if len(vecs):
                sims = vecs @ txt
                out.update(image_rank=1 + int(np.sum(sims > cosine + 1e-7)), image_pool=int(len(vecs)),
                           image_percentile=round(_percentile(cosine, sims), 4))  # fmt: skip
        return out


def _clip_signal(clip: ClipCalibrator, image: "Image.Image", text: str, s: "Settings") -> Signal:
    r = clip.rank(image, text)
    pcts = [r[k] for k, pool in (("text_percentile", "text_pool"), ("image_percentile", "image_pool"))
            if k in r and r[pool] >= s.match_min_catalogue]  # fmt: skip
    if not pcts:
        return Signal("clip", 0, 0.5, f"CLIP 相似度 {r['cosine']:.2f}，图库太小，无法校准",
                      f"CLIP cosine {r['cosine']:.2f}, too few catalogue items to calibrate it", numbers=r)  # fmt: skip
    p = float(np.mean(pcts))
    vote = _vote(p, s.match_clip_yes_percentile, s.match_clip_no_percentile)
    where = f"{p:.0%}"
    zh = {1: f"CLIP 认为描述与图片相符（在图库中排前 {1 - p:.0%}）", -1: f"CLIP 认为描述与图片不相符（仅高于图库中 {where} 的标题）",
          0: f"CLIP 的匹配程度一般（图库百分位 {where}）"}[vote]  # fmt: skip
    en = {1: f"CLIP ranks the text among the best {max(1 - p, 0.0):.0%} for this image", -1: f"CLIP ranks the text above only {where} of the catalogue",
          0: f"CLIP puts it in the middle of the catalogue ({where})"}[vote]  # fmt: skip
    return Signal("clip", vote, p, zh, en, weight=2.0, numbers={**r, "percentile": round(p, 4)})


# --------------------------------------------------------------------------------------------
# the image's own title, ranked among the catalogue's titles (e5)
# --------------------------------------------------------------------------------------------
class TitleCalibrator:
    """The catalogue's titles embedded with multilingual-e5 (``e5.query`` / ``e5.passage``), to
    rank the image's own title among them for a text. ``passages``: the titles' vectors when
    already computed (the title index has them)."""

    def __init__(self, titles: Sequence[str], e5: Any, passages: np.ndarray | None = None) -> None:
        self.titles = list(titles)
        self.e5 = e5
        self.passages = np.asarray(passages if passages is not None else e5.passage([t.lower() for t in self.titles]), dtype=np.float32)
        self._row = {t.strip(): i for i, t in enumerate(self.titles)}

    def rank(self, title: str, text: str) -> dict[str, Any]:
        q = np.asarray(self.e5.query(text.lower()), dtype=np.float32)
        own = self._row.get(title.strip())
        own_vec = self.passages[own] if own is not None else np.asarray(self.e5.passage([title.lower()]), dtype=np.float32)[0]
        sim = float(own_vec @ q)
        others = np.delete(self.passages, own, axis=0) if own is not None else self.passages
        sims = others @ q if len(others) else np.zeros(0, dtype=np.float32)
        return {"similarity": round(sim, 4), "title_rank": 1 + int(np.sum(sims > sim + 1e-7)),
                "title_pool": int(len(sims)), "title_percentile": round(_percentile(sim, sims), 4)}  # fmt: skip


def _title_signal(titles: TitleCalibrator, title: str, text: str, s: "Settings") -> Signal:
    r = titles.rank(title, text)
    if r["title_pool"] < s.match_min_catalogue - 1:
        return Signal("title", 0, 0.5, "图库太小，标题相似度无法校准", "too few catalogue titles to calibrate the title's similarity", numbers=r)
    p = float(r["title_percentile"])
    vote = _vote(p, s.match_title_yes_percentile, s.match_title_no_percentile)
    zh = {1: f"商品标题“{title}”与描述相符", -1: f"商品标题“{title}”与描述不符", 0: f"商品标题“{title}”与描述部分相似"}[vote]
    en = {1: "the title matches", -1: "the title does not match", 0: "the title is only partly similar"}[vote]
    return Signal("title", vote, p, zh, en, weight=2.0, numbers=r)


# --------------------------------------------------------------------------------------------
# colours and label words: what is seen
# --------------------------------------------------------------------------------------------
def _names(colours: Sequence[Mapping[str, Any]], lang: str) -> str:
    key = "name_zh" if lang == "zh" else "name_en"
    main = [str(c[key]) for n, c in enumerate(colours) if n == 0 or float(c.get("fraction", 0)) >= 0.1]
    return ("、" if lang == "zh" else ", ").join(main)


def _named(words: Sequence[str], lang: str) -> str:
    cw = colour_words()
    names = [cw.zh_of.get(w, w) for w in words] if lang == "zh" else list(words)
    return ("、" if lang == "zh" else " or ").join(names)


def colour_check(text: str, colours: Sequence[Mapping[str, Any]] | None, s: "Settings") -> Signal | None:
    """The colours ``text`` names vs the measured ones (None: it names none, or none measured)."""
    cw = colour_words()
    named = cw.find(text)
    if not named or not colours:
        return None
    share = 0.0
    for word in named:  # the best-covered named colour decides
        own = 0.0
        for c in colours:
            en = str(c.get("name_en", "")).lower()
            frac = float(c.get("fraction", 0.0))
            own += frac if en == word else RELATED * frac if cw.related(en, word) else 0.0
        share = max(share, own)
    share = min(share, 1.0)
    numbers = {"named": named, "share": round(share, 4), "measured": [c.get("name_en") for c in colours]}
    seen_zh, seen_en = _names(colours, "zh"), _names(colours, "en")
    if share >= s.match_colour_yes_share:
        return Signal("colour", 1, min(1.0, 0.5 + share / 2), f"颜色一致：图中主要是{seen_zh}",
                      f"the colours agree: the image is mainly {seen_en}", weight=1.0, numbers=numbers)  # fmt: skip
    if share < s.match_colour_no_share:
        return Signal("colour", -1, share, f"图中主色是{seen_zh}，描述写的是{_named(named, 'zh')}",
                      f"the image is mainly {seen_en}, the description says {_named(named, 'en')}", weight=2.0, numbers=numbers)  # fmt: skip
    return Signal("colour", 0, 0.5, f"描述的颜色只占图中一小部分（{share:.0%}）",
                  f"the colour named covers only part of the image ({share:.0%})", numbers=numbers)  # fmt: skip


_CJK_RUN = re.compile(r"[\u4e00-\u9fff]+")
#: two-character words of a description that say nothing about a label's text
_FILLER_ZH = frozenset("的是吗这那张图片照商品产描述符合标签吊牌上写有着一个件款")


def _cjk_words(text: str) -> list[str]:
    out: list[str] = []
    for run in _CJK_RUN.findall(text):
        for i in range(len(run) - 1):
            pair = run[i : i + 2]
            if not (set(pair) & _FILLER_ZH):
                out.append(pair)
    return list(dict.fromkeys(out))


def label_check(text: str, ocr_text: str | None) -> Signal | None:
    """The label words of ``text`` vs the OCR text (None: nothing to check, or no OCR here)."""
    if ocr_text is None:
        return None
    latin = label_words(text)
    tokens = {t.lower() for t in re.findall(r"[A-Za-z0-9]+", ocr_text)}
    found = [w for w in latin if w in tokens]
    cjk = [w for w in _cjk_words(text) if w in ocr_text]
    numbers = {"label_words": latin, "found": found + cjk, "ocr_chars": len(ocr_text)}
    if found or cjk:
        shown = "、".join(([w.upper() for w in found] + cjk)[:3])
        share = len(found) / len(latin) if latin else 1.0
        return Signal("label", 1, min(1.0, 0.6 + 0.4 * share), f"图中文字有“{shown}”", f"the label reads {shown.replace('、', ', ')}",
                      weight=1.0 + share, numbers=numbers)  # fmt: skip
    if latin and ocr_text.strip():
        return Signal("label", -1, 0.1, f"图中文字没有“{'、'.join(w.upper() for w in latin[:3])}”", f"the label does not read {', '.join(w.upper() for w in latin[:3])}",
                      weight=1.5, numbers=numbers)  # fmt: skip
    return None


# --------------------------------------------------------------------------------------------
# the verdict
# --------------------------------------------------------------------------------------------
def decide(signals: Sequence[Signal]) -> MatchResult:
    """One verdict from the signals (see the module's docstring)."""
    details = {sig.name: sig.detail() for sig in signals}
    yes = [g for g in signals if g.vote > 0]
    no = [g for g in signals if g.vote < 0]
    voting = yes + no
    if not voting:
        told = [g for g in signals if g.name in ("clip", "blip", "title")]
        zh = "；".join(g.zh for g in told) or "图片没有标题，描述里也没有可核对的颜色或文字"
        en = "; ".join(g.en for g in told) or "the image has no title and the description names no colour or label text to check"
        score = float(np.mean([g.score for g in told])) if told else 0.5
        return MatchResult(verdict="unsure", score=round(score, 4), by="+".join(g.name for g in told) or "none",
                           why={"zh": zh, "en": en}, details=details)  # fmt: skip
    verdict: Verdict = "yes" if not no else "no" if not yes else "unsure"
    score = sum(g.score * g.weight for g in voting) / sum(g.weight for g in voting)
    if verdict == "yes":
        score = max(score, 0.5)
    elif verdict == "no":
        score = min(score, 0.5)
    zh = "，".join(g.zh for g in voting)
    en = ", ".join(g.en for g in voting)
    if verdict == "unsure":
        zh, en = f"证据矛盾：{zh}", f"the evidence disagrees: {en}"
    elif len(voting) == 1 and voting[0].name == "colour" and verdict == "yes":
        zh, en = f"{zh}（商品本身无法核对）", f"{en} (the product itself could not be checked)"
        score = min(score, 0.7)
    return MatchResult(verdict=verdict, score=round(float(score), 4), by="+".join(g.name for g in voting),
                       why={"zh": zh, "en": en}, details=details)  # fmt: skip


def match_image_text(
    image: "Image.Image | None",
    text: str,
    settings: "Settings",
    *,
    title: str | None = None,
    colours: Sequence[Mapping[str, Any]] | None = None,
    ocr_text: str | None = None,
    clip: ClipCalibrator | None = None,
    itm: Callable[["Image.Image", str], float] | None = None,
    titles: TitleCalibrator | None = None,
) -> MatchResult:
    """Does ``image`` fit ``text``?

    What is known of the image comes in as arguments: ``title`` (its catalogue title, None when
    it has none), ``colours`` (the colour tool's measured colours, dicts with ``name_en`` and
    ``fraction``), ``ocr_text`` (None: no OCR here); the models as calibrated scorers: ``clip``
    (:class:`ClipCalibrator`), ``itm`` (BLIP: ``(image, text) -> probability``), ``titles``
    (:class:`TitleCalibrator`, for the title). Thresholds: ``settings.match_*``."""
    s = settings
    text = " ".join(text.split())
    signals: list[Signal] = []
    blip_skipped = itm is not None and image is not None and not blip_reads(text)
    if itm is not None and image is not None and not blip_skipped:
        p = float(itm(image, text))
        vote = _vote(p, s.match_blip_yes, s.match_blip_no)
        zh = {1: "BLIP 判断图文相符", -1: "BLIP 判断图文不符", 0: "BLIP 无法确定"}[vote]
        en = {1: "BLIP says the text fits the image", -1: "BLIP says it does not fit", 0: "BLIP is not sure"}[vote]
        signals.append(Signal("blip", vote, p, zh, en, weight=2.0, numbers={"probability": round(p, 4)}))
    if clip is not None and image is not None:
        signals.append(_clip_signal(clip, image, text, s))
    seen = colour_check(text, colours, s)
    if title and title.strip():
        if titles is not None:
            signals.append(_title_signal(titles, title, text, s))
        title_colours = colour_words().find(title)
        named = colour_words().find(text)
        contradicted = seen is not None and seen.vote < 0  # said once, by what was measured
        if title_colours and named and not contradicted and not any(colour_words().related(a, b) for a in title_colours for b in named):
            signals.append(Signal("title_colour", -1, 0.1, f"标题写的是{_named(title_colours, 'zh')}，描述写的是{_named(named, 'zh')}",
                                  f"the title says {_named(title_colours, 'en')}, the description {_named(named, 'en')}",
                                  weight=1.5, numbers={"title": title_colours, "text": named}))  # fmt: skip
    for check in (seen, label_check(text, ocr_text)):
        if check is not None:
            signals.append(check)
    result = decide(signals)
    if blip_skipped:
        result.details["blip"] = {"vote": 0, "skipped": BLIP_ENGLISH_ONLY}
    result.details["text"] = text
    result.details["image_title"] = title or ""
    return result


__all__ = ["ClipCalibrator", "MatchResult", "Signal", "TitleCalibrator", "colour_check", "decide", "label_check", "match_image_text"]
