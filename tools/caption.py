"""The ``caption`` tool: one sentence about an image, BLIP (the engine and the batching tool
class: :mod:`vlagent.models.vision.caption`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.tools import BaseTool

from vlagent.agent.toolspec import ToolSpec
from vlagent.models.context import ToolContext
from vlagent.models.vision.caption import CaptionArgs, CaptionTool, probe


def make_caption_tool(ctx: ToolContext) -> CaptionTool:
    return CaptionTool(ctx=ctx)


def _prepare(ctx: ToolContext, tool: BaseTool, calls: Sequence[dict[str, Any]]) -> int:  # noqa: ARG001
    """Caption every planned image in batches (per style) into the cache the tool reads."""
    by_style: dict[str, list[str]] = {}
    for call in calls:
        if call.get("image"):
            by_style.setdefault(str(call.get("style", "concise")), []).append(call["image"])
    done = 0
    for style, names in by_style.items():
        unique = list(dict.fromkeys(names))
        tool.captions(unique, style=style)  # type: ignore[attr-defined]
        done += len(unique)
    return done


SPECS = [
    ToolSpec(
        name="caption", args=CaptionArgs, factory=make_caption_tool, probe=lambda ctx: probe(ctx.settings),
        field="caption", images="first", role="caption", prepare=_prepare,
        fact="seen", label={"zh": "图片说明（英文）", "en": "Caption"},
        summarize=lambda art, lang: str((art or {}).get("caption") or ""),
    ),
]  # fmt: skip
