"""Reading the images of the image-text index (OCR, colours, the e5 passage), in parallel worker processes.

The image-text index (:mod:`vlagent.index.text_index`) hands the images it has to read to a
:class:`TextReader` and gets each image's :class:`~vlagent.index.image_text.Read` (its text and
its passage's vector, or why it could not be read) back in order, in chunks that it upserts.
The reader is

* a pool of ``index_workers`` processes (default: one per core), each with its own OCR engine
  whose onnxruntime uses ``cores / workers`` threads (``workers x threads = cores``: more would
  only take turns on the same cores), OpenMP and BLAS held to one thread (the colours'
  k-means, e5), and a resolver that keeps one decoded image. A worker reads one image at a
  time, start to end: OCR, colours, the passage's e5 vector, and writes the OCR and colours into
  the tools' cache as the agent's tools do (SQLite, WAL: several processes may write). Started
  as fresh interpreters by loky's context (the caller's threads, Chroma's and the LLM's, are not
  forked), which, unlike ``spawn``, does not run the caller's ``__main__`` again in each worker:
  a script that calls ``build_agent`` at its top level needs no ``if __name__ == "__main__"``
  guard (with ``spawn`` each worker re-ran the script and the build failed); a background build
  runs them at a lower priority (``nice``) so that the answers the agent gives meanwhile go
  first. No image waits in a queue: Ctrl-C (it reaches the parent only) waits for the images in
  flight only, and a process that ends while a background build runs (``vlagent ask``, an
  ``eval`` whose questions did not need the index) stops its workers at once (an exit hook);
* this process, when one worker is asked for or there are fewer than :data:`MIN_POOL_IMAGES`
  images to read (starting a worker imports the OCR stack: about as long as reading a dozen
  images); the caller then embeds each chunk's passages in one batch.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import weakref
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from loky.backend.context import get_context as loky_context

from vlagent.cache import DiskCache
from vlagent.data.resolver import ImageResolver
from vlagent.errors import VlagentError
from vlagent.index.image_text import Read, ReadItem, read_item
from vlagent.models.context import ToolContext
from vlagent.settings import Settings

log = logging.getLogger(__name__)

#: fewer images than this to read and no worker process is started
MIN_POOL_IMAGES = 16
#: the niceness of the workers of a background build (the answers come first)
BACKGROUND_NICE = 10

def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def worker_count(settings: Settings) -> int:
    return settings.index_workers or cores()


# --------------------------------------------------------------------------- worker processes

_CTX: ToolContext | None = None


def _init_worker(settings: dict[str, Any], root: str, cache: str | None, nice: int) -> None:
    global _CTX
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    if nice:
        os.nice(nice)
    os.environ["OMP_NUM_THREADS"] = "1"  # the OpenMP runtimes loaded later (scikit-learn's) start with one thread
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # and those loaded already (numpy's BLAS): one thread per worker
    resolved = Settings(**settings)
    resolver = ImageResolver.from_paths([root], resolved.max_image_pixels, memo=1)
    _CTX = ToolContext(settings=resolved, resolver=resolver, cache=DiskCache(Path(cache)) if cache else None)
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)


def _read_in_worker(item: ReadItem) -> Read:
    assert _CTX is not None, "the worker was not initialised"
    return read_item(_CTX, item, embed=True)


# --------------------------------------------------------------------------- the reader


class ReaderStopped(Exception):
    """The reader cannot take more work: its pool was shut down (the interpreter is exiting)."""


class TextReader:
    """Reads images in order, in chunks. With a pool, each worker reads one image at a time, its
    passage's e5 vector included, and gets the next as soon as it is done (this process only
    upserts); no image waits in a queue, so a process that exits while a background build runs
    waits for the images in flight only. Without, this process reads and the caller embeds."""

    def __init__(self, ctx: ToolContext, pool: ProcessPoolExecutor | None = None, workers: int = 1) -> None:
        self.ctx = ctx
        self.pool = pool
        self.workers = workers if pool is not None else 1

    @property
    def embeds(self) -> bool:
        """Whether the results carry their passage's vector."""
        return self.pool is not None

    def chunks(self, items: Sequence[ReadItem], size: int) -> Iterator[tuple[list[ReadItem], list[Read]]]:
        """``(chunk, reads)`` for consecutive chunks of ``size`` items."""
        if self.pool is None:
            for start in range(0, len(items), size):
                chunk = list(items[start : start + size])
                yield chunk, [read_item(self.ctx, item) for item in chunk]
            return
        running: dict[Future[Read], int] = {}
        done: dict[int, Read] = {}
        submitted = emitted = 0
        while emitted < len(items):
            while len(running) < self.workers and submitted < len(items):
                running[self._submit(items[submitted])] = submitted
                submitted += 1
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                done[running.pop(future)] = self._result(future)
            while emitted < len(items):  # the next chunks whose images are all read
                end = min(emitted + size, len(items))
                if any(k not in done for k in range(emitted, end)):
                    break
                yield list(items[emitted:end]), [done.pop(k) for k in range(emitted, end)]
                emitted = end

    def _submit(self, item: ReadItem) -> Future[Read]:
        assert self.pool is not None
        try:
            return self.pool.submit(_read_in_worker, item)
        except RuntimeError as exc:  # "cannot schedule new futures after (interpreter) shutdown"
            raise ReaderStopped(str(exc)) from None

    @staticmethod
    def _result(future: Future[Read]) -> Read:
        try:
            return future.result()
        except BrokenProcessPool as exc:
            if _EXITING.is_set():  # stopped by the exit hook below, not dead
                raise ReaderStopped("the process is exiting") from None
            raise VlagentError(
                f"an image-text worker process died ({exc}); what was read is stored: run again to continue"
            ) from None


@contextmanager
def text_reader(ctx: ToolContext, root: str | Path, expected: int, *, background: bool = False) -> Iterator[TextReader]:
    """A reader of the images of the catalogue at ``root``: worker processes when there are at
    least :data:`MIN_POOL_IMAGES` (``expected``) to read and more than one worker, else this
    process (``ctx``, its OCR engine and cache)."""
    settings = ctx.settings
    workers = worker_count(settings)
    if workers <= 1 or expected < MIN_POOL_IMAGES:
        yield TextReader(ctx)
        return
    workers = min(workers, expected)
    threads = settings.ocr_threads or max(1, cores() // workers)
    worker_settings = settings.model_copy(update={"ocr_threads": threads}).model_dump(mode="json", exclude_none=True)
    cache = str(ctx.cache.path) if ctx.cache is not None else None
    nice = BACKGROUND_NICE if background else 0
    log.info("image-text index: %d worker processes, %d OCR thread(s) each", workers, threads)
    pool = ProcessPoolExecutor(
        workers, mp_context=loky_context("loky"),
        initializer=_init_worker, initargs=(worker_settings, str(root), cache, nice),
    )  # fmt: skip
    if background:
        _BACKGROUND.add(pool)
    try:
        yield TextReader(ctx, pool, workers)
    finally:
        _BACKGROUND.discard(pool)
        pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- process exit

#: the pools of background builds that are running
_BACKGROUND: weakref.WeakSet[ProcessPoolExecutor] = weakref.WeakSet()
_EXITING = threading.Event()


def _stop_background_pools() -> None:
    """At interpreter exit, before ``concurrent.futures`` waits for its pools' work: the workers
    of a background build are stopped instead of finishing their images (the build stops with
    its process; the next start continues it). Without the pools' process list (another Python)
    they finish their images, as any pool's do."""
    _EXITING.set()
    for pool in list(_BACKGROUND):
        processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown() forgets them
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()


# threading's exit hooks run in reverse order of registration, before the interpreter joins its
# threads: this one (registered after concurrent.futures.process, imported above) runs first
_register_exit_hook = getattr(threading, "_register_atexit", None)
if _register_exit_hook is not None:
    _register_exit_hook(_stop_background_pools)


__all__ = ["MIN_POOL_IMAGES", "ReaderStopped", "TextReader", "cores", "text_reader", "worker_count"]
