"""The model loader by role name: ``load("ocr")``, ``status("clip")``, every role's status.

The roles are :data:`vlagent.models.roles.ROLES` (``clip``, ``llm``, ``caption``, ``vqa``,
``ocr``, ``text_embedder``), each declared in its capability module; loading, caching, failures
and statuses are :mod:`vlagent.models.loading` (one load per settings view, a failed load
remembered as one line, statuses that load nothing and touch no network unless asked). This
module looks a role up by its name for the callers that name one (the CLI, the indexes, the
agent), and lists every role's status.
"""

from __future__ import annotations

from typing import Any

from vlagent.models import loading
from vlagent.models.loading import ModelKey, ModelStatus, RoleSpec
from vlagent.models.roles import ROLES, spec
from vlagent.settings import Settings, get_settings

__all__ = ["key", "load", "status", "statuses"]


def key(role: str | RoleSpec, settings: Settings) -> ModelKey:
    """The cache key of ``role`` under ``settings`` (:func:`vlagent.models.loading.key`)."""
    return loading.key(spec(role), settings)


def load(role: str | RoleSpec, settings: Settings | None = None) -> Any:
    """The loaded model of ``role`` under ``settings`` (default: the process settings)."""
    return loading.load(spec(role), settings)


def status(role: str | RoleSpec, settings: Settings | None = None, *, check_network: bool = False) -> ModelStatus:
    """Is ``role``'s model here, and if not why (:func:`vlagent.models.loading.status`)."""
    return loading.status(spec(role), settings, check_network=check_network)


def statuses(settings: Settings | None = None, *, check_network: bool = False) -> list[ModelStatus]:
    """:func:`status` of every role, in :data:`ROLES` order."""
    settings = settings if settings is not None else get_settings()
    return [status(role, settings, check_network=check_network) for role in ROLES]
