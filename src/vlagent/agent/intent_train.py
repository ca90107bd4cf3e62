"""Training the learned question classifier (``vlagent classifier train``).

Deterministic: the labelled questions in file order, stratified folds with a fixed seed,
scikit-learn's lbfgs solvers. The candidates (logistic regression at several strengths, a
one-hidden-layer MLP) are compared by cross-validated accuracy on the training data only;
the best is fit on all of it and written with a record of the data (file hashes, counts per
type) and of the choice. The blind holdout (``suites/classifier/blind.jsonl``) is never read here.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier

from vlagent.agent.query import learn_frame_words
from vlagent.agent.intent_model import (
    EmbeddingCache, Embed, IntentWeights, Ngrams, TrainingRecord, as_weights, embed_questions, forward, ngram_vectorizer,
    structure,
)  # fmt: skip

log = logging.getLogger(__name__)

#: the shipped labelled questions the model learns from (``vlagent.evals`` package data)
TRAINING_FILES = (
    "suites/classifier/questions.jsonl", "suites/classifier/train_more.jsonl", "suites/classifier/train_more2.jsonl",
    "suites/classifier/train_more3.jsonl", "suites/classifier/train_more4.jsonl",
)
BLIND_FILE = "suites/classifier/blind.jsonl"
SEED = 0
FOLDS = 5


class Labelled(BaseModel):
    """One labelled question (the classifier suites' fields)."""

    question: str
    images: list[str] = Field(default_factory=list)
    type: str
    language: str = ""
    query: str = ""
    split: str = ""


def read_labelled(path: str | Path) -> list[Labelled]:
    """A JSONL file of labelled questions; a bad line is an error naming the file and line."""
    rows = []
    for n, line in enumerate(Path(path).read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(Labelled.model_validate(json.loads(line)))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}:{n}: not a labelled question ({str(exc).splitlines()[0]})") from None
    return rows


def shipped_file(name: str) -> Path:
    return Path(str(resources.files("vlagent.evals").joinpath(name)))


def default_training_files() -> list[Path]:
    return [shipped_file(f) for f in TRAINING_FILES]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Candidate:
    """One model to compare: the n-grams' weight (0: none) and the logistic regression's C, or an MLP."""

    name: str
    ngram_weight: float
    c: float = 1.0
    hidden: int = 0

    def make(self) -> object:
        if self.hidden:
            return MLPClassifier(hidden_layer_sizes=(self.hidden,), alpha=1e-2, max_iter=600, random_state=SEED)
        return LogisticRegression(C=self.c, max_iter=3000)


#: what ``vlagent classifier train`` compares (cross-validated accuracy decides)
CANDIDATES = (
    Candidate("e5 + structure, logreg C=1", 0.0),
    Candidate("e5 + structure, mlp 64", 0.0, hidden=64),
    Candidate("e5 + structure + char n-grams x5, logreg C=1", 5.0),
    Candidate("e5 + structure + char n-grams x10, logreg C=0.3", 10.0, c=0.3),
    Candidate("e5 + structure + char n-grams x10, logreg C=1", 10.0),
    Candidate("e5 + structure + char n-grams x10, logreg C=3", 10.0, c=3.0),
)
#: the candidate a refit without comparison uses (a plugin card's examples joined to the data)
DEFAULT = CANDIDATES[4]
MIN_DF = 2


def standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    return mean, scale


@dataclass
class Fitted:
    labels: list[str]
    mean: np.ndarray
    scale: np.ndarray
    layers: list[tuple[np.ndarray, np.ndarray]]
    ngrams: Ngrams | None

    def proba(self, x: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        grams = None
        if self.ngrams is not None:
            grams = ngram_vectorizer(self.ngrams).transform(list(texts)).toarray() * self.ngrams.weight
        return forward(x, self.mean, self.scale, self.layers, grams)


def fit_one(cand: Candidate, x: np.ndarray, texts: Sequence[str], y: np.ndarray) -> Fitted:
    """Fit one candidate: standardised dense features, n-grams beside them."""
    mean, scale = standardise(x)
    dense = (x - mean) / scale
    ngrams = None
    if cand.ngram_weight > 0:
        vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=MIN_DF, sublinear_tf=True, lowercase=True)
        grams = vec.fit_transform(list(texts)).toarray() * cand.ngram_weight
        vocab = sorted(vec.vocabulary_, key=vec.vocabulary_.get)
        ngrams = Ngrams(vocabulary=vocab, idf=np.round(vec.idf_, 5).tolist(), weight=cand.ngram_weight)
        dense = np.hstack([dense, grams])
    model = cand.make()
    model.fit(dense, y)  # type: ignore[attr-defined]
    labels = [str(c) for c in model.classes_]  # type: ignore[attr-defined]
    if isinstance(model, LogisticRegression):
        layers = [(model.coef_.T.copy(), model.intercept_.copy())]
    else:
        layers = [(w, b) for w, b in zip(model.coefs_, model.intercepts_)]  # type: ignore[attr-defined]
    if layers[-1][0].shape[1] == 1:  # a binary problem has one logit: make it two
        w, b = layers[-1]
        layers[-1] = (np.hstack([np.zeros_like(w), w]), np.hstack([np.zeros_like(b), b]))
    return Fitted(labels, mean, scale, layers, ngrams)


def oof_proba(cand: Candidate, x: np.ndarray, texts: Sequence[str], y: np.ndarray, labels: list[str], folds: int = FOLDS) -> np.ndarray:
    """Out-of-fold probabilities (rows in ``labels`` order) for every training question."""
    out = np.zeros((len(y), len(labels)), dtype=np.float32)
    k = min(folds, min(Counter(y.tolist()).values()))
    if k < 2:
        raise ValueError("every type needs at least 2 labelled questions for cross-validation")
    for tr, te in StratifiedKFold(n_splits=k, shuffle=True, random_state=SEED).split(x, y):
        fitted = fit_one(cand, x[tr], [texts[i] for i in tr], y[tr])
        p = fitted.proba(x[te], [texts[i] for i in te])
        for j, label in enumerate(fitted.labels):
            out[te, labels.index(label)] = p[:, j]
    return out


def featurise(rows: Sequence[Labelled], embed: Embed) -> np.ndarray:
    vectors = embed([r.question.strip() for r in rows])
    return np.hstack([vectors, np.stack([structure(r.question, r.images) for r in rows])]).astype(np.float32)


class TrainResult(BaseModel):
    weights: IntentWeights
    labels: list[str] = Field(default_factory=list)
    truth: list[str] = Field(default_factory=list)
    questions: list[Labelled] = Field(default_factory=list)
    oof: list[list[float]] = Field(default_factory=list, description="out-of-fold probabilities of the chosen candidate")


def train(
    files: Sequence[Path] | None = None,
    *,
    extra: Sequence[Labelled] = (),
    keep: set[str] | None = None,
    embed: Embed | None = None,
    cache_dir: Path | None = None,
    choose: bool = True,
    folds: int = FOLDS,
    candidates: Sequence[Candidate] = CANDIDATES,
    progress: Callable[[str], None] = lambda _m: None,
) -> TrainResult:
    """Train on ``files`` (default: the shipped training files) plus ``extra`` questions (a
    card's labelled examples), the types in ``keep`` only (default: all). ``choose=False``: no
    comparison, no cross-validation: :data:`DEFAULT` fit on everything."""
    files = list(files) if files is not None else default_training_files()
    rows = [r for f in files for r in read_labelled(f)] + list(extra)
    if keep is not None:
        rows = [r for r in rows if r.type in keep]
    if len({r.type for r in rows}) < 2:
        raise ValueError("the labelled questions name fewer than two types: nothing to learn")
    embedder = EmbeddingCache(cache_dir, embed or embed_questions)
    progress(f"embedding {len(rows)} questions")
    x = featurise(rows, embedder)
    texts = [r.question.strip() for r in rows]
    y = np.array([r.type for r in rows])
    labels = sorted(set(y.tolist()))
    scores: dict[str, float] = {}
    oofs: dict[str, np.ndarray] = {}
    pool = list(candidates) if choose else [DEFAULT]
    if choose:
        for cand in pool:
            oofs[cand.name] = oof_proba(cand, x, texts, y, labels, folds)
            scores[cand.name] = float((np.array(labels)[oofs[cand.name].argmax(axis=1)] == y).mean())
            progress(f"{cand.name}: cross-validated accuracy {scores[cand.name]:.4f}")
    best = max(pool, key=lambda c: (scores.get(c.name, 0.0), -pool.index(c)))
    fitted = fit_one(best, x, texts, y)
    record = TrainingRecord(
        data={f.name: sha256(f) for f in files} | ({"card examples": str(len(extra))} if extra else {}),
        examples=len(rows), per_type=dict(sorted(Counter(y.tolist()).items())), chosen=best.name,
        cv_accuracy=round(scores.get(best.name, 0.0), 4), candidates={k: round(v, 4) for k, v in scores.items()},
        folds=folds if choose else 0, seed=SEED,
    )  # fmt: skip
    frames = learn_frame_words((r.question, r.query) for r in rows if r.query)
    weights = as_weights(fitted.labels, fitted.mean, fitted.scale, fitted.layers, record, fitted.ngrams, frames)
    oof = np.round(oofs[best.name], 5).tolist() if best.name in oofs else []
    return TrainResult(weights=weights, labels=labels, truth=y.tolist(), questions=rows, oof=oof)


__all__ = ["BLIND_FILE", "CANDIDATES", "Candidate", "Labelled", "TRAINING_FILES", "TrainResult", "default_training_files", "read_labelled", "shipped_file", "train"]
