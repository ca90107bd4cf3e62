"""llama.cpp's own server, embedded in this process (xllamacpp): the CPU engine for GGUF models.

``xllamacpp`` ships prebuilt CPU wheels compiled for compatibility (no ``-march=native``, so no
AVX-512/AMX kernels that crash on some Xeons) and embeds llama.cpp's C++ server: continuous
batching over ``n_parallel`` slots, a prompt cache per slot, thread-safe, JSON-schema output.
``LlamaEngine`` starts it on a GGUF file; it listens on loopback, on a free port, behind a random
API key, and speaks the OpenAI chat API. The agent talks to it with the same client as to vLLM or
to a llama.cpp server started by ``vlagent serve llm --engine llama-cpp`` (which is this class in
its own process: :mod:`vlagent.serving.llama_server`).

Each slot gets the full ``n_ctx`` (the KV cache is ``n_ctx x n_parallel``). llama.cpp's server
installs its own SIGINT/SIGTERM handlers when it starts; Python's are put back, so Ctrl-C still
raises ``KeyboardInterrupt`` in the caller.
"""

from __future__ import annotations

import importlib.metadata
import os
import secrets
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pydantic import BaseModel, Field

from vlagent.errors import ModelLoadError, one_line

#: how to get the engine (also in the ``llm`` role's reasons)
LLAMA_INSTALL_HINT = "pip install 'vlagent[llama]' (xllamacpp: a prebuilt wheel, nothing is compiled)"

#: llama.cpp's log threshold (3 info, 2 warnings, 1 errors): its errors reach the caller as
#: exceptions and answers, so its own log stays quiet
_QUIET = 0


class EngineConfig(BaseModel):
    """What the engine is started with (from settings: ``llm_gguf``, ``llm_n_ctx``, ...)."""

    model: Path
    alias: str = Field(description="the model name the engine serves (GET /v1/models)")
    n_ctx: int = Field(4096, ge=64, description="context tokens per slot")
    n_parallel: int = Field(1, ge=1, le=64, description="requests decoded together (slots)")
    n_threads: int | None = Field(None, ge=1, description="CPU threads; default all cores")
    chat_template: str | None = Field(None, description="a llama.cpp template name or Jinja text; default the GGUF's")
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="0: a free port")
    api_key: str | None = Field(None, description="required from clients when set")
    verbosity: int = _QUIET

    @property
    def threads(self) -> int:
        return self.n_threads or max(1, os.cpu_count() or 2)


def engine_version() -> str:
    """``xllamacpp <version>``, or raises ModelLoadError when it is not installed."""
    try:
        return f"xllamacpp {importlib.metadata.version('xllamacpp')}"
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelLoadError(f"the llama.cpp engine is not installed: {LLAMA_INSTALL_HINT}") from exc


@contextmanager
def _python_signal_handlers() -> Iterator[None]:
    """Keep Python's SIGINT/SIGTERM handlers across llama.cpp's start (it sets its own)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None:
                signal.signal(sig, handler)


class LlamaEngine:
    """One GGUF loaded by llama.cpp's server in this process; ``base_url`` is its OpenAI API."""

    def __init__(self, config: EngineConfig) -> None:
        if not config.model.is_file():
            raise ModelLoadError(f"GGUF model file {config.model} not found")
        engine_version()
        import xllamacpp as xlc

        self.config = config
        self.api_key = config.api_key
        params = xlc.CommonParams()
        params.model.path = str(config.model)
        params.model_alias = {config.alias}
        params.n_parallel = config.n_parallel
        params.n_ctx = config.n_ctx * config.n_parallel
        params.cpuparams.n_threads = config.threads
        params.cpuparams_batch.n_threads = config.threads
        params.hostnames = [config.host]
        params.port = config.port
        params.verbosity = config.verbosity
        if config.api_key:
            params.api_keys = [config.api_key]
        if config.chat_template:
            params.chat_template = config.chat_template
        try:
            with _python_signal_handlers():
                self._server = xlc.Server(params)
        except Exception as exc:  # llama.cpp: "Failed to init server, please check the input params."
            raise ModelLoadError(
                f"llama.cpp could not load {config.model} ({one_line(exc)}): is it a GGUF file, and is "
                "there memory for it?"
            ) from exc
        self.address = str(self._server.listening_address).rstrip("/")

    @classmethod
    def embedded(cls, config: EngineConfig) -> "LlamaEngine":
        """On loopback, a free port, behind a fresh random key: reachable by this process only."""
        return cls(config.model_copy(update={"host": "127.0.0.1", "port": 0, "api_key": secrets.token_urlsafe(24)}))

    @property
    def base_url(self) -> str:
        return self.address + "/v1"

    @property
    def alias(self) -> str:
        return self.config.alias

    def close(self) -> None:
        """Stop the server's threads and free the model (also when the object is collected)."""
        server = self.__dict__.pop("_server", None)
        del server


__all__ = ["EngineConfig", "LlamaEngine", "engine_version"]
