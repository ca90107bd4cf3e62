"""The ``recommend`` tool: more like these (likes and dislikes: catalogue images or text).

It wraps :class:`vlagent.products.recommend.Recommender`: one preference vector in the CLIP space (or in
the title text-embedding space when no CLIP model is here), liked and disliked items never come
back, and each result carries its score and a one-line reason (its title, its colours).
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from vlagent.agent.toolspec import ToolSpec
from vlagent.models.context import ToolContext
from vlagent.products.recommend import Recommender
from vlagent.products.recommend import probe as engine_probe


class RecommendArgs(BaseModel):
    likes: list[str] = Field(description="what the user likes: catalogue image names or text (a title, a style)")
    dislikes: list[str] = Field(default_factory=list, description="what the user does not want: image names or text")
    k: int = Field(5, ge=1, le=50, description="number of items to recommend")
    lang: Literal["zh", "en"] = Field("zh", description="the language of the reasons (colour names)")


def recommender(ctx: ToolContext) -> Any:
    """The recommendation engine this context shares (built once)."""
    return ctx.once("recommender", lambda: Recommender.from_context(ctx))


def probe(ctx: ToolContext) -> str | None:
    return engine_probe(ctx)


def render(items: list[dict[str, Any]]) -> str:
    if not items:
        return "no items to recommend"
    return "\n".join(
        f"{n}. {it['image']} (score {it['score']:.3f})" + (f" — {it['why']}" if it.get("why") else "")
        for n, it in enumerate(items, 1)
    )


def make_recommend_tool(ctx: ToolContext) -> BaseTool:
    engine = recommender(ctx)

    def recommend(
        likes: list[str], dislikes: list[str] | None = None, k: int = 5, lang: Literal["zh", "en"] = "zh"
    ) -> tuple[str, list[dict[str, Any]]]:
        result = engine.recommend(list(likes), list(dislikes or []), k, language=lang)
        items = [item.model_dump() for item in result.items]
        return render(items), items

    return StructuredTool.from_function(
        recommend,
        name="recommend",
        description=(
            "Recommend catalogue items like the liked images or texts and unlike the disliked ones; "
            "each item with its score and why (title, colours)."
        ),
        args_schema=RecommendArgs,
        response_format="content_and_artifact",
    )


SPECS = [
    ToolSpec(
        name="recommend", args=RecommendArgs, factory=make_recommend_tool, probe=probe,
        field="results", images="none", per_image=False, retrieves=True, role="clip",
    ),
]  # fmt: skip
