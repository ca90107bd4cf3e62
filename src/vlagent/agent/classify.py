"""The question classifier: an LLM with structured output, the rules as fallback and referee.

``classify(question, images, llm, timeout=None) -> ClassifierResult``

* The LLM is asked for :class:`LLMDecision` (``type`` + ``query``) only — two short fields, so
  a small CPU model answers in a few tokens. ``language`` and ``images`` are deterministic
  (:func:`vlagent.agent.rules.detect_language`, the given images plus file names in the text)
  and never asked of the model. The system prompt is ``prompts/classify.txt``
  (``vlagent.prompts``). Structured output goes through :func:`vlagent.models.llm.structured_llm`
  (grammar for llama.cpp, tool call / json_schema for OpenAI-compatible servers); a chat model
  without tool calling falls back to prompted JSON parsed with ``PydanticOutputParser``.
* Dynamic few-shot: the user message lists the ``k`` labelled questions most similar to this one
  (:mod:`vlagent.agent.fewshot`: multilingual-e5, never the holdout split, never the question
  itself; ``k`` = ``Settings.classifier_examples``), then the question. The system prompt stays
  a fixed prefix (llama.cpp's prompt cache keeps its KV state). Images are given as a count and
  their base names, never file-system paths.
* ``reply_cache`` (a :class:`vlagent.cache.DiskCache`): the LLM's decision keyed by the model and
  the exact prompt (the classifier eval re-runs unchanged prompts for free).
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
  5. images attached, the LLM says retrieve or chat, and the rules see no retrieval or chat
     wording (their type is neither) → the rules decide;
  6. two or more images and comparison wording, the rules say compare, the LLM says otherwise
     → compare;
  7. an image, label-reading wording (the rules say ocr: 吊牌/标签/label/tag, 写的/印的/say/read)
     and the LLM says vqa or describe → ocr (the offline 1.5B LLM's commonest slip);
  8. compare with fewer than two images and no comparison wording → the rules decide;
  9. retrieve with no image for a question that asks something (?, 吗, 怎么, how, what …) where
     the rules see no retrieval wording (they say chat) → chat: advice is not a title;
  10. retrieve where the rules see recommendation wording (推荐, recommend, suggest, more like
      this) → recommend.
  11. describe for a question with an image where the rules say vqa and nothing asks for a
      description (描述, 介绍, describe, tell me about, what is in …) → vqa: a description is
      asked for, not inferred (the 1.5B model's commonest slip when it answers with one token);
  12. vqa or describe where the rules say compare and the question has comparison wording
      (哪个更, 比, which one …) → compare.
  13. the rules chose a type whose card has ``rule_decides`` (match: a matching frame around a
      description, 是否符合…描述, 这是…吗, does this image match, :mod:`vlagent.agent.match_rule`)
      and the LLM says otherwise → the rules; 14. the LLM says such a type and its rule did not
      fire → the rules decide (the model said match for 哪张图片是…, 可以退换吗, two images);
  15. an image, the LLM says ocr and the rules say vqa (no reading wording, or the look of a
      label: 吊牌是什么颜色的) → vqa.
  Guards 1-6 were written before measuring; 7-9 after the first holdout run, 10 after the first
  main-split run, 11-12 after the first run of the log-probability method, 13-15 after the first
  run with the match card (its prompt line and examples moved five label-look questions to ocr).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import re
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import PydanticOutputParser
from langchain_core.runnables import Runnable
from pydantic import BaseModel, Field, ValidationError, create_model

from vlagent.agent.fewshot import Example, FewShotSelector, default_selector, load_pool
from vlagent.agent.questions import get_card, on_change, question_cards
from vlagent.agent.rules import _COMPARE, _VISUAL_REF, classify_rules, clean_query, detect_language, merge_images
from vlagent.agent.types import Classification, ClassifierResult, QuestionType
from vlagent.cache import DiskCache
from vlagent.data.images import base_name  # the one base-name helper (also `classify.base_name`)
from vlagent.errors import one_line
from vlagent.models.llm import structured_llm
from vlagent.settings import Settings

log = logging.getLogger(__name__)

def image_types() -> set[QuestionType]:
    """The types whose card needs an image (``min_images >= 1``)."""
    return {c.type for c in question_cards() if c.needs_image}


def prompt_cards() -> list[Any]:
    """The cards in the classifier prompt's order (``prompt_rank``, then registration)."""
    return sorted(question_cards(), key=lambda c: c.prompt_rank)


class LLMDecision(BaseModel):
    """What the LLM is asked for (language and images are decided without it); the schema sent
    is :func:`decision_model`'s, which lists the registered types."""

    type: QuestionType = Field(
        description="retrieve | recommend | describe | vqa | ocr | compare | chat (see the system prompt)"
    )
    query: str = Field("", description="for retrieve: the product title to search for, copied from the question; else empty")


def decision_model() -> type[LLMDecision]:
    """:class:`LLMDecision` for the types registered now (its schema enumerates them)."""
    return _decision_model(tuple(c.name for c in prompt_cards()))


@lru_cache(maxsize=16)
def _decision_model(names: tuple[str, ...]) -> type[LLMDecision]:
    described = Field(description=" | ".join(names) + " (see the system prompt)")
    return create_model("LLMDecision", __base__=LLMDecision, type=(QuestionType, described))  # type: ignore[call-overload]


Method = Literal["logprobs", "structured"]

#: how each method asks for the answer (the last line of the system prompt)
REPLY = {
    "logprobs": "Reply with the type only, one word.",
    "structured": 'Reply JSON {"type": ..., "query": ...}; query is "" unless type is retrieve.',
}


@lru_cache(maxsize=4)
def system_prompt(method: Method = "structured", static_examples: int = 0) -> str:
    """``prompts/classify.txt``, ``static_examples`` labelled questions per type (the same for
    every question: the engine's prompt cache keeps this whole prefix), and the reply line."""
    template = resources.files("vlagent.prompts").joinpath("classify.txt").read_text("utf-8").strip()
    lines = [template.replace("$types", "\n".join(f"{c.name}: {c.prompt_line}" for c in prompt_cards()))]
    if static_examples:
        lines += ["Labelled examples:", *(_example_line(e) for e in static_pool(static_examples))]
    lines.append(REPLY[method])
    return "\n".join(lines)


@lru_cache(maxsize=4)
def static_pool(per_type: int) -> tuple[Example, ...]:
    """``per_type`` labelled questions of each type from the suite's main split (never the
    holdout), alternating Chinese and English in the suite's order: a fixed, cacheable set."""
    chosen: list[Example] = []
    for qtype in QuestionType:
        rows = [e for e in load_pool() if e.type is qtype]
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


def _example_line(ex: Example) -> str:
    label = ex.type.value + (f", query: {ex.query}" if get_card(ex.type).query and ex.query else "")
    return f"Q: {ex.question.strip()} images: {len(ex.images) or 'none'} -> {label}"


def build_messages(
    question: str,
    images: list[str],
    examples: list[Example] | None = None,
    method: Method = "structured",
    static_examples: int = 0,
) -> list[BaseMessage]:
    """The fixed system prefix first, then what is this question's own: its similar labelled
    questions (dynamic examples) and the question itself."""
    lines = []
    if examples:
        lines = ["Similar labelled questions:", *(_example_line(e) for e in examples), ""]
    lines.append(f"Q: {question.strip()} images: {describe_images(images)}")
    return [SystemMessage(system_prompt(method, static_examples)), HumanMessage("\n".join(lines))]


def examples_for(question: str, fewshot: "FewShotSelector | bool", k: int | None) -> list[Example]:
    """The dynamic examples for ``question`` (``fewshot=True``: the shipped suite's selector)."""
    selector = default_selector() if fewshot is True else (fewshot or None)
    if selector is None:
        return []
    return selector.select(question, settings_k() if k is None else k)


@lru_cache(maxsize=1)
def settings_k() -> int:
    """``Settings.classifier_examples``, read once per process."""
    return _settings().classifier_examples


@lru_cache(maxsize=1)
def _settings() -> Any:
    return Settings()


def settings_method() -> tuple[Method, int]:
    """(``Settings.classifier_method``, ``Settings.classifier_static_examples``), read once per process."""
    s = _settings()
    return s.classifier_method, s.classifier_static_examples


def structured_classifier(llm: BaseChatModel) -> Runnable[Any, Any]:
    """messages → :class:`LLMDecision` (raises on failure)."""
    try:
        return structured_llm(llm, decision_model())
    except NotImplementedError:  # a chat model without tool calling: prompted JSON
        parser = PydanticOutputParser(pydantic_object=decision_model())
        return llm | parser


#: label candidates read from the first answer token (the top alternatives the engine reports)
TOP_LOGPROBS = 20


def reports_logprobs(llm: BaseChatModel) -> bool:
    """OpenAI-compatible engines report ``top_logprobs`` (vLLM, llama.cpp's server, the in-process
    engine, OpenAI); other chat models are asked for structured output."""
    from langchain_openai import ChatOpenAI

    return isinstance(llm, ChatOpenAI)


def score_types(llm: BaseChatModel, messages: list[BaseMessage]) -> LLMDecision | None:
    """The type whose first token the model finds most likely, from one decoded token.

    One forward pass over the (mostly cached) prompt and one token out, with the engine's
    ``top_logprobs``: each alternative that is the start of exactly one type's name counts for
    that type; the best-scoring type wins. None when the engine reports no log-probabilities
    (e.g. the transformers backend) or no alternative names a type: then the caller asks for
    structured output instead."""
    reply = llm.bind(logprobs=True, top_logprobs=TOP_LOGPROBS, max_tokens=1, temperature=0).invoke(messages)
    content = ((getattr(reply, "response_metadata", None) or {}).get("logprobs") or {}).get("content") or []
    if not content:
        return None
    scores: dict[QuestionType, float] = {}
    for alternative in content[0].get("top_logprobs") or []:
        token = str(alternative.get("token", "")).strip().lower()
        named = [t for t in QuestionType if token and t.value.startswith(token)]
        if len(named) == 1:
            scores[named[0]] = max(scores.get(named[0], float("-inf")), float(alternative["logprob"]))
    if not scores:
        return None
    return LLMDecision(type=max(scores, key=lambda t: scores[t]), query="")


def _model_key(llm: BaseChatModel) -> str:
    params = getattr(llm, "_identifying_params", {}) or {}
    return f"{type(llm).__name__}:{sorted((str(k), str(v)) for k, v in dict(params).items())}"


def _ask(
    llm: BaseChatModel,
    messages: list[BaseMessage],
    timeout: float | None,
    reply_cache: DiskCache | None = None,
    method: Method = "structured",
) -> LLMDecision:
    key = ""
    if reply_cache is not None:
        prompt = "\n".join(f"{m.type}: {m.content}" for m in messages)
        key = DiskCache.key("classify", _model_key(llm), hashlib.sha256(prompt.encode()).hexdigest())
        hit = reply_cache.get(key)
        if hit is not None:
            return LLMDecision.model_validate(hit)

    def ask(msgs: list[BaseMessage]) -> Any:
        if method == "logprobs" and reports_logprobs(llm):
            scored = score_types(llm, msgs)
            if scored is not None:
                return scored
            msgs = as_structured(msgs)  # the fallback asks for JSON, not "the type only"
        return structured_classifier(llm).invoke(msgs)

    if timeout is None:
        out = ask(messages)
    else:
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="classify")
        try:
            out = pool.submit(ask, messages).result(timeout=timeout)
        except concurrent.futures.TimeoutError as exc:
            raise TimeoutError(f"the LLM did not answer within {timeout:g} s") from exc
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
    if out is None:
        raise ValueError("the LLM returned no structured output")
    if isinstance(out, BaseModel) and not isinstance(out, LLMDecision):
        out = out.model_dump()
    decision = out if isinstance(out, LLMDecision) else LLMDecision.model_validate(out)
    if reply_cache is not None:
        reply_cache.put(key, decision.model_dump(mode="json"))
    return decision


def as_structured(messages: list[BaseMessage]) -> list[BaseMessage]:
    """The same prompt with the structured method's reply line in place of the one-token line."""
    first, one_token = messages[0], REPLY["logprobs"]
    text = str(first.content)
    if isinstance(first, SystemMessage) and text.endswith(one_token):
        return [SystemMessage(text[: -len(one_token)] + REPLY["structured"]), *messages[1:]]
    return messages


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def _reconcile(question: str, decision: LLMDecision, rules: Classification, images: list[str]) -> ClassifierResult:
    """Apply the post-checks listed in the module docstring to an LLM decision."""
    lang = detect_language(question)  # an LLM query on a non-retrieve type must not sway this
    visual = bool(images) or bool(_VISUAL_REF.search(question))
    if decision.type in image_types() and not visual and rules.type is not decision.type:
        return ClassifierResult(
            classification=rules,
            source="rules",
            error=f"llm said {decision.type.value} but there is no image; rules chose {rules.type.value}",
        )
    no_image_types = (QuestionType.retrieve, QuestionType.chat)
    if images and decision.type in no_image_types and rules.type not in no_image_types:
        return ClassifierResult(
            classification=rules,
            source="rules",
            error=(
                f"llm said {decision.type.value} for a question with an image and no "
                f"{decision.type.value} wording; rules chose {rules.type.value}"
            ),
        )
    if (
        len(images) >= 2
        and decision.type is not QuestionType.compare
        and rules.type is QuestionType.compare
        and _COMPARE.search(question)
    ):
        return ClassifierResult(
            classification=rules,
            source="rules",
            error=f"llm said {decision.type.value} for {len(images)} images with comparison wording; compare",
        )
    why = _referee(question, decision, rules, images)
    if why:
        return ClassifierResult(classification=rules, source="rules", error=why)
    query = ""
    if get_card(decision.type).query:  # retrieve: the search text
        query = clean_query(decision.query)
        rule_query = rules.query if rules.type is decision.type else ""
        if not query:
            query = rule_query or ("" if images else clean_query(question))
        elif _norm(query) not in _norm(question) and rule_query and _norm(rule_query) in _norm(question):
            query = rule_query
        lang = detect_language(question.replace(query, " ") if query else question)
    classification = Classification(type=decision.type, language=lang, query=query, images=images)
    return ClassifierResult(classification=classification, source="llm")


_ASKS = re.compile(
    r"[?？]|吗|呢|怎么|什么|如何|为什么|能不能|可不可以|\b(?:how|what|why|when|can|could|should|do|does|is|are)\b",
    re.IGNORECASE,
)


def _referee(question: str, decision: LLMDecision, rules: Classification, images: list[str]) -> str | None:
    """Why the rules overrule this LLM decision (guards 7-15 of the module docstring), or None."""
    said = decision.type
    if said is not rules.type and get_card(rules.type).rule_decides:
        return f"llm said {said.value}; the {rules.type.value} rule fired and decides that type"
    if said is not rules.type and get_card(said).rule_decides:
        return f"llm said {said.value} but the {said.value} rule did not fire; rules chose {rules.type.value}"
    if images and said is QuestionType.ocr and rules.type is QuestionType.vqa:
        return "llm said ocr for a question about how the item (or its label) looks, with no reading wording; rules chose vqa"
    if images and said in (QuestionType.vqa, QuestionType.describe) and rules.type is QuestionType.ocr:
        return f"llm said {said.value} for a label-reading question; rules chose ocr"
    if said is QuestionType.compare and len(images) < 2 and not _COMPARE.search(question):
        return f"llm said compare for {len(images)} image(s) and no comparison wording; rules chose {rules.type.value}"
    if said is QuestionType.retrieve and not images and rules.type is QuestionType.chat and _ASKS.search(question):
        return "llm said retrieve for a question with no image and no retrieval wording; rules chose chat"
    if said is QuestionType.retrieve and rules.type is QuestionType.recommend:
        return "llm said retrieve for a question with recommendation wording; rules chose recommend"
    if said is QuestionType.describe and images and rules.type is QuestionType.vqa and not _DESCRIBE_HINT.search(question):
        return "llm said describe for a question about one detail (no description wording); rules chose vqa"
    if said in (QuestionType.vqa, QuestionType.describe) and rules.type is QuestionType.compare and _COMPARE.search(question):
        return f"llm said {said.value} for a question with comparison wording; rules chose compare"
    return None


#: any wording that asks for a description (wider than the rules' describe patterns)
_DESCRIBE_HINT = re.compile(r"介绍|描述|描写|说说|讲讲|概括|总结|\bdescri|\bsummar|\btell me about\b|\bwhat is (?:in|this)\b", re.IGNORECASE)


def classify(
    question: str,
    images: list[str] | None,
    llm: BaseChatModel | None,
    *,
    timeout: float | None = None,
    fewshot: FewShotSelector | bool = True,
    k: int | None = None,
    reply_cache: DiskCache | None = None,
    method: Method | None = None,
    static_examples: int | None = None,
) -> ClassifierResult:
    """Classify one question: the LLM decides, the rules step in (see the module docstring).

    ``fewshot``: True for the shipped suite's example selector, False for none, or a
    :class:`FewShotSelector`; ``k`` examples (default ``Settings.classifier_examples``);
    ``method`` and ``static_examples`` default to ``Settings.classifier_method`` and
    ``Settings.classifier_static_examples``."""
    imgs = merge_images(list(images or []), question)
    rules = classify_rules(question, imgs)
    if llm is None:
        return ClassifierResult(classification=rules, source="rules", error="no LLM configured")
    default_method, default_static = settings_method()
    method = method or default_method
    static = default_static if static_examples is None else static_examples
    try:
        messages = build_messages(question, imgs, examples_for(question, fewshot, k), method, static)
        decision = _ask(llm, messages, timeout, reply_cache, method)
    except (Exception, TimeoutError) as exc:  # noqa: BLE001 - any LLM failure → rules
        reason = one_line(exc)
        if isinstance(exc, ValidationError):
            reason = f"invalid LLM output: {reason}"
        log.info("classifier falls back to rules: %s", reason)
        return ClassifierResult(classification=rules, source="rules", error=f"llm failed: {reason}")
    return _reconcile(question, decision, rules, imgs)


__all__ = [
    "LLMDecision", "build_messages", "decision_model", "image_types", "describe_images", "examples_for", "classify", "classify_rules",
    "score_types", "static_pool", "structured_classifier", "system_prompt",
]  # fmt: skip


# a card registered or removed changes the prompt, the static examples and the schema
on_change(system_prompt.cache_clear)
on_change(static_pool.cache_clear)
