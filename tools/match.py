"""``match(image, text)``: does the image fit the product description? yes / no / cannot tell,
a score and one line of why (the engine: :func:`vlagent.products.matching.match_image_text`).

What it weighs on this machine: :mod:`vlagent.products.match_inputs`."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from vlagent.agent.toolspec import ToolSpec
from vlagent.models.context import ToolContext
from vlagent.products.match_inputs import match_of
from vlagent.products.matching import MatchResult


class MatchArgs(BaseModel):
    image: str = Field(description="file name or path of the image")
    text: str = Field(description="the product description or title to check against the image (zh or en)")


_VERDICTS = {"zh": {"yes": "符合", "no": "不符合", "unsure": "无法判断"}, "en": {"yes": "Yes", "no": "No", "unsure": "Cannot tell"}}


def summarize(result: Any, lang: str) -> str:
    """``不符合（相似度 0.12）：图中主色是红色，描述写的是蓝色。`` / ``Yes (score 0.83): the title matches.``"""
    r = result if isinstance(result, MatchResult) else MatchResult.model_validate(result)
    zh = lang == "zh"
    word = _VERDICTS["zh" if zh else "en"][r.verdict]
    why = r.reason(lang).rstrip("。.")
    return f"{word}（相似度 {r.score:.2f}）：{why}。" if zh else f"{word} (score {r.score:.2f}): {why}."


def make_match_tool(ctx: ToolContext) -> BaseTool:
    def match(image: str, text: str) -> tuple[str, dict[str, Any]]:
        result = match_of(ctx, image, text)
        return f"{summarize(result, 'zh')} | {summarize(result, 'en')}", result.model_dump()

    return StructuredTool.from_function(
        match, name="match",
        description="Does the image fit a product description or title? yes / no / cannot tell, a 0-1 score and why.",
        args_schema=MatchArgs, response_format="content_and_artifact",
    )  # fmt: skip


SPECS = [
    ToolSpec(name="match", args=MatchArgs, factory=make_match_tool, field="match", images="first", summarize=summarize),
]
