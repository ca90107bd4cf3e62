"""Errors that reach the user: one clear line naming the problem, never a deep stack trace."""

from __future__ import annotations


class VlagentError(Exception):
    """Base class: the message is a complete, user-facing sentence."""


class DataError(VlagentError):
    """Malformed input data: annotations CSV, query.json, an image source."""


class ImageError(DataError):
    """A missing, empty, corrupt, non-image or oversized image file."""


class ModelLoadError(VlagentError):
    """A model could not be loaded: names the model, where we looked, and the setting to change."""


class IndexMismatchError(VlagentError):
    """An index collection was built by another model than the one asked for."""


class BackendUnavailableError(VlagentError):
    """A server (LLM, VLM, Chroma) is down, too slow or answered garbage."""
