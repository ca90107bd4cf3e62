"""Image-title pairs for fine-tuning, and the held-out split (by image, seeded)."""

from __future__ import annotations

import random
from pathlib import PurePosixPath

from pydantic import BaseModel

from vlagent.data.annotations import Annotation
from vlagent.data.images import ImageSource
from vlagent.errors import DataError


class Pair(BaseModel):
    image: str
    title: str


class PairSet(BaseModel):
    pairs: list[Pair]
    missing: list[str]  # annotation rows naming no image of the source
    untitled: int  # rows with an empty title (dropped)


class Split(BaseModel):
    train: list[Pair]
    val: list[Pair]

    @property
    def val_images(self) -> list[str]:
        return list(dict.fromkeys(p.image for p in self.val))


def match_pairs(rows: list[Annotation], source: ImageSource) -> PairSet:
    """Annotation rows whose image is in ``source`` (a bare file name also matches ``sub/name``)."""
    names = source.names()
    by_base: dict[str, str] = {}
    for name in names:
        by_base.setdefault(PurePosixPath(name).name, name)
    present = set(names)
    pairs: list[Pair] = []
    missing: list[str] = []
    untitled = 0
    for row in rows:
        if not row.title.strip():
            untitled += 1
            continue
        name = row.image if row.image in present else by_base.get(PurePosixPath(row.image).name)
        if name is None:
            missing.append(row.image)
            continue
        pairs.append(Pair(image=name, title=row.title.strip()))
    return PairSet(pairs=pairs, missing=missing, untitled=untitled)


def split_pairs(pairs: list[Pair], val_fraction: float = 0.1, seed: int = 0) -> Split:
    """Hold out ``val_fraction`` of the *images* (all their titles go with them), seeded."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"the held-out fraction must be between 0 and 1 (got {val_fraction})")
    images = sorted({p.image for p in pairs})
    if len(images) < 4:
        raise DataError(
            f"{len(images)} titled image(s) found: fine-tuning needs at least 4 "
            "(check that --annotations names files of --images)"
        )
    random.Random(seed).shuffle(images)
    n_val = min(max(2, round(len(images) * val_fraction)), len(images) - 2)
    val = set(images[:n_val])
    return Split(
        train=[p for p in pairs if p.image not in val],
        val=[p for p in pairs if p.image in val],
    )
