"""OCR: the text printed on a product image (labels, tags, packaging), zh + en — the engine, its
role and what runs it on a named image.

Engine: RapidOCR (PP-OCR detection + recognition as ONNX, weights inside the wheel). One
engine per process, built on first use through the model cache (:mod:`vlagent.models.loading`,
role ``ocr``); calls are serialised (RapidOCR keeps per-call state on the instance). Results
are cached per image content (:func:`ocr_image`). rapidocr imports inside the constructor.
"""

from __future__ import annotations

import threading
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from vlagent.errors import ToolUnavailable
from vlagent.models import loading
from vlagent.models.context import ToolContext
from vlagent.models.loading import Found, RoleSpec, missing, sample_image
from vlagent.settings import Settings


# ---------------------------------------------------------------- the engine (RapidOCR)
def rapidocr_params(det_side: int = 640, angle_classifier: bool = False, threads: int | None = None) -> dict[str, Any]:
    """RapidOCR 3.x parameters (names: rapidocr/config.yaml). The detector sees the image with
    its longer side capped at ``det_side`` (a smaller one is not enlarged); recognition crops the
    lines from the full-size image, so small print stays readable while detection costs less.
    ``threads``: onnxruntime intra-op threads (None: all cores)."""
    params: dict[str, Any] = {
        "Det.limit_type": "max",
        "Det.limit_side_len": det_side,
        "Global.use_cls": angle_classifier,
        "Global.log_level": "error",  # "no text found" is an answer, not a warning for the terminal
    }
    if threads:
        params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
        params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
    return params


class OcrLine(BaseModel):
    text: str
    score: float
    box: list[list[float]] = Field(description="four corner points [x, y], clockwise from top-left")


class OcrEngine:
    def __init__(self, det_side: int = 640, angle_classifier: bool = False, threads: int | None = None) -> None:
        from rapidocr import RapidOCR

        self.det_side = det_side
        self.angle_classifier = angle_classifier
        self.engine = RapidOCR(params=rapidocr_params(det_side, angle_classifier, threads))
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


# ---------------------------------------------------------------- the role
def _ocr_model(_s: Settings) -> str:
    try:
        return f"PP-OCR (rapidocr {version('rapidocr')})"
    except PackageNotFoundError:
        return "PP-OCR (rapidocr)"


def _ocr_probe(s: Settings) -> Found:
    if s.ocr_backend == "none":
        return Found(reason="ocr: disabled (VLAGENT_OCR_BACKEND=none)")
    return missing("ocr", ("rapidocr", "rapidocr"), ("onnxruntime", "onnxruntime")) or Found(
        "PP-OCR ONNX weights inside the rapidocr wheel"
    )


def _ocr_build(s: Settings, _local_only: bool) -> Any:
    return OcrEngine(det_side=s.ocr_det_side, angle_classifier=s.ocr_angle_classifier, threads=s.ocr_threads)


def _selfcheck(settings: Settings) -> str:
    lines = engine(settings).read(sample_image())
    return f"read {len(lines)} line(s)"


ROLE = RoleSpec(
    role="ocr",
    error=ToolUnavailable,
    setting="VLAGENT_OCR_BACKEND",
    backend=lambda s: s.ocr_backend,
    fields={"rapidocr": ("ocr_det_side", "ocr_angle_classifier", "ocr_threads")},
    model=_ocr_model,
    probe=_ocr_probe,
    build=_ocr_build,
    selfcheck=_selfcheck,
)


def probe(settings: Settings) -> str | None:
    """None if OCR can run here, else why (the ``ocr`` role's status)."""
    return loading.status(ROLE, settings).reason


def model_id(settings: Settings) -> str:
    """What the cached OCR of an image depends on: the engine and how it detects (not its threads)."""
    cls = "-cls" if settings.ocr_angle_classifier else ""
    return f"rapidocr-{version('rapidocr')}-max{settings.ocr_det_side}{cls}"


def engine(settings: Settings | None = None) -> OcrEngine:
    """The RapidOCR engine, built once per process; ``ToolUnavailable`` if it cannot be."""
    return loading.load(ROLE, settings)  # type: ignore[no-any-return]


# ---------------------------------------------------------------- on a named image
def ocr_image(ctx: ToolContext, name: str) -> dict[str, Any]:
    """The artifact for one image: ``{"lines": [...], "text": ...}`` (cached per content)."""

    def compute() -> dict[str, Any]:
        image = ctx.resolver.load(name).image
        lines = engine(ctx.settings).read(image)
        return {"lines": [ln.model_dump() for ln in lines], "text": "\n".join(ln.text for ln in lines)}

    return ctx.cached("ocr", model_id(ctx.settings), name, "", compute)
