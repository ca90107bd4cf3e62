"""``vlagent classify``: CLIP zero-shot categories for one image, or for a whole catalogue."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from vlagent.cli.options import CatalogueOpt, VerboseOpt
from vlagent.cli.quiet import quiet_libraries
from vlagent.errors import VlagentError
from vlagent.cli.errors import err_console
from vlagent.data.images import load_image_file, open_source
from vlagent.enrich.categories import DEFAULT_CATEGORIES, classify_catalogue, parse_labels
from vlagent.models.clip import encoder_from_settings
from vlagent.models.zeroshot import zero_shot
from vlagent.settings import Settings

console = Console()


def classify(
    image: Annotated[Optional[Path], typer.Argument(help="one image file (or use --images for a catalogue)")] = None,
    images: CatalogueOpt = None,
    labels: Annotated[Optional[str], typer.Option("--labels", "-l", help='comma-separated labels, e.g. "连衣裙,衬衫,裤子" (default: e-commerce categories)')] = None,
    lang: Annotated[str, typer.Option("--lang", help="language of the default categories: zh | en")] = "zh",
    out: Annotated[Path, typer.Option("--out", "-o", help="with --images: the image,category,score CSV")] = Path("categories.csv"),
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="CLIP model (env VLAGENT_CLIP_MODEL)")] = None,
    pretrained: Annotated[Optional[str], typer.Option("--pretrained", help="open_clip pretrained tag or checkpoint file (env VLAGENT_CLIP_PRETRAINED)")] = None,
    verbose: VerboseOpt = False,
) -> None:
    """CLIP zero-shot classification (prompt templates): IMAGE → a table; --images CATALOGUE → a CSV.

    The CSV (image,category,score) is what VLAGENT_CATEGORIES points the agent at: a title hint
    for images without a title."""

    quiet_libraries(verbose)
    if lang not in DEFAULT_CATEGORIES:
        raise VlagentError(f"--lang {lang!r}: expected zh or en")
    if (image is None) == (not images):
        raise VlagentError("give either one IMAGE or --images CATALOGUE (a folder or image.zip)")
    names = parse_labels(labels, lang)
    settings = Settings(**{k: v for k, v in {"clip_model": model, "clip_pretrained": pretrained}.items() if v})
    if image is not None:
        _one(image, names, settings)
        return
    if images and len(images) != 1:
        raise VlagentError("give the catalogue once: --images DIR_OR_ZIP")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


    with open_source(images[0]) as source:  # type: ignore[index]
        with console.status(f"loading {settings.clip_model} ..."):
            encoder = encoder_from_settings(settings)
        columns = (TextColumn("[bold]classifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=err_console) as bar:
            task = bar.add_task("classify", total=len(source))
            summary = classify_catalogue(
                encoder, source, names, out, max_pixels=settings.max_image_pixels,
                batch_size=settings.clip_batch_size, progress=lambda n: bar.advance(task, n),
            )  # fmt: skip
    table = Table(title=f"{summary.total} images over {len(names)} labels")
    table.add_column("category")
    table.add_column("images", justify="right")
    for category, count in list(summary.counts.items())[:15]:
        table.add_row(category, str(count))
    console.print(table)
    if summary.failed:
        console.print(f"[yellow]{len(summary.failed)} unreadable image(s)[/] (e.g. {summary.failed[0]})")
    console.print(f"wrote {out} ({summary.classified} classified now, {summary.done_before} resumed)")
    console.print(f"export VLAGENT_CATEGORIES={out.resolve()}", highlight=False, soft_wrap=True)


def _one(image: Path, names: list[str], settings: object) -> None:
    img = load_image_file(image, settings.max_image_pixels)  # type: ignore[attr-defined]
    scores = zero_shot(encoder_from_settings(settings), img, names)  # type: ignore[arg-type]
    table = Table(title=f"zero-shot: {image.name}")
    table.add_column("label")
    table.add_column("probability", justify="right")
    table.add_column("cosine", justify="right")
    for s in scores[:15]:
        table.add_row(s.label, f"{s.probability:.3f}", f"{s.similarity:.4f}")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("classify")(classify)
