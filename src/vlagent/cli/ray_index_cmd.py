"""The ``--engine ray`` halves of ``vlagent index`` and ``vlagent eval``: progress bars around the
Ray pipelines; the commands themselves print the same summaries as on the local engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from vlagent.cli.errors import err_console
from vlagent.distributed.ray_index import index_with_ray
from vlagent.distributed.ray_text_index import index_texts_with_ray

if TYPE_CHECKING:  # pragma: no cover
    from vlagent.data.annotations import Annotation
    from vlagent.index.build import IndexSummary
    from vlagent.index.text_index import TextIndexSummary
    from vlagent.settings import Settings



@contextmanager
def _stage_bars(labels: dict[str, str]) -> Iterator[Callable[[str, int, int], None]]:
    """One bar per pipeline stage, added when the stage reports first: ``advance(stage, n, total)``."""
    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
    )  # fmt: skip
    tasks: dict[str, Any] = {}
    with Progress(*columns, console=err_console, transient=False) as bar:

        def advance(stage: str, n: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(labels.get(stage, stage), total=total)
            bar.advance(tasks[stage], n)

        yield advance


def index_on_ray(
    images: Path, settings: "Settings", annotations: list["Annotation"] | None, address: str | None
) -> "IndexSummary":
    err_console.print("[dim]starting Ray and loading the model on a worker ...[/]", highlight=False)
    with _stage_bars({"hash": "hashing (skip unchanged)", "encode": "decoding + encoding"}) as advance:
        return index_with_ray(images, settings, annotations, address=address, progress=advance)


def index_texts_on_ray(
    images: Path, settings: "Settings", annotations: list["Annotation"] | None, address: str | None
) -> "TextIndexSummary":
    """The image-text index on Ray (OCR and colours in tasks, upserts here), with its bars."""
    with _stage_bars({"hash": "image text: hashing (skip unchanged)", "read": "image text: OCR + colours"}) as advance:
        return index_texts_with_ray(images, settings, annotations, address=address, progress=advance)
