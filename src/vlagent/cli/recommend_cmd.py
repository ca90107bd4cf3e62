"""``vlagent recommend``: more like what you like, less like what you don't."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from vlagent.cli.errors import err_console
from vlagent.cli.options import AnnotationsOpt, CatalogueOpt, JsonOpt, TopKOpt, VerboseOpt
from vlagent.cli.quiet import quiet_transformers
from vlagent.products.recommend import NothingToRecommendError, Recommender
from vlagent.settings import Settings

console = Console()

#: libraries whose INFO/WARNING lines stay out of the terminal unless -v
CHATTY_LOGGERS = ("chromadb", "transformers", "open_clip", "huggingface_hub", "httpx", "urllib3", "PIL")

LikeOpt = Annotated[
    Optional[list[str]],
    typer.Option("--like", metavar="IMAGE|TEXT", help="something you like: an image (catalogue name or file) or a text (repeatable)"),
]
DislikeOpt = Annotated[
    Optional[list[str]],
    typer.Option("--dislike", metavar="IMAGE|TEXT", help="something you don't like: an image or a text (repeatable)"),
]


def _quiet(verbose: bool) -> None:
    if verbose:
        logging.getLogger().setLevel(logging.INFO)
        return
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    quiet_transformers()


def recommend(
    like: LikeOpt = None,
    dislike: DislikeOpt = None,
    k: TopKOpt = 10,
    catalogue: CatalogueOpt = None,
    annotations: AnnotationsOpt = None,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Recommend catalogue items like your likes and unlike your dislikes, e.g.
    vlagent recommend --like bag.jpg --like "棕色真皮手提包" --dislike red_dress.jpg -k 5 --images image/ -a train_annotation.csv"""

    _quiet(verbose)
    likes = [x for x in like or [] if x.strip()]
    if not likes:
        raise NothingToRecommendError(
            "nothing to recommend from: give at least one --like (an image name or path, or a text)"
        )
    settings = Settings()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        bar.add_task("loading the catalogue and models ...", total=None)

        def index_progress(total: int) -> Callable[[int], None]:
            task = bar.add_task("indexing the catalogue", total=total)
            return lambda n: bar.advance(task, n)

        dislikes = list(dislike or [])
        named_files = [x for x in [*likes, *dislikes] if Path(x).expanduser().is_file()]  # the user named them
        recommender = Recommender.from_paths(
            settings, list(catalogue or []), annotations, allow_files=named_files, index_progress=index_progress
        )
        result = recommender.recommend(likes, dislikes, k)
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    if result.note:
        err_console.print(f"[dim]{result.note}[/]", soft_wrap=True)
    if not result.items:
        console.print("nothing left to recommend: every item in the catalogue is a like or a dislike")
        return
    table = Table(title=f"top {k} recommendations ({result.space} space)")
    table.add_column("#", justify="right")
    table.add_column("file")
    table.add_column("score", justify="right")
    table.add_column("title")
    table.add_column("why")
    for rank, item in enumerate(result.items, 1):
        table.add_row(str(rank), item.image, f"{item.score:.4f}", item.title, item.why)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(recommend)
