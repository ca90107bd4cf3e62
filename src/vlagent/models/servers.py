"""OpenAI client errors → one :class:`BackendUnavailableError` line naming the server.

Used by the LLM (``vlagent.models.llm``) and the VLM behind the ``vqa`` tool: a server that is down,
too slow, serves another model or refuses the request ends as one line that says which URL,
what happened, and how to fix it. :func:`was_unavailable` reads such a line back (in a trace, a
journal) and tells a server that was down from a request it refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vlagent.errors import BackendUnavailableError, one_line


@dataclass(frozen=True)
class Server:
    """How to name an OpenAI-compatible server in a message."""

    kind: str  # "LLM" | "VLM"
    url: str
    model: str
    timeout: float | None
    retries: int
    hint: str  # "start it with `vlagent serve llm` or fix VLAGENT_LLM_BASE_URL"
    takes_images: bool = False  # 400/422/5xx then ask whether it is a vision-language model


def server_errors() -> tuple[type[BaseException], ...]:
    """The OpenAI client errors that mean "this server cannot be used" (not bad output)."""
    import openai

    return (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError, openai.NotFoundError)


def _status_detail(exc: BaseException) -> str:
    """The server's own words, without the client's "Error code: 500 - " prefix."""
    message = getattr(exc, "message", None) or str(exc)
    text = " ".join(str(message).split())
    text = re.sub(r"^Error code: \d+ - ", "", text)
    return text if len(text) <= 200 else text[:199] + "…"


def backend_unavailable(exc: BaseException, server: Server) -> BackendUnavailableError:
    """One line for any OpenAI client error raised while talking to ``server``."""
    import openai

    if isinstance(exc, openai.APITimeoutError):  # a subclass of APIConnectionError: first
        within = f"within {server.timeout:g} s" if server.timeout else "in time"
        why = f"did not answer {within} after {server.retries} retries"
    elif isinstance(exc, openai.APIConnectionError):
        why = f"is unreachable after {server.retries} retries"
    elif isinstance(exc, openai.NotFoundError):
        why = f"does not serve model {server.model!r} (404)"
    elif isinstance(exc, openai.APIStatusError):
        kind = "failed with a server error" if exc.status_code >= 500 else "refused the request"
        detail = _status_detail(exc)
        why = f"{kind} ({exc.status_code})" + (f": {detail}" if detail else "")
        if server.takes_images and (exc.status_code in (400, 422) or exc.status_code >= 500):
            why += "; is it serving a vision-language model that takes images?"
    else:
        why = f"failed ({one_line(exc, 200)})"
    return BackendUnavailableError(f"{server.kind} server {server.url} {why}; {server.hint}")


#: the lines that say a server could not be used at that moment (and a later try may succeed):
#: :func:`backend_unavailable` (not "refused the request": the request itself was wrong), the
#: health check (``vlagent.models.health``), the Chroma client (``vlagent.index.store``), the
#: classifier's own timeout, and langchain's words for a non-JSON reply (a proxy's error page)
_UNAVAILABLE = re.compile(
    r"\bserver (?:at )?\S+ (?:is unreachable|is not reachable|did not answer|failed with a server error"
    r"|does not serve model)"
    r"|\bdid not answer within\b"
    r"|Unexpected response type from OpenAI-compatible endpoint"
)


def was_unavailable(line: str) -> bool:
    """Whether an error line says a server (LLM, VLM, Chroma) was down, too slow or broken, as
    opposed to bad input, bad model output or a missing model."""
    return _UNAVAILABLE.search(line) is not None
