"""``ocr(image)``: the text printed on a product image (labels, tags, packaging), zh + en.

Engine: RapidOCR (PP-OCR detection + recognition as ONNX, weights inside the wheel). One
engine per process, built on first use; calls are serialised (RapidOCR keeps per-call state
on the instance). Results are cached per image content.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from vlagent.models import loader
from vlagent.models.context import ToolContext
from vlagent.models.vision.engines import OcrEngine
from vlagent.settings import Settings


def probe(settings: Settings) -> str | None:
    """None if OCR can run here, else why (the model loader's ``ocr`` role)."""
    return loader.status("ocr", settings).reason


def model_id(settings: Settings) -> str:
    """What the cached OCR of an image depends on: the engine and how it detects (not its threads)."""
    cls = "-cls" if settings.ocr_angle_classifier else ""
    return f"rapidocr-{version('rapidocr')}-max{settings.ocr_det_side}{cls}"


def engine(settings: Settings | None = None) -> OcrEngine:
    """The RapidOCR engine, built once per process; ``ToolUnavailable`` if it cannot be."""
    return loader.load("ocr", settings)  # type: ignore[no-any-return]


def ocr_image(ctx: ToolContext, name: str) -> dict[str, Any]:
    """The artifact for one image: ``{"lines": [...], "text": ...}`` (cached per content)."""

    def compute() -> dict[str, Any]:
        image = ctx.resolver.load(name).image
        lines = engine(ctx.settings).read(image)
        return {"lines": [ln.model_dump() for ln in lines], "text": "\n".join(ln.text for ln in lines)}

    return ctx.cached("ocr", model_id(ctx.settings), name, "", compute)


