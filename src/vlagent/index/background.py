"""An index build that runs in a background thread, and what waits for it.

Where the agent starts (``vlagent eval``, ``ask``, ``ui``, ``serve api``) the image-text index of
its catalogue is built in a :class:`BackgroundBuild` (:mod:`vlagent.index.shared`): questions
about a given image are answered meanwhile; the searches that need the whole catalogue
:meth:`~BackgroundBuild.wait` for it, with a progress bar, or, after a given time, search what
is indexed so far and say how much that is (:meth:`~BackgroundBuild.coverage`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Generic, TypeVar

from vlagent.errors import one_line

T = TypeVar("T")
log = logging.getLogger(__name__)

ProgressBar = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]  # (label, total) → advance(n)
POLL_S = 0.25  # how often a waiting progress bar catches up


class BackgroundBuild(Generic[T]):
    """``run(build)`` in a daemon thread: it counts the catalogue's images it has settled with
    :meth:`advance` and may publish what can already be searched as :attr:`value` (its return
    value replaces it). :attr:`ready` is set when it ends, done or failed (:attr:`error`: the
    one-line reason; the value keeps what it had)."""

    def __init__(self, label: str, total: int, run: Callable[["BackgroundBuild[T]"], T] | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.value: T | None = None
        self.error: str | None = None
        self.ready = threading.Event()
        self.started = time.monotonic()
        self.ended: float | None = None  # time.monotonic() when it ended
        self._lock = threading.Lock()
        self._bar_shown = False
        self._run = run
        if run is not None:
            threading.Thread(target=self._main, name=f"build {label}", daemon=True).start()

    @classmethod
    def finished(cls, label: str, value: T | None, total: int = 0) -> "BackgroundBuild[T]":
        """A build that is already complete (built in the caller's thread, or nothing to build)."""
        build: BackgroundBuild[T] = cls(label, total)
        build.value, build.done, build.ended = value, total, time.monotonic()
        build.ready.set()
        return build

    def _main(self) -> None:
        assert self._run is not None
        try:
            self.value = self._run(self)
        except Exception as exc:  # noqa: BLE001 - a failed build is reported by what waits for it
            self.error = one_line(exc)
            log.warning("%s: the build stopped: %s", self.label, self.error)
        finally:
            with self._lock:
                self.done = max(self.done, self.total) if self.error is None else self.done
            self.ended = time.monotonic()
            self.ready.set()
            log.info("%s: built in %.1f s", self.label, self.ended - self.started)

    def advance(self, n: int) -> None:
        with self._lock:
            self.done += n

    def coverage(self) -> tuple[int, int]:
        """(images settled, images in the catalogue)."""
        with self._lock:
            return min(self.done, self.total), self.total

    @property
    def complete(self) -> bool:
        return self.ready.is_set() and self.error is None

    def wait(self, timeout: float | None = None, progress: ProgressBar | None = None) -> bool:
        """Wait until the build ends, at most ``timeout`` seconds (None: as long as it takes),
        showing its progress on ``progress`` (one bar, drawn by the first thread that waits).
        True when it ended, False when the time ran out."""
        if self.ready.is_set():
            return True
        with self._lock:
            draw = progress is not None and not self._bar_shown
            self._bar_shown = self._bar_shown or draw
        bar = progress(f"{self.label} (retrieval waits for it)", self.total) if draw and progress else nullcontext(None)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with bar as advance:
                shown = 0
                while True:
                    left = None if deadline is None else deadline - time.monotonic()
                    if self.ready.wait(POLL_S if left is None else max(0.0, min(POLL_S, left))):
                        break
                    if advance is not None:
                        done, _ = self.coverage()
                        advance(done - shown)
                        shown = done
                    if left is not None and left <= 0:
                        return False
                if advance is not None:
                    advance(self.coverage()[0] - shown)
                return True
        finally:
            if draw:
                with self._lock:
                    self._bar_shown = False


__all__ = ["BackgroundBuild", "ProgressBar"]
