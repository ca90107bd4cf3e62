"""Optional dependencies: which extra brings a module, and the one line that says to install it.

The core install is what the offline profile loads (no torch). The model roles that run torch —
CLIP (retrieval, zero-shot categories, fine-tuning), BLIP (captions, match), Qwen2-VL in-process,
an LLM on transformers, the GGUF conversion — need the ``vision`` extra. Every place that needs
it asks here first (:func:`missing_line` in a probe, :func:`require` before a load or a command),
so a light install says what to install in one line instead of an ``ImportError`` traceback.
Nothing here imports the modules it asks about.
"""

from __future__ import annotations

import importlib.util

from vlagent.errors import VlagentError

VISION = "vision"

#: the extra that brings each optional module
EXTRA_OF: dict[str, str] = {"torch": VISION, "torchvision": VISION, "transformers": VISION, "open_clip": VISION}

#: the PyPI name of a module whose distribution is named differently
PACKAGE_OF: dict[str, str] = {"open_clip": "open_clip_torch"}


class MissingExtraError(VlagentError):
    """An optional dependency is not installed: names it and the ``pip install`` that brings it."""


def importable(module: str) -> bool:
    """Whether ``module`` can be imported here, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or half-removed install, a blocked import
        return False


def install_hint(extra: str = VISION) -> str:
    """``pip install 'vlagent[vision]'`` (in a clone: ``pip install -e '.[vision]'``)."""
    return f"pip install 'vlagent[{extra}]' (in a clone: pip install -e '.[{extra}]')"


def missing_line(what: str, *modules: str) -> str | None:
    """``WHAT needs torch, transformers (the vision extra): pip install ...``, or None when every
    module is importable. ``modules`` are import names (``open_clip``, not ``open_clip_torch``)."""
    absent = [m for m in modules if not importable(m)]
    if not absent:
        return None
    packages = ", ".join(PACKAGE_OF.get(m, m) for m in absent)
    extras = sorted({EXTRA_OF.get(m, VISION) for m in absent})
    return f"{what} needs {packages} (not installed here): " + "; ".join(install_hint(e) for e in extras)


def require(what: str, *modules: str) -> None:
    """Raise :class:`MissingExtraError` (one line) when one of ``modules`` is not installed."""
    line = missing_line(what, *modules)
    if line is not None:
        raise MissingExtraError(line)


__all__ = ["EXTRA_OF", "PACKAGE_OF", "VISION", "MissingExtraError", "importable", "install_hint", "missing_line", "require"]
