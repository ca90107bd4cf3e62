"""LangGraph node updates (``agent.stream``) → the steps people see: classify, tools, answer."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from vlagent.agent.names import display_name
from vlagent.agent.types import AnswerError, Intent, PlannedCall, ToolResult


class Step(BaseModel):
    """One step of an answer as it happens (an SSE ``step`` event, a line in the chat)."""

    node: Literal["understand", "plan", "tools", "answer"]
    title: str = Field(description="one line for people")
    data: dict[str, Any] = Field(default_factory=dict)


def _short_args(args: dict[str, Any]) -> str:
    images = [args["image"]] if "image" in args else list(args.get("images") or [])
    if images:
        return ", ".join(display_name(str(i)) for i in images)
    text = str(args.get("text", ""))
    return text if len(text) <= 40 else text[:39] + "…"


def _public_args(args: dict[str, Any]) -> dict[str, Any]:
    """Arguments with image paths cut to their names (people and the LLM see names, never paths)."""
    out = dict(args)
    if "image" in out:
        out["image"] = display_name(str(out["image"]))
    if "images" in out:
        out["images"] = [display_name(str(i)) for i in out.get("images") or []]
    return out


def steps_of(update: dict[str, Any]) -> list[Step]:
    """The steps in one ``stream_mode="updates"`` item (``{node: state update}``)."""
    steps: list[Step] = []
    for node, values in update.items():
        values = values or {}
        if node == "understand" and values.get("intent") is not None:
            c = Intent.model_validate(values["intent"])
            source = values.get("classifier", "learned")
            steps.append(Step(
                node="understand",
                title=f"question type: {c.type} ({source}, {c.language})",
                data={"type": c.type, "language": c.language, "query": c.query,
                      "classifier": source, "error": values.get("classifier_error")},
            ))  # fmt: skip
        elif node == "plan":
            planned = [PlannedCall.model_validate(c) for c in values.get("calls") or []]
            calls = [{"name": c.name, "args": _public_args(c.args)} for c in planned]
            if calls:
                title = "calling " + ", ".join(f"{c['name']}({_short_args(c['args'])})" for c in calls)
                steps.append(Step(node="plan", title=title, data={"calls": calls}))
        elif node == "tools":
            results = []
            for r in (ToolResult.model_validate(x) for x in values.get("tool_results") or []):
                results.append({
                    "name": r.name, "ok": r.ok, "error": r.error if not r.ok else None,
                    "duration_s": round(r.seconds, 3), "content": r.text[:500],
                })  # fmt: skip
            if results:
                title = " · ".join(
                    f"{r['name']} ok ({r['duration_s']:.2f}s)" if r["ok"] else f"{r['name']} failed: {r['error']}"
                    for r in results
                )
                steps.append(Step(node="tools", title=title, data={"results": results}))
        elif node == "answer":
            error = AnswerError.model_validate(values["error"]) if values.get("error") else None
            title = f"no answer: {error.reason}" if error else "answer written"
            steps.append(Step(node="answer", title=title, data={"evidence": values.get("evidence") or []}))
    return steps
