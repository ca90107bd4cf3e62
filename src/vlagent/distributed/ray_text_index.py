"""``vlagent index --engine ray``, the image-text side: OCR, colours and the e5 passages in Ray
tasks, the records upserted by the driver.

1. **hash** (Ray tasks, :func:`vlagent.distributed.ray_index.hash_batch`): read each image's bytes
   and hash them. The driver drops the duplicates and skips the images whose record is current
   (:func:`vlagent.index.text_index.split_fresh`, the local path's own step).
2. **read** (Ray tasks, ``ray_decode_cpus`` each): OCR, colours and the passage's e5 vector of
   the images left (:func:`vlagent.index.image_text.read_item`), with one OCR engine per worker
   process whose onnxruntime uses as many threads as the task has CPUs. Each worker writes the
   OCR and colours into the tools' cache under the home it was given (on another node: that
   node's disk).
3. **upsert** (the driver): batch by batch as the reads arrive
   (:func:`vlagent.index.text_index.store_reads`), into the configured Chroma (the embedded
   index takes writes from one process only: the driver's).

Record ids are content hashes and each upserted batch is durable, so a killed run continues
where it stopped. The workers read the catalogue by path: on a cluster it must be on storage
every node sees at the same path (NFS, a mounted bucket). No captions here (``vlagent index``
on the local engine adds them); a caption a record had is kept. The summary is the local path's
:class:`~vlagent.index.text_index.TextIndexSummary`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vlagent.cache import DiskCache
from vlagent.data.images import open_source
from vlagent.data.resolver import ImageResolver
from vlagent.distributed.common import draining, ray_session
from vlagent.distributed.ray_index import HASH_BATCH, UPSERT_BATCH, hash_batch
from vlagent.index.image_text import ImageText, Read, ReadItem, read_item
from vlagent.index.text_index import ReadPlan, TextIndex, TextIndexSummary, read_items, split_fresh, store_reads
from vlagent.models.context import ToolContext
from vlagent.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from vlagent.data.annotations import Annotation

#: images per read task
READ_BATCH = 16

Progress = Callable[[str, int, int], None]  # (stage, advance, total)

# --------------------------------------------------------------------------- worker side

_CONTEXTS: dict[str, ToolContext] = {}


def _context(root: str, settings: dict[str, Any]) -> ToolContext:
    """One context per worker process and catalogue: its OCR engine, cache and resolver."""
    if root not in _CONTEXTS:
        from threadpoolctl import threadpool_limits

        os.environ["OMP_NUM_THREADS"] = "1"  # OpenMP runtimes loaded later (the colours'): one thread
        threadpool_limits(1)  # and those loaded already (numpy's BLAS): the task's CPUs go to the OCR
        resolved = Settings(**settings)
        resolver = ImageResolver.from_paths([root], resolved.max_image_pixels, memo=1)
        cache = DiskCache(resolved.cache_dir / "tools.sqlite")
        _CONTEXTS[root] = ToolContext(settings=resolved, resolver=resolver, cache=cache)
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    return _CONTEXTS[root]


def read_text_batch(batch: dict[str, np.ndarray], root: str, settings: dict[str, Any]) -> dict[str, Any]:
    """OCR, colours and the passage's e5 vector of each image: its :class:`ImageText` as JSON
    and the vector, or why it could not be read."""
    ctx = _context(root, settings)
    facts, vectors, errors = [], [], []
    for name, title, caption in zip(batch["name"], batch["title"], batch["caption"]):
        read = read_item(ctx, ReadItem(str(name), str(title), str(caption)), embed=True)
        facts.append(read.fact.model_dump_json() if read.fact is not None else "")
        vectors.append(read.vector or [])
        errors.append(read.error)
    return {"name": [str(n) for n in batch["name"]], "fact": facts, "vector": vectors, "error": errors}


# --------------------------------------------------------------------------- driver side


def _worker_settings(settings: Settings) -> dict[str, Any]:
    """The driver's settings, resolved, for the workers: OCR threads = the task's CPUs."""
    threads = max(1, int(settings.ray_decode_cpus))
    return settings.model_copy(update={"ocr_threads": threads}).model_dump(mode="json", exclude_none=True)


def index_texts_with_ray(
    images: str | Path,
    settings: Settings,
    annotations: list["Annotation"] | None = None,
    *,
    address: str | None = None,
    progress: Progress | None = None,
) -> TextIndexSummary:
    """Build or refresh the image-text index of the folder or zip ``images`` on Ray."""
    root = str(Path(images).expanduser().resolve())  # what the workers read
    shown = str(Path(images))  # what the records name as their source, as the local path does
    with open_source(root) as source:
        names = source.names()
    titles = {Path(a.image).name: a.title for a in annotations or []}
    worker_settings = _worker_settings(settings)
    with ray_session(settings, address) as ray:
        import ray.data

        index = TextIndex.open(settings)
        summary = TextIndexSummary(total=len(names), collection=index.name)
        plan = ReadPlan()

        # 1. hash everything; the driver skips what the index holds
        seen: set[str] = set()
        listing = ray.data.from_items([{"name": n, "title": ""} for n in names])
        hashed = listing.map_batches(
            hash_batch, fn_kwargs={"root": root}, batch_size=HASH_BATCH, num_cpus=settings.ray_decode_cpus,
            batch_format="numpy",
        )  # fmt: skip
        # in name order: the first of duplicate files wins, as locally
        with draining(hashed, UPSERT_BATCH, "hashing the images on Ray failed", in_order=True) as batches:
            for batch in batches:
                ids: dict[str, str] = {}
                for name, id_, error in zip(batch["name"], batch["id"], batch["error"]):
                    if error:
                        summary.failed.append(f"{name}: {error}")
                    elif id_ in seen:
                        summary.skipped += 1
                    else:
                        seen.add(str(id_))
                        ids[str(name)] = str(id_)
                split_fresh(index, ids, titles, False, summary, plan)
                if progress:
                    progress("hash", len(batch["name"]), len(names))

        # 2-3. read and embed in tasks; upsert here, as the reads arrive
        if plan.todo:
            todo = ray.data.from_items([item._asdict() for item in read_items(plan, titles)])
            read = todo.map_batches(
                read_text_batch, fn_kwargs={"root": root, "settings": worker_settings}, batch_size=READ_BATCH,
                num_cpus=settings.ray_decode_cpus, batch_format="numpy",
            )  # fmt: skip
            with draining(read, UPSERT_BATCH, "reading the image text on Ray failed") as batches:
                for batch in batches:
                    reads = [
                        Read(ImageText.model_validate_json(str(f)), [float(x) for x in v], "") if f else Read(None, None, str(e))
                        for f, v, e in zip(batch["fact"], batch["vector"], batch["error"])
                    ]
                    store_reads(index, reads, plan.todo, shown, summary)
                    if progress:
                        progress("read", len(reads), len(plan.todo))
        summary.count = index.count()
    return summary


__all__ = ["index_texts_with_ray", "read_text_batch"]
