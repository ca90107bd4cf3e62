"""Attribute rankings: what a query names that the image-text index *measured* on each image.

Two rankings of the catalogue for a query text, fused with the others by
:mod:`vlagent.index.fusion` (each a plain ``(text, k) -> [{"image", "score", ...}]``):

* **colour**: the colour words of the query (zh and en: the colour tool's own names,
  ``红色`` / ``red``, their stems ``红``, a few common synonyms such as ``粉红`` or ``gray``)
  against each image's measured colours (the ``colors`` metadata of the image-text index: the
  colour tool's names and each colour's share of the main object). An image's score is the
  share of its main object in the named colours (a related shade, ``深蓝色`` for ``蓝色``,
  counts half), so a 100 % red dress scores 1.0 for "红色连衣裙" and a cup of coffee on a red
  saucer 0.25. Only images where the named colours make up at least :data:`MIN_SHARE` are
  listed, each with its ``rank`` from its share (:data:`COLOUR_GAP`), which the fusion counts
  instead of its position. A query that names no colour gets an empty ranking (it says nothing).
* **label**: the label words of the query (tokens in capitals or with digits, as labels print
  them: ``XL``, ``SHANHAI``, ``100%``, ``199``) found in each image's OCR text; the score is the
  share of those words' information (inverse document frequency among the labels) the label
  carries, and each hit's ``rank`` comes from that share (:data:`LABEL_GAP`).

:class:`AttributeTable` holds what these rankings read (one row per indexed image), read once
from the index's metadata; a query costs one pass over a small matrix (no model).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vlagent.models import colors

if TYPE_CHECKING:  # pragma: no cover
    from vlagent.index.text_index import TextIndex

log = logging.getLogger(__name__)

#: a colour ranking lists an image when the named colours cover at least this share of it
MIN_SHARE = 0.1
#: an image's rank in the colour ranking is ``1 + COLOUR_GAP * (1 - share)``, not its position:
#: 100 % red is first, 90 % second, 50 % sixth, however many images lie between. The share is a
#: calibrated measure; by positions alone a 30 % black camera would be second to 93 % black
#: trousers, one place the passage ranking undoes (with ``COLOUR_GAP`` 10 it is 8th)
COLOUR_GAP = 10.0
#: an image's rank in the label ranking is ``1 + LABEL_GAP * (1 - share)`` (the share of the
#: query's label information its label carries): all of it is first, a label with only the
#: words every label has ("SKU", "SIZE") is about as far down as one the ranking does not list
LABEL_GAP = 50.0
#: what a related shade counts (``深蓝色`` for a ``蓝色`` query, ``blue`` for ``navy``)
RELATED = 0.5
#: one-character zh stems that may name a colour without ``色``; other stems (``米`` in 厘米,
#: ``青`` in 青年) count only with it. Even these are a colour only before a product word
#: (``红裙``, ``小白鞋``, ``白T``) or standing alone (``颜色：红``, ``纯黑``), never inside another
#: word (``漂白``, ``蓝牙``, ``奶粉``, ``红酒``)
BASIC_ZH = frozenset("红白黑灰蓝绿黄紫粉棕橙")
PRODUCT_HEADS = frozenset("裙衣裤鞋靴帽衫袜包袋恤Tt杯")
MODIFIERS = frozenset("纯深浅大亮暗淡")
_BOUNDARY = frozenset(" \t\n,.;:!?()[]/|-+&，。、；：！？（）【】《》“”‘’的和或与及")
#: common words for a colour that the colour tool names otherwise: word → its English name
ALIASES: dict[str, str] = {
    "粉红": "pink", "玫红": "pink", "藏青": "navy", "藏蓝": "navy", "咖啡色": "brown", "咖色": "brown",
    "驼色": "khaki", "橘色": "orange", "橘红": "orange", "橘黄": "orange", "银色": "grey", "银灰": "grey",
    "紫红": "burgundy", "酒红": "burgundy", "乳白": "white", "奶白": "white", "米白": "white", "浅蓝": "blue", "天蓝": "blue",
    "宝蓝": "blue", "墨绿": "green", "草绿": "green", "湖蓝": "teal",
    "gray": "grey", "navy blue": "navy", "dark blue": "navy", "light blue": "blue", "sky blue": "blue",
    "wine red": "burgundy", "maroon": "burgundy", "violet": "purple", "cyan": "teal", "turquoise": "teal",
    "tan": "khaki", "cream": "beige", "silver": "grey",
}  # fmt: skip
_LATIN = re.compile(r"[A-Za-z0-9]+")


@lru_cache(maxsize=1)
def colour_names() -> tuple[tuple[str, str, str], ...]:
    """The colour tool's terms, ``(zh, en, basic)`` (``basic``: the basic colour term a shopper
    term belongs to, ``navy`` → ``blue``), in its order: its ``TERMS`` (else the names of a
    ``PALETTE``, each its own basic term)."""
    terms = getattr(colors, "TERMS", None)
    if terms:
        rows = [(t.zh, t.en, t.basic) for t in terms.values()]
    else:
        rows = [(entry[0], entry[1], entry[1]) for entry in getattr(colors, "PALETTE", [])]
    return tuple(dict.fromkeys((str(zh), str(en).lower(), str(basic).lower()) for zh, en, basic in rows))


def _stands_alone(text: str, i: int) -> bool:
    """The one-character colour at ``text[i]`` names a colour: before a product word, or not
    inside another word (after a boundary or a modifier such as 纯 / 深, before a boundary)."""
    nxt = text[i + 1] if i + 1 < len(text) else " "
    prev = text[i - 1] if i > 0 else " "
    if nxt in PRODUCT_HEADS:
        return True
    return nxt in _BOUNDARY and (prev in _BOUNDARY or prev in MODIFIERS)


def _stem(zh: str) -> str:
    return zh[:-1] if zh.endswith("色") and len(zh) > 1 else zh


class ColourWords:
    """Finds the colours a text names: ``find("红色无袖连衣裙") == ["red"]`` (English names)."""

    def __init__(self, names: Iterable[tuple[str, ...]]) -> None:
        """``names``: ``(zh, en)`` or ``(zh, en, basic)`` of each colour the colour tool reports."""
        rows = [(r[0], r[1].lower(), (r[2] if len(r) > 2 else r[1]).lower()) for r in names]
        self.names = list(dict.fromkeys((zh, en) for zh, en, _ in rows))
        self.zh_of = {en: zh for zh, en in self.names}
        self.basic_of = {en: basic for _, en, basic in rows}
        terms: dict[str, str] = {}
        for zh, en in self.names:
            terms.setdefault(zh, en)
            stem = _stem(zh)
            if len(stem) > 1 or stem in BASIC_ZH:
                terms.setdefault(stem, en)
            terms.setdefault(en, en)
        for word, en in ALIASES.items():
            if en in self.zh_of:
                terms.setdefault(word, en)
                if not word.isascii() and not word.endswith("色"):
                    terms.setdefault(word + "色", en)  # 粉红色 is pink before 红色 is red
        # longest first, so 酒红色 is burgundy, not red, and "light blue" is not blue: one pattern,
        # scanned left to right, takes the longest name at each place
        self.terms = sorted(terms.items(), key=lambda kv: -len(kv[0]))
        self.en_of = dict(self.terms)
        alternatives = [
            rf"(?<![a-z]){re.escape(term)}(?![a-z])" if term.isascii() else re.escape(term) for term, _ in self.terms
        ]
        self.pattern = re.compile("|".join(alternatives)) if alternatives else None

    def words(self, text: str) -> list[tuple[str, str]]:
        """(the word as written, its colour's English name) for each colour ``text`` names, in order."""
        if self.pattern is None:
            return []
        low = text.lower()
        found = []
        for m in self.pattern.finditer(low):
            term = m.group(0)
            if len(term) == 1 and not term.isascii() and not _stands_alone(low, m.start()):
                continue
            found.append((text[m.start():m.end()], self.en_of[term]))
        return found

    def find(self, text: str) -> list[str]:
        """The English names of the colours ``text`` names, in the order they appear."""
        return list(dict.fromkeys(en for _, en in self.words(text)))

    def related(self, a: str, b: str) -> bool:
        """Two shades of one colour: ``navy``/``blue``, ``burgundy``/``red`` (the same basic term
        in the colour tool; else the zh names end in the same character before ``色``, or the
        English names in the same word: ``浅蓝色``/``蓝色``, ``light blue``/``blue``)."""
        if a == b or self.basic_of.get(a, a) == self.basic_of.get(b, b):
            return True
        sa, sb = _stem(self.zh_of.get(a, "")), _stem(self.zh_of.get(b, ""))
        if sa and sb and sa[-1] == sb[-1]:
            return True
        return a.split()[-1] == b.split()[-1]


@lru_cache(maxsize=1)
def colour_words() -> ColourWords:
    return ColourWords(colour_names())


def label_words(text: str) -> list[str]:
    """The tokens of ``text`` written as labels print them: with a digit or in capitals."""
    out = []
    for tok in _LATIN.findall(text):
        if any(c.isdigit() for c in tok) or (len(tok) >= 2 and tok.isupper()):
            out.append(tok.lower())
    return list(dict.fromkeys(out))


def _key(image: str) -> str:
    return Path(image.replace("\\", "/")).name


class AttributeTable:
    """Per indexed image: its measured colour shares and the Latin tokens of its label text."""

    def __init__(self, records: Iterable[Mapping[str, Any]], words: ColourWords | None = None) -> None:
        self.words = words or colour_words()
        self.files: list[str] = []
        self.titles: list[str] = []
        shares: list[dict[str, float]] = []
        self.tokens: dict[str, set[int]] = {}
        self.with_label: set[str] = set()
        for meta in records:
            file = str(meta.get("file", ""))
            if not file:
                continue
            row = len(self.files)
            self.files.append(file)
            self.titles.append(str(meta.get("title", "")))
            shares.append(_shares(meta.get("colors")))
            toks = {t.lower() for t in _LATIN.findall(str(meta.get("ocr", "")))}
            if toks:
                self.with_label.add(_key(file))
            for tok in toks:
                self.tokens.setdefault(tok, set()).add(row)
        self.columns = list(dict.fromkeys([en for _, en in self.words.names] + [c for s in shares for c in s]))
        col = {c: n for n, c in enumerate(self.columns)}
        self.matrix = np.zeros((len(self.files), len(self.columns)), dtype=np.float32)
        for row, s in enumerate(shares):
            for name, share in s.items():
                self.matrix[row, col[name]] += share
        self.with_colours = {_key(f) for f, s in zip(self.files, shares) if s}

    @classmethod
    def from_index(cls, index: "TextIndex") -> "AttributeTable":
        return cls(index.records())

    def __len__(self) -> int:
        return len(self.files)

    def colour_weights(self, text: str) -> np.ndarray | None:
        """How much each measured colour counts for ``text`` (None: it names no colour)."""
        named = self.words.find(text)
        if not named:
            return None
        w = np.zeros(len(self.columns), dtype=np.float32)
        for n, column in enumerate(self.columns):
            if column in named:
                w[n] = 1.0
            elif any(self.words.related(column, q) for q in named):
                w[n] = RELATED
        return w

    def colour_ranking(self, text: str, k: int = 50) -> list[dict[str, Any]]:
        """Images by the share of their main object in the colours ``text`` names, best first."""
        w = self.colour_weights(text)
        if w is None or not len(self.files):
            return []
        scores = self.matrix @ w
        listed = np.flatnonzero(scores >= MIN_SHARE)
        order = [int(i) for i in listed[np.argsort(-scores[listed], kind="stable")][:k]]
        named = self.words.find(text)
        return [
            {
                "image": self.files[i], "score": round(float(min(scores[i], 1.0)), 4), "title": self.titles[i],
                "rank": round(1.0 + COLOUR_GAP * (1.0 - float(min(scores[i], 1.0))), 3), "colors": named,
            }  # fmt: skip
            for i in order
        ]

    def label_ranking(self, text: str, k: int = 50) -> list[dict[str, Any]]:
        """Images whose label text has the label words of ``text``, by the share of the words'
        information they carry: each word weighs its inverse document frequency among the
        labelled images, ``log(1 + N / df)`` (a word no label has weighs as one only one label
        has), so "SKU 100201" is mostly its number. Each hit's ``rank`` comes from that share
        (:data:`LABEL_GAP`), not its position: the labels that carry only "SKU" are not second
        to the one that reads "SKU 100201", however few lie between."""
        words = label_words(text)
        if not words:
            return []
        n_labels = max(1, len(self.with_label))
        idf = {w: math.log(1.0 + n_labels / max(1, len(self.tokens.get(w, ())))) for w in words}
        total = sum(idf.values())
        hits: dict[int, float] = {}
        for word in words:
            for row in self.tokens.get(word, ()):
                hits[row] = hits.get(row, 0.0) + idf[word] / total
        ranked = sorted(hits.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [
            {"image": self.files[i], "score": round(min(share, 1.0), 4), "title": self.titles[i], "words": words,
             "rank": round(1.0 + LABEL_GAP * (1.0 - min(share, 1.0)), 3)}  # fmt: skip
            for i, share in ranked
        ]


def _shares(raw: Any) -> dict[str, float]:
    """``[[zh, en, share], ...]`` (JSON) → {en: share}."""
    try:
        rows = json.loads(raw) if isinstance(raw, str) else (raw or [])
        out: dict[str, float] = {}
        for row in rows:
            en, share = str(row[1]).lower(), float(row[2])
            out[en] = out.get(en, 0.0) + share
        return out
    except (ValueError, TypeError, IndexError):
        return {}


__all__ = [
    "ALIASES",
    "AttributeTable",
    "COLOUR_GAP",
    "ColourWords",
    "LABEL_GAP",
    "MIN_SHARE",
    "RELATED",
    "colour_names",
    "colour_words",
    "label_words",
]
