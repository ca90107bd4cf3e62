"""Captioning: a one-sentence description of an image (BLIP) — the engine, its role and the
batching that captions many named images.

The model is ``settings.caption_model`` (hub id or local dir) loaded with transformers'
``BlipForConditionalGeneration`` + ``BlipProcessor``, once per process, on first use (role
``caption``; transformers and torch import inside the engine). ``concise`` is BLIP's
unconditional caption; ``detailed`` is conditioned on the prompt "a photography of" and allowed
to run longer. BLIP writes English only. :func:`captions` captions a list of named images in
batches, cached per (model, image content, style); the ``caption`` tool
(:mod:`vlagent.tools.caption`) is a thin adapter over it.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

from PIL import Image

from vlagent.cache import DiskCache
from vlagent.errors import ToolUnavailable
from vlagent.models import loading
from vlagent.models.context import ToolContext
from vlagent.models.loading import Found, RoleSpec, hub_repo_of, locate_hf, sample_image
from vlagent.models.placement import Placement, architecture, cpu_placement, load_pretrained, param_dtype, placement
from vlagent.settings import Settings

Style = Literal["concise", "detailed"]
GEN_VERSION = "v1"  # bump when generation changes: it is part of the cache key


# ---------------------------------------------------------------- the engine (BLIP)
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


# ---------------------------------------------------------------- the role
def _caption_probe(s: Settings) -> Found:
    if s.caption_backend == "none":
        return Found(reason="caption: disabled (VLAGENT_CAPTION_BACKEND=none)")
    return locate_hf("caption", s.caption_model, "VLAGENT_CAPTION_MODEL", s)


def _caption_build(s: Settings, local_only: bool) -> Any:
    place = placement(s, "encoder", architecture(s.caption_model, local_only))
    return CaptionEngine(
        s.caption_model, place, s.caption_max_new_tokens, s.caption_num_beams, local_files_only=local_only
    )


def _selfcheck(settings: Settings) -> str:
    return f"captioned: {engine(settings).generate([sample_image()])[0][:40]!r}"


ROLE = RoleSpec(
    role="caption",
    error=ToolUnavailable,
    setting="VLAGENT_CAPTION_MODEL",
    backend=lambda s: s.caption_backend,
    fields={
        "transformers": ("caption_model", "device", "model_dtype", "attn_implementation", "caption_max_new_tokens",
                         "caption_num_beams"),
    },  # fmt: skip
    model=lambda s: s.caption_model,
    probe=_caption_probe,
    build=_caption_build,
    hub_repo=lambda s: hub_repo_of(s.caption_model) if s.caption_backend != "none" else None,
    selfcheck=_selfcheck,
)


def probe(settings: Settings) -> str | None:
    """None if the caption model can be used here, else why (the ``caption`` role's status)."""
    return loading.status(ROLE, settings).reason


def engine(settings: Settings) -> CaptionEngine:
    """The BLIP engine of ``settings``, loaded once per process; ``ToolUnavailable`` if it cannot be."""
    return loading.load(ROLE, settings)  # type: ignore[no-any-return]


# ---------------------------------------------------------------- batching over named images
def _key(ctx: ToolContext, name: str, style: str) -> str:
    s = ctx.settings
    extra = f"{style}|{s.caption_max_new_tokens}|{s.caption_num_beams}|{GEN_VERSION}"
    return DiskCache.key("caption", s.caption_model, ctx.resolver.hash_of(name), extra)


def captions(ctx: ToolContext, names: list[str], style: Style = "concise", batch_size: int = 8) -> list[str]:
    """English captions for ``names`` in order: cached ones read, the rest batched."""
    cache: DiskCache | None = ctx.cache
    out: dict[int, str] = {}
    keys = [_key(ctx, n, style) if cache is not None else "" for n in names]
    todo: list[int] = []
    for i, key in enumerate(keys):
        hit = cache.get(key) if cache is not None else None
        if hit is not None:
            cache.hits += 1  # type: ignore[union-attr]
            out[i] = hit
        else:
            todo.append(i)
    if todo:
        eng = engine(ctx.settings)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            texts = eng.generate([ctx.resolver.load(names[i]).image for i in chunk], style)
            for i, text in zip(chunk, texts):
                out[i] = text
                if cache is not None:
                    cache.misses += 1
                    cache.put(keys[i], text)
    return [out[i] for i in range(len(names))]
