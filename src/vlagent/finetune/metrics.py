"""Text→image recall@k on the held-out split, measured through the encoder's search path."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydantic import BaseModel

from vlagent.data.images import ImageSource
from vlagent.errors import DataError, ImageError
from vlagent.finetune.data import Pair
from vlagent.models.clip import ClipEncoder

KS = (1, 5, 10)


class Recall(BaseModel):
    r1: float
    r5: float
    r10: float
    queries: int
    images: int

    def key(self) -> tuple[float, float, float]:
        """What "better" means: R@1 first, then R@5, then R@10."""
        return (self.r1, self.r5, self.r10)

    def line(self) -> str:
        return f"R@1 {self.r1:.3f}  R@5 {self.r5:.3f}  R@10 {self.r10:.3f}"


def recall_at_k(text_vecs: np.ndarray, image_vecs: np.ndarray, gold: list[set[int]]) -> dict[int, float]:
    """For query i, a hit at k when one of ``gold[i]`` (image indices) ranks in the top k."""
    sims = text_vecs @ image_vecs.T
    order = np.argsort(-sims, axis=1, kind="stable")
    ranks = np.array([int(np.isin(row, list(g)).argmax()) for row, g in zip(order, gold)])  # first gold
    return {k: float(np.mean(ranks < k)) for k in KS}


def chance_r1(pairs: list[Pair]) -> float:
    """The R@1 of a random ranking: mean share of held-out images that carry the query's title."""
    images = sorted({p.image for p in pairs})
    titles: dict[str, set[str]] = {}
    for p in pairs:
        titles.setdefault(p.title, set()).add(p.image)
    return float(np.mean([len(titles[p.title]) / len(images) for p in pairs]))


def encode_source_images(
    encoder: ClipEncoder, source: ImageSource, names: list[str], max_pixels: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, list[str]]:  # fmt: skip
    """Unit vectors of the readable ``names`` (one encoder batch at a time), and those names."""
    parts, kept = [], []
    for start in range(0, len(names), encoder.batch_size):
        images = []
        for name in names[start : start + encoder.batch_size]:
            try:
                images.append(source.open(name, max_pixels))
                kept.append(name)
            except ImageError:
                continue  # an unreadable image cannot be retrieved: left out of the evaluation
        if images:
            parts.append(encoder.encode_images(images))
        if progress:
            progress(len(names[start : start + encoder.batch_size]))
    vecs = np.concatenate(parts) if parts else np.zeros((0, encoder.dim), dtype=np.float32)
    return vecs, kept


def heldout_recall(encoder: ClipEncoder, source: ImageSource, pairs: list[Pair], max_pixels: int) -> Recall:
    """Recall of the held-out titles against the held-out images (a title's gold: every image
    carrying it). Unreadable images and the titles of only those are left out."""
    image_vecs, images = encode_source_images(encoder, source, list(dict.fromkeys(p.image for p in pairs)), max_pixels)
    index = {name: i for i, name in enumerate(images)}
    pairs = [p for p in pairs if p.image in index]
    if not pairs:
        raise DataError("no held-out image could be read: nothing to measure recall on")
    by_title: dict[str, set[int]] = {}
    for p in pairs:
        by_title.setdefault(p.title, set()).add(index[p.image])
    text_vecs = encoder.encode_texts([p.title for p in pairs])
    rec = recall_at_k(text_vecs, image_vecs, [by_title[p.title] for p in pairs])
    return Recall(r1=rec[1], r5=rec[5], r10=rec[10], queries=len(pairs), images=len(images))
