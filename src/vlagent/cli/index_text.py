"""The text side of ``vlagent index``: the image-text index (OCR text, colours, captions).

:func:`index_text_side` reads every catalogue image's text into the second Chroma collection
(:mod:`vlagent.index.text_index`: worker processes here, or Ray tasks with ``--engine ray``)
with a progress bar and prints how many images carry text; the ``index`` command builds the
text side only on a machine without a CLIP model, and says so.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from vlagent.cli.errors import err_console
from vlagent.cli.ray_index_cmd import index_texts_on_ray
from vlagent.data.annotations import Annotation
from vlagent.index.text_index import TextIndex, TextIndexSummary, index_image_texts, unavailable_reason
from vlagent.settings import Settings
from vlagent.data.images import open_source
from vlagent.distributed.common import Engine
from vlagent.models.context import ToolContext
from vlagent.models import caption, ocr


def text_side_reason() -> str | None:
    """Why the image-text index cannot be built here (None: it can)."""

    return unavailable_reason()


def _captioner(settings: Settings, ctx: object):  # type: ignore[no-untyped-def]

    if caption.probe(settings) is not None:
        return None
    return lambda names: caption.captions(ctx, names, style="concise")


def _quiet_ocr(settings: Settings) -> None:
    """rapidocr sets its logger's level when its engine is built: build it, then quieten it."""

    if ocr.probe(settings) is None:
        ocr.engine(settings)
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)


def index_text_side(
    settings: Settings, images: Path, rows: list[Annotation] | None, console: Console, verbose: bool = False,
    engine: Engine = Engine.local, address: str | None = None,
) -> TextIndexSummary:
    """Build / refresh the image-text index of ``images`` and print a summary table
    (``engine``: OCR and colours in worker processes here, or in Ray tasks)."""

    if engine == Engine.ray:
        summary = index_texts_on_ray(images, settings, rows, address)
        if caption.probe(settings) is None:
            console.print("[dim]no captions on Ray: `vlagent index` without --engine ray adds them[/]")
        captioner = None
    else:
        ctx = ToolContext.from_settings(settings, [images])
        captioner = _captioner(settings, ctx)
        index = TextIndex.open(settings)
        if not verbose:
            _quiet_ocr(settings)
        columns = (
            TextColumn("[bold]image text"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        )  # fmt: skip
        with open_source(images) as source, Progress(*columns, console=err_console, transient=False) as bar:
            task = bar.add_task("text", total=len(source))
            summary = index_image_texts(
                source, index, ctx, rows, captioner=captioner, progress=lambda n: bar.advance(task, n)
            )
    table = Table(title=f"image-text index {summary.collection} (OCR, colours{', captions' if captioner else ''})")
    table.show_header = False
    for label, value in [
        ("images", summary.total), ("read and embedded", summary.indexed),
        ("skipped (unchanged)", summary.skipped), ("images carrying text (OCR or caption)", summary.with_text),
        ("with a caption", summary.with_caption), ("failed", len(summary.failed)),
        ("records in index", summary.count),
    ]:  # fmt: skip
        table.add_row(label, str(value))
    console.print(table)
    for line in summary.failed[:10]:
        console.print(f"[yellow]failed[/] {line}")
    return summary


__all__ = ["index_text_side", "text_side_reason"]
