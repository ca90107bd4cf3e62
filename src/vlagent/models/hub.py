"""The Hugging Face hub as the loader sees it: offline or not, reachable or not, cached or not.

``hub_offline(settings)`` is the one definition of "no model hub may be reached": the
``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` environment (as ``huggingface_hub`` reads it), or
the ``offline`` profile. ``cached(repo, *files)`` looks in the local HF cache without any
network. ``hub_unreachable()`` is the only function here that touches the network: one short
HEAD request to the hub endpoint, done once per process and remembered, so a machine that
cannot reach the hub learns it in seconds instead of through transformers' retries.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from vlagent.errors import one_line

if TYPE_CHECKING:  # pragma: no cover
    from vlagent.settings import Settings

#: seconds the one reachability check may take (connect + answer)
HUB_CHECK_TIMEOUT = 3.0

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_lock = threading.Lock()
_verdicts: dict[str, str | None] = {}  # endpoint → None (reachable) or the one-line reason


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def hub_offline(settings: "Settings | None" = None) -> bool:
    """True when no model hub may be reached: HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE or the offline profile."""
    if settings is not None and settings.profile == "offline":
        return True
    if _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE"):
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return False


def endpoint() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.ENDPOINT).rstrip("/")
    except ImportError:  # pragma: no cover
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def looks_like_path(name: str) -> bool:
    """A local path rather than a hub id (``org/name``) or a bare model name."""
    return (
        name.startswith(("/", ".", "~"))
        or "\\" in name
        or name.count("/") > 1
        or Path(name).expanduser().exists()
    )


def is_repo_id(name: str) -> bool:
    """``org/name`` (the shape of a hub model id), not a path."""
    return name.count("/") == 1 and not looks_like_path(name) and not name.startswith("/")


def cached(repo: str, *files: str) -> str | None:
    """Path of the first of ``files`` found in the local HF cache for ``repo`` (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    for filename in files or ("config.json",):
        try:
            hit = try_to_load_from_cache(repo, filename)
        except Exception:  # noqa: BLE001 - an invalid repo id or a broken cache: not cached
            hit = None
        if isinstance(hit, str):
            return hit
    return None


def known_hub_problem() -> str | None:
    """The remembered reason the hub is unreachable, if a check already ran (no network)."""
    with _lock:
        return _verdicts.get(endpoint())


def hub_unreachable(timeout: float = HUB_CHECK_TIMEOUT) -> str | None:
    """None if the hub answers (any HTTP status); else one line saying why. Once per process."""
    url = endpoint()
    with _lock:
        if url in _verdicts:
            return _verdicts[url]
    try:
        from huggingface_hub import get_session

        # only arguments both sessions take: huggingface_hub >= 1.0 hands out an httpx client,
        # older releases (the ones transformers 4.x needs) a requests.Session (no follow_redirects)
        get_session().head(url, timeout=timeout)
        verdict = None
    except Exception as exc:  # noqa: BLE001 - DNS, refused, timeout, proxy: all mean "unreachable"
        verdict = f"the model hub {url} is unreachable ({one_line(exc, 160)})"
    with _lock:
        _verdicts[url] = verdict
    return verdict


def not_cached_reason(role: str, repo: str, problem: str, setting: str) -> str:
    """The one line for "a hub id, not in the local cache, and the hub cannot be reached"."""
    return (
        f"{role}: model {repo} is not in the HF cache and {problem}; "
        f"set {setting} to a local copy (hf download {repo} --local-dir DIR)"
    )


def forget() -> None:
    """Drop the remembered reachability verdicts (tests)."""
    with _lock:
        _verdicts.clear()
