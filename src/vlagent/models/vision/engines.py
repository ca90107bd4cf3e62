"""The in-process vision engines the model loader builds (roles ``ocr``, ``caption``, ``vqa``).

What runs them on a named image, cached per content, is in :mod:`vlagent.models.vision.ocr`,
:mod:`~vlagent.models.vision.caption` and :mod:`~vlagent.models.vision.vqa`; those load the
engines through :mod:`vlagent.models.loader`, which builds them from here (roles → engines, never
back). Heavy libraries (rapidocr, transformers, torch, openai) import inside the constructors.
"""

from __future__ import annotations

import base64
import io
import threading
from typing import Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from vlagent.errors import BackendUnavailableError
from vlagent.models.placement import Placement, cpu_placement, load_pretrained, param_dtype
from vlagent.models.servers import Server, backend_unavailable
from vlagent.settings import Settings

Style = Literal["concise", "detailed"]

# ---------------------------------------------------------------- OCR (RapidOCR)

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


# ---------------------------------------------------------------- captions (BLIP)


PROMPTS: dict[str, str | None] = {"concise": None, "detailed": "a photography of"}


def generation_kwargs(style: str, max_new_tokens: int, num_beams: int) -> dict[str, Any]:
    """``concise``: BLIP's own short caption; ``detailed``: twice as long, no repeats."""
    if style == "detailed":
        return {
            "max_new_tokens": 2 * max_new_tokens, "min_new_tokens": min(12, 2 * max_new_tokens),
            "num_beams": num_beams, "repetition_penalty": 1.3,
        }  # fmt: skip
    return {"max_new_tokens": max_new_tokens, "num_beams": num_beams}


class CaptionEngine:
    """BLIP on one device, in the placement's dtype. ``calls`` counts generate batches (tests, benchmarks)."""

    def __init__(
        self, model_id: str, place: Placement | None = None, max_new_tokens: int = 30, num_beams: int = 3,
        local_files_only: bool = False,
    ) -> None:  # fmt: skip
        from transformers import BlipForConditionalGeneration, BlipProcessor

        place = place or cpu_placement()
        self.model_id = model_id
        self.device = place.device
        self.place = place
        self.processor = BlipProcessor.from_pretrained(model_id, local_files_only=local_files_only)
        self.model = load_pretrained(BlipForConditionalGeneration, model_id, place, local_files_only)
        self.dtype = param_dtype(self.model)
        self.max_new_tokens = max_new_tokens
        self.num_beams = num_beams
        self._lock = threading.Lock()
        self.calls = 0

    def generate(self, images: list[Image.Image], style: Style = "concise") -> list[str]:
        import torch

        prompt = PROMPTS[style]
        gen = generation_kwargs(style, self.max_new_tokens, self.num_beams)
        inputs = self.processor(
            images=[im.convert("RGB") for im in images],
            text=[prompt] * len(images) if prompt else None,
            return_tensors="pt",
        ).to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        with self._lock, torch.inference_mode():
            self.calls += 1
            out = self.model.generate(**inputs, **gen)
        texts = [" ".join(t.split()) for t in self.processor.batch_decode(out, skip_special_tokens=True)]
        if prompt:  # the conditional prompt comes back at the start: keep only the description
            texts = [t[len(prompt) :].strip() if t.lower().startswith(prompt) else t for t in texts]
        return texts


# ---------------------------------------------------------------- VQA (OpenAI-compatible server or transformers)


def data_url(image: Image.Image, quality: int = 90) -> str:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# --- backend (a): an OpenAI-compatible server -------------------------------------------------
class OpenAIVqa:
    def __init__(self, settings: Settings) -> None:
        from langchain_openai import ChatOpenAI

        self.url = str(settings.vqa_base_url)
        self.model = settings.vqa_model
        self.timeout = settings.request_timeout
        self.max_retries = settings.max_retries
        self.llm = ChatOpenAI(
            base_url=self.url,
            model=settings.vqa_model,
            api_key=settings.vqa_api_key,  # type: ignore[arg-type]
            timeout=settings.request_timeout,
            max_retries=settings.max_retries,
            max_tokens=settings.vqa_max_new_tokens,  # type: ignore[call-arg]
            temperature=0.0,
            # langchain-openai sends max_completion_tokens, which llama.cpp's server ignores
            extra_body={"max_tokens": settings.vqa_max_new_tokens},
        )
        self.calls = 0

    def _unavailable(self, exc: BaseException) -> BackendUnavailableError:
        server = Server(
            kind="VLM", url=self.url, model=self.model, timeout=self.timeout, retries=self.max_retries,
            hint="start it with `vlagent serve vlm` or fix VLAGENT_VQA_BASE_URL", takes_images=True,
        )  # fmt: skip
        return backend_unavailable(exc, server)

    def answer(self, images: list[Image.Image], question: str) -> str:
        return self.answer_with_usage(images, question)[0]

    def answer_with_usage(self, images: list[Image.Image], question: str) -> tuple[str, dict[str, int]]:
        """The answer and the server's token counts (``input_tokens`` includes the image tokens:
        all images go in this one request)."""
        import openai
        from langchain_core.messages import HumanMessage

        content: list[str | dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": data_url(im)}} for im in images
        ]
        content.append({"type": "text", "text": question})
        self.calls += 1
        try:
            reply = self.llm.invoke([HumanMessage(content=content)])
        except openai.OpenAIError as exc:
            raise self._unavailable(exc) from exc
        text = reply.text.strip() if hasattr(reply, "text") else str(reply.content).strip()
        usage = getattr(reply, "usage_metadata", None) or {}
        return text, {k: int(usage[k]) for k in ("input_tokens", "output_tokens") if k in usage}


# --- backend (b): transformers in-process -----------------------------------------------------
class TransformersVqa:
    """A Qwen2-VL-class model in-process, in the placement's dtype (on a CPU without native bf16,
    float32: transformers 5 would otherwise keep the checkpoint's bf16, which such CPUs emulate)."""

    def __init__(
        self, model_id: str, place: Placement | None = None, max_new_tokens: int = 128, local_files_only: bool = False
    ) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        place = place or cpu_placement()
        self.model_id = model_id
        self.device = place.device
        self.place = place
        self.max_new_tokens = max_new_tokens
        self.processor = AutoProcessor.from_pretrained(model_id, local_files_only=local_files_only)
        self.model = load_pretrained(AutoModelForImageTextToText, model_id, place, local_files_only)
        self.dtype = param_dtype(self.model)
        self._lock = threading.Lock()
        self.calls = 0
        self.last_sizes: list[tuple[int, int]] = []

    def answer(self, images: list[Image.Image], question: str) -> str:
        import torch

        messages = [
            {
                "role": "user",
                "content": [{"type": "image"} for _ in images] + [{"type": "text", "text": question}],
            }
        ]
        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = self.processor(text=[prompt], images=images, return_tensors="pt").to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        with self._lock, torch.inference_mode():
            self.calls += 1
            self.last_sizes = [im.size for im in images]
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True)[0].strip()
