"""The LangGraph agent: start → understand → plan ⇄ tools → answer.

* ``understand``: the one reading of the question (:mod:`vlagent.agent.understand`: the learned
  classifier, the LLM as a calibrated voter, the copied query, the cues) into one typed
  :class:`Intent` kept in the state; it sees image names, never file-system paths. Nothing
  after it reads the question's words to decide anything;
* ``plan``: reads the plan table (the agent spec's, from the question cards) and writes the
  round's calls (:class:`PlannedCall`): one round, or two for OCR questions (OCR first, then
  the VLM with the text as context);
* ``tools``: one task per call, fanned out with LangGraph's ``Send`` (the round's calls run
  concurrently); each appends a typed :class:`ToolResult` (ok or the error, seconds) to the state;
* ``answer``: :func:`vlagent.agent.answer.write_answer`, by the question card's answer mode.

The state holds the typed objects; each node reads them with ``model_validate`` (the same object
back), so a checkpointer that stores them as JSON (LangGraph's server) gives the nodes the same types.

Memory across turns comes from the checkpointer (thread id): the state keeps ``history`` and
``last_images``, so a follow-up without an image ("那它是什么颜色的？") uses the previous one.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from vlagent.agent.answer import write_answer
from vlagent.agent.calls import PlanInput
from vlagent.agent.names import display_name
from vlagent.agent.plan import calls_for
from vlagent.agent.state import AgentParts, AgentState
from vlagent.agent.types import Intent, PlannedCall, ToolResult
from vlagent.errors import ImageError, one_line

__all__ = ["build_graph", "run_call"]


# start: a new turn works on its attached images, else the previous turn's; this turn's
# results, answer, trace and evidence start empty
def start(state: AgentState) -> dict[str, Any]:
    images = list(state.get("images") or [])
    return {
        "turn_images": images or list(state.get("last_images") or []),
        "calls": [], "tool_results": None, "rounds": 0, "answer": "", "retrieved": [], "trace": [],
        "classifier_error": None, "evidence": [], "error": None,
    }  # fmt: skip


# understand: the question read once into the Intent; image names, never file-system paths
def understand(parts: AgentParts, state: AgentState) -> dict[str, Any]:
    t0 = time.perf_counter()
    images = state.get("turn_images", [])
    result = parts.classifier(state["question"], [display_name(i) for i in images], parts.classifier_llm)
    intent = result.classification
    entry = {
        "name": "understand", "args": {"question": state["question"], "images": images},
        "duration_s": time.perf_counter() - t0, "ok": result.error is None,
        "error": result.error, "output": {**intent.model_dump(mode="json"), "source": result.source},
    }  # fmt: skip
    return {
        "intent": intent,
        "classifier": result.source,
        "classifier_error": result.error,
        "turn_images": images or [i for i in intent.images if i],
        "trace": [entry],
    }


# plan: this round's calls from the plan table, seeing the earlier rounds' ok results
def plan(parts: AgentParts, state: AgentState) -> dict[str, Any]:
    rounds, intent = state.get("rounds", 0), Intent.model_validate(state["intent"])
    calls: list[tuple[str, dict[str, Any]]] = []
    if rounds < parts.spec.rounds(intent.type):
        earlier: dict[str, list[str]] = {}
        for r in map(ToolResult.model_validate, state.get("tool_results") or []):
            if r.ok:
                earlier.setdefault(r.name, []).append(r.text)
        inp = PlanInput(
            question=state["question"], images=list(state.get("turn_images", [])), language=intent.language,
            query=intent.query, available=frozenset(parts.tools), results=earlier,
        )  # fmt: skip
        calls = calls_for(parts.spec, intent.type, rounds, inp)
    planned = [PlannedCall(name=name, args=args, round=rounds, n=n) for n, (name, args) in enumerate(calls)]
    return {"calls": planned, "rounds": rounds + 1}


# after plan: each call to the tool node (in parallel), or the answer when the round has none
def after_plan(state: AgentState) -> list[Send] | str:
    calls = state.get("calls") or []
    return [Send("tools", call) for call in calls] if calls else "answer"


def run_call(tool: BaseTool, call: PlannedCall) -> ToolResult:
    """Run one planned call: its result, or its error (the graph goes on; the trace says what failed)."""
    first = call.args.get("image") or (call.args.get("images") or [None])[0]
    done = {"name": call.name, "args": call.args, "image": str(first) if first else None, "round": call.round, "n": call.n}
    t0 = time.perf_counter()
    try:
        msg = tool.invoke({"type": "tool_call", "name": call.name, "args": call.args, "id": f"{call.round}-{call.n}"})
    except Exception as exc:  # noqa: BLE001
        reason = one_line(exc, 500)
        return ToolResult(**done, ok=False, error=reason, image_error=isinstance(exc, ImageError), seconds=time.perf_counter() - t0)
    text = msg.content if isinstance(msg, ToolMessage) else msg
    output = msg.artifact if isinstance(msg, ToolMessage) else None
    return ToolResult(**done, ok=True, text=str(text), output=output, seconds=time.perf_counter() - t0)


# tools: one planned call (a Send per call: the round's calls run concurrently)
def tools(parts: AgentParts, call: PlannedCall) -> dict[str, Any]:
    call = PlannedCall.model_validate(call)
    tool = parts.tools.get(call.name)
    if tool is None:  # the plan only names tools usable here; a call of another is a bug, said plainly
        result = ToolResult(name=call.name, args=call.args, ok=False, error=f"no tool {call.name!r} here", round=call.round, n=call.n)
    else:
        result = run_call(tool, call)
    return {"tool_results": [result]}


def build_graph(parts: AgentParts, checkpointer: Any = None) -> Any:
    graph = StateGraph(AgentState)
    graph.add_node("start", start)
    graph.add_node("understand", partial(understand, parts))
    graph.add_node("plan", partial(plan, parts))
    graph.add_node("tools", partial(tools, parts))
    graph.add_node("answer", partial(write_answer, parts))
    graph.add_edge(START, "start")
    graph.add_edge("start", "understand")
    graph.add_edge("understand", "plan")
    graph.add_conditional_edges("plan", after_plan, ["tools", "answer"])
    graph.add_edge("tools", "plan")
    graph.add_edge("answer", END)
    return graph.compile(checkpointer=checkpointer)
