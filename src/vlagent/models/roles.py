"""The model roles: the one list of them, collected from the capability modules.

Each capability module declares its role as a :class:`~vlagent.models.loading.RoleSpec` (where
its model is, how it loads, its self-check): :mod:`~vlagent.models.clip`,
:mod:`~vlagent.models.llm`, :mod:`~vlagent.models.caption`, :mod:`~vlagent.models.vqa`,
:mod:`~vlagent.models.ocr`, :mod:`~vlagent.models.text_embedder`. This module only collects them,
in the order statuses, ``vlagent models list`` and ``vlagent doctor`` show them.
"""

from __future__ import annotations

from vlagent.errors import VlagentError
from vlagent.models import caption, clip, llm, ocr, text_embedder, vqa
from vlagent.models.loading import RoleSpec

SPECS: dict[str, RoleSpec] = {
    spec.role: spec for spec in (clip.ROLE, llm.ROLE, caption.ROLE, vqa.ROLE, ocr.ROLE, text_embedder.ROLE)
}
#: the role names, in order
ROLES: tuple[str, ...] = tuple(SPECS)


def spec(role: str | RoleSpec) -> RoleSpec:
    """The spec of the role named ``role`` (a spec is its own answer); one clear line if unknown."""
    if isinstance(role, RoleSpec):
        return role
    try:
        return SPECS[role]
    except KeyError:
        raise VlagentError(f"unknown model role {role!r}: choose from {', '.join(ROLES)}") from None
