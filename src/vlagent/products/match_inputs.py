"""What ``match(image, text)`` weighs on this machine, gathered from a tool context: BLIP's ITM head
(``match_blip_model``), CLIP calibrated against the catalogue (its titles, and a sample of its
indexed images), the image's catalogue title ranked by e5 among the others, its measured colours
and its OCR text. Each part missing here is left out (the result's ``details`` say which ran);
the decision is :func:`vlagent.products.matching.match_image_text`."""

from __future__ import annotations

import logging
from typing import Any

from vlagent.data.images import base_name
from vlagent.errors import VlagentError, one_line
from vlagent.index.shared import clip_retriever, title_index
from vlagent.models.blip_itm import blip_itm_probe, itm_function
from vlagent.models.clip import probe as clip_probe
from vlagent.models.colors import colors_of
from vlagent.models.colors import probe as colour_probe
from vlagent.models.context import ToolContext
from vlagent.models.ocr import ocr_image
from vlagent.models.ocr import probe as ocr_probe
from vlagent.products.matching import ClipCalibrator, MatchResult, TitleCalibrator, match_image_text

log = logging.getLogger(__name__)
CALIBRATION_SAMPLE = 2000  # catalogue titles / images CLIP is calibrated against (evenly spaced)


def _sample(items: list[Any], n: int = CALIBRATION_SAMPLE) -> list[Any]:
    return items if len(items) <= n else [items[i * len(items) // n] for i in range(n)]


def _clip(ctx: ToolContext) -> ClipCalibrator | None:
    if clip_probe(ctx.settings) is not None:
        return None
    retriever = clip_retriever(ctx)
    vectors = None
    try:
        got = retriever.index.collection.get(limit=CALIBRATION_SAMPLE, include=["embeddings"])
        vectors = got.get("embeddings")
    except Exception as exc:  # noqa: BLE001 - calibrate by the titles alone
        log.info("match: no catalogue image vectors (%s)", one_line(exc))
    return ClipCalibrator(retriever.encoder, _sample([a.title for a in ctx.annotations if a.title.strip()]), vectors)


def _titles(ctx: ToolContext) -> TitleCalibrator | None:
    if not any(a.title.strip() for a in ctx.annotations):
        return None
    index = title_index(ctx)
    if index.e5 is None:
        return None
    return TitleCalibrator([r.title for r in index.rows], index.e5, index.passages)


def _optional(ctx: ToolContext, key: str, build: Any, level: int = logging.INFO) -> Any:
    try:
        return ctx.once(key, build)
    except VlagentError as exc:  # that signal is missing here; the others still count
        log.log(level, "match: %s unavailable (%s)", key, one_line(exc))
        return None


def match_of(ctx: ToolContext, image: str, text: str) -> MatchResult:
    titles = ctx.titles
    title = titles.get(image) or titles.get(base_name(image))
    loaded = ctx.resolver.load(image)
    found = colors_of(ctx, image) if colour_probe(ctx.settings) is None else None
    read = str(ocr_image(ctx, image).get("text", "")) if ocr_probe(ctx.settings) is None else None
    # a BLIP model was asked for (match_blip_model): failing to load it is a warning, not a detail
    itm = (
        _optional(ctx, "match_blip", lambda: itm_function(ctx.settings), logging.WARNING)
        if blip_itm_probe(ctx.settings) is None
        else None
    )
    return match_image_text(
        loaded.image, text, ctx.settings, title=title, colours=found, ocr_text=read,
        clip=_optional(ctx, "match_clip", lambda: _clip(ctx)),
        titles=_optional(ctx, "match_titles", lambda: _titles(ctx)) if title else None, itm=itm,
    )  # fmt: skip
