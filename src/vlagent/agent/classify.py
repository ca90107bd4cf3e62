"""The question classifier: an LLM with structured output, the rules as fallback and referee.

``classify(question, images, llm, timeout=None) -> ClassifierResult``

* The LLM is asked for :class:`LLMDecision` (``type`` + ``query``) only — two short fields, so
  a small CPU model answers in a few tokens. ``language`` and ``images`` are deterministic
  (:func:`vlagent.agent.rules.detect_language`, the given images plus file names in the text)
  and never asked of the model. The system prompt is ``prompts/classify.txt``
  (``vlagent.prompts``). Structured output goes through :func:`vlagent.llm.structured_llm`
  (grammar for llama.cpp, tool call / json_schema for OpenAI-compatible servers); a chat model
  without tool calling falls back to prompted JSON parsed with ``PydanticOutputParser``.
* Fallback to the rules (``source="rules"``, ``error`` = one line saying why) when ``llm`` is
  None, raises (unreachable server, parse or schema error, a type outside the enum), returns
  nothing, or takes longer than ``timeout`` seconds.
* Post-checks on an LLM answer (documented in :func:`_reconcile`):
  1. describe / vqa / ocr / compare with no image attached or named, and no visual reference
     in the text → the rules decide (source "rules", error says why) when they disagree;
  2. retrieve with an empty query → the rules' query when the rules also see a retrieval
     question, else the question itself (unless an image is attached: image-to-image search);
  3. retrieve with a query that is not in the question (paraphrased/translated by the model)
     → the rules' query when they found one that is;
  4. any other type → query "".
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
from functools import lru_cache
from importlib import resources
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import PydanticOutputParser
from langchain_core.runnables import Runnable
from pydantic import BaseModel, Field, ValidationError

from vlagent.agent.rules import _VISUAL_REF, classify_rules, clean_query, detect_language, merge_images
from vlagent.agent.types import Classification, ClassifierResult, QuestionType

log = logging.getLogger(__name__)

IMAGE_TYPES = {QuestionType.describe, QuestionType.vqa, QuestionType.ocr, QuestionType.compare}


class LLMDecision(BaseModel):
    """What the LLM is asked for (language and images are decided without it)."""

    type: QuestionType = Field(
        description="retrieve | describe | vqa | ocr | compare | chat (see the system prompt)"
    )
    query: str = Field("", description="for retrieve: the product title to search for, copied from the question; else empty")


@lru_cache(maxsize=1)
def system_prompt() -> str:
    return resources.files("vlagent.prompts").joinpath("classify.txt").read_text("utf-8").strip()


def build_messages(question: str, images: list[str]) -> list[BaseMessage]:
    names = ", ".join(images) if images else "none"
    return [SystemMessage(system_prompt()), HumanMessage(f"Q: {question.strip()} images: {names}")]


def structured_classifier(llm: BaseChatModel) -> Runnable[Any, Any]:
    """messages → :class:`LLMDecision` (raises on failure)."""
    try:
        from vlagent.llm import structured_llm

        return structured_llm(llm, LLMDecision)
    except NotImplementedError:  # a chat model without tool calling: prompted JSON
        parser = PydanticOutputParser(pydantic_object=LLMDecision)
        return llm | parser


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300]


def _ask(llm: BaseChatModel, question: str, images: list[str], timeout: float | None) -> LLMDecision:
    runnable = structured_classifier(llm)
    messages = build_messages(question, images)
    if timeout is None:
        out = runnable.invoke(messages)
    else:
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="classify")
        try:
            out = pool.submit(runnable.invoke, messages).result(timeout=timeout)
        except concurrent.futures.TimeoutError as exc:
            raise TimeoutError(f"the LLM did not answer within {timeout:g} s") from exc
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
    if out is None:
        raise ValueError("the LLM returned no structured output")
    if isinstance(out, LLMDecision):
        return out
    if isinstance(out, BaseModel):
        out = out.model_dump()
    return LLMDecision.model_validate(out)


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def _reconcile(question: str, decision: LLMDecision, rules: Classification, images: list[str]) -> ClassifierResult:
    """Apply the post-checks listed in the module docstring to an LLM decision."""
    lang = detect_language(question)  # an LLM query on a non-retrieve type must not sway this
    visual = bool(images) or bool(_VISUAL_REF.search(question))
    if decision.type in IMAGE_TYPES and not visual and rules.type is not decision.type:
        return ClassifierResult(
            classification=rules,
            source="rules",
            error=f"llm said {decision.type.value} but there is no image; rules chose {rules.type.value}",
        )
    query = ""
    if decision.type is QuestionType.retrieve:
        query = clean_query(decision.query)
        rule_query = rules.query if rules.type is QuestionType.retrieve else ""
        if not query:
            query = rule_query or ("" if images else clean_query(question))
        elif _norm(query) not in _norm(question) and rule_query and _norm(rule_query) in _norm(question):
            query = rule_query
        lang = detect_language(question.replace(query, " ") if query else question)
    classification = Classification(type=decision.type, language=lang, query=query, images=images)
    return ClassifierResult(classification=classification, source="llm")


def classify(
    question: str,
    images: list[str] | None,
    llm: BaseChatModel | None,
    *,
    timeout: float | None = None,
) -> ClassifierResult:
    """Classify one question: the LLM decides, the rules step in (see the module docstring)."""
    imgs = merge_images(list(images or []), question)
    rules = classify_rules(question, imgs)
    if llm is None:
        return ClassifierResult(classification=rules, source="rules", error="no LLM configured")
    try:
        decision = _ask(llm, question, imgs, timeout)
    except (Exception, TimeoutError) as exc:  # noqa: BLE001 - any LLM failure → rules
        reason = _one_line(exc)
        if isinstance(exc, ValidationError):
            reason = f"invalid LLM output: {reason}"
        log.info("classifier falls back to rules: %s", reason)
        return ClassifierResult(classification=rules, source="rules", error=f"llm failed: {reason}")
    return _reconcile(question, decision, rules, imgs)


__all__ = ["LLMDecision", "build_messages", "classify", "classify_rules", "structured_classifier", "system_prompt"]
