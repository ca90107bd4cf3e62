"""The graph's state (one typed object) and what the graph is made of."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool

from vlagent.agent.spec import AgentSpec
from vlagent.agent.types import AnswerError, ClassifierResult, Cues, Intent, PlannedCall, ToolResult


def results_of_turn(done: list[ToolResult] | None, new: list[ToolResult] | None) -> list[ToolResult]:
    """The ``tool_results`` channel: each tool node appends its result; ``None`` (a new turn) empties it."""
    if new is None:
        return []
    return [*(done or []), *new]


class AgentState(TypedDict, total=False):
    question: str
    images: list[str]  # attached to this turn
    turn_images: list[str]  # what this turn works on (attached, or the previous turn's)
    last_images: list[str]  # memory for the next turn
    intent: Intent  # the one reading of the question (type, query, language, images, cues)
    classifier: str
    classifier_error: str | None
    calls: list[PlannedCall]  # the plan's calls of the current round
    tool_results: Annotated[list[ToolResult], results_of_turn]  # this turn's tool results, every round
    rounds: int
    answer: str
    retrieved: list[dict[str, Any]]
    trace: list[dict[str, Any]]
    history: Annotated[list[dict[str, Any]], operator.add]
    evidence: list[str]  # the tool results the answer used
    error: AnswerError | None  # when no answer could be given from evidence


#: the state's own types, which a checkpointer stores and reads back (its serializer's allow-list)
STATE_TYPES = (Intent, Cues, PlannedCall, ToolResult, AnswerError)

Classifier = Callable[[str, list[str], BaseChatModel | None], ClassifierResult]


@dataclass
class AgentParts:
    """What the graph is made of (built by :func:`vlagent.agent.build.build_agent`)."""

    spec: AgentSpec
    tools: dict[str, BaseTool]
    llm: BaseChatModel | None
    classifier: Classifier
    classifier_llm: BaseChatModel | None = None
    titles: dict[str, str] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
