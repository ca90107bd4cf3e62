"""The ``ocr`` tool: the text printed on a product image, in reading order (the engine:
:mod:`vlagent.models.ocr`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from vlagent.agent.toolspec import ToolSpec
from vlagent.errors import ToolUnavailable, VlagentError
from vlagent.models.context import ToolContext
from vlagent.models.ocr import ocr_image, probe


class OcrArgs(BaseModel):
    image: str = Field(description="file name or path of the image to read text from")


def make_ocr_tool(ctx: ToolContext) -> BaseTool:
    def ocr(image: str) -> tuple[str, dict[str, Any]]:
        reason = probe(ctx.settings)
        if reason:
            raise ToolUnavailable(reason)
        result = ocr_image(ctx, image)
        return (result["text"] or "(no text found in the image)"), result

    return StructuredTool.from_function(
        ocr,
        name="ocr",
        description=(
            "Read the text printed in an image (labels, tags, packaging, size/material/brand), "
            "Chinese and English; returns the lines in reading order."
        ),
        args_schema=OcrArgs,
        response_format="content_and_artifact",
    )


def _prepare(ctx: ToolContext, tool: BaseTool, calls: Sequence[dict[str, Any]]) -> int:  # noqa: ARG001
    """Read every image's text into the cache before the questions are answered."""
    names = list(dict.fromkeys(c["image"] for c in calls if c.get("image")))
    for name in names:
        try:
            ocr_image(ctx, name)
        except VlagentError:
            pass  # the question itself reports the image's problem
    return len(names)


SPECS = [
    ToolSpec(
        name="ocr", args=OcrArgs, factory=make_ocr_tool, probe=lambda ctx: probe(ctx.settings),
        field="ocr_text", images="first", role="ocr", prepare=_prepare,
        fact="read", label={"zh": "图中文字", "en": "Text in the image"},
        summarize=lambda art, lang: " ".join(str((art or {}).get("text") or "").split()),
    ),
]  # fmt: skip
