"""The LangGraph agent: start → understand → plan ⇄ tools → answer.

* ``understand``: the one reading of the question (:mod:`vlagent.agent.understand`: the learned
  classifier, the LLM as a calibrated voter, the copied query, the cues) into one
  :class:`Intent`, validated once, here, and kept in the state as JSON; it sees image names,
  never file-system paths. Nothing after it reads the question's words to decide anything;
* ``plan``: reads the plan table (:mod:`vlagent.agent.plan`, filled from the question cards) and
  emits the round's tool calls (an ``AIMessage`` with ``tool_calls``): one round, or two for OCR
  questions (OCR first, then the VLM with the text as context);
* ``tools``: LangGraph's ``ToolNode`` runs them (in parallel);
* ``answer``: :func:`vlagent.agent.answer.write_answer`, by the question card's answer mode.

Memory across turns comes from the checkpointer (thread id): the state keeps ``history`` and
``last_images``, so a follow-up without an image ("那它是什么颜色的？") uses the previous one.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from langchain_core.messages import AIMessage, RemoveMessage, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import REMOVE_ALL_MESSAGES
from langgraph.prebuilt import ToolNode

from vlagent.agent.answer import ok, tool_results, write_answer
from vlagent.agent.names import display_name, evidence_id, without_paths
from vlagent.agent.plan import PlanInput, calls_for
from vlagent.agent.plan import rounds as plan_rounds
from vlagent.agent.state import AgentParts, AgentState, Classifier
from vlagent.agent.types import QuestionType
from vlagent.errors import ImageError, one_line

__all__ = [
    "AgentParts", "AgentState", "Classifier", "build_graph", "display_name", "evidence_id", "timed", "without_paths",
]  # fmt: skip


def timed(tool: BaseTool) -> BaseTool:
    """The same tool, recording duration and ok/error in its artifact instead of raising."""

    def run(**kwargs: Any) -> tuple[str, dict[str, Any]]:
        start = time.perf_counter()
        try:
            msg = tool.invoke({"type": "tool_call", "name": tool.name, "args": kwargs, "id": "inner"})
        except Exception as exc:  # the graph goes on; the trace says what failed
            reason = one_line(exc, 500)
            return f"error: {reason}", {
                "ok": False, "error": reason, "duration_s": time.perf_counter() - start,
                "image_error": isinstance(exc, ImageError),
            }  # fmt: skip
        content = msg.content if isinstance(msg, ToolMessage) else str(msg)
        artifact = msg.artifact if isinstance(msg, ToolMessage) else None
        return str(content), {
            "ok": True, "output": artifact, "duration_s": time.perf_counter() - start,
        }  # fmt: skip

    return StructuredTool.from_function(
        run,
        name=tool.name,
        description=tool.description,
        args_schema=tool.args_schema,
        response_format="content_and_artifact",
    )


# start: a new turn works on its attached images, else the previous turn's; this turn's
# messages, answer, trace and evidence start empty
def start(state: AgentState) -> dict[str, Any]:
    images = list(state.get("images") or [])
    return {
        "turn_images": images or list(state.get("last_images") or []),
        "messages": [RemoveMessage(id=REMOVE_ALL_MESSAGES)],
        "rounds": 0, "answer": "", "retrieved": [], "trace": [], "classifier_error": None,
        "evidence": [], "error": None,
    }  # fmt: skip


# understand: the question read once into the Intent; image names, never file-system paths
def understand(parts: AgentParts, state: AgentState) -> dict[str, Any]:
    t0 = time.perf_counter()
    images = state.get("turn_images", [])
    result = parts.classifier(state["question"], [display_name(i) for i in images], parts.classifier_llm)
    c = result.classification
    turn_images = images or [i for i in c.images if i]
    entry = {
        "name": "understand", "args": {"question": state["question"], "images": images},
        "duration_s": time.perf_counter() - t0, "ok": result.error is None,
        "error": result.error, "output": {**c.model_dump(mode="json"), "source": result.source},
    }  # fmt: skip
    return {
        "intent": c.model_dump(mode="json"),
        "classifier": result.source,
        "classifier_error": result.error,
        "turn_images": turn_images,
        "trace": [entry],
    }


# plan: this round's calls from the plan table, seeing the earlier rounds' ok results
def plan(parts: AgentParts, state: AgentState) -> dict[str, Any]:
    rounds = state.get("rounds", 0)
    c = state["intent"]
    qtype = QuestionType(c["type"])
    calls: list[tuple[str, dict[str, Any]]] = []
    if rounds < plan_rounds(qtype):
        earlier: dict[str, list[str]] = {}
        for name, _, m in tool_results(state):
            if ok(m):
                earlier.setdefault(name, []).append(str(m.content))
        inp = PlanInput(
            question=state["question"], images=list(state.get("turn_images", [])), language=str(c["language"]),
            query=str(c.get("query") or ""), available=frozenset(parts.tools), results=earlier,
        )  # fmt: skip
        calls = calls_for(qtype, rounds, inp)
    if not calls:
        return {"rounds": rounds + 1}
    msg = AIMessage(
        content="",
        tool_calls=[
            {"name": name, "args": args, "id": f"call-{rounds}-{n}-{name}", "type": "tool_call"}
            for n, (name, args) in enumerate(calls)
        ],
    )
    return {"messages": [msg], "rounds": rounds + 1}


# after plan: the tools when the round has calls, else the answer
def after_plan(state: AgentState) -> str:
    msgs = state.get("messages", [])
    pending = msgs and isinstance(msgs[-1], AIMessage) and msgs[-1].tool_calls
    return "tools" if pending else "answer"


def build_graph(parts: AgentParts, checkpointer: Any = None) -> Any:
    tool_list = [timed(t) for t in parts.tools.values()]
    graph = StateGraph(AgentState)
    graph.add_node("start", start)
    graph.add_node("understand", partial(understand, parts))
    graph.add_node("plan", partial(plan, parts))
    # tools: LangGraph's ToolNode runs the round's calls (in parallel)
    graph.add_node("tools", ToolNode(tool_list, handle_tool_errors=True) if tool_list else (lambda s: {}))
    # answer: the question card's answer mode (vlagent.agent.answer)
    graph.add_node("answer", partial(write_answer, parts))
    graph.add_edge(START, "start")
    graph.add_edge("start", "understand")
    graph.add_edge("understand", "plan")
    graph.add_conditional_edges("plan", after_plan, {"tools": "tools", "answer": "answer"})
    graph.add_edge("tools", "plan")
    graph.add_edge("answer", END)
    return graph.compile(checkpointer=checkpointer)
