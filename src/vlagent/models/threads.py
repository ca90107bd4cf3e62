"""Holding a native library's OpenMP team to one thread for a call (the calling thread's only).

OpenMP runtimes start a team of one thread per core and spin while they wait. Where other work
already keeps the cores busy (the image-text index's OCR workers, the LLM), a small job run on
such a team waits on threads that are not running: scikit-learn's k-means of the colours took
3-10x longer on this 2-core machine under load, e5's passage embedding about 1.8x
(benchmarks/index_bench.py). :func:`one_openmp_thread` runs them on the calling thread alone.
"""

from __future__ import annotations

import functools
from contextlib import AbstractContextManager
from typing import Any


@functools.lru_cache(maxsize=None)
def _controller(library: str) -> Any:  # noqa: ARG001 - the cache key
    from threadpoolctl import ThreadpoolController  # scikit-learn's dependency

    return ThreadpoolController()


def one_openmp_thread(library: str) -> AbstractContextManager[Any]:
    """``with one_openmp_thread("sklearn"): ...``: the OpenMP runtimes loaded when this was
    first called for ``library`` (call it once the library is loaded: wheels bundle their own
    copies of libgomp, each a runtime of its own) run their parallel regions on one thread."""
    return _controller(library).limit(limits=1, user_api="openmp")  # type: ignore[no-any-return]


__all__ = ["one_openmp_thread"]
