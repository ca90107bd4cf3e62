"""A question type is declared once: one :class:`QuestionCard` that classify, plan and answer read.

The built-in cards are :mod:`vlagent.agent.cards`; a new type is one card, registered::

    from vlagent.agent.plan import Call, Q
    from vlagent.agent.questions import QuestionCard, register_question_type

    register_question_type(QuestionCard(
        name="toy", prompt_line="a question about a toy (玩具, toy)",
        min_images=1, answer="llm", plan=(Call("vqa", {"question": Q.question}, images="all"),),
        templates={"zh": "...$vqa\\n回答：", "en": "...$vqa\\nAnswer:"},
        examples=({"question": "这个玩具适合几岁？", "images": ["a.jpg"]}, ...),   # what the classifier learns it from
    ))
    unregister_question_type("toy")
    question_cards()      # every card, in registration order
    get_card("vqa")       # one card (KeyError when none has that name)

A card says:

* ``name``: the type (``QuestionType(name)``, the classifier's label, ``prompts/<name>.<lang>.txt``);
* ``prompt_line``: its line in the classifier's system prompt, after ``"<name>: "``; the lines
  are in ascending ``prompt_rank`` (the built-in ones: 0-6), then registration order;
* ``min_images`` / ``max_images``: how many images it needs (0: none; compare: 2 or more;
  ``max_images`` None: any number); the answer is an error when such a question has no image;
* ``answer``: how the answer is written —
  ``"llm"``: the template filled with the tool results, then the answer LLM (chat);
  ``"list"``: the template filled with the ranked list, no LLM (retrieve, recommend);
  ``"facts"``: the per-image facts decide when they settle it, else the LLM (describe, compare, vqa);
  ``"transcript"``: the text as read (the tools whose spec's ``fact`` is ``"text"``) when the
  question asks to transcribe it, else the LLM (ocr);
  ``"summary"``: the one-line summary of ``summary_tool``'s result (its spec's ``summarize``,
  else its text) is the answer, no LLM (a matching tool's verdict);
* ``fallback_fields``: the template fields a fallback answer (no LLM) takes, best first;
  ``single_source``: that fallback is the best single field, not all of them joined;
  ``fallback_text``: {lang: text}, a fixed answer when there is no LLM (chat);
* ``needs_evidence``: False when an answer needs no tool result (chat);
* ``plan``: its :class:`vlagent.agent.plan.Call` list (``register_tool(spec, plan=...)`` adds more);
* ``query``: the understanding pass extracts the copied text for this type
  (:mod:`vlagent.agent.query`): a title to search for (retrieve), a description to check the
  image against (match);
* ``templates``: {lang: template text} inline (``=== user ===`` splits system and user parts);
  empty: ``prompts/<name>.<lang>.txt``;
* ``what_is_missing``: the no-evidence error's words, "no tool that can <this> is available";
* ``examples``: labelled questions (``{"question", "images", "query"}``): the learned classifier
  is fit on the shipped data plus these when the registered types differ from the shipped
  model's (:func:`vlagent.agent.understand.model_for_cards`), and they join the LLM's example pool.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from vlagent.agent.plan import Call, drop_calls, set_calls
from vlagent.agent.types import QuestionType

AnswerMode = Literal["llm", "list", "facts", "transcript", "summary"]


@dataclass(frozen=True)
class QuestionCard:
    name: str
    prompt_line: str
    prompt_rank: int = 100
    min_images: int = 0
    max_images: int | None = None
    answer: AnswerMode = "llm"
    fallback_fields: tuple[str, ...] = ()
    single_source: bool = False
    fallback_text: Mapping[str, str] = field(default_factory=dict)
    needs_evidence: bool = True
    plan: tuple[Call, ...] = ()
    query: bool = False
    templates: Mapping[str, str] = field(default_factory=dict)
    what_is_missing: str = "read the image"
    summary_tool: str | None = None
    examples: tuple[Mapping[str, Any], ...] = ()

    @property
    def needs_image(self) -> bool:
        return self.min_images >= 1

    @property
    def type(self) -> QuestionType:
        return QuestionType(self.name)


_CARDS: dict[str, QuestionCard] = {}
_LOCK = threading.RLock()


def register_question_type(card: QuestionCard) -> QuestionType:
    """Add a question type (replacing a card of the same name) with its plan calls."""
    with _LOCK:
        old = _CARDS.get(card.name)
        _CARDS[card.name] = card
        qtype = QuestionType._add(card.name)
        set_calls(qtype, card.plan, old.plan if old else ())
    _changed()
    return qtype


def unregister_question_type(name: str) -> None:
    with _LOCK:
        _CARDS.pop(name, None)
        QuestionType._remove(name)
        drop_calls(name)
    _changed()


def question_cards() -> list[QuestionCard]:
    with _LOCK:
        return list(_CARDS.values())


def get_card(name: str) -> QuestionCard:
    return _CARDS[str.__str__(name)]


#: called after each change (caches keyed on the registered names clear themselves)
_LISTENERS: list[Callable[[], None]] = []


def on_change(listener: Callable[[], None]) -> None:
    _LISTENERS.append(listener)


def _changed() -> None:
    for listener in list(_LISTENERS):
        listener()


__all__ = [
    "AnswerMode", "QuestionCard", "get_card", "question_cards",
    "register_question_type", "unregister_question_type",
]  # fmt: skip
