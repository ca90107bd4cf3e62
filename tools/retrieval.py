"""Retrieval tools: CLIP search over the Chroma index, and a model-free title search fallback.

* ``clip_search(text, k)``: text → image, the catalogue's CLIP index (Chinese titles work with
  the default Chinese-CLIP model);
* ``image_search(image, k)``: image → image over the same index;
* ``title_search(text, k)``: when no CLIP model is available here, rank the catalogue by its
  annotation titles (character n-gram TF-IDF, good for Chinese, no model) so retrieval
  questions still get an answer; the trace says which tool ran.
"""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from vlagent.data.annotations import Annotation
from vlagent.index.search import Retriever
from vlagent.tools.base import ToolContext


class TextQuery(BaseModel):
    text: str = Field(description="product title or description to search for (zh or en)")
    k: int = Field(5, ge=1, le=50, description="number of images to return")


class ImageQuery(BaseModel):
    image: str = Field(description="file name or path of the query image")
    k: int = Field(5, ge=1, le=50, description="number of images to return")


def _render(hits: list[dict[str, Any]]) -> str:
    if not hits:
        return "no images found"
    return "\n".join(
        f"{n}. {h['image']} (score {h['score']:.3f})" + (f" — {h['title']}" if h.get("title") else "")
        for n, h in enumerate(hits, 1)
    )


def make_clip_tools(ctx: ToolContext, retriever: Retriever) -> list[BaseTool]:
    def clip_search(text: str, k: int = 5) -> tuple[str, list[dict[str, Any]]]:
        hits = [h.model_dump() for h in retriever.search_text(text, k)]
        return _render(hits), hits

    def image_search(image: str, k: int = 5) -> tuple[str, list[dict[str, Any]]]:
        loaded = ctx.resolver.load(image)
        hits = [h.model_dump() for h in retriever.search_image(loaded.image, k)]
        return _render(hits), hits

    clip_search.retriever = retriever  # type: ignore[attr-defined]  # for VLAgent.prepare
    return [
        StructuredTool.from_function(
            clip_search,
            name="clip_search",
            description="Find catalogue images that best match a product title or description (CLIP).",
            args_schema=TextQuery,
            response_format="content_and_artifact",
        ),
        StructuredTool.from_function(
            image_search,
            name="image_search",
            description="Find catalogue images that look like the given image (CLIP image→image).",
            args_schema=ImageQuery,
            response_format="content_and_artifact",
        ),
    ]


class TitleIndex:
    """Character n-gram TF-IDF over annotation titles (zh/en), for the no-CLIP fallback."""

    def __init__(self, annotations: list[Annotation]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.rows = [a for a in annotations if a.title.strip()]
        if not self.rows:
            raise ValueError("no titles to search")
        self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True)
        self.matrix = self.vectorizer.fit_transform([a.title.lower() for a in self.rows])

    def search(self, text: str, k: int = 5) -> list[dict[str, Any]]:
        scores = (self.matrix @ self.vectorizer.transform([text.lower()]).T).toarray().ravel()
        order = scores.argsort()[::-1][:k]
        return [
            {"image": self.rows[i].image, "title": self.rows[i].title, "score": float(scores[i])}
            for i in order
        ]


def make_title_tool(index: TitleIndex) -> BaseTool:
    def title_search(text: str, k: int = 5) -> tuple[str, list[dict[str, Any]]]:
        hits = index.search(text, k)
        return _render(hits), hits

    return StructuredTool.from_function(
        title_search,
        name="title_search",
        description="Find catalogue images whose product title best matches the text (no CLIP).",
        args_schema=TextQuery,
        response_format="content_and_artifact",
    )
