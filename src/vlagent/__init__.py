"""vlagent: multimodal question answering over product images."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from vlagent.agent.build import VLAgent


def build_agent(*args: Any, **kwargs: Any) -> "VLAgent":
    """Build the question-answering agent (imported lazily: torch & co. load on first use)."""
    from vlagent.agent.build import build_agent as _build

    return _build(*args, **kwargs)


__all__ = ["__version__", "build_agent"]
