"""The labelled questions the LLM's prompt shows as examples.

The first classifier suite (``vlagent.evals`` ``suites/classifier/questions.jsonl``, without its
``holdout`` split) and the agent's question cards' ``examples``:
:func:`vlagent.agent.classify.static_pool` takes a few of each type into the LLM's fixed,
cached system prompt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field

from vlagent.agent.questions import QuestionCard
from vlagent.agent.types import QuestionType

SUITE = "suites/classifier/questions.jsonl"
HOLDOUT = "holdout"


class Example(BaseModel):
    """One labelled question (the fields of the classifier suite the prompt uses)."""

    question: str
    images: list[str] = Field(default_factory=list)
    type: QuestionType
    query: str = ""
    split: str = "main"


def normalise(text: str) -> str:
    """The identity of a question: no whitespace, punctuation or case."""
    return re.sub(r"[\W_]+", "", text, flags=re.UNICODE).lower()


def load_pool(path: str | Path | None = None, cards: Sequence[QuestionCard] = ()) -> list[Example]:
    """The labelled suite minus its holdout split (the shipped one: with ``cards``' own examples)."""
    if path is None:
        text = resources.files("vlagent.evals").joinpath(SUITE).read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    rows = [Example.model_validate(json.loads(line)) for line in text.splitlines() if line.strip()]
    if path is None:  # the labelled questions the cards bring
        rows += [Example.model_validate({**ex, "type": card.name}) for card in cards for ex in card.examples]
    return [r for r in rows if r.split != HOLDOUT]


__all__ = ["Example", "load_pool", "normalise"]
