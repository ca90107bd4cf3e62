"""LangGraph node updates (``agent.stream``) → the steps people see: classify, tools, answer."""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.messages import AIMessage, ToolMessage
from pydantic import BaseModel, Field

from vlagent.agent.names import display_name


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
        if node == "understand":
            c = values.get("intent") or {}
            source = values.get("classifier", "learned")
            steps.append(Step(
                node="understand",
                title=f"question type: {c.get('type', '?')} ({source}, {c.get('language', '?')})",
                data={"type": c.get("type"), "language": c.get("language"), "query": c.get("query", ""),
                      "classifier": source, "error": values.get("classifier_error")},
            ))  # fmt: skip
        elif node == "plan":
            calls = [
                {"name": tc["name"], "args": _public_args(tc["args"])}
                for msg in values.get("messages") or [] if isinstance(msg, AIMessage)
                for tc in msg.tool_calls
            ]  # fmt: skip
            if calls:
                title = "calling " + ", ".join(f"{c['name']}({_short_args(c['args'])})" for c in calls)
                steps.append(Step(node="plan", title=title, data={"calls": calls}))
        elif node == "tools":
            results = []
            for msg in values.get("messages") or []:
                if not isinstance(msg, ToolMessage):
                    continue
                art = msg.artifact if isinstance(msg.artifact, dict) else {}
                ok = bool(art.get("ok", msg.status != "error"))
                results.append({
                    "name": msg.name, "ok": ok, "error": art.get("error") if not ok else None,
                    "duration_s": round(float(art.get("duration_s", 0.0)), 3),
                    "content": str(msg.content)[:500],
                })  # fmt: skip
            if results:
                title = " · ".join(
                    f"{r['name']} ok ({r['duration_s']:.2f}s)" if r["ok"] else f"{r['name']} failed: {r['error']}"
                    for r in results
                )
                steps.append(Step(node="tools", title=title, data={"results": results}))
        elif node == "answer":
            error = values.get("error")
            title = f"no answer: {error.get('reason')}" if error else "answer written"
            steps.append(Step(node="answer", title=title, data={"evidence": values.get("evidence") or []}))
    return steps
