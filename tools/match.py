"""``match(image, text)``: does the image fit the product description? yes / no / cannot tell,
a score and one line of why (the engine: :func:`vlagent.index.matching.match_image_text`).

The tool gathers what this machine has: BLIP's ITM head (``match_blip_model``), CLIP calibrated
against the catalogue (its titles, and a sample of its indexed images), the image's catalogue
title ranked by e5 among the others, its measured colours and its OCR text. Each part that is
missing here is left out (the result's ``details`` say which ran)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from vlagent.errors import VlagentError, one_line
from vlagent.index.matching import ClipCalibrator, MatchResult, TitleCalibrator, match_image_text
from vlagent.tools.base import ToolContext
from vlagent.tools.spec import ToolSpec

log = logging.getLogger(__name__)
CALIBRATION_SAMPLE = 2000  # catalogue titles / images CLIP is calibrated against (evenly spaced)


class MatchArgs(BaseModel):
    image: str = Field(description="file name or path of the image")
    text: str = Field(description="the product description or title to check against the image (zh or en)")


def _sample(items: list[Any], n: int = CALIBRATION_SAMPLE) -> list[Any]:
    return items if len(items) <= n else [items[i * len(items) // n] for i in range(n)]


def _clip(ctx: ToolContext) -> ClipCalibrator | None:
    from vlagent.tools.retrieval import clip_probe, clip_retriever

    if clip_probe(ctx) is not None:
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
    from vlagent.tools.retrieval import title_index

    if not any(a.title.strip() for a in ctx.annotations):
        return None
    index = title_index(ctx)
    if index.e5 is None:
        return None
    return TitleCalibrator([r.title for r in index.rows], index.e5, index.passages)


def _optional(ctx: ToolContext, key: str, build: Any) -> Any:
    try:
        return ctx.once(key, build)
    except VlagentError as exc:  # that signal is missing here; the others still count
        log.info("match: %s unavailable (%s)", key, one_line(exc))
        return None


def match_of(ctx: ToolContext, image: str, text: str) -> MatchResult:
    from vlagent.models.blip_itm import blip_itm_probe, itm_function
    from vlagent.tools import colors, ocr

    titles = ctx.titles
    title = titles.get(image) or titles.get(Path(image.replace("\\", "/")).name)
    loaded = ctx.resolver.load(image)
    found = colors.colors_of(ctx, image) if colors.probe(ctx.settings) is None else None
    read = str(ocr.ocr_image(ctx, image).get("text", "")) if ocr.probe(ctx.settings) is None else None
    itm = _optional(ctx, "match_blip", lambda: itm_function(ctx.settings)) if blip_itm_probe(ctx.settings) is None else None
    return match_image_text(
        loaded.image, text, ctx.settings, title=title, colours=found, ocr_text=read,
        clip=_optional(ctx, "match_clip", lambda: _clip(ctx)),
        titles=_optional(ctx, "match_titles", lambda: _titles(ctx)) if title else None, itm=itm,
    )  # fmt: skip


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
