"""Index an image source (folder or zip) into the Chroma image index.

Per batch: read bytes and hash them (cheap), skip the ids the collection already holds (their
title is refreshed if the annotations changed, without decoding anything), decode the rest in
worker threads while the previous batch is encoded, then ``upsert``. Bad files are counted
with their reason; a failure never leaves a partial record (each upsert is atomic in Chroma).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from vlagent.data.annotations import Annotation, split_present
from vlagent.data.images import ImageSource, load_image
from vlagent.errors import ImageError
from vlagent.fileio import content_hash
from vlagent.index.store import ImageIndex
from vlagent.models.clip import ClipEncoder


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


def index_images(
    source: ImageSource,
    index: ImageIndex,
    encoder: ClipEncoder,
    annotations: list[Annotation] | None = None,
    *,
    batch_size: int = 32,
    max_pixels: int = 64_000_000,
    decode_workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> IndexSummary:
    """Index every image of ``source``; returns counts and the reasons for failures."""
    title_of = title_lookup(annotations)
    names = source.names()
    summary = new_summary(source, index, annotations)
    seen: set[str] = set()

    def read(name: str) -> Item | Failure:
        return read_item(source, name, title_of(name))

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
            read_items = list(pool.map(read, chunk))
            items: list[Item] = []
            for r in read_items:
                if isinstance(r, Failure):
                    summary.failed.append(r)
                elif r.id in seen:
                    summary.duplicates += 1
                else:
                    seen.add(r.id)
                    items.append(r)
            fresh = split_known(index, items, summary)
            skipped_now = len(chunk) - len(fresh)
            if progress and skipped_now:
                progress(skipped_now)
            # decode this batch in the background while the previous one is encoded
            batch = (fresh, [pool.submit(decode, i) for i in fresh])
            if pending is not None:
                flush(pending)
            pending = batch
        if pending is not None:
            flush(pending)
    summary.count = index.count()
    return summary
