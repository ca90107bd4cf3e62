"""Index an image source (folder or zip) into the Chroma image index.

Per batch: read bytes and hash them (cheap), skip the ids the collection already holds (their
title is refreshed if the annotations changed, without decoding anything), decode the rest
while the previous batch is encoded, then ``upsert``. Bad files are counted with their reason;
a failure never leaves a partial record (each upsert is atomic in Chroma).

Two ways to decode, the same records either way:

* **threads** (CPU encoders, the default there): decode in ``decode_workers`` threads, the
  encoder's own preprocessing in the encoding thread;
* **processes** (a GPU encoder; ``decode_processes`` / ``Settings.clip_decode_processes``): a
  ``torch.utils.data.DataLoader`` whose worker processes decode the JPEGs *and* run the
  model's preprocessing (resize, crop, normalise) into pixel tensors, in pinned memory, a few
  batches ahead; the GPU only encodes. Decoding and resizing are what bound CLIP indexing on a
  GPU (clip-retrieval: ~1,100 ViT-B/16 images/s per A100 from files), and the GIL keeps the
  preprocessing in one core with threads.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from vlagent.data.annotations import Annotation, split_present
from vlagent.data.images import ImageSource, load_image
from vlagent.errors import ImageError
from vlagent.fileio import content_hash
from vlagent.index.store import ImageIndex
from vlagent.models.clip import ClipEncoder

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: decode worker processes on a GPU when nothing says how many (each holds a copy of the
#: preprocessing, ~100 MB; 8 keep a ViT-B/16 busy on one GPU)
MAX_AUTO_DECODE_PROCESSES = 8
#: batches each decode process prepares ahead of the encoder
PREFETCH_BATCHES = 4


class Failure(BaseModel):
    image: str
    reason: str


class IndexSummary(BaseModel):
    total: int = 0
    indexed: int = 0
    skipped: int = Field(0, description="already in the index with the same content")
    updated: int = Field(0, description="already indexed; only the title changed")
    duplicates: int = Field(0, description="same bytes as another file in this run")
    failed: list[Failure] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list, description="annotation rows naming no file")
    count: int = Field(0, description="records in the collection afterwards")
    collection: str = ""
    model_id: str = ""


@dataclass
class Item:
    """One image read and hashed: its id (content hash), metadata and bytes (empty when not kept)."""

    name: str
    id: str
    meta: dict[str, Any]
    data: bytes = field(repr=False, default=b"")


def _batches(names: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(names), size):
        yield names[start : start + size]


def title_lookup(annotations: list[Annotation] | None) -> Callable[[str], str]:
    """The annotated title of an image name (matched by path, else by file name)."""
    titles = {a.image: a.title for a in annotations or []}
    by_base = {Path(a.image).name: a.title for a in annotations or []}
    return lambda name: titles.get(name, by_base.get(Path(name).name, ""))


def new_summary(source: ImageSource, index: ImageIndex, annotations: list[Annotation] | None) -> IndexSummary:
    """The summary of a run over ``source``, with the annotation rows that name no file."""
    _, missing = split_present(annotations or [], [source])
    return IndexSummary(
        total=len(source.names()),
        collection=index.name,
        model_id=index.model_id,
        missing=sorted({a.image for a in missing}),
    )


def read_item(source: ImageSource, name: str, title: str) -> Item | Failure:
    """Read one image's bytes and hash them (nothing decoded)."""
    try:
        data = source.read_bytes(name)
    except (OSError, ImageError) as exc:
        return Failure(image=name, reason=str(exc))
    if not data:
        return Failure(image=name, reason=f"{name}: the file is empty")
    meta = {"file": name, "title": title, "source": str(source.root)}
    return Item(name=name, id=content_hash(data), meta=meta, data=data)


def split_known(index: ImageIndex, items: list[Item], summary: IndexSummary) -> list[Item]:
    """The items the index lacks. Unchanged ones are counted as skipped; a changed title or file
    name is refreshed in place (counted as updated), without decoding anything."""
    existing = index.existing([i.id for i in items])
    fresh, stale = [], []
    for item in items:
        old = existing.get(item.id)
        if old is None:
            fresh.append(item)
        elif old.get("title") != item.meta["title"] or old.get("file") != item.meta["file"]:
            stale.append(item)
        else:
            summary.skipped += 1
    if stale:
        index.update_metadata([i.id for i in stale], [i.meta for i in stale])
        summary.updated += len(stale)
    return fresh


def decode_processes_for(encoder: Any, requested: int | None = None) -> int:
    """How many processes decode for ``encoder``: ``requested``, else the encoder's setting
    (``clip_decode_processes``), else ``min(8, CPUs - 1)`` for an encoder on CUDA and 0 (threads)
    otherwise. Always 0 for an encoder without a pixel path (``pixel_transform`` / ``encode_pixels``)."""
    if not (hasattr(encoder, "pixel_transform") and hasattr(encoder, "encode_pixels")):
        return 0
    chosen = requested if requested is not None else getattr(encoder, "decode_processes", None)
    if chosen is not None:
        return max(0, int(chosen))
    if str(getattr(encoder, "device", "cpu")).split(":")[0] != "cuda":
        return 0
    return max(1, min(MAX_AUTO_DECODE_PROCESSES, (os.cpu_count() or 2) - 1))


class DecodeToPixels:
    """The DataLoader's dataset: an :class:`Item` (its bytes) → ``(item without its bytes,
    pixel tensor or Failure)``, run in a worker process. Picklable (spawned workers get a copy)."""

    def __init__(self, transform: Callable[[Any], "torch.Tensor"], max_pixels: int) -> None:
        self.transform = transform
        self.max_pixels = max_pixels

    def __getitem__(self, item: Item) -> tuple[Item, Any]:
        bare = Item(item.name, item.id, item.meta)
        try:
            return bare, self.transform(load_image(item.data, item.name, self.max_pixels))
        except ImageError as exc:
            return bare, Failure(image=item.name, reason=str(exc))
        except Exception as exc:  # noqa: BLE001 - the preprocessing refused it (e.g. a 1-pixel image)
            return bare, Failure(image=item.name, reason=f"{item.name}: cannot preprocess ({exc})")


@dataclass
class PixelBatch:
    """One decoded batch: the items that decoded, their stacked pixels, and the failures."""

    items: list[Item]
    pixels: Any  # torch.Tensor (N, C, H, W) or None when nothing decoded
    failed: list[Failure]

    def pin_memory(self) -> "PixelBatch":  # DataLoader(pin_memory=True) calls this
        if self.pixels is not None:
            self.pixels = self.pixels.pin_memory()
        return self

    @property
    def size(self) -> int:
        return len(self.items) + len(self.failed)


def collate_pixels(rows: list[tuple[Item, Any]]) -> PixelBatch:
    import torch

    items = [item for item, got in rows if not isinstance(got, Failure)]
    tensors = [got for _, got in rows if not isinstance(got, Failure)]
    failed = [got for _, got in rows if isinstance(got, Failure)]
    return PixelBatch(items, torch.stack(tensors) if tensors else None, failed)


def index_images(
    source: ImageSource,
    index: ImageIndex,
    encoder: ClipEncoder,
    annotations: list[Annotation] | None = None,
    *,
    batch_size: int = 32,
    max_pixels: int = 64_000_000,
    decode_workers: int = 2,
    decode_processes: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> IndexSummary:
    """Index every image of ``source``; returns counts and the reasons for failures.

    ``decode_processes``: worker processes that decode and preprocess (see the module's
    docstring; None: :func:`decode_processes_for`); 0 decodes in ``decode_workers`` threads."""
    title_of = title_lookup(annotations)
    names = source.names()
    summary = new_summary(source, index, annotations)
    seen: set[str] = set()

    def read(name: str) -> Item | Failure:
        return read_item(source, name, title_of(name))

    def new_items(chunk: list[str], pool: ThreadPoolExecutor) -> list[Item]:
        """Read and hash ``chunk`` (threads); the items the index lacks, each content once."""
        items: list[Item] = []
        for r in pool.map(read, chunk):
            if isinstance(r, Failure):
                summary.failed.append(r)
            elif r.id in seen:
                summary.duplicates += 1
            else:
                seen.add(r.id)
                items.append(r)
        fresh = split_known(index, items, summary)
        if progress and len(chunk) > len(fresh):
            progress(len(chunk) - len(fresh))
        return fresh

    processes = decode_processes_for(encoder, decode_processes)
    if processes > 0:
        with ThreadPoolExecutor(max_workers=max(1, decode_workers)) as pool:
            _encode_in_processes(
                (new_items(chunk, pool) for chunk in _batches(names, batch_size)),
                index, encoder, summary, batch_size, max_pixels, processes, progress,
            )  # fmt: skip
        summary.count = index.count()
        return summary

    def decode(item: Item) -> Any:
        try:
            return load_image(item.data, item.name, max_pixels)
        except ImageError as exc:
            return Failure(image=item.name, reason=str(exc))

    with ThreadPoolExecutor(max_workers=max(1, decode_workers)) as pool:
        pending: tuple[list[Item], list[Any]] | None = None

        def flush(batch: tuple[list[Item], list[Any]]) -> None:
            items, futures = batch
            good, images = [], []
            for item, fut in zip(items, futures):
                img = fut.result()
                if isinstance(img, Failure):
                    summary.failed.append(img)
                else:
                    good.append(item)
                    images.append(img)
            if good:
                vectors = encoder.encode_images(images)
                index.upsert([i.id for i in good], vectors, [i.meta for i in good])
                summary.indexed += len(good)
            if progress:
                progress(len(items))

        for chunk in _batches(names, batch_size):
            fresh = new_items(chunk, pool)
            # decode this batch in the background while the previous one is encoded
            batch = (fresh, [pool.submit(decode, i) for i in fresh])
            if pending is not None:
                flush(pending)
            pending = batch
        if pending is not None:
            flush(pending)
    summary.count = index.count()
    return summary


def _full_batches(chunks: Iterator[list[Item]], size: int) -> Iterator[list[Item]]:
    """The fresh items of successive chunks, regrouped into batches of ``size`` (the last may be short)."""
    waiting: list[Item] = []
    for fresh in chunks:
        waiting.extend(fresh)
        while len(waiting) >= size:
            yield waiting[:size]
            waiting = waiting[size:]
    if waiting:
        yield waiting


def _encode_in_processes(
    chunks: Iterator[list[Item]],
    index: ImageIndex,
    encoder: ClipEncoder,
    summary: IndexSummary,
    batch_size: int,
    max_pixels: int,
    processes: int,
    progress: Callable[[int], None] | None,
) -> None:
    """Decode + preprocess in ``processes`` DataLoader workers, encode and upsert here.

    The batch sampler is the stream of fresh items (read and hashed in this process, the known
    ones already skipped): each batch's bytes travel to a worker, its pixels come back pinned.
    The sampler runs ``PREFETCH_BATCHES`` batches per worker ahead of the encoder."""
    import torch
    from torch.utils.data import DataLoader

    batches = _full_batches(chunks, batch_size)
    first = next(batches, None)
    if first is None:  # nothing new (an unchanged catalogue): no process is started
        return
    loader = DataLoader(
        DecodeToPixels(encoder.pixel_transform(), max_pixels),  # type: ignore[arg-type]
        batch_sampler=itertools.chain([first], batches),  # type: ignore[arg-type]
        num_workers=processes,
        collate_fn=collate_pixels,
        pin_memory=str(encoder.device).startswith("cuda") and torch.cuda.is_available(),
        prefetch_factor=PREFETCH_BATCHES,
    )
    for batch in loader:
        summary.failed.extend(batch.failed)
        if batch.items:
            vectors = encoder.encode_pixels(batch.pixels)
            index.upsert([i.id for i in batch.items], vectors, [i.meta for i in batch.items])
            summary.indexed += len(batch.items)
        if progress:
            progress(batch.size)
