"""Is an OpenAI-compatible server (vLLM, llama.cpp's server) up, and what does it serve?"""

from __future__ import annotations

import httpx

from vlagent.errors import BackendUnavailableError


def models_url(base_url: str) -> str:
    """``http://h:p/v1`` or ``http://h:p`` → ``http://h:p/v1/models``."""
    base = base_url.rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    return base + "/models"


def check_server(url: str, timeout: float = 5.0) -> list[str]:
    """GET ``/v1/models`` and return the served model ids.

    Raises BackendUnavailableError naming the URL when nothing answers, the request times out
    or the answer is not an OpenAI model list.
    """
    target = models_url(url)
    try:
        response = httpx.get(target, timeout=timeout)
    except httpx.TimeoutException as exc:
        raise BackendUnavailableError(f"server at {url} did not answer within {timeout:g} s") from exc
    except httpx.HTTPError as exc:
        raise BackendUnavailableError(f"server at {url} is unreachable ({type(exc).__name__}: {exc})") from exc
    if response.status_code != 200:
        raise BackendUnavailableError(f"server at {url} answered {response.status_code} to GET {target}")
    try:
        data = response.json()["data"]
        return [str(item["id"]) for item in data]
    except (ValueError, KeyError, TypeError) as exc:
        raise BackendUnavailableError(f"server at {url} did not answer GET {target} with a model list") from exc


def is_up(url: str, timeout: float = 2.0) -> bool:
    try:
        check_server(url, timeout)
    except BackendUnavailableError:
        return False
    return True
