"""The ``vqa`` tool: a question about one or more images for a vision-language model (the
engines: :mod:`vlagent.models.vqa`)."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from vlagent.agent.toolspec import ToolSpec
from vlagent.models.context import ToolContext
from vlagent.models.vqa import MAX_IMAGES, ask, probe


class VqaArgs(BaseModel):
    images: list[str] = Field(
        min_length=1, max_length=MAX_IMAGES, description="file names or paths of the image(s) the question is about"
    )
    question: str = Field(min_length=1, description="the question, in the user's language")


def make_vqa_tool(ctx: ToolContext) -> BaseTool:
    def vqa(images: list[str], question: str) -> tuple[str, dict[str, Any]]:
        art = ask(ctx, images, question)
        return (art["answer"] or "(the model gave no answer)"), art

    return StructuredTool.from_function(
        vqa,
        name="vqa",
        description=(
            "Ask a vision-language model a question about one or more images (what is shown, "
            "material, style, details, comparing images). Pass all images the question is about."
        ),
        args_schema=VqaArgs,
        response_format="content_and_artifact",
    )


SPECS = [
    ToolSpec(
        name="vqa", args=VqaArgs, factory=make_vqa_tool, probe=lambda ctx: probe(ctx.settings),
        field="vqa", images="all", per_image=False, keep="last", role="vqa",
        fact="answer", label={"zh": "视觉模型回答", "en": "Vision model answer"},
    ),
]  # fmt: skip
