"""How a model role loads, once: the :class:`RoleSpec` each capability module declares, the
probe helpers they share, and the cache of loaded models.

A capability module (:mod:`~vlagent.models.clip`, :mod:`~vlagent.models.llm`,
:mod:`~vlagent.models.caption`, :mod:`~vlagent.models.vqa`, :mod:`~vlagent.models.ocr`,
:mod:`~vlagent.models.text_embedder`) declares its role as one ``RoleSpec``:

* ``backend(settings)``: which engine serves the role (``"none"`` when it is switched off);
* ``fields[backend]``: the settings fields the loaded object depends on (the cache key);
* ``model(settings)``: how the role names its model (for statuses and messages);
* ``probe(settings)``: where the model is, or why it cannot be used here — without reading
  weights and without the network (the local HF cache and the file system only);
* ``build(settings, local_only)``: the actual load (heavy imports happen there, lazily);
* ``hub_repo(settings)``: the hub id the load would download from, if any;
* ``selfcheck(settings)``: one tiny real inference for ``vlagent doctor`` (:mod:`vlagent.models.selfcheck`).

This module owns caching, failures and statuses, keyed by a spec:

* ``load(spec, settings)`` returns the loaded object, cached by a frozen view of the settings
  the role depends on (:func:`key`): the same view gives the same object, one load per key per
  process, thread-safe. A failed load is remembered and raised again as the same one line
  (``ModelLoadError`` for clip/llm, ``ToolUnavailable`` for the tools' models), never retried.
* ``status(spec, settings)`` answers "is it here, and if not why" as a :class:`ModelStatus`,
  without loading weights and without the network (servers and the hub are asked only with
  ``check_network=True``, as ``vlagent models list`` does).
* A hub id that is not in the local cache, on a machine that cannot reach the hub, fails in
  about a second (one HEAD request per process, :func:`vlagent.models.hub.hub_unreachable`)
  instead of through transformers' ~28 s of retries; a cached one then loads with
  ``local_files_only``.

The role list and the lookups by name are :mod:`vlagent.models.roles` and
:mod:`vlagent.models.loader`, above the capability modules.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple

from pydantic import BaseModel, ConfigDict

from vlagent.errors import BackendUnavailableError, VlagentError, one_line
from vlagent.models.extras import importable, missing_line
from vlagent.models.health import check_server
from vlagent.models.hub import (
    cached,
    endpoint,
    forget,
    hub_offline,
    hub_unreachable,
    is_repo_id,
    known_hub_problem,
    looks_like_path,
    not_cached_reason,
)
from vlagent.settings import Settings, get_settings

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ what a capability declares
@dataclass(frozen=True)
class Found:
    """The answer of a probe: where the model is (``reason`` None) or why it is not usable."""

    where: str = ""
    reason: str | None = None


def _none(_settings: Settings) -> str | None:
    return None


@dataclass(frozen=True)
class RoleSpec:
    role: str
    error: type[VlagentError]  # what a failed load raises (tools: ToolUnavailable)
    setting: str  # the setting that names the model (for hints)
    backend: Callable[[Settings], str]
    fields: Mapping[str, tuple[str, ...]]
    model: Callable[[Settings], str]
    probe: Callable[[Settings], Found]
    build: Callable[[Settings, bool], Any]
    hub_repo: Callable[[Settings], str | None] = _none
    server: Callable[[Settings], str | None] = _none  # the URL of an OpenAI-compatible backend
    cache_files: tuple[str, ...] = field(default=("config.json",))
    #: one tiny real inference (``vlagent doctor``, in a child process): a line saying what it did
    selfcheck: Callable[[Settings], str] | None = None


def missing(role: str, *modules: tuple[str, str]) -> Found | None:
    """Why the role cannot run when one of ``(module, package)`` is not installed (None: all are)."""
    for module, package in modules:
        if not importable(module):
            return Found(reason=f"{role}: {package} is not installed (pip install {package})")
    return None


def openai_server(role: str, url: str | None, needs_url: str) -> Found:
    """A role served over an OpenAI-compatible URL: found when the URL is set (else ``needs_url``
    says which setting) and langchain-openai, its client, is installed."""
    if not url:
        return Found(reason=f"{role}: {needs_url}")
    return missing(role, ("langchain_openai", "langchain-openai")) or Found(f"server {url}")


def needs_extra(what: str, *modules: str) -> Found | None:
    """The one line naming the extra to install when a torch role's modules are missing."""
    line = missing_line(what, *modules)
    return Found(reason=line) if line else None


def locate_hf(role: str, name: str, env: str, settings: Settings, files: tuple[str, ...] = ("config.json",)) -> Found:
    """Where a transformers model named by a hub id or a local folder is; no network, no weights."""
    missing = needs_extra(f"{role}: {name}", "torch", "transformers")
    if missing:
        return missing
    path = Path(name).expanduser()
    if path.is_dir():
        if not any((path / f).is_file() for f in files):
            return Found(reason=f"{role}: {name} has no {files[0]} (not a transformers model folder); set {env}=DIR")
        return Found(f"local folder {path}")
    if path.exists() or looks_like_path(name):
        return Found(reason=f"{role}: model folder {name} does not exist; set {env}=DIR")
    hit = cached(name, *files)
    if hit:
        return Found(f"HF cache {Path(hit).parent}")
    if hub_offline(settings):
        return Found(
            reason=f"{role}: model {name} is not a local dir and not in the HF cache (offline); "
            f"set {env}=DIR or download it first (hf download {name})"
        )
    problem = known_hub_problem()
    if problem:
        return Found(reason=not_cached_reason(role, name, problem, env))
    return Found(f"hub {endpoint()} (downloads on first use)")


def hub_repo_of(name: str) -> str | None:
    """``name`` when a load would download it from the hub (a hub id that is no local path)."""
    return name if is_repo_id(name) and not Path(name).expanduser().exists() else None




def sample_image() -> Any:
    """The image the self-checks run on: a word on white (OCR reads it, the others see it)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (160, 64), "white")
    ImageDraw.Draw(image).text((20, 22), "SALE 50", fill="black")
    return image


# ------------------------------------------------------------------ the cache of loaded models
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


def _field(settings: Settings, name: str) -> Any:
    value = getattr(settings, name)
    return value() if callable(value) else value


def key(spec: RoleSpec, settings: Settings) -> ModelKey:
    """The cache key of ``spec``'s role under ``settings``: its backend and the fields it depends on."""
    backend = spec.backend(settings)
    fields = spec.fields.get(backend, ())
    return ModelKey(spec.role, backend, tuple((name, _field(settings, name)) for name in fields))


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


def load(spec: RoleSpec, settings: Settings | None = None) -> Any:
    """The loaded model of ``spec``'s role under ``settings`` (default: the process settings)."""
    settings = settings if settings is not None else get_settings()
    k = key(spec, settings)
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


def status(spec: RoleSpec, settings: Settings | None = None, *, check_network: bool = False) -> ModelStatus:
    """Is ``spec``'s model here, and if not why. Loads nothing, and touches no network unless
    ``check_network`` (then a configured server is asked ``/v1/models``, and an uncached hub id
    costs one HEAD request to the hub per process)."""
    settings = settings if settings is not None else get_settings()
    backend = spec.backend(settings)
    slot = _slot(key(spec, settings), create=False)
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
