"""``caption(image, style, lang)``: a one-sentence description of an image (BLIP).

The model is ``settings.caption_model`` (hub id or local dir) loaded with transformers'
``BlipForConditionalGeneration`` + ``BlipProcessor``, once per process, on first use.
``concise`` is BLIP's unconditional caption; ``detailed`` is conditioned on the prompt
"a photography of" and allowed to run longer. BLIP writes English only: for ``lang="zh"``
the English caption is returned and the artifact says so (the answer LLM translates).
Captions are cached per (model, image content, style); :meth:`CaptionTool.caption_many`
captions a list of images in batches (cache misses only).
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field

from vlagent.cache import DiskCache
from vlagent.models import loader
from vlagent.models.vision.engines import CaptionEngine, Style
from vlagent.settings import Settings

Lang = Literal["zh", "en"]


class CaptionArgs(BaseModel):
    image: str = Field(description="file name or path of the image to describe")
    style: Style = Field("concise", description="concise: one short sentence; detailed: a longer one")
    lang: Lang = Field("zh", description="language of the final answer (BLIP itself writes English)")

GEN_VERSION = "v1"  # bump when generation changes: it is part of the cache key


def probe(settings: Settings) -> str | None:
    """None if the caption model can be used here, else why (the model loader's ``caption`` role)."""
    return loader.status("caption", settings).reason


def engine(settings: Settings) -> CaptionEngine:
    """The BLIP engine of ``settings``, loaded once per process; ``ToolUnavailable`` if it cannot be."""
    return loader.load("caption", settings)  # type: ignore[no-any-return]


def _artifact(caption: str, style: str, lang: str, model: str) -> dict[str, Any]:
    art: dict[str, Any] = {"caption": caption, "style": style, "lang": "en", "requested_lang": lang, "model": model}
    if lang != "en":
        art["note"] = "BLIP writes English only; the caption is untranslated"
    return art


def _content(art: dict[str, Any]) -> str:
    text = art["caption"] or "(no caption)"
    if art["requested_lang"] != "en":
        return f"{text} (English caption; BLIP writes English only)"
    return text


class CaptionTool(BaseTool):
    """The ``caption`` tool, plus :meth:`caption_many` for the batch harness."""

    name: str = "caption"
    description: str = (
        "Describe an image in one sentence (BLIP image captioning, English). style=detailed for "
        "a longer description."
    )
    args_schema: type[BaseModel] = CaptionArgs
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    ctx: Any = Field(exclude=True)
    batch_size: int = 8

    @property
    def model_id(self) -> str:
        return self.ctx.settings.caption_model

    def _key(self, name: str, style: str) -> str:
        s = self.ctx.settings
        extra = f"{style}|{s.caption_max_new_tokens}|{s.caption_num_beams}|{GEN_VERSION}"
        return DiskCache.key("caption", self.model_id, self.ctx.resolver.hash_of(name), extra)

    def captions(self, names: list[str], style: Style = "concise") -> list[str]:
        """English captions for ``names`` in order: cached ones read, the rest batched."""
        cache: DiskCache | None = self.ctx.cache
        out: dict[int, str] = {}
        keys = [self._key(n, style) if cache is not None else "" for n in names]
        todo: list[int] = []
        for i, key in enumerate(keys):
            hit = cache.get(key) if cache is not None else None
            if hit is not None:
                cache.hits += 1  # type: ignore[union-attr]
                out[i] = hit
            else:
                todo.append(i)
        if todo:
            eng = engine(self.ctx.settings)
            for start in range(0, len(todo), self.batch_size):
                chunk = todo[start : start + self.batch_size]
                texts = eng.generate([self.ctx.resolver.load(names[i]).image for i in chunk], style)
                for i, text in zip(chunk, texts):
                    out[i] = text
                    if cache is not None:
                        cache.misses += 1
                        cache.put(keys[i], text)
        return [out[i] for i in range(len(names))]

    def caption_many(self, names: list[str], style: Style = "concise", lang: Lang = "zh") -> list[dict[str, Any]]:
        """Artifacts (as the tool returns them) for many images, batched through BLIP."""
        return [_artifact(c, style, lang, self.model_id) for c in self.captions(list(names), style)]

    def _run(self, image: str, style: Style = "concise", lang: Lang = "zh", **_: Any) -> tuple[str, dict[str, Any]]:
        art = _artifact(self.captions([image], style)[0], style, lang, self.model_id)
        return _content(art), art


