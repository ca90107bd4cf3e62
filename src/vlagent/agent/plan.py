"""The plan as data: question type → the tool calls that answer it.

:data:`PLAN` is the one table, filled from the question cards' ``plan``
(:mod:`vlagent.agent.cards`, :mod:`vlagent.agent.questions`). The plan node (:mod:`vlagent.agent.graph`) asks
:func:`calls_for` for each round's calls, and ``VLAgent.prepare`` walks the same table to batch
work before a harness run. A :class:`Call` names a tool (or alternatives: the first one usable
here), its arguments (constants, per-language constants, or values of the question), which
images it takes (the spec's default unless given), and when it applies. Round 1 calls see the
round 0 results: the OCR prompt sends the text OCR read to the VLM.

Tools add themselves to the table through the registry
(``register_tool(spec, plan={QuestionType.vqa: [Call("toy")]})``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from vlagent.agent.registry import connect_plan, get_spec
from vlagent.agent.toolspec import ImagesMode
from vlagent.agent.types import QuestionType

MAX_COMPARE_IMAGES = 4
RETRIEVE_K = 10


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
    ocr_question = "ocr_question"  # the question plus the text OCR read (the OCR prompt)
    likes = "likes"  # the images, plus the query text when there is one

    def value(self, inp: PlanInput) -> Any:
        if self is Q.question:
            return inp.question
        if self is Q.query:
            return inp.query.strip() or inp.question
        if self is Q.lang:
            return inp.language
        if self is Q.ocr_question:
            text = "\n".join(t for t in inp.results.get("ocr", ()) if t.strip())
            return f"{inp.question}\n(OCR text in the image:\n{text})"
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


def has_ocr_text(inp: PlanInput) -> bool:
    return any(t.strip() for t in inp.results.get("ocr", ()))


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


DESCRIBE_PROMPT = ByLang("请描述这张图片中的商品。", "Describe the product in this image.")

#: question type → its calls: each card's ``plan`` (:mod:`vlagent.agent.cards`), then the calls
#: tools add with ``register_tool(spec, plan=...)``
PLAN: dict[QuestionType, list[Call]] = {}
_LOCK = threading.Lock()


def add_calls(qtype: QuestionType, calls: Sequence[Call]) -> None:
    with _LOCK:
        PLAN.setdefault(qtype, []).extend(calls)


def set_calls(qtype: QuestionType, calls: Sequence[Call], replaces: Sequence[Call] = ()) -> None:
    """A question card's own calls first (``replaces``: the calls of the card it replaces);
    the calls tools added stay."""
    with _LOCK:
        added = [c for c in PLAN.get(qtype, []) if c not in replaces and c not in calls]
        PLAN[qtype] = [*calls, *added]


def drop_calls(qtype: QuestionType) -> None:
    with _LOCK:
        PLAN.pop(qtype, None)


def remove_calls(tool: str) -> None:
    """Drop the calls that name only ``tool`` (a tool being replaced or unregistered)."""
    with _LOCK:
        for qtype, calls in PLAN.items():
            PLAN[qtype] = [c for c in calls if c.tools != (tool,)]


def rounds(qtype: QuestionType) -> int:
    return 1 + max((c.round for c in PLAN.get(qtype, [])), default=0)


def _value(value: Any, inp: PlanInput) -> Any:
    return value.value(inp) if isinstance(value, (Q, ByLang)) else value


def calls_for(qtype: QuestionType, round_: int, inp: PlanInput) -> list[tuple[str, dict[str, Any]]]:
    """The (tool, arguments) pairs of one round, for the tools usable here."""
    out: list[tuple[str, dict[str, Any]]] = []
    with _LOCK:
        table = list(PLAN.get(qtype, []))
    for call in table:
        if call.round != round_ or (call.when is not None and not call.when(inp)):
            continue
        tool = next((t for t in call.tools if t in inp.available), None)
        spec = get_spec(tool) if tool else None
        if spec is None:
            continue
        args = {k: _value(v, inp) for k, v in call.args.items()}
        mode = call.images or spec.images
        images = inp.images[: call.limit] if call.limit else list(inp.images)
        arg = spec.image_arg
        if mode == "none" or arg is None:
            out.append((spec.name, args))
        elif not images:
            continue  # an image tool with no image to look at
        elif mode == "each" or (mode == "first" and arg == "image"):
            targets = images if mode == "each" else images[:1]
            for image in targets:
                out.append((spec.name, {arg: [image] if arg == "images" else image, **args}))
        else:  # "all", or "first" for a tool that takes a list
            out.append((spec.name, {arg: images if mode == "all" else images[:1], **args}))
    return out


connect_plan(add_calls, remove_calls)  # the registry edits PLAN through these (it never imports this module)
