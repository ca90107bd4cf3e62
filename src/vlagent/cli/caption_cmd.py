"""``vlagent caption IMAGES --out captions.jsonl``: batch captions of a catalogue."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from vlagent.cli.options import CatalogueOpt, VerboseOpt
from vlagent.cli.quiet import quiet_libraries
from vlagent.errors import VlagentError
from vlagent.cli.errors import err_console
from vlagent.data.images import open_source
from vlagent.enrich.captions import caption_catalogue, choose_captioner
from vlagent.settings import Settings

console = Console()


def caption(
    images_arg: Annotated[Optional[Path], typer.Argument(metavar="IMAGES", help="image folder or image.zip")] = None,
    images: CatalogueOpt = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="captions JSONL (resumable; rewritten atomically at the end)")] = Path("captions.jsonl"),
    lang: Annotated[str, typer.Option("--lang", help="zh | en (Chinese needs a VLM; BLIP writes English)")] = "en",
    style: Annotated[str, typer.Option("--style", help="concise | detailed")] = "concise",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="images per BLIP batch")] = 8,
    verbose: VerboseOpt = False,
) -> None:
    """Caption every image of a catalogue: BLIP, or the VLM for Chinese / detailed captions.

    Cached per image content (the agent's cache): a rerun or the agent recomputes nothing."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


    quiet_libraries(verbose)
    sources = ([images_arg] if images_arg else []) + list(images or [])
    if len(sources) != 1:
        raise VlagentError("give one catalogue: vlagent caption IMAGES (a folder or image.zip)")
    if lang not in ("zh", "en") or style not in ("concise", "detailed"):
        raise VlagentError(f"--lang {lang!r} / --style {style!r}: expected zh|en and concise|detailed")
    settings = Settings()
    captioner = choose_captioner(settings, lang, style)  # type: ignore[arg-type]
    if captioner.note:
        err_console.print(f"[yellow]note:[/] {captioner.note}")
    with open_source(sources[0]) as source:
        columns = (TextColumn(f"[bold]captioning ({captioner.engine})"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())  # fmt: skip
        with Progress(*columns, console=err_console) as bar:
            task = bar.add_task("caption", total=len(source))
            summary = caption_catalogue(
                source, out, settings, lang, style,  # type: ignore[arg-type]
                batch_size=batch_size, progress=lambda n: bar.advance(task, n),
            )  # fmt: skip
    console.print(
        f"{summary.total} images: {summary.captioned} captioned now ({summary.cache_hits} from the cache), "
        f"{summary.done_before} already in {out}, {summary.failed} failed — {captioner.lang} captions by {captioner.model}"
    )
    console.print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command("caption")(caption)
