"""``ocr(image)``: the text printed on a product image (labels, tags, packaging), zh + en.

Engine: RapidOCR (PP-OCR detection + recognition as ONNX, weights inside the wheel). One
engine per process, built on first use; calls are serialised (RapidOCR keeps per-call state
on the instance). Results are cached per image content.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from langchain_core.tools import BaseTool, StructuredTool
from PIL import Image
from pydantic import BaseModel, Field

from vlagent.errors import VlagentError
from vlagent.settings import Settings
from vlagent.tools.base import ToolContext, ToolUnavailable
from vlagent.tools.spec import ToolSpec

#: RapidOCR 3.x parameter names (see rapidocr/config.yaml): the longer side is capped at 960.
RAPIDOCR_PARAMS: dict[str, Any] = {
    "Det.limit_type": "max",
    "Det.limit_side_len": 960,
    "Global.log_level": "error",  # "no text found" is an answer, not a warning for the terminal
}


class OcrArgs(BaseModel):
    image: str = Field(description="file name or path of the image to read text from")


class OcrLine(BaseModel):
    text: str
    score: float
    box: list[list[float]] = Field(description="four corner points [x, y], clockwise from top-left")


def probe(settings: Settings) -> str | None:
    """None if OCR can run here, else why (the model loader's ``ocr`` role)."""
    from vlagent.models import loader

    return loader.status("ocr", settings).reason


def model_id() -> str:
    from importlib.metadata import version

    return f"rapidocr-{version('rapidocr')}-max{RAPIDOCR_PARAMS['Det.limit_side_len']}"


class OcrEngine:
    def __init__(self) -> None:
        from rapidocr import RapidOCR

        self.engine = RapidOCR(params=dict(RAPIDOCR_PARAMS))
        self._lock = threading.Lock()
        self.calls = 0

    def read(self, image: Image.Image) -> list[OcrLine]:
        with self._lock:
            self.calls += 1
            out = self.engine(image)
        txts = getattr(out, "txts", None)
        boxes = getattr(out, "boxes", None)
        if not txts or boxes is None:
            return []
        scores = list(getattr(out, "scores", None) or [1.0] * len(txts))
        lines = [
            OcrLine(text=t.strip(), score=round(float(s), 4), box=np.asarray(b, dtype=float).round(1).tolist())
            for t, s, b in zip(txts, scores, boxes)
            if t and t.strip()
        ]
        return reading_order(lines)


def engine(settings: Settings | None = None) -> OcrEngine:
    """The RapidOCR engine, built once per process; ``ToolUnavailable`` if it cannot be."""
    from vlagent.models import loader

    return loader.load("ocr", settings)  # type: ignore[no-any-return]


def reading_order(lines: list[OcrLine]) -> list[OcrLine]:
    """Top to bottom by rows (boxes whose vertical centres overlap form a row), left to right."""

    def geom(line: OcrLine) -> tuple[float, float, float]:
        ys = [p[1] for p in line.box]
        xs = [p[0] for p in line.box]
        return (min(ys) + max(ys)) / 2, max(ys) - min(ys), min(xs)

    rows: list[list[tuple[float, float, float, OcrLine]]] = []
    for cy, h, x, line in sorted(((*geom(ln), ln) for ln in lines), key=lambda t: t[0]):
        if rows:
            row_cy = sum(r[0] for r in rows[-1]) / len(rows[-1])
            row_h = max(r[1] for r in rows[-1])
            if abs(cy - row_cy) <= 0.5 * max(min(h, row_h), 1.0):
                rows[-1].append((cy, h, x, line))
                continue
        rows.append([(cy, h, x, line)])
    return [item[3] for row in rows for item in sorted(row, key=lambda r: r[2])]


def ocr_image(ctx: ToolContext, name: str) -> dict[str, Any]:
    """The artifact for one image: ``{"lines": [...], "text": ...}`` (cached per content)."""

    def compute() -> dict[str, Any]:
        image = ctx.resolver.load(name).image
        lines = engine(ctx.settings).read(image)
        return {"lines": [ln.model_dump() for ln in lines], "text": "\n".join(ln.text for ln in lines)}

    return ctx.cached("ocr", model_id(), name, "", compute)


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
