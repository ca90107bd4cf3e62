"""VQA: answer a question about one or more images with a VLM — the engines, their role and
what runs them on named images (:func:`ask`, the ``vqa`` tool's engine).

Two backends (``settings.vqa_backend``; ``auto`` = ``openai`` when ``vqa_base_url`` is set,
else ``transformers``):

* ``openai``: an OpenAI-compatible server (``vllm serve Qwen/Qwen2-VL-2B-Instruct``, LLaVA, …)
  through ``langchain_openai.ChatOpenAI``; images travel as base64 JPEG data URLs. A server
  that is down, too slow or refuses the request raises ``BackendUnavailableError`` naming it.
* ``transformers``: the model in-process (``AutoProcessor`` + ``AutoModelForImageTextToText``,
  Qwen2-VL class by default), loaded once per process on first use (role ``vqa``).
  transformers, torch and openai import inside the engines.

Images are shrunk to ``settings.vqa_max_image_side`` first (the VLM server's pixel cap,
``vlagent serve``'s ``--mm-processor-kwargs``, is sized for that). A question's images go in one
request, up to ``serve_vlm_max_images`` to a server (vLLM refuses more than its
``--limit-mm-per-prompt``); more go in several requests of at most that many, and the answer
names each group's images. The artifact (the trace's output) names the images, their sizes,
the requests and, from a server, its token counts. Answers are cached per (backend, model,
images, question).
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from typing import Any, Literal

from PIL import Image

from vlagent.data.images import base_name
from vlagent.errors import BackendUnavailableError, ToolUnavailable
from vlagent.models import loading
from vlagent.models.context import ToolContext
from vlagent.models.loading import Found, RoleSpec, hub_repo_of, locate_hf, openai_server, sample_image
from vlagent.models.placement import Placement, architecture, cpu_placement, load_pretrained, param_dtype, placement
from vlagent.models.servers import Server, backend_unavailable
from vlagent.settings import Settings

Backend = Literal["openai", "transformers"]
MAX_IMAGES = 8


# ---------------------------------------------------------------- the engines
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


# ---------------------------------------------------------------- the role
def _vqa_backend(s: Settings) -> str:
    if s.vqa_backend == "auto":
        return "openai" if s.vqa_base_url else "transformers"
    return s.vqa_backend


def _vqa_probe(s: Settings) -> Found:
    backend = _vqa_backend(s)
    if backend == "none":
        return Found(reason="vqa: disabled (VLAGENT_VQA_BACKEND=none)")
    if backend == "openai":
        return openai_server(
            "vqa", s.vqa_base_url, "vqa_backend=openai needs VLAGENT_VQA_BASE_URL (e.g. http://127.0.0.1:8001/v1)"
        )
    return locate_hf("vqa", s.vqa_model, "VLAGENT_VQA_MODEL", s)


def _vqa_build(s: Settings, local_only: bool) -> Any:
    if _vqa_backend(s) == "openai":
        return OpenAIVqa(s)
    place = placement(s, "generator", architecture(s.vqa_model, local_only))
    return TransformersVqa(s.vqa_model, place, s.vqa_max_new_tokens, local_files_only=local_only)


def _selfcheck(settings: Settings) -> str:
    return f"answered: {engine(settings).answer([sample_image()], 'What colour is the background?')[:40]!r}"


ROLE = RoleSpec(
    role="vqa",
    error=ToolUnavailable,
    setting="VLAGENT_VQA_MODEL",
    backend=_vqa_backend,
    fields={
        "openai": ("vqa_base_url", "vqa_model", "vqa_api_key", "request_timeout", "max_retries", "vqa_max_new_tokens"),
        "transformers": ("vqa_model", "device", "model_dtype", "attn_implementation", "vqa_max_new_tokens"),
    },
    model=lambda s: s.vqa_model,
    probe=_vqa_probe,
    build=_vqa_build,
    hub_repo=lambda s: hub_repo_of(s.vqa_model) if _vqa_backend(s) == "transformers" else None,
    server=lambda s: s.vqa_base_url if _vqa_backend(s) == "openai" else None,
    selfcheck=_selfcheck,
)


def resolve_backend(settings: Settings) -> Backend | None:
    """``openai`` or ``transformers`` (``auto`` resolved), None when switched off."""
    backend = _vqa_backend(settings)
    return None if backend == "none" else backend  # type: ignore[return-value]


def probe(settings: Settings) -> str | None:
    """None if the VLM can be used here, else why (the ``vqa`` role's status)."""
    return loading.status(ROLE, settings).reason


def model_id(settings: Settings) -> str:
    backend = resolve_backend(settings)
    return f"{backend}:{settings.vqa_base_url}:{settings.vqa_model}" if backend == "openai" else f"{backend}:{settings.vqa_model}"


def engine(settings: Settings) -> OpenAIVqa | TransformersVqa:
    """The VLM client or in-process model of ``settings``, built once per process."""
    return loading.load(ROLE, settings)  # type: ignore[no-any-return]


# ---------------------------------------------------------------- on named images, in requests
def shrink(image: Image.Image, max_side: int) -> Image.Image:
    """A copy no larger than ``max_side`` on its longer side (aspect kept); small ones unchanged."""
    w, h = image.size
    if max(w, h) <= max_side:
        return image
    scale = max_side / max(w, h)
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)


def images_per_request(settings: Settings, count: int) -> int:
    """How many of ``count`` images one request carries: a server takes at most
    ``serve_vlm_max_images`` (vLLM's ``--limit-mm-per-prompt``), the in-process model all."""
    if resolve_backend(settings) == "openai":
        return max(1, min(count, settings.serve_vlm_max_images))
    return max(1, count)


def _groups(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def ask(ctx: ToolContext, images: list[str], question: str) -> dict[str, Any]:
    """The artifact for one question (cached): answer, backend, model, images and sizes sent."""
    settings = ctx.settings
    side = settings.vqa_max_image_side
    per_request = images_per_request(settings, len(images))
    hashes = [ctx.resolver.hash_of(n) for n in images[1:]]
    split = [f"per-request:{per_request}"] if per_request < len(images) else []
    extra = hashlib.sha256(
        "|".join([question, *hashes, str(side), str(settings.vqa_max_new_tokens), *split]).encode("utf-8")
    ).hexdigest()[:32]

    def compute() -> dict[str, Any]:
        eng = engine(settings)  # raises ToolUnavailable before any image work if it cannot run
        shrunk = [shrink(ctx.resolver.load(n).image, side) for n in images]
        usage: dict[str, int] = {}
        answers: list[str] = []
        groups = _groups(list(range(len(images))), per_request)
        for group in groups:
            part = [shrunk[i] for i in group]
            if isinstance(eng, OpenAIVqa):
                text, used = eng.answer_with_usage(part, question)
                for k, v in used.items():
                    usage[k] = usage.get(k, 0) + v
            else:
                text = eng.answer(part, question)
            # the group's images by base name: the LLM reads this answer and sees names, never paths
            answers.append(text if len(groups) == 1 else f"[{', '.join(base_name(images[i]) for i in group)}] {text}")
        art = {
            "answer": "\n".join(answers),
            "backend": resolve_backend(settings),
            "model": settings.vqa_model,
            "images": list(images),
            "sizes": [list(im.size) for im in shrunk],
            "requests": len(groups),  # all images in one request, up to the server's limit
        }
        if len(groups) > 1:
            art["groups"] = [[images[i] for i in group] for group in groups]
        if usage:
            art["usage"] = usage
        return art

    return ctx.cached("vqa", model_id(settings), images[0], extra, compute)


