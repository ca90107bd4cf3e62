"""The agent's vision tools, as far as this machine can run them.

Each tool has a cheap ``probe(settings) -> str | None`` (no weights loaded): ``None`` means
usable, otherwise a one-line reason. :func:`build_vision_tools` keeps the usable tools and
reports the others, so the agent can drop them and say why once.
"""

from __future__ import annotations

from typing import Callable

from langchain_core.tools import BaseTool

from vlagent.settings import Settings
from vlagent.tools import caption, colors, ocr, vqa
from vlagent.tools.base import ToolContext

Probe = Callable[[Settings], "str | None"]
Factory = Callable[[ToolContext], BaseTool]

#: tool name → (probe, factory), in the order the agent lists them
VISION_TOOLS: dict[str, tuple[Probe, Factory]] = {
    "ocr": (ocr.probe, ocr.make_ocr_tool),
    "colors": (colors.probe, colors.make_colors_tool),
    "caption": (caption.probe, caption.make_caption_tool),
    "vqa": (vqa.probe, vqa.make_vqa_tool),
}


def probe_all(settings: Settings) -> dict[str, str | None]:
    """{tool name: None if usable else the reason} without loading any model."""
    return {name: probe(settings) for name, (probe, _) in VISION_TOOLS.items()}


def build_vision_tools(ctx: ToolContext) -> tuple[list[BaseTool], dict[str, str]]:
    """(usable tools, {dropped tool name: one-line reason})."""
    tools: list[BaseTool] = []
    dropped: dict[str, str] = {}
    for name, (probe, factory) in VISION_TOOLS.items():
        reason = probe(ctx.settings)
        if reason:
            dropped[name] = reason
        else:
            tools.append(factory(ctx))
    return tools, dropped
