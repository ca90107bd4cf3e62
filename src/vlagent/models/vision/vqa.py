"""``vqa(images, question)``: answer a question about one or more images with a VLM.

Two backends (``settings.vqa_backend``; ``auto`` = ``openai`` when ``vqa_base_url`` is set,
else ``transformers``):

* ``openai``: an OpenAI-compatible server (``vllm serve Qwen/Qwen2-VL-2B-Instruct``, LLaVA, …)
  through ``langchain_openai.ChatOpenAI``; images travel as base64 JPEG data URLs. A server
  that is down, too slow or refuses the request raises ``BackendUnavailableError`` naming it.
* ``transformers``: the model in-process (``AutoProcessor`` + ``AutoModelForImageTextToText``,
  Qwen2-VL class by default), loaded once per process on first use.

Images are shrunk to ``settings.vqa_max_image_side`` first (the VLM server's pixel cap,
``vlagent serve``'s ``--mm-processor-kwargs``, is sized for that). A question's images go in one
request, up to ``serve_vlm_max_images`` to a server (vLLM refuses more than its
``--limit-mm-per-prompt``); more go in several requests of at most that many, and the answer
names each group's images. The artifact (the trace's output) names the images, their sizes,
the requests and, from a server, its token counts. Answers are cached per (backend, model,
images, question).
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from vlagent.data.images import base_name
from vlagent.models import loader
from vlagent.models.context import ToolContext
from vlagent.models.roles import VQA
from vlagent.models.vision.engines import OpenAIVqa, TransformersVqa
from vlagent.models.vision.hfmodels import shrink
from vlagent.settings import Settings

Backend = Literal["openai", "transformers"]
MAX_IMAGES = 8


def resolve_backend(settings: Settings) -> Backend | None:
    """``openai`` or ``transformers`` (``auto`` resolved), None when switched off."""
    backend = VQA.backend(settings)
    return None if backend == "none" else backend  # type: ignore[return-value]


def probe(settings: Settings) -> str | None:
    """None if the VLM can be used here, else why (the model loader's ``vqa`` role)."""
    return loader.status("vqa", settings).reason


def model_id(settings: Settings) -> str:
    backend = resolve_backend(settings)
    return f"{backend}:{settings.vqa_base_url}:{settings.vqa_model}" if backend == "openai" else f"{backend}:{settings.vqa_model}"


def engine(settings: Settings) -> OpenAIVqa | TransformersVqa:
    """The VLM client or in-process model of ``settings``, built once per process."""
    return loader.load("vqa", settings)  # type: ignore[no-any-return]


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


