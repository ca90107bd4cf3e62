"""``query.json``: a list of ``{"question", "related_image", "answer"}`` objects, UTF-8 (with or
without a BOM) or GB18030.

Reading keeps every field of every item (extra fields included) and the input order; item-level
problems (a missing field, an empty or too long question, a duplicate) are reported with the item's index
instead of aborting, so nothing is lost. Writing is atomic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vlagent.errors import DataError, QuestionTooLongError, VlagentError
from vlagent.fileio import atomic_write_json
from vlagent.settings import Settings

REQUIRED_FIELDS = ("question", "related_image", "answer")


class QueryItem(BaseModel):
    """One question; unknown fields (``gold_*``, ids, ...) are kept as they were."""

    model_config = ConfigDict(extra="allow")

    question: str
    related_image: str = ""
    answer: str = ""

    @property
    def images(self) -> list[str]:
        """Image names in ``related_image`` (a few files may be given, comma separated)."""
        raw = self.related_image.replace("，", ",")
        return [part.strip() for part in raw.split(",") if part.strip()]

    def extras(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class QueryProblem(BaseModel):
    index: int
    message: str
    fatal: bool = Field(True, description="the item cannot be answered")

    def __str__(self) -> str:
        return f"item {self.index}: {self.message}"


class QueryFile(BaseModel):
    path: Path
    raw: list[Any]
    items: dict[int, QueryItem]
    problems: list[QueryProblem]

    @property
    def valid_indices(self) -> list[int]:
        return sorted(self.items)


ENCODINGS = ("utf-8-sig", "gb18030")


def question_problem(question: str, limit: int) -> str | None:
    """Why ``question`` cannot be asked (empty, or longer than ``limit`` characters), or None.

    ``limit`` is ``Settings.question_max_chars``: no product question is that long, a longer one
    would overflow the LLM's context, and every question's work stays bounded."""
    if not question.strip():
        return "empty question"
    if len(question) > limit:
        return f"question too long ({len(question):,} characters > {limit:,}, VLAGENT_QUESTION_MAX_CHARS)"
    return None


def check_question(question: str, limit: int, what: str = "question") -> str:
    """``question`` stripped, or one line saying why it cannot be asked: what every entry point
    (agent, HTTP API, CLI, UI; ``what="query"`` for a catalogue search) refuses a question with.
    query.json items use :func:`question_problem`."""
    if not question.strip():
        raise VlagentError(f"the {what} is empty")
    if len(question) > limit:
        raise QuestionTooLongError(
            f"the {what} is too long: {len(question):,} characters, at most {limit:,} (VLAGENT_QUESTION_MAX_CHARS)"
        )
    return question.strip()


def _decode(raw: bytes, path: Path) -> str:
    """UTF-8 (with or without a BOM), else GB18030, as the annotations CSV is read."""
    for encoding in ENCODINGS:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DataError(f"{path}: not UTF-8 (or GB18030) text")


def read_queries(path: str | Path, max_question_chars: int | None = None) -> QueryFile:
    """Parse and check a query file. Whole-file problems raise :class:`DataError`; a question
    longer than ``max_question_chars`` (default ``Settings.question_max_chars``) is an item problem."""
    path = Path(path)
    limit = Settings().question_max_chars if max_question_chars is None else max_question_chars
    if not path.is_file():
        raise DataError(f"{path}: no such query file")
    try:
        raw = json.loads(_decode(path.read_bytes(), path))
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(raw, list):
        raise DataError(f"{path}: expected a JSON list of question objects, got {type(raw).__name__}")
    items: dict[int, QueryItem] = {}
    problems: list[QueryProblem] = []
    seen: dict[tuple[str, str], int] = {}
    for i, obj in enumerate(raw):
        if not isinstance(obj, dict):
            problems.append(QueryProblem(index=i, message=f"not an object ({type(obj).__name__})"))
            continue
        missing = [f for f in REQUIRED_FIELDS if f not in obj]
        if "question" in missing:
            problems.append(QueryProblem(index=i, message="missing field 'question'"))
            continue
        if not isinstance(obj.get("question"), str):
            kind = type(obj.get("question")).__name__
            problems.append(QueryProblem(index=i, message=f"field 'question' must be a string, not {kind}"))
            continue
        why = question_problem(obj["question"], limit)
        if why:
            problems.append(QueryProblem(index=i, message=why))
            continue
        nulls = {f: "" for f in ("related_image", "answer") if f in obj and obj[f] is None}
        if nulls:  # "related_image": null is read as "no image"; the raw item is unchanged
            obj = {**obj, **nulls}
        bad_types = [
            f for f in ("related_image", "answer") if f in obj and not isinstance(obj[f], str)
        ]
        if bad_types:
            problems.append(QueryProblem(index=i, message=f"field(s) {bad_types} must be strings"))
            continue
        if missing:
            problems.append(
                QueryProblem(
                    index=i, message=f"missing field(s) {missing}; treated as empty", fatal=False
                )
            )
        item = QueryItem.model_validate(obj)
        key = (item.question.strip(), item.related_image.strip())
        if key in seen:
            problems.append(
                QueryProblem(index=i, message=f"duplicate of item {seen[key]}", fatal=False)
            )
        else:
            seen[key] = i
        items[i] = item
    return QueryFile(path=path, raw=raw, items=items, problems=problems)


def write_queries(path: str | Path, raw: list[Any], filled: dict[int, dict[str, Any]]) -> None:
    """Write the input list in its order with every field kept, ``filled`` values merged in."""
    out = []
    for i, obj in enumerate(raw):
        if isinstance(obj, dict):
            merged = dict(obj)
            merged.update(filled.get(i, {}))
            out.append(merged)
        else:
            out.append(obj)
    atomic_write_json(Path(path), out)
