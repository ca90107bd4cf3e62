"""Batch captions of a whole catalogue into a JSONL file: resumable, cached per image content.

Which model writes them (:func:`choose_captioner`):

* BLIP (:mod:`vlagent.models.caption`: ``VLAGENT_CAPTION_MODEL``) where it is here — English;
* the VLM of the ``vqa`` tool (a vLLM server at ``VLAGENT_VQA_BASE_URL`` or an in-process
  ``VLAGENT_VQA_MODEL``) for Chinese or detailed captions when one is configured, and for any
  caption when BLIP is not here;
* Chinese or detailed captions with BLIP only: BLIP writes them in English, and the run says so;
* neither: one line naming what is missing and the settings that fix it.

Captions go through the tools' engines and their on-disk cache (``HOME/cache/tools.sqlite``,
keyed by model and image content hash): a second run, or the agent later, recomputes nothing.
Each finished image is appended to ``OUT`` as it comes; the file is rewritten atomically in
catalogue order at the end, and a rerun skips the images already in it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from vlagent.cache import DiskCache
from vlagent.data.images import ImageSource
from vlagent.errors import BackendUnavailableError, DataError, ToolUnavailable, one_line
from vlagent.fileio import atomic_write_text
from vlagent.settings import Settings
from vlagent.models import caption, vqa
from vlagent.data.resolver import ImageResolver
from vlagent.models.context import ToolContext

Lang = Literal["zh", "en"]
Style = Literal["concise", "detailed"]
Engine = Literal["blip", "vlm"]

VLM_PROMPTS: dict[tuple[str, str], str] = {
    ("zh", "concise"): "用一句话描述这张商品图片。",
    ("zh", "detailed"): "详细描述这张商品图片：商品类别、颜色、材质、款式、图案，以及图中可见的文字。",
    ("en", "concise"): "Describe this product image in one sentence.",
    ("en", "detailed"): "Describe this product image in detail: category, colours, material, style, pattern and any visible text.",
}


class CaptionRow(BaseModel):
    image: str
    caption: str = ""
    lang: Lang
    style: Style
    model: str
    engine: Engine
    error: str | None = None


class Captioner(BaseModel):
    engine: Engine
    model: str
    lang: Lang  # the language the captions come out in
    note: str | None = None  # said once when the request cannot be met exactly


class CaptionSummary(BaseModel):
    total: int
    done_before: int
    captioned: int
    failed: int
    cache_hits: int
    captioner: Captioner


def choose_captioner(settings: Settings, lang: Lang, style: Style) -> Captioner:
    blip_missing, vlm_missing = caption.probe(settings), vqa.probe(settings)
    wants_vlm = lang == "zh" or style == "detailed"
    if vlm_missing is None and (wants_vlm or blip_missing is not None):
        return Captioner(engine="vlm", model=vqa.model_id(settings), lang=lang)
    if blip_missing is None:
        note = None
        if lang == "zh":
            note = ("BLIP writes English only: these captions are English; for Chinese captions configure a VLM "
                    "(VLAGENT_VQA_BASE_URL=http://HOST:PORT/v1 of `vlagent serve vlm`, or VLAGENT_VQA_MODEL=DIR)")  # fmt: skip
        return Captioner(engine="blip", model=settings.caption_model, lang="en", note=note)
    raise ToolUnavailable(
        f"no captioning model here ({blip_missing}; {vlm_missing}): set VLAGENT_CAPTION_MODEL to a local BLIP "
        "folder, or VLAGENT_VQA_BASE_URL / VLAGENT_VQA_MODEL to a vision-language model"
    )


def read_done(out: Path, lang: Lang, style: Style, model: str) -> dict[str, CaptionRow]:
    """Rows already in ``out`` (a cut last line is ignored); rows with an error are redone."""
    done: dict[str, CaptionRow] = {}
    if not out.is_file():
        return done
    for line in out.read_text("utf-8").splitlines():
        try:
            row = CaptionRow.model_validate_json(line)
        except ValueError:
            continue
        if (row.lang, row.style, row.model) != (lang, style, model):
            raise DataError(
                f"{out} holds {row.style} {row.lang} captions by {row.model}; this run writes {style} {lang} "
                f"captions by {model}: give another --out"
            )
        if row.error is None:
            done[row.image] = row
    return done


def caption_catalogue(
    source: ImageSource,
    out: Path,
    settings: Settings,
    lang: Lang = "en",
    style: Style = "concise",
    *,
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
) -> CaptionSummary:
    captioner = choose_captioner(settings, lang, style)
    out = Path(out)
    names = source.names()
    done = read_done(out, captioner.lang, style, captioner.model)
    todo = [n for n in names if n not in done]
    if progress and len(done):
        progress(len(names) - len(todo))
    cache = DiskCache(settings.cache_dir / "tools.sqlite")
    ctx = ToolContext(settings=settings, resolver=ImageResolver([source], settings.max_image_pixels), cache=cache)
    failed: dict[str, CaptionRow] = {}

    def row(name: str, text: str = "", error: str | None = None) -> CaptionRow:
        return CaptionRow(image=name, caption=text, lang=captioner.lang, style=style, model=captioner.model,
                          engine=captioner.engine, error=error)  # fmt: skip

    def caption_chunk(chunk: list[str]) -> list[CaptionRow]:
        """Rows for ``chunk``; a bad image becomes a row with its error, a missing model or a
        server that is down ends the run (it resumes)."""
        if captioner.engine == "blip":
            try:
                return [row(n, t) for n, t in zip(chunk, caption.captions(ctx, chunk, style, batch_size))]
            except (ToolUnavailable, BackendUnavailableError):
                raise
            except Exception as exc:  # noqa: BLE001 - find the bad image one by one
                if len(chunk) == 1:
                    return [row(chunk[0], error=one_line(exc))]
                return [r for n in chunk for r in caption_chunk([n])]
        prompt = VLM_PROMPTS[(captioner.lang, style)]
        rows = []
        for n in chunk:
            try:
                rows.append(row(n, vqa.ask(ctx, [n], prompt)["answer"]))
            except (ToolUnavailable, BackendUnavailableError):
                raise
            except Exception as exc:  # noqa: BLE001
                rows.append(row(n, error=one_line(exc)))
        return rows

    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with out.open("a", encoding="utf-8") as journal:
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                rows = caption_chunk(chunk)
                for r in rows:
                    journal.write(r.model_dump_json() + "\n")
                    (failed if r.error else done)[r.image] = r
                journal.flush()
                if progress:
                    progress(len(chunk))
    finally:
        ordered = [done.get(n) or failed.get(n) for n in names]
        atomic_write_text(out, "".join(r.model_dump_json() + "\n" for r in ordered if r is not None))
        cache.close()
    return CaptionSummary(
        total=len(names), done_before=len(names) - len(todo), captioned=len(todo) - len(failed),
        failed=len(failed), cache_hits=cache.hits, captioner=captioner,
    )  # fmt: skip


def read_captions(path: str | Path) -> dict[str, str]:
    """image → caption of a captions JSONL (rows with an error are left out)."""
    out: dict[str, str] = {}
    for line in Path(path).read_text("utf-8").splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and not obj.get("error") and obj.get("image"):
            out[obj["image"]] = obj.get("caption", "")
    return out
