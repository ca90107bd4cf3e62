"""The ``colors`` tool: the main object's dominant colours, named in Chinese and English (the
engine and the colour naming: :mod:`vlagent.models.colors`)."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from vlagent.agent.toolspec import ToolSpec
from vlagent.models.context import ToolContext
from vlagent.models.colors import colors_of, probe, render, summarize


class ColorsArgs(BaseModel):
    image: str = Field(description="file name or path of the image")
    k: int = Field(3, ge=1, le=8, description="how many colours to report")


def make_colors_tool(ctx: ToolContext) -> BaseTool:
    def colors(image: str, k: int = 3) -> tuple[str, list[dict[str, Any]]]:
        found = colors_of(ctx, image, k)
        return render(found), found

    return StructuredTool.from_function(
        colors,
        name="colors",
        description=(
            "Dominant colours of the main object in an image (background ignored), named in "
            "Chinese and English with their share, e.g. 红色/red 64%."
        ),
        args_schema=ColorsArgs,
        response_format="content_and_artifact",
    )


def structured(output: Any) -> dict[str, Any]:
    """The largest colour as (zh, en) and every colour, largest first (the facts decide with them)."""
    if not output:
        return {}
    top = output[0]
    return {"main_color": (str(top.get("name_zh", "")), str(top.get("name_en", ""))), "colours": [dict(c) for c in output if isinstance(c, dict)]}


SPECS = [
    ToolSpec(
        name="colors", args=ColorsArgs, factory=make_colors_tool, probe=lambda ctx: probe(ctx.settings),
        field="colors", images="first", summarize=summarize, summary_in_template=True,
        fact="colours", label={"zh": "颜色", "en": "Colours"}, structured=structured,
    ),
]  # fmt: skip
