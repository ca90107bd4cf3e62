"""One model loader: every model in the process is loaded here, once, and asked about here.

Roles (declared in :mod:`vlagent.models.roles`): ``clip``, ``llm``, ``caption``, ``vqa``,
``ocr``, ``text_embedder``.

* ``load(role, settings)`` returns the loaded object, cached by a frozen view of the settings
  the role depends on (:func:`key`): the same view gives the same object, one load per key per
  process, thread-safe. A failed load is remembered and raised again as the same one line
  (``ModelLoadError`` for clip/llm, ``ToolUnavailable`` for the tools' models), never retried.
* ``status(role, settings)`` / ``statuses(settings)`` answer "is it here, and if not why" as
  a :class:`ModelStatus`, without loading weights and without the network (servers and the
  hub are asked only with ``check_network=True``, as ``vlagent models list`` does).
* ``hub_offline(settings)`` is the one definition of "no model hub may be reached".
* A hub id that is not in the local cache, on a machine that cannot reach the hub, fails in
  about a second (one HEAD request per process, :func:`vlagent.models.hub.hub_unreachable`)
  instead of through transformers' ~28 s of retries; a cached one then loads with
  ``local_files_only``.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any, Literal, NamedTuple

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, ConfigDict

from vlagent.errors import BackendUnavailableError, VlagentError, one_line
from vlagent.models.clip import ClipEncoder
from vlagent.models.hub import cached, forget, hub_offline, hub_unreachable, not_cached_reason
from vlagent.models.llama_engine import LlamaEngine
from vlagent.models.llm import ChatTransformers, engine_chat_model, openai_chat_model, resolve_backend
from vlagent.models.roles import SPECS, Found, RoleSpec
from vlagent.settings import Settings, get_settings
from vlagent.models.health import check_server

__all__ = [
    "ROLES",
    "ModelKey",
    "ModelStatus",
    "Role",
    "build_chat_model",
    "clear",
    "clip_probe",
    "encoder_from_settings",
    "hub_offline",
    "key",
    "load",
    "load_llama",
    "load_transformers",
    "loaded_keys",
    "status",
    "statuses",
]

log = logging.getLogger(__name__)

Role = Literal["clip", "llm", "caption", "vqa", "ocr", "text_embedder"]
ROLES: tuple[Role, ...] = ("clip", "llm", "caption", "vqa", "ocr", "text_embedder")


class ModelStatus(BaseModel):
    """Whether a role's model can be used here; ``reason`` (one line) when it cannot."""

    model_config = ConfigDict(frozen=True)

    role: str
    backend: str
    model: str
    available: bool
    reason: str | None = None
    where: str = ""


class ModelKey(NamedTuple):
    """The frozen view of the settings a loaded model depends on."""

    role: str
    backend: str
    settings: tuple[tuple[str, Any], ...]


class _Slot:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loaded = False
        self.value: Any = None
        self.error: tuple[type[VlagentError], str] | None = None


_slots: dict[ModelKey, _Slot] = {}
_slots_lock = threading.Lock()


def _spec(role: str) -> RoleSpec:
    try:
        return SPECS[role]
    except KeyError:
        raise VlagentError(f"unknown model role {role!r}: choose from {', '.join(ROLES)}") from None


def _field(settings: Settings, name: str) -> Any:
    value = getattr(settings, name)
    return value() if callable(value) else value


def key(role: str, settings: Settings) -> ModelKey:
    """The cache key of ``role`` under ``settings``: its backend and the fields it depends on."""
    spec = _spec(role)
    backend = spec.backend(settings)
    fields = spec.fields.get(backend, ())
    return ModelKey(role, backend, tuple((name, _field(settings, name)) for name in fields))


def _slot(k: ModelKey, create: bool = True) -> _Slot | None:
    with _slots_lock:
        slot = _slots.get(k)
        if slot is None and create:
            slot = _slots[k] = _Slot()
        return slot


def _local_only(spec: RoleSpec, settings: Settings) -> bool:
    """Whether to load with ``local_files_only``; fails fast when the hub cannot be reached."""
    repo = spec.hub_repo(settings)
    if hub_offline(settings):
        return True
    if repo is None:
        return False
    problem = hub_unreachable()
    if problem is None:
        return False
    if cached(repo, *spec.cache_files):
        return True
    raise spec.error(not_cached_reason(spec.role, repo, problem, spec.setting))


def _as_error(spec: RoleSpec, settings: Settings, exc: Exception) -> VlagentError:
    if isinstance(exc, spec.error):
        return exc
    if isinstance(exc, VlagentError):  # already a user-facing sentence: keep it whole
        return spec.error(one_line(exc, 1000))
    return spec.error(f"{spec.role}: model {spec.model(settings)}: could not load ({one_line(exc)})")


def load(role: Role | str, settings: Settings | None = None) -> Any:
    """The loaded model of ``role`` under ``settings`` (default: the process settings)."""
    spec = _spec(role)
    settings = settings if settings is not None else get_settings()
    k = key(role, settings)
    slot = _slot(k)
    assert slot is not None
    if slot.loaded:
        return slot.value
    with slot.lock:
        if slot.loaded:
            return slot.value
        if slot.error is not None:
            kind, message = slot.error
            raise kind(message)
        found = spec.probe(settings)
        if found.reason:  # cheap and may change (a file fetched meanwhile): not remembered
            raise spec.error(found.reason)
        start = time.perf_counter()
        try:
            value = spec.build(settings, _local_only(spec, settings))
        except Exception as exc:  # noqa: BLE001 - any loader failure becomes one remembered line
            err = _as_error(spec, settings, exc)
            slot.error = (type(err), str(err))
            log.info("%s", err)  # the caller reports it (once, as the raised one line)
            if err is exc:
                raise
            raise err from exc
        slot.value, slot.loaded = value, True
    log.info("%s: loaded %s in %.1f s", spec.role, spec.model(settings), time.perf_counter() - start)
    return value


def _server_status(url: str) -> Found:
    try:
        served = check_server(url, timeout=2.0)
    except BackendUnavailableError as exc:
        return Found(reason=one_line(exc))
    return Found(f"{url} serves {', '.join(served) or 'nothing'}")


def _network_status(spec: RoleSpec, settings: Settings) -> Found | None:
    """What the network says (``check_network``): the role's server, or the hub for an uncached id."""
    url = spec.server(settings)
    if url:
        return _server_status(url)
    repo = spec.hub_repo(settings)
    if repo and not hub_offline(settings) and not cached(repo, *spec.cache_files):
        problem = hub_unreachable()
        if problem:
            return Found(reason=not_cached_reason(spec.role, repo, problem, spec.setting))
    return None


def status(role: Role | str, settings: Settings | None = None, *, check_network: bool = False) -> ModelStatus:
    """Is ``role``'s model here, and if not why. Loads nothing, and touches no network unless
    ``check_network`` (then a configured server is asked ``/v1/models``, and an uncached hub id
    costs one HEAD request to the hub per process)."""
    spec = _spec(role)
    settings = settings if settings is not None else get_settings()
    backend = spec.backend(settings)
    slot = _slot(key(role, settings), create=False)
    found = spec.probe(settings)
    if slot is not None and slot.error is not None:
        found = Found(found.where, slot.error[1])
    elif slot is not None and slot.loaded:
        found = Found(f"{found.where} (loaded)" if found.where else "loaded")
    elif not found.reason and check_network:
        found = _network_status(spec, settings) or found
    return ModelStatus(
        role=spec.role,
        backend=backend,
        model=spec.model(settings) if backend != "none" else "-",
        available=found.reason is None,
        reason=found.reason,
        where=found.where,
    )


def statuses(settings: Settings | None = None, *, check_network: bool = False) -> list[ModelStatus]:
    """:func:`status` of every role, in :data:`ROLES` order."""
    settings = settings if settings is not None else get_settings()
    return [status(role, settings, check_network=check_network) for role in ROLES]


def loaded_keys() -> set[ModelKey]:
    """Keys of the models loaded so far in this process (tests: probes must add none)."""
    with _slots_lock:
        return {k for k, slot in _slots.items() if slot.loaded}


def clear(role: str | None = None) -> None:
    """Forget loaded models and remembered failures (of one role, or all of them and the hub
    verdict); the objects are freed when nothing else holds them (tests, benchmarks)."""
    with _slots_lock:
        for k in [k for k in _slots if role is None or k.role == role]:
            del _slots[k]
    if role is None:
        forget()


# ------------------------------------------------------------------ the loaded engines by name
def encoder_from_settings(settings: Settings) -> ClipEncoder:
    """The CLIP encoder of ``settings``, loaded once per process (the ``clip`` role)."""
    return load("clip", settings)  # type: ignore[no-any-return]


def clip_probe(settings: Settings) -> str | None:
    """Why the configured CLIP model cannot be used here (None: it can). Loads nothing."""
    return status("clip", settings).reason


def load_llama(settings: Settings) -> LlamaEngine:
    """The GGUF's engine, started once per process for the settings it depends on."""
    return load("llm", settings.model_copy(update={"llm_backend": "llama-cpp"}))  # type: ignore[no-any-return]


def load_transformers(model_id: str, device: str, settings: Settings | None = None) -> tuple[Any, Any, str]:
    """(model, tokenizer, device), loaded once per process (the ``llm`` role on transformers);
    the dtype and attention choices come from ``settings`` (default: automatic)."""
    update = {"llm_backend": "transformers", "llm_model": model_id, "device": device}
    view = settings.model_copy(update=update) if settings is not None else Settings.model_construct(**update)
    return load("llm", view)  # type: ignore[no-any-return]


def build_chat_model(settings: Settings) -> BaseChatModel:
    """The chat model the agent talks to, from settings (see :mod:`vlagent.models.llm`)."""
    backend = resolve_backend(settings)
    if backend == "openai":
        return openai_chat_model(settings)
    if backend == "llama-cpp":  # the probe names a missing GGUF and the fetch command
        return engine_chat_model(load_llama(settings), settings)
    return ChatTransformers(
        model_id=settings.llm_model,
        device=settings.device,
        temperature=settings.llm_temperature,
        max_tokens=settings.llm_max_tokens,
        load=functools.partial(load_transformers, settings=settings),
    )
