"""``vqa(images, question)``: answer a question about one or more images with a VLM.

Two backends (``settings.vqa_backend``; ``auto`` = ``openai`` when ``vqa_base_url`` is set,
else ``transformers``):

* ``openai``: an OpenAI-compatible server (``vllm serve Qwen/Qwen2-VL-2B-Instruct``, LLaVA, …)
  through ``langchain_openai.ChatOpenAI``; images travel as base64 JPEG data URLs. A server
  that is down, too slow or refuses the request raises ``BackendUnavailableError`` naming it.
* ``transformers``: the model in-process (``AutoProcessor`` + ``AutoModelForImageTextToText``,
  Qwen2-VL class by default), loaded once per process on first use.

Images are shrunk to ``settings.vqa_max_image_side`` first; all of a question's images go in one
request (a vLLM server must allow that many: ``--limit-mm-per-prompt``, setting
``serve_vlm_max_images``). The artifact (the trace's output) names the images, their sizes and,
from a server, its token counts. Answers are cached per (backend, model, images, question).
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from typing import Any, Literal

from langchain_core.tools import BaseTool, StructuredTool
from PIL import Image
from pydantic import BaseModel, Field

from vlagent.errors import BackendUnavailableError
from vlagent.openai_errors import Server, backend_unavailable
from vlagent.settings import Settings
from vlagent.tools.base import ToolContext
from vlagent.tools.hfmodels import shrink
from vlagent.tools.spec import ToolSpec

Backend = Literal["openai", "transformers"]
MAX_IMAGES = 8


class VqaArgs(BaseModel):
    images: list[str] = Field(
        min_length=1, max_length=MAX_IMAGES, description="file names or paths of the image(s) the question is about"
    )
    question: str = Field(min_length=1, description="the question, in the user's language")


def resolve_backend(settings: Settings) -> Backend | None:
    """``openai`` or ``transformers`` (``auto`` resolved), None when switched off."""
    from vlagent.models.roles import VQA

    backend = VQA.backend(settings)
    return None if backend == "none" else backend  # type: ignore[return-value]


def probe(settings: Settings) -> str | None:
    """None if the VLM can be used here, else why (the model loader's ``vqa`` role)."""
    from vlagent.models import loader

    return loader.status("vqa", settings).reason


def model_id(settings: Settings) -> str:
    backend = resolve_backend(settings)
    return f"{backend}:{settings.vqa_base_url}:{settings.vqa_model}" if backend == "openai" else f"{backend}:{settings.vqa_model}"


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
    def __init__(self, model_id: str, device: str, max_new_tokens: int, local_files_only: bool = False) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.model_id = model_id
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.processor = AutoProcessor.from_pretrained(model_id, local_files_only=local_files_only)
        dtype = "auto" if device.startswith("cuda") else None
        kwargs: dict[str, Any] = {"local_files_only": local_files_only}
        if dtype:
            kwargs["dtype"] = dtype
        self.model = AutoModelForImageTextToText.from_pretrained(model_id, **kwargs).to(device).eval()
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
        with self._lock, torch.inference_mode():
            self.calls += 1
            self.last_sizes = [im.size for im in images]
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True)[0].strip()


def engine(settings: Settings) -> OpenAIVqa | TransformersVqa:
    """The VLM client or in-process model of ``settings``, built once per process."""
    from vlagent.models import loader

    return loader.load("vqa", settings)  # type: ignore[no-any-return]


def ask(ctx: ToolContext, images: list[str], question: str) -> dict[str, Any]:
    """The artifact for one question (cached): answer, backend, model, images and sizes sent."""
    settings = ctx.settings
    side = settings.vqa_max_image_side
    hashes = [ctx.resolver.hash_of(n) for n in images[1:]]
    extra = hashlib.sha256(
        "|".join([question, *hashes, str(side), str(settings.vqa_max_new_tokens)]).encode("utf-8")
    ).hexdigest()[:32]

    def compute() -> dict[str, Any]:
        eng = engine(settings)  # raises ToolUnavailable before any image work if it cannot run
        shrunk = [shrink(ctx.resolver.load(n).image, side) for n in images]
        usage: dict[str, int] = {}
        if isinstance(eng, OpenAIVqa):
            answer, usage = eng.answer_with_usage(shrunk, question)
        else:
            answer = eng.answer(shrunk, question)
        art = {
            "answer": answer,
            "backend": resolve_backend(settings),
            "model": settings.vqa_model,
            "images": list(images),
            "sizes": [list(im.size) for im in shrunk],
            "requests": 1,  # every image in one request to the VLM
        }
        if usage:
            art["usage"] = usage
        return art

    return ctx.cached("vqa", model_id(settings), images[0], extra, compute)


def make_vqa_tool(ctx: ToolContext) -> BaseTool:
    def vqa(images: list[str], question: str) -> tuple[str, dict[str, Any]]:
        art = ask(ctx, images, question)
        return (art["answer"] or "(the model gave no answer)"), art

    return StructuredTool.from_function(
        vqa,
        name="vqa",
        description=(
            "Ask a vision-language model a question about one or more images (what is shown, "
            "material, style, details, comparing images). Pass all images the question is about."
        ),
        args_schema=VqaArgs,
        response_format="content_and_artifact",
    )


SPECS = [
    ToolSpec(
        name="vqa", args=VqaArgs, factory=make_vqa_tool, probe=lambda ctx: probe(ctx.settings),
        field="vqa", images="all", per_image=False, keep="last", role="vqa",
        fact="answer", label={"zh": "视觉模型回答", "en": "Vision model answer"},
    ),
]  # fmt: skip
