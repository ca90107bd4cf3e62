"""Reading the image text (OCR, colours) of many catalogue images, in parallel worker processes.

The image-text index (:mod:`vlagent.index.text_index`) hands the images it has to read to a
:class:`TextReader` in chunks and gets each image's :class:`~vlagent.index.image_text.ImageText`
(or the reason it could not be read) back in the same order, while it embeds and stores the
chunk before. The reader is

* a pool of ``index_workers`` processes (default: one per core), each with its own OCR engine
  whose onnxruntime uses ``cores / workers`` threads (``workers x threads = cores``: more would
  only take turns on the same cores), scikit-learn's and numpy's thread pools held to one
  thread, and a resolver that keeps one decoded image. Workers write the OCR and colours into
  the tools' cache as the agent's tools do (SQLite, WAL: several processes may write). Started
  by ``spawn`` (the caller's threads, Chroma's and the LLM's, are not forked); a background build
  runs them at a lower priority (``nice``) so that the answers the agent gives meanwhile go
  first. Ctrl-C reaches the parent only: it cancels what is queued, waits for the images in
  flight and stops them;
* this process, when one worker is asked for or there are fewer than :data:`MIN_POOL_IMAGES`
  images to read (starting a worker imports the OCR stack: about as long as reading a dozen images).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vlagent.cache import DiskCache
from vlagent.data.resolver import ImageResolver
from vlagent.errors import ImageError, VlagentError
from vlagent.index.image_text import ImageText, read_image_text
from vlagent.models.context import ToolContext
from vlagent.settings import Settings

log = logging.getLogger(__name__)

#: fewer images than this to read and no worker process is started
MIN_POOL_IMAGES = 16
#: the niceness of the workers of a background build (the answers come first)
BACKGROUND_NICE = 10

Result = tuple[ImageText | None, str]  # the image's text, or None and why it could not be read


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def worker_count(settings: Settings) -> int:
    return settings.index_workers or cores()


def read_one(ctx: ToolContext, name: str) -> Result:
    """One image's text, or why it could not be read (a bad image is one failure, not the run's end)."""
    try:
        return read_image_text(ctx, name), ""
    except (ImageError, VlagentError) as exc:
        return None, f"{name}: {exc}"


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


def _read_in_worker(name: str) -> Result:
    assert _CTX is not None, "the worker was not initialised"
    return read_one(_CTX, name)


# --------------------------------------------------------------------------- the reader


class TextReader:
    """Reads chunks of images' text, in order, one chunk ahead of the caller (with a pool)."""

    def __init__(self, ctx: ToolContext, pool: ProcessPoolExecutor | None = None, ahead: int = 1) -> None:
        self.ctx = ctx
        self.pool = pool
        self.ahead = ahead

    @property
    def workers(self) -> int:
        return getattr(self.pool, "_max_workers", 1) if self.pool is not None else 1

    def chunks(self, names: Sequence[str], size: int) -> Iterator[tuple[list[str], list[Result]]]:
        """``(chunk, results)`` for consecutive chunks of ``size`` names."""
        batches = [list(names[i : i + size]) for i in range(0, len(names), size)]
        if self.pool is None:
            for chunk in batches:
                yield chunk, [read_one(self.ctx, name) for name in chunk]
            return
        pending: deque[tuple[list[str], list[Future[Result]]]] = deque()
        for chunk in batches:
            pending.append((chunk, [self.pool.submit(_read_in_worker, name) for name in chunk]))
            if len(pending) > self.ahead:
                yield self._collect(*pending.popleft())
        while pending:
            yield self._collect(*pending.popleft())

    @staticmethod
    def _collect(chunk: list[str], futures: list[Future[Result]]) -> tuple[list[str], list[Result]]:
        try:
            return chunk, [f.result() for f in futures]
        except BrokenProcessPool as exc:
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
        workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker, initargs=(worker_settings, str(root), cache, nice),
    )  # fmt: skip
    try:
        yield TextReader(ctx, pool)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


__all__ = ["MIN_POOL_IMAGES", "TextReader", "cores", "read_one", "text_reader", "worker_count"]
