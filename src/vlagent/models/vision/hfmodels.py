"""Image helpers for the tools' in-process vision models.

Loading, caching and "is this model here" live in :mod:`vlagent.models.loader` (one loader
for every model role); this module keeps what the tools do to images before a model sees them.
"""

from __future__ import annotations

from PIL import Image


def shrink(image: Image.Image, max_side: int) -> Image.Image:
    """A copy no larger than ``max_side`` on its longer side (aspect kept); small ones unchanged."""
    w, h = image.size
    if max(w, h) <= max_side:
        return image
    scale = max_side / max(w, h)
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)
