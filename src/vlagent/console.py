"""The rich Console on stderr that the progress bars and error lines of a process draw on.

Rich nests live displays (a progress bar shown while another runs) only on one Console: the
``vlagent eval`` bar and the image-text index's bar, drawn when a retrieval question waits for
the index, share this one (:mod:`vlagent.index.progress`, ``vlagent.cli.errors``)."""

from __future__ import annotations

from rich.console import Console

STDERR = Console(stderr=True)

__all__ = ["STDERR"]
