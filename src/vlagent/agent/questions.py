"""A question type is declared once: one :class:`QuestionCard` that classify, plan and answer read.

The built-in cards are :mod:`vlagent.agent.cards`; a new type is one card, given to the agent
(nothing registers globally: :func:`vlagent.agent.spec.build_spec` assembles the cards once)::

    from vlagent.agent.calls import Call, Q
    from vlagent.agent.questions import QuestionCard

    TOY = QuestionCard(
        name="toy", prompt_line="a question about a toy (玩具, toy)",
        min_images=1, answer="llm", plan=(Call("vqa", {"question": Q.question}, images="all"),),
        templates={"zh": "...$vqa\\n回答：", "en": "...$vqa\\nAnswer:"},
        examples=({"question": "这个玩具适合几岁？", "images": ["a.jpg"]}, ...),   # what the classifier learns it from
    )
    agent = build_agent(settings, cards=[TOY])          # or an installed package's ``vlagent.cards`` entry point

A card says:

* ``name``: the type (the classifier's label, ``prompts/<name>.<lang>.txt``);
* ``prompt_line``: its line in the classifier's system prompt, after ``"<name>: "``; the lines
  are in ascending ``prompt_rank`` (the built-in ones: 0-7), then the cards' order;
* ``min_images`` / ``max_images``: how many images it needs (0: none; compare: 2 or more;
  ``max_images`` None: any number); the answer is an error when such a question has no image;
* ``answer``: how the answer is written —
  ``"llm"``: the template filled with the tool results, then the answer LLM (chat);
  ``"list"``: the template filled with the ranked list, no LLM (retrieve, recommend);
  ``"facts"``: the per-image facts (:mod:`vlagent.agent.facts`): the card's ``decide`` states
  them when they settle the question, else the LLM writes from them (describe, compare, vqa);
  ``"transcript"``: the text as read (the tools whose spec's ``fact`` is ``"read"``) when the
  question asks to transcribe it, else the LLM (ocr);
  ``"summary"``: the one-line summary of ``summary_tool``'s result (its spec's ``summarize``,
  else its text) is the answer, no LLM (a matching tool's verdict);
* ``decide(facts) -> Decision | None``: a ``facts`` card's answer when the facts settle it
  (:class:`vlagent.agent.facts.Facts`: the images' facts, the cues, and the card's sentences in
  the question's language, ``facts.say(key, ...)``); ``fallback(facts) -> str | None``: its
  answer from the facts when no LLM answered;
* ``fallback_fields``: the template fields a fallback answer (no LLM) takes, best first;
  ``single_source``: that fallback is the best single field, not all of them joined;
  ``fallback_text``: {lang: text}, a fixed answer when there is no LLM (chat);
* ``needs_evidence``: False when an answer needs no tool result (chat);
* ``plan``: its :class:`vlagent.agent.calls.Call` list (a tool's ``ToolSpec.calls`` add more);
* ``query``: the understanding pass extracts the copied text for this type
  (:mod:`vlagent.agent.query`): a title to search for (retrieve), a description to check the
  image against (match);
* ``templates``: {lang: template text} inline (``=== user ===`` splits system and user parts);
  empty: ``<name>.<lang>.txt`` in ``template_dir``, else in ``prompts/``;
* ``template_dir``: a folder of the card's own template files (a plugin's): ``<name>.<lang>.txt``
  (the LLM's template) and ``<name>.facts.<lang>.txt`` (its sentences, ``key = text with $fields``,
  over the shared ``prompts/facts.<lang>.txt``);
* ``what_is_missing``: the no-evidence error's words, "no tool that can <this> is available";
* ``examples``: labelled questions (``{"question", "images", "query"}``): the learned classifier
  is fit on the shipped data plus these when the cards' types differ from the shipped
  model's (:func:`vlagent.agent.understand.model_for_cards`), and they join the LLM's example pool.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from vlagent.agent.calls import Call

if TYPE_CHECKING:  # pragma: no cover
    from vlagent.agent.facts import Decision, Facts

AnswerMode = Literal["llm", "list", "facts", "transcript", "summary"]


@dataclass(frozen=True, eq=False)
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
    decide: Callable[["Facts"], "Decision | None"] | None = None
    fallback: Callable[["Facts"], str | None] | None = None
    template_dir: str | Path | None = None

    @property
    def needs_image(self) -> bool:
        return self.min_images >= 1


__all__ = ["AnswerMode", "QuestionCard"]
