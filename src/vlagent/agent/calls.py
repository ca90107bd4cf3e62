"""The plan's vocabulary: a :class:`Call` of a tool, its arguments and when it applies.

A question card lists its calls (``QuestionCard.plan``); a tool may add calls to a type
(``ToolSpec.calls``). An argument is a constant, a :class:`ByLang` constant, a :class:`Q` value
of the question, or any function of the :class:`PlanInput` (the card's own: the OCR prompt).
Round 1 calls see the round 0 results (``PlanInput.results``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

ImagesMode = Literal["none", "first", "each", "all"]


@dataclass(frozen=True)
class PlanInput:
    """What a plan sees of one question."""

    question: str
    images: list[str]
    language: str = "zh"
    query: str = ""
    available: frozenset[str] = frozenset()
    #: tool name → the text results of the earlier rounds (ok results only)
    results: Mapping[str, Sequence[str]] = field(default_factory=dict)


class Q(str, Enum):
    """An argument whose value comes from the question."""

    question = "question"
    query = "query"  # the classifier's search text, else the question
    lang = "lang"
    likes = "likes"  # the images, plus the query text when there is one

    def value(self, inp: PlanInput) -> Any:
        if self is Q.question:
            return inp.question
        if self is Q.query:
            return inp.query.strip() or inp.question
        if self is Q.lang:
            return inp.language
        return list(inp.images) + ([inp.query.strip()] if inp.query.strip() else [])


@dataclass(frozen=True)
class ByLang:
    """A constant argument in the question's language."""

    zh: str
    en: str

    def value(self, inp: PlanInput) -> str:
        return self.zh if inp.language == "zh" else self.en


Condition = Callable[[PlanInput], bool]


def has_query_or_no_image(inp: PlanInput) -> bool:
    """Search by text: the classifier found a search text, or there is no image to search by."""
    return bool(inp.query.strip()) or not inp.images


def image_without_query(inp: PlanInput) -> bool:
    """Search by image: an image and no search text."""
    return bool(inp.images) and not inp.query.strip()


def missing(tool: str) -> Condition:
    def cond(inp: PlanInput) -> bool:
        return tool not in inp.available

    cond.__name__ = f"missing_{tool}"
    return cond


def has_results(tool: str) -> Condition:
    """An earlier round of ``tool`` gave some non-empty text."""

    def cond(inp: PlanInput) -> bool:
        return any(t.strip() for t in inp.results.get(tool, ()))

    cond.__name__ = f"has_{tool}_results"
    return cond


@dataclass(frozen=True)
class Call:
    tool: str | tuple[str, ...]  # alternatives: the first usable here
    args: Mapping[str, Any] = field(default_factory=dict)
    images: ImagesMode | None = None  # None: the tool's own default
    limit: int | None = None  # at most this many images
    round: int = 0
    when: Condition | None = None

    @property
    def tools(self) -> tuple[str, ...]:
        return (self.tool,) if isinstance(self.tool, str) else self.tool


def argument(value: Any, inp: PlanInput) -> Any:
    """A call's argument for this question: a :class:`Q` or :class:`ByLang` value, a function
    of the plan input, or the constant itself."""
    if isinstance(value, (Q, ByLang)):
        return value.value(inp)
    if callable(value):
        return value(inp)
    return value
