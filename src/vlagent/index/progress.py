"""A progress bar on stderr for the indexing the agent does where it starts (``vlagent eval``,
``ask``, ``ui``, ``serve api``): the same rich columns as ``vlagent index``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from vlagent.console import STDERR


@contextmanager
def progress_bar(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """``with progress_bar("image text", n) as advance: ... advance(k)``.

    On the process's stderr Console (:data:`vlagent.console.STDERR`): drawn below another live
    display that runs on it (the ``vlagent eval`` bar); when another one runs elsewhere, it
    counts silently."""
    from rich.errors import LiveError
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (
        TextColumn(f"[bold]{escape(label)}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
    )  # fmt: skip
    bar = Progress(*columns, console=STDERR, transient=False)
    try:
        bar.start()
    except LiveError:
        yield lambda n: None
        return
    try:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
    finally:
        bar.stop()


__all__ = ["progress_bar"]
