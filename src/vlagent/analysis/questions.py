"""The questions to analyse: ``query.json`` (competition format) or a JSONL of labelled questions.

A gold type is read from ``gold_type`` (query.json) or ``type`` (the classifier suite's JSONL).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field

from vlagent.data.queries import read_queries
from vlagent.errors import DataError


class Question(BaseModel):
    index: int
    question: str
    images: list[str] = Field(default_factory=list)
    gold: str | None = None


def _jsonl(path: Path) -> list[Question]:
    out: list[Question] = []
    for lineno, line in enumerate(path.read_text("utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {lineno} is not JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or not str(obj.get("question", "")).strip():
            raise DataError(f"{path}: line {lineno} has no question")
        images = obj.get("images") or [s.strip() for s in str(obj.get("related_image") or "").split(",") if s.strip()]
        gold = obj.get("gold_type") or obj.get("type")
        out.append(Question(index=len(out), question=obj["question"], images=list(images), gold=gold))
    return out


def load_questions(path: str | Path) -> list[Question]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such query file")
    if path.suffix.lower() == ".jsonl":
        questions = _jsonl(path)
    else:
        queries = read_queries(path)
        questions = []
        for i in queries.valid_indices:
            item = queries.items[i]
            gold = item.extras().get("gold_type")
            questions.append(Question(index=i, question=item.question, images=item.images, gold=gold if isinstance(gold, str) else None))
    if len(questions) < 3:
        raise DataError(f"{path}: {len(questions)} question(s); the analysis needs at least 3")
    return questions
