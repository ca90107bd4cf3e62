"""Errors that reach the user: one clear line naming the problem, never a deep stack trace."""

from __future__ import annotations


class VlagentError(Exception):
    """Base class: the message is a complete, user-facing sentence."""


class DataError(VlagentError):
    """Malformed input data: annotations CSV, query.json, an image source."""


class QuestionTooLongError(VlagentError):
    """A question longer than ``Settings.question_max_chars`` (``VLAGENT_QUESTION_MAX_CHARS``)."""


class ImageError(DataError):
    """A missing, empty, corrupt, non-image or oversized image file."""


class ModelLoadError(VlagentError):
    """A model could not be loaded: names the model, where we looked, and the setting to change."""


class IndexMismatchError(VlagentError):
    """An index collection was built by another model than the one asked for."""


class BackendUnavailableError(VlagentError):
    """A server (LLM, VLM, Chroma) is down, too slow or answered garbage."""


class ToolUnavailable(VlagentError):
    """A tool's model cannot be loaded here; the agent drops the tool and says so once."""


class ConfigError(VlagentError):
    """The agent's own parts do not fit together: two question cards or tools of one name, no card."""


class ImageNotAllowedError(ImageError):
    """An image name that resolves outside the allowed roots (catalogue, named files, settings)."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message``, cut to ``limit`` characters (for traces and notes).

    A :class:`VlagentError` is already a user-facing sentence: its type name is left out."""
    text = " ".join((str(exc).strip().splitlines() or [""])[0].split())
    if isinstance(exc, VlagentError):
        line = text or type(exc).__name__
    else:
        line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"
