"""The ``caption`` tool: one sentence about an image, BLIP (the engine and the batching:
:mod:`vlagent.models.caption`).

BLIP writes English only: for ``lang="zh"`` the English caption is returned and the artifact says
so (the answer LLM translates)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field

from vlagent.agent.toolspec import ToolSpec
from vlagent.models.caption import Style, captions, probe
from vlagent.models.context import ToolContext

Lang = Literal["zh", "en"]


class CaptionArgs(BaseModel):
    image: str = Field(description="file name or path of the image to describe")
    style: Style = Field("concise", description="concise: one short sentence; detailed: a longer one")
    lang: Lang = Field("zh", description="language of the final answer (BLIP itself writes English)")


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
    """The ``caption`` tool, plus :meth:`caption_many` for the batch harness (the batching:
    :func:`vlagent.models.caption.captions`)."""

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

    def captions(self, names: list[str], style: Style = "concise") -> list[str]:
        """English captions for ``names`` in order: cached ones read, the rest batched."""
        return captions(self.ctx, names, style, self.batch_size)

    def caption_many(self, names: list[str], style: Style = "concise", lang: Lang = "zh") -> list[dict[str, Any]]:
        """Artifacts (as the tool returns them) for many images, batched through BLIP."""
        return [_artifact(c, style, lang, self.model_id) for c in self.captions(list(names), style)]

    def _run(self, image: str, style: Style = "concise", lang: Lang = "zh", **_: Any) -> tuple[str, dict[str, Any]]:
        art = _artifact(self.captions([image], style)[0], style, lang, self.model_id)
        return _content(art), art


def make_caption_tool(ctx: ToolContext) -> CaptionTool:
    return CaptionTool(ctx=ctx)


def _prepare(ctx: ToolContext, tool: BaseTool, calls: Sequence[dict[str, Any]]) -> int:  # noqa: ARG001
    """Caption every planned image in batches (per style) into the cache the tool reads."""
    by_style: dict[str, list[str]] = {}
    for call in calls:
        if call.get("image"):
            by_style.setdefault(str(call.get("style", "concise")), []).append(call["image"])
    done = 0
    for style, names in by_style.items():
        unique = list(dict.fromkeys(names))
        tool.captions(unique, style=style)  # type: ignore[attr-defined]
        done += len(unique)
    return done


SPECS = [
    ToolSpec(
        name="caption", args=CaptionArgs, factory=make_caption_tool, probe=lambda ctx: probe(ctx.settings),
        field="caption", images="first", role="caption", prepare=_prepare,
        fact="seen", label={"zh": "图片说明（英文）", "en": "Caption"},
        summarize=lambda art, lang: str((art or {}).get("caption") or ""),
    ),
]  # fmt: skip
