"""What the LLM, the trace and the user see of an image: its base name, never a file-system path."""

from __future__ import annotations

import re
from typing import Any

from vlagent.data.images import base_name


def display_name(image: str) -> str:
    """What the LLM and the trace call an image: its base name (:func:`vlagent.data.images.base_name`,
    as given), never a file-system path."""
    return base_name(image, strip=False)


_PATH = re.compile(r"(?<![\w:/.\\])(?:[A-Za-z]:)?(?:[\\/][^\s\\/:;,()'\"]+)+[\\/]?")  # not URLs


def without_paths(text: str) -> str:
    """``/data/shop/x.jpg: image not found`` → ``x.jpg: image not found``: what the LLM may read."""
    return _PATH.sub(lambda m: display_name(m.group(0).rstrip("/\\")) or "…", text)


def evidence_id(name: str, args: dict[str, Any]) -> str:
    """``ocr[label.jpg]``, ``vqa[a.jpg,b.jpg]``, ``clip_search``: which tool result an answer used."""
    imgs = [args["image"]] if "image" in args else list(args.get("images") or [])
    return f"{name}[{','.join(display_name(str(i)) for i in imgs)}]" if imgs else name
