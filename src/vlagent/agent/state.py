"""The graph's state (one typed object) and what the graph is made of."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AnyMessage
from langchain_core.tools import BaseTool
from langgraph.graph.message import add_messages

from vlagent.agent.types import ClassifierResult


class AgentState(TypedDict, total=False):
    question: str
    images: list[str]  # attached to this turn
    turn_images: list[str]  # what this turn works on (attached, or the previous turn's)
    last_images: list[str]  # memory for the next turn
    intent: dict[str, Any]  # the Intent (type, query, language, images, cues), read once by the understand node, as JSON
    classifier: str
    classifier_error: str | None
    messages: Annotated[list[AnyMessage], add_messages]  # this turn's tool calls and results
    rounds: int
    answer: str
    retrieved: list[dict[str, Any]]
    trace: list[dict[str, Any]]
    history: Annotated[list[dict[str, Any]], operator.add]
    evidence: list[str]  # the tool results the answer used
    error: dict[str, Any] | None  # AnswerError when no answer could be given from evidence


Classifier = Callable[[str, list[str], BaseChatModel | None], ClassifierResult]


@dataclass
class AgentParts:
    """What the graph is made of (built by :func:`vlagent.agent.build.build_agent`)."""

    tools: dict[str, BaseTool]
    llm: BaseChatModel | None
    classifier: Classifier
    classifier_llm: BaseChatModel | None = None
    titles: dict[str, str] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
