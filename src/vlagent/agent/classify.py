"""The LLM's vote on a question's type: one voter beside the learned classifier.

``llm_vote(llm, question, images, cards=spec.cards) -> Vote``: a probability for each of the
agent's question types (the built-in cards' unless ``cards`` is given).

* The system prompt is ``prompts/classify.txt`` with one line per question card
  (``prompt_line``), ``Settings.classifier_static_examples`` labelled questions per type from
  the training suite (the same for every question: the engine's prompt cache keeps this whole
  prefix) and the reply line; the user message is the question and its images as a count and
  base names, never file-system paths.
* Where the engine reports log-probabilities (vLLM, llama.cpp's server, the in-process engine,
  OpenAI): one decoded token and its ``top_logprobs``; each alternative that starts exactly one
  type's name counts for that type (:func:`score_types`), and the scores become a distribution
  (:func:`as_probs`). Otherwise the structured label (grammar / tool call / json_schema through
  :func:`vlagent.models.llm.structured_llm`, prompted JSON for a chat model without tools).
* ``reply_cache`` (a :class:`vlagent.cache.DiskCache`): the vote keyed by the model and the
  exact prompt (evaluations and the fusion fit re-run unchanged prompts for free).

How much the vote counts is fit on labelled data per model (:mod:`vlagent.agent.vote`); the
LLM never overrules anything by a hand-written rule.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import PydanticOutputParser
from langchain_core.runnables import Runnable
import numpy as np
from pydantic import BaseModel, Field, create_model

from vlagent.agent.cards import BUILTIN, ORDER
from vlagent.agent.fewshot import Example, load_pool
from vlagent.agent.language import detect_language
from vlagent.agent.questions import QuestionCard
from vlagent.agent.types import QuestionType
from vlagent.cache import DiskCache
from vlagent.data.images import base_name  # the one base-name helper (also `classify.base_name`)
from vlagent.models.llm import structured_llm

log = logging.getLogger(__name__)

#: labelled questions per type in the fixed prompt (``Settings.classifier_static_examples``'s default)
STATIC_EXAMPLES = 3


Cards = Sequence[QuestionCard]


def prompt_cards(cards: Cards) -> list[QuestionCard]:
    """The cards in the classifier prompt's order (``prompt_rank``, then the cards' order)."""
    return sorted(cards, key=lambda c: c.prompt_rank)


class LLMDecision(BaseModel):
    """What the LLM is asked for (language and images are decided without it); the schema sent
    is :func:`decision_model`'s, which lists the cards' types."""

    type: QuestionType = Field(
        description="retrieve | recommend | describe | vqa | ocr | compare | chat (see the system prompt)"
    )
    query: str = Field("", description="for retrieve: the product title to search for, copied from the question; else empty")


def decision_model(cards: Cards = BUILTIN) -> type[LLMDecision]:
    """:class:`LLMDecision` for the cards' types (its schema enumerates them)."""
    return _decision_model(tuple(c.name for c in prompt_cards(cards)))


@lru_cache(maxsize=16)
def _decision_model(names: tuple[str, ...]) -> type[LLMDecision]:
    described = Field(description=" | ".join(names) + " (see the system prompt)")
    return create_model("LLMDecision", __base__=LLMDecision, type=(Literal[names], described))  # type: ignore[call-overload,valid-type]


Method = Literal["logprobs", "structured"]

#: how each method asks for the answer (the last line of the system prompt)
REPLY = {
    "logprobs": "Reply with the type only, one word.",
    "structured": 'Reply JSON {"type": ..., "query": ...}; query is "" unless type is retrieve.',
}


def system_prompt(method: Method = "structured", static_examples: int = 0, cards: Cards = BUILTIN) -> str:
    """``prompts/classify.txt``, ``static_examples`` labelled questions per type (the same for
    every question: the engine's prompt cache keeps this whole prefix), and the reply line."""
    return _system_prompt(method, static_examples, tuple(cards))


@lru_cache(maxsize=8)
def _system_prompt(method: Method, static_examples: int, cards: tuple[QuestionCard, ...]) -> str:
    template = resources.files("vlagent.prompts").joinpath("classify.txt").read_text("utf-8").strip()
    lines = [template.replace("$types", "\n".join(f"{c.name}: {c.prompt_line}" for c in prompt_cards(cards)))]
    if static_examples:
        lines += ["Labelled examples:", *(_example_line(e, cards) for e in static_pool(static_examples, cards))]
    lines.append(REPLY[method])
    return "\n".join(lines)


def static_pool(per_type: int, cards: Cards = BUILTIN) -> tuple[Example, ...]:
    """``per_type`` labelled questions of each type from the suite's main split (never the
    holdout), alternating Chinese and English in the suite's order: a fixed, cacheable set."""
    return _static_pool(per_type, tuple(cards))


@lru_cache(maxsize=8)
def _static_pool(per_type: int, cards: tuple[QuestionCard, ...]) -> tuple[Example, ...]:
    chosen: list[Example] = []
    pool = load_pool(cards=cards)
    for card in cards:
        rows = [e for e in pool if e.type == card.name]
        zh = [e for e in rows if detect_language(e.question) == "zh"]
        en = [e for e in rows if detect_language(e.question) != "zh"]
        mixed = [e for pair in zip(zh, en) for e in pair] + zh[len(en):] + en[len(zh):]
        chosen += mixed[:per_type]
    return tuple(chosen)


def describe_images(images: list[str]) -> str:
    """``none`` / ``1 (abc.jpg)`` / ``2 (a.jpg, b.jpg)``: base names only, never paths."""
    if not images:
        return "none"
    return f"{len(images)} ({', '.join(base_name(i) for i in images)})"


def _example_line(ex: Example, cards: Cards) -> str:
    takes_query = any(c.name == ex.type and c.query for c in cards)
    label = ex.type + (f", query: {ex.query}" if takes_query and ex.query else "")
    return f"Q: {ex.question.strip()} images: {len(ex.images) or 'none'} -> {label}"


def build_messages(
    question: str,
    images: list[str],
    examples: list[Example] | None = None,
    method: Method = "structured",
    static_examples: int = 0,
    cards: Cards = BUILTIN,
) -> list[BaseMessage]:
    """The fixed system prefix first, then what is this question's own: its similar labelled
    questions (dynamic examples) and the question itself."""
    lines = []
    if examples:
        lines = ["Similar labelled questions:", *(_example_line(e, cards) for e in examples), ""]
    lines.append(f"Q: {question.strip()} images: {describe_images(images)}")
    return [SystemMessage(system_prompt(method, static_examples, cards)), HumanMessage("\n".join(lines))]


def structured_classifier(llm: BaseChatModel, cards: Cards = BUILTIN) -> Runnable[Any, Any]:
    """messages → :class:`LLMDecision` (raises on failure)."""
    try:
        return structured_llm(llm, decision_model(cards))
    except NotImplementedError:  # a chat model without tool calling: prompted JSON
        parser = PydanticOutputParser(pydantic_object=decision_model(cards))
        return llm | parser


#: label candidates read from the first answer token (the top alternatives the engine reports)
TOP_LOGPROBS = 20


def reports_logprobs(llm: BaseChatModel) -> bool:
    """OpenAI-compatible engines report ``top_logprobs`` (vLLM, llama.cpp's server, the in-process
    engine, OpenAI); other chat models are asked for structured output."""
    from langchain_openai import ChatOpenAI

    return isinstance(llm, ChatOpenAI)


def score_types(llm: BaseChatModel, messages: list[BaseMessage], names: Sequence[str] = ORDER) -> dict[QuestionType, float]:
    """The type whose first token the model finds most likely, from one decoded token.

    One forward pass over the (mostly cached) prompt and one token out, with the engine's
    ``top_logprobs``: each alternative that is the start of exactly one type's name counts for
    that type; the best-scoring type wins. None when the engine reports no log-probabilities
    (e.g. the transformers backend) or no alternative names a type: then the caller asks for
    structured output instead."""
    reply = llm.bind(logprobs=True, top_logprobs=TOP_LOGPROBS, max_tokens=1, temperature=0).invoke(messages)
    content = ((getattr(reply, "response_metadata", None) or {}).get("logprobs") or {}).get("content") or []
    if not content:
        return {}
    scores: dict[QuestionType, float] = {}
    for alternative in content[0].get("top_logprobs") or []:
        token = str(alternative.get("token", "")).strip().lower()
        named = [t for t in names if token and t.startswith(token)]
        if len(named) == 1:
            scores[named[0]] = max(scores.get(named[0], float("-inf")), float(alternative["logprob"]))
    return scores


def _model_key(llm: BaseChatModel) -> str:
    params = getattr(llm, "_identifying_params", {}) or {}
    return f"{type(llm).__name__}:{sorted((str(k), str(v)) for k, v in dict(params).items())}"


def as_structured(messages: list[BaseMessage]) -> list[BaseMessage]:
    """The same prompt with the structured method's reply line in place of the one-token line."""
    first, one_token = messages[0], REPLY["logprobs"]
    text = str(first.content)
    if isinstance(first, SystemMessage) and text.endswith(one_token):
        return [SystemMessage(text[: -len(one_token)] + REPLY["structured"]), *messages[1:]]
    return messages


class Vote(BaseModel):
    """The LLM's vote: a probability for each of the cards' types, and how it was read."""

    probs: dict[str, float]
    method: Literal["logprobs", "structured"]


#: the probability mass the structured method's single label leaves to the other types
STRUCTURED_OTHERS = 0.1


def as_probs(scores: dict[QuestionType, float], names: Sequence[str] = ORDER) -> dict[str, float]:
    """Log-probabilities of the types the engine named → a distribution over every one of
    ``names``; a type outside the engine's top alternatives gets the least one found, minus log 10."""
    floor = min(scores.values()) - 2.302585 if scores else 0.0
    logits = np.array([scores.get(n, floor) for n in names], dtype=np.float64)
    e = np.exp(logits - logits.max())
    return {n: float(p) for n, p in zip(names, e / e.sum())}


def llm_vote(
    llm: BaseChatModel,
    question: str,
    images: list[str],
    *,
    timeout: float | None = None,
    reply_cache: DiskCache | None = None,
    static_examples: int = STATIC_EXAMPLES,
    cards: Cards = BUILTIN,
) -> Vote:
    """The LLM's probabilities over the types for one question (raises when it cannot vote).

    One decoded token and its top log-probabilities where the engine reports them (one forward
    pass over a mostly cached prompt); else the structured label, as a distribution that leaves
    :data:`STRUCTURED_OTHERS` to the other types."""
    messages = build_messages(question, images, None, "logprobs", static_examples, cards)
    names = [c.name for c in cards]
    key = ""
    if reply_cache is not None:
        prompt = "\n".join(f"{m.type}: {m.content}" for m in messages)
        key = DiskCache.key("vote", _model_key(llm), hashlib.sha256(prompt.encode()).hexdigest())
        hit = reply_cache.get(key)
        if hit is not None:
            return Vote.model_validate(hit)

    def ask() -> Vote:
        if reports_logprobs(llm):
            scores = score_types(llm, messages, names)
            if scores:
                return Vote(probs=as_probs(scores, names), method="logprobs")
        decision = structured_classifier(llm, cards).invoke(as_structured(messages))
        if decision is None:
            raise ValueError("the LLM returned no structured output")
        if isinstance(decision, BaseModel) and not isinstance(decision, LLMDecision):
            decision = decision.model_dump()
        chosen = str((decision if isinstance(decision, LLMDecision) else decision_model(cards).model_validate(decision)).type)
        others = [n for n in names if n != chosen]
        probs = {n: STRUCTURED_OTHERS / max(1, len(others)) for n in others} | {chosen: 1.0 - STRUCTURED_OTHERS}
        return Vote(probs=probs, method="structured")

    if timeout is None:
        vote = ask()
    else:
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="vote")
        try:
            vote = pool.submit(ask).result(timeout=timeout)
        except concurrent.futures.TimeoutError as exc:
            raise TimeoutError(f"the LLM did not answer within {timeout:g} s") from exc
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
    if reply_cache is not None:
        reply_cache.put(key, vote.model_dump(mode="json"))
    return vote


__all__ = [
    "LLMDecision", "Vote", "as_probs", "build_messages", "decision_model", "describe_images", "llm_vote", "score_types",
    "static_pool", "structured_classifier", "system_prompt",
]  # fmt: skip
