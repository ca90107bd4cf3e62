"""A progress bar on stderr for the indexing the agent does where it starts (``vlagent eval``,
``ask``, ``ui``, ``serve api``): the same rich columns as ``vlagent index``.

:data:`STDERR` is the one rich Console on stderr that the bars and the command line's error
lines draw on (``vlagent.cli.errors.err_console`` is this one): rich nests live displays only
on one Console, so the image-text index's bar, drawn while a retrieval question waits for the
index, shows below the ``vlagent eval`` bar instead of fighting it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console

STDERR = Console(stderr=True)


@contextmanager
def progress_bar(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """``with progress_bar("image text", n) as advance: ... advance(k)``.

    On the process's stderr Console (:data:`STDERR`): drawn below another live
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


__all__ = ["STDERR", "progress_bar"]
