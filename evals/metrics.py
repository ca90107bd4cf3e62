"""Scores of a run against gold answers.

- Retrieval (items with a gold image): hit@1, recall@5, recall@10 and reciprocal rank, from the
  ranked list the agent returned (the journal keeps it). With one relevant image, recall@k is
  hit@k. Image names are compared by file name (``image/abc.jpg`` == ``abc.jpg``).
- Text answers (items with a gold answer): BLEU-4 (sacrebleu) and ROUGE-L F1 (rouge-score),
  both on **jieba** tokens of the lower-cased text, so Chinese and mixed zh/en text is scored
  by words, not characters: we tokenize with jieba, join with spaces and call sacrebleu with
  ``tokenize="none"``; rouge-score gets the same tokenizer (its default tokenizer keeps only
  ``[a-z0-9]`` and would drop all Chinese). Sentence BLEU is sacrebleu's ``sentence_bleu``
  (exp smoothing) per item; the per-type BLEU is sacrebleu's ``corpus_bleu`` over the type's
  items. Several gold answers are several references (BLEU) / the best one (ROUGE-L).
- Short answers: exact match and "gold contained in the answer", after normalising both
  (NFKC, lower case, punctuation and spaces removed); right if any gold answer matches.
- Classification (items with a gold type): accuracy per gold type, and a confusion matrix
  (scikit-learn) of gold type × predicted type.

Failed questions count as wrong (empty answer, no ranking, no type). Invalid items are not scored.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, Field

from vlagent.agent.cards import ORDER
from vlagent.data.queries import QueryFile
from vlagent.errors import DataError

from vlagent.evals.journal import JournalEntry



def type_names() -> list[str]:
    """The built-in question types, in the cards' order (:mod:`vlagent.agent.cards`)."""
    return list(ORDER)

NO_TYPE = "none"  # predicted type of a failed question


# --------------------------------------------------------------------------- gold


class Gold(BaseModel):
    type: str | None = None
    images: list[str] = Field(default_factory=list)
    answers: list[str] = Field(default_factory=list)
    split: str | None = Field(None, description="gold_split: e.g. tune / holdout, scored apart too")

    @property
    def empty(self) -> bool:
        return self.type is None and not self.images and not self.answers


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if str(v).strip()]
    return [str(value)]


def gold_of(obj: dict[str, Any], query_images: list[str] | None = None) -> Gold:
    """Gold from ``gold_type``/``gold_image``/``gold_answer`` fields, or, for an object in the
    competition's own format (a filled answers file used as gold), from ``related_image`` (when
    the question had none: a retrieval) and ``answer``."""
    gtype = obj.get("gold_type")
    if gtype is not None and str(gtype) not in type_names():
        raise DataError(f"gold_type {gtype!r} is not one of {', '.join(type_names())}")
    gold = Gold(
        type=str(gtype) if gtype is not None else None,
        images=_as_list(obj.get("gold_image")),
        answers=_as_list(obj.get("gold_answer")),
        split=str(obj["gold_split"]) if obj.get("gold_split") else None,
    )
    if not gold.images and not gold.answers and query_images is not None:
        if not query_images and str(obj.get("related_image") or "").strip():
            gold.images = _as_list(obj["related_image"])
        elif str(obj.get("answer") or "").strip():
            gold.answers = _as_list(obj["answer"])
    return gold


def load_gold(queries: QueryFile, gold_path: str | Path | None = None) -> dict[int, Gold]:
    """Gold per item index: the query file's own ``gold_*`` fields, overridden field by field by
    a gold file (a list aligned with the queries by position, or an object keyed by item index;
    its objects carry ``gold_*`` fields or are a filled query list in the competition's format)."""
    golds: dict[int, Gold] = {}
    for i, item in queries.items.items():
        g = gold_of(item.extras())
        if not g.empty:
            golds[i] = g
    if gold_path is None:
        return golds
    path = Path(gold_path)
    if not path.is_file():
        raise DataError(f"{path}: no such gold file")
    try:
        raw = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a valid JSON gold file ({exc})") from None
    if isinstance(raw, list):
        if len(raw) != len(queries.raw):
            raise DataError(
                f"{path}: {len(raw)} gold items for {len(queries.raw)} questions (a gold list must align with query.json)"
            )
        pairs = list(enumerate(raw))
    elif isinstance(raw, dict):
        try:
            pairs = [(int(k), v) for k, v in raw.items()]
        except ValueError:
            raise DataError(f"{path}: a gold object must be keyed by item index (\"0\", \"1\", ...)") from None
    else:
        raise DataError(f"{path}: expected a JSON list or object, got {type(raw).__name__}")
    for i, obj in pairs:
        if not isinstance(obj, dict) or i not in queries.items:
            continue
        try:
            g = gold_of(obj, queries.items[i].images)
        except DataError as exc:
            raise DataError(f"{path}: item {i}: {exc}") from None
        if g.empty:
            continue
        before = golds.get(i, Gold())
        golds[i] = Gold(  # field by field: the file's gold wins where it has some
            type=g.type or before.type, images=g.images or before.images, answers=g.answers or before.answers
        )
    return golds


# --------------------------------------------------------------------------- primitives


@lru_cache(maxsize=1)
def _jieba() -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


def tokenize(text: str) -> list[str]:
    """jieba words of the lower-cased, NFKC-normalised text, whitespace dropped."""
    text = unicodedata.normalize("NFKC", text).lower()
    return [w for w in _jieba().lcut(text) if w.strip()]


class JiebaTokenizer:
    """The tokenizer interface rouge-score expects (``tokenize(text) -> list[str]``)."""

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text)


@lru_cache(maxsize=1)
def _rouge() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=JiebaTokenizer())


def _joined(text: str) -> str:
    return " ".join(tokenize(text))


def sentence_bleu(prediction: str, references: list[str]) -> float:
    """BLEU-4 (0-100) of one answer against its references, on jieba tokens."""
    import sacrebleu

    if not references:
        raise ValueError("no reference")
    return float(sacrebleu.sentence_bleu(_joined(prediction), [_joined(r) for r in references], tokenize="none").score)


def corpus_bleu(predictions: list[str], references: list[list[str]]) -> float:
    """Corpus BLEU-4 (0-100); items may have different numbers of references."""
    import sacrebleu

    if not predictions:
        return 0.0
    width = max(len(r) for r in references)
    streams = [
        [_joined(refs[k]) if k < len(refs) else None for refs in references] for k in range(width)
    ]
    return float(sacrebleu.corpus_bleu([_joined(p) for p in predictions], streams, tokenize="none").score)


def rouge_l(prediction: str, references: list[str]) -> float:
    """ROUGE-L F1 (0-1), the best over the references, on jieba tokens."""
    if not references:
        raise ValueError("no reference")
    return float(_rouge().score_multi(references, prediction)["rougeL"].fmeasure)


def normalize(text: str) -> str:
    """NFKC, lower case, no punctuation, no whitespace: for comparing short answers."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in text if not ch.isspace() and not unicodedata.category(ch).startswith("P"))


def exact_match(prediction: str, golds: list[str]) -> float:
    p = normalize(prediction)
    return float(any(p == normalize(g) for g in golds))


def gold_contained(prediction: str, golds: list[str]) -> float:
    p = normalize(prediction)
    return float(any(normalize(g) and normalize(g) in p for g in golds))


def _base(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).name


def rank_of(ranked: list[str], gold_images: list[str]) -> int | None:
    """1-based rank of the first gold image in the ranked list, None if absent."""
    wanted = {_base(g) for g in gold_images}
    for rank, name in enumerate(ranked, 1):
        if _base(name) in wanted:
            return rank
    return None


def retrieval_scores(ranked: list[str], gold_images: list[str]) -> dict[str, float]:
    rank = rank_of(ranked, gold_images)
    return {
        "hit@1": float(rank == 1),
        "recall@5": float(rank is not None and rank <= 5),
        "recall@10": float(rank is not None and rank <= 10),
        "mrr": 1.0 / rank if rank else 0.0,
    }


# --------------------------------------------------------------------------- a run


class ItemScore(BaseModel):
    index: int
    gold_type: str | None
    split: str | None = None
    predicted_type: str
    status: str
    scores: dict[str, float] = Field(default_factory=dict)
    rank: int | None = None


class TypeScores(BaseModel):
    n: int = 0
    scores: dict[str, float] = Field(default_factory=dict, description="means over the items (BLEU: corpus)")


class Metrics(BaseModel):
    scored: int
    items: list[ItemScore]
    by_type: dict[str, TypeScores]
    overall: dict[str, float]
    by_split: dict[str, dict[str, TypeScores]] = Field(
        default_factory=dict, description="items with a gold_split: split → type → scores"
    )
    classification_accuracy: float | None = None
    classification_by_type: dict[str, float] = Field(default_factory=dict)
    confusion_labels: list[str] = Field(default_factory=list)
    confusion: list[list[int]] = Field(default_factory=list, description="rows: gold type, columns: predicted type")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def score_run(entries: dict[int, JournalEntry], golds: dict[int, Gold]) -> Metrics:
    """Score every item that has gold and a journal entry (failed entries count as wrong)."""
    items: list[ItemScore] = []
    texts: dict[str, tuple[list[str], list[list[str]]]] = {}
    for index in sorted(golds):
        gold = golds[index]
        entry = entries.get(index)
        if entry is None:
            continue
        ok = entry.status == "ok"
        pred_type = (entry.type or NO_TYPE) if ok else NO_TYPE
        text = entry.text if ok else ""
        row = ItemScore(index=index, gold_type=gold.type, predicted_type=pred_type, status=entry.status, split=gold.split)
        if gold.type is not None:
            row.scores["type_correct"] = float(pred_type == gold.type)
        if gold.images:
            row.rank = rank_of(entry.ranked_ids if ok else [], gold.images)
            row.scores.update(retrieval_scores(entry.ranked_ids if ok else [], gold.images))
        if gold.answers:
            row.scores["bleu"] = sentence_bleu(text, gold.answers)
            row.scores["rougeL"] = rouge_l(text, gold.answers)
            row.scores["exact_match"] = exact_match(text, gold.answers)
            row.scores["contains"] = gold_contained(text, gold.answers)
            group = gold.type or pred_type
            hyps, refs = texts.setdefault(group, ([], []))
            hyps.append(text)
            refs.append(gold.answers)
        items.append(row)

    by_type: dict[str, TypeScores] = {}
    for row in items:
        group = row.gold_type or row.predicted_type
        by_type.setdefault(group, TypeScores()).n += 1
    for group, ts in by_type.items():
        rows = [r for r in items if (r.gold_type or r.predicted_type) == group]
        names = sorted({k for r in rows for k in r.scores})
        for name in names:
            values = [r.scores[name] for r in rows if name in r.scores]
            ts.scores[name] = _mean(values)
        if group in texts:
            ts.scores["bleu"] = corpus_bleu(*texts[group])  # corpus BLEU, not a mean of sentences

    overall: dict[str, float] = {}
    for name in sorted({k for r in items for k in r.scores}):
        overall[name] = _mean([r.scores[name] for r in items if name in r.scores])
    if texts:
        overall["bleu"] = corpus_bleu(
            [h for hs, _ in texts.values() for h in hs], [r for _, rs in texts.values() for r in rs]
        )

    by_split: dict[str, dict[str, TypeScores]] = {}
    for row in items:
        if row.split:
            ts = by_split.setdefault(row.split, {}).setdefault(row.gold_type or row.predicted_type, TypeScores())
            ts.n += 1
    for split, groups in by_split.items():
        for group, ts in groups.items():
            rows = [r for r in items if r.split == split and (r.gold_type or r.predicted_type) == group]
            for name in sorted({k for r in rows for k in r.scores}):
                ts.scores[name] = _mean([r.scores[name] for r in rows if name in r.scores])

    typed = [r for r in items if r.gold_type is not None]
    metrics = Metrics(scored=len(items), items=items, by_type=by_type, overall=overall, by_split=by_split)
    if typed:
        from sklearn.metrics import accuracy_score, confusion_matrix

        gold_t = [r.gold_type for r in typed]
        pred_t = [r.predicted_type for r in typed]
        labels = type_names() + ([NO_TYPE] if NO_TYPE in pred_t else [])
        metrics.classification_accuracy = float(accuracy_score(gold_t, pred_t))
        metrics.classification_by_type = {
            t: float(accuracy_score([g for g in gold_t if g == t], [p for g, p in zip(gold_t, pred_t) if g == t]))
            for t in type_names()
            if t in gold_t
        }
        metrics.confusion_labels = labels
        metrics.confusion = confusion_matrix(gold_t, pred_t, labels=labels).tolist()
    return metrics
