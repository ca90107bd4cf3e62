"""The LLM behind classify and answer: one LangChain chat model, chosen by settings, and the
``llm`` role (:data:`ROLE`: where the model is, how it loads, its self-check).

``build_chat_model(settings)`` returns a ``BaseChatModel``; ``structured_llm(llm, Schema)``
returns a Runnable that gives a ``Schema`` instance (or raises). Backends:

- ``openai``: any OpenAI-compatible server (vLLM, llama.cpp's server, OpenAI itself) through
  ``langchain_openai.ChatOpenAI`` with its own timeout and retries (exponential backoff).
  Connection failures and timeouts become ``BackendUnavailableError`` naming the URL.
- ``llama-cpp``: llama.cpp's own server embedded in this process on a GGUF file
  (:class:`vlagent.models.llama_engine.LlamaEngine`, a prebuilt portable wheel), started once
  per process and reached with the same OpenAI client as the servers: continuous batching over
  ``llm_parallel`` slots, thread-safe, structured output as a JSON-schema grammar.
- ``transformers``: a local folder or hub id with a chat template (``ChatTransformers``).
  Structured output is prompted JSON, parsed and validated (no grammar).
- ``auto``: ``openai`` when ``llm_base_url`` is set, else ``llama-cpp`` when the GGUF file
  exists and xllamacpp is installed, else ``transformers`` on ``llm_model``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import threading
from contextlib import contextmanager
from typing import Any, AsyncIterator, Callable, Iterator, Literal, Sequence

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langchain_core.messages.utils import convert_to_openai_messages
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field, PrivateAttr

from vlagent.errors import ModelLoadError, VlagentError, one_line
from vlagent.models import loading
from vlagent.models.extras import importable
from vlagent.models.llama_engine import LLAMA_INSTALL_HINT, EngineConfig, LlamaEngine
from vlagent.models.loading import Found, RoleSpec, hub_repo_of, locate_hf, openai_server
from vlagent.models.placement import Placement, architecture, load_pretrained, placement, resolve
from vlagent.models.servers import Server, backend_unavailable, server_errors
from vlagent.settings import Settings

log = logging.getLogger(__name__)

Backend = Literal["openai", "llama-cpp", "transformers"]
StructuredMethod = Literal["auto", "json_schema", "function_calling", "json_mode"]


# ----------------------------------------------------------------------------------------
# choosing the backend
# ----------------------------------------------------------------------------------------
def backend_of(settings: Settings) -> str:
    """``llm_backend`` with ``auto`` resolved: the server at ``llm_base_url`` if set, else
    llama.cpp when the GGUF exists and its engine (xllamacpp) is installed, else transformers on
    ``llm_model`` (``none`` stays ``none``)."""
    if settings.llm_backend != "auto":
        return settings.llm_backend
    if settings.llm_base_url:
        return "openai"
    if settings.resolved_gguf.is_file() and importlib.util.find_spec("xllamacpp") is not None:
        return "llama-cpp"
    return "transformers"


def resolve_backend(settings: Settings) -> Backend:
    """The backend ``build_chat_model`` will use (``auto`` resolved; ``none`` raises)."""
    backend = backend_of(settings)
    if backend == "none":
        raise VlagentError(
            "the LLM is disabled (llm_backend=none): set VLAGENT_LLM_BACKEND to openai, "
            "llama-cpp or transformers"
        )
    return backend  # type: ignore[return-value]


def openai_chat_model(settings: Settings) -> "VlagentChatOpenAI":
    """The client of the OpenAI-compatible server at ``llm_base_url`` (no request is made)."""
    if not settings.llm_base_url:
        raise VlagentError(
            "llm_backend=openai needs VLAGENT_LLM_BASE_URL (e.g. http://127.0.0.1:8000/v1, "
            "see `vlagent serve llm`)"
        )
    return VlagentChatOpenAI(
        base_url=settings.llm_base_url,
        model=settings.serve_llm_name or settings.llm_model,
        api_key=settings.llm_api_key,
        timeout=settings.request_timeout,
        max_retries=settings.max_retries,
        temperature=settings.llm_temperature,
        max_tokens=settings.llm_max_tokens,
        structured_method=settings.llm_structured_method,
    )


def structured_llm(llm: BaseChatModel, schema: type[BaseModel]) -> Runnable[Any, Any]:
    """A Runnable: messages or prompt in, a validated ``schema`` instance out (or it raises).

    - OpenAI-compatible servers and the in-process llama.cpp engine: ``structured_method`` of the
      model ("auto" = "json_schema": ``response_format`` json_schema, which vLLM enforces with
      guided decoding and llama.cpp's server with a grammar, and which OpenAI supports;
      "function_calling" = a named tool call, which llama.cpp's server does not force and vLLM
      only with ``--tool-call-parser``);
    - transformers: the schema in the prompt, JSON parsed and validated.
    Parse/validation failures raise ``langchain_core.exceptions.OutputParserException``;
    server failures raise ``BackendUnavailableError``.
    """
    if isinstance(llm, ChatTransformers):
        return llm.with_structured_output(schema)
    if isinstance(llm, ChatOpenAI):
        method = getattr(llm, "structured_method", "auto")
        if method == "auto":
            method = "json_schema"
        return llm.with_structured_output(schema, method=method)
    return llm.with_structured_output(schema)


# ----------------------------------------------------------------------------------------
# OpenAI-compatible servers
# ----------------------------------------------------------------------------------------
class VlagentChatOpenAI(ChatOpenAI):
    """``ChatOpenAI`` whose failures name the server, plus a structured-output method.

    A prompt longer than the context (llama.cpp's ``exceed_context_size_error``, vLLM's 400 on
    ``max_model_len``) is a :class:`VlagentError` naming the context and the setting to raise.
    """

    structured_method: StructuredMethod = "auto"
    hint: str = "start it with `vlagent serve llm` or fix VLAGENT_LLM_BASE_URL"

    def _unavailable(self, exc: BaseException) -> VlagentError | None:
        """The one line for ``exc``; None for a refused request that is not about the context."""
        import openai

        if isinstance(exc, openai.BadRequestError):
            return _context_exceeded(exc)
        timeout = self.request_timeout if isinstance(self.request_timeout, (int, float)) else None
        server = Server(
            kind="LLM", url=str(self.openai_api_base), model=self.model_name, timeout=timeout,
            retries=self.max_retries or 0, hint=self.hint,
        )  # fmt: skip
        return backend_unavailable(exc, server)

    @property
    def _identifying_params(self) -> dict[str, Any]:
        """Without the URL: the in-process engine listens on a new port in every process."""
        return {"model_name": self.model_name, "structured_method": self.structured_method}

    @contextmanager
    def _named_failures(self) -> Iterator[None]:
        """A client error inside → the one line naming the server (a refused request that is
        not about the context is raised as it is)."""
        try:
            yield
        except _client_errors() as exc:
            error = self._unavailable(exc)
            if error is None:
                raise
            raise error from exc

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        with self._named_failures():
            return super()._generate(*args, **kwargs)

    async def _agenerate(self, *args: Any, **kwargs: Any) -> ChatResult:
        with self._named_failures():
            return await super()._agenerate(*args, **kwargs)

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        with self._named_failures():
            yield from super()._stream(*args, **kwargs)

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        with self._named_failures():
            async for chunk in super()._astream(*args, **kwargs):
                yield chunk


def _client_errors() -> tuple[type[BaseException], ...]:
    import openai

    return (*server_errors(), openai.BadRequestError)


#: how llama.cpp's server and vLLM say that a prompt does not fit
_CONTEXT_MARKERS = ("exceed_context_size", "exceeds the available context", "maximum context length", "max_model_len")


def _context_exceeded(exc: BaseException) -> VlagentError | None:
    """The one line for a prompt that does not fit the context (None for other errors)."""
    text = f"{exc} {getattr(exc, 'body', '')}"
    if not any(marker in text for marker in _CONTEXT_MARKERS):
        return None
    return VlagentError(
        "the prompt does not fit the LLM context: raise VLAGENT_LLM_N_CTX (or the server's "
        f"--max-model-len) or shorten the input ({one_line(exc, 160)})"
    )


# ----------------------------------------------------------------------------------------
# shared helpers for the in-process backends
# ----------------------------------------------------------------------------------------
def _text_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """OpenAI-style dicts with plain-text content (text-only models: image parts dropped)."""
    out: list[dict[str, Any]] = []
    for msg in convert_to_openai_messages(list(messages)):
        content = msg.get("content")
        if isinstance(content, list):
            content = "\n".join(
                part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
            )
        role = msg.get("role", "user")
        if role == "tool":
            role = "user"
        out.append({"role": role, "content": content or ""})
    return out


def _schema_json(schema: type[BaseModel] | dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema, dict):
        return schema
    return schema.model_json_schema()


def _parser(schema: type[BaseModel] | dict[str, Any]) -> Runnable[Any, Any]:
    if isinstance(schema, dict):
        return JsonOutputParser()
    return PydanticOutputParser(pydantic_object=schema)


# ----------------------------------------------------------------------------------------
# llama.cpp in-process: llama.cpp's own server embedded (xllamacpp), reached as a server
# ----------------------------------------------------------------------------------------
def engine_config(settings: Settings) -> EngineConfig:
    """The in-process engine's configuration, from settings (the ``llm`` role)."""
    return EngineConfig(
        model=settings.resolved_gguf, alias=settings.resolved_gguf.name, n_ctx=settings.llm_n_ctx,
        n_parallel=settings.llm_parallel, n_threads=settings.llm_n_threads,
        chat_template=settings.llm_chat_format,
    )  # fmt: skip


def build_llama(settings: Settings) -> LlamaEngine:
    """Start the GGUF's engine (uncached: :func:`load_llama` goes through the model cache,
    whose probe has checked the file)."""
    return LlamaEngine.embedded(engine_config(settings))


def engine_chat_model(engine: LlamaEngine, settings: Settings) -> "VlagentChatOpenAI":
    """The same OpenAI client as for vLLM or a llama.cpp server, pointed at the embedded engine.

    Structured output goes through ``response_format`` json_schema, which llama.cpp turns into a
    grammar (always schema-valid JSON). No retries: the engine is in this process.
    """
    return VlagentChatOpenAI(
        base_url=engine.base_url,
        model=engine.alias,
        api_key=engine.api_key or "EMPTY",
        timeout=settings.request_timeout,
        max_retries=0,
        temperature=settings.llm_temperature,
        max_tokens=settings.llm_max_tokens,
        structured_method="json_schema",
        hint="it is the in-process llama.cpp engine (is the machine overloaded? `vlagent doctor` checks it)",
    )


# ----------------------------------------------------------------------------------------
# transformers in-process
# ----------------------------------------------------------------------------------------
def build_transformers(
    model_id: str, device: "str | Placement", local_files_only: bool = False
) -> tuple[Any, Any, str]:
    """(model, tokenizer, device) for a local folder or hub id (uncached: see :func:`load_transformers`).

    ``device``: a :class:`~vlagent.models.placement.Placement`, or a device name (``auto``: the
    GPU if there is one) with the automatic dtype: on a CPU without native bf16, float32, not
    the checkpoint's bf16 that transformers 5 would pick by default."""
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - transformers is a dependency
        raise ModelLoadError("transformers is not installed") from exc
    if isinstance(device, str):
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        device = resolve(device, "auto", "auto", "generator")
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_id, local_files_only=local_files_only)
        model = load_pretrained(AutoModelForCausalLM, model_id, device, local_files_only)
    except Exception as exc:
        raise ModelLoadError(
            f"could not load the LLM {model_id!r} with transformers ({one_line(exc)}); set "
            "VLAGENT_LLM_MODEL to a local folder or a hub id, or choose another VLAGENT_LLM_BACKEND"
        ) from exc
    if tokenizer.chat_template is None:
        raise ModelLoadError(f"the tokenizer of {model_id!r} has no chat template")
    return model, tokenizer, device.device


class ChatTransformers(BaseChatModel):
    """A causal LM with a chat template, run by transformers in this process.

    ``load(model_id, device)`` gives (model, tokenizer, device): :func:`build_transformers`
    (uncached) unless told otherwise; :func:`build_chat_model` passes its cached
    ``load_transformers``."""

    model_id: str
    load: Callable[[str, str], tuple[Any, Any, str]] = Field(default=build_transformers, exclude=True, repr=False)
    device: str = "auto"
    temperature: float = 0.0
    max_tokens: int = 256
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "transformers-local"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_id": self.model_id}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        import torch

        model, tokenizer, device = self.load(self.model_id, self.device)
        prompt = tokenizer.apply_chat_template(_text_messages(messages), add_generation_prompt=True, tokenize=False)
        inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(device)
        temperature = kwargs.get("temperature", self.temperature)
        gen: dict[str, Any] = {"max_new_tokens": kwargs.get("max_tokens", self.max_tokens)}
        if temperature and temperature > 0:
            gen.update(do_sample=True, temperature=temperature)
        else:
            gen.update(do_sample=False)
        if tokenizer.pad_token_id is None:
            gen["pad_token_id"] = tokenizer.eos_token_id
        with self._lock, torch.inference_mode():
            output = model.generate(**inputs, **gen)
        new_tokens = output[0, inputs["input_ids"].shape[1] :]
        text = tokenizer.decode(new_tokens, skip_special_tokens=True)
        if stop:
            for s in stop:
                text = text.split(s)[0]
        message = AIMessage(
            content=text,
            usage_metadata={
                "input_tokens": int(inputs["input_ids"].shape[1]),
                "output_tokens": int(new_tokens.shape[0]),
                "total_tokens": int(inputs["input_ids"].shape[1] + new_tokens.shape[0]),
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def with_structured_output(  # type: ignore[override]
        self, schema: type[BaseModel] | dict[str, Any], *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[Any, Any]:
        """Prompted JSON (no grammar): the schema goes into a system message; output is validated."""
        if include_raw:
            raise NotImplementedError("include_raw is not supported by the transformers backend")
        instruction = (
            "Answer with one JSON object only, no other text, matching this JSON schema:\n"
            + json.dumps(_schema_json(schema), ensure_ascii=False)
        )

        def add_instruction(value: Any) -> list[BaseMessage]:
            from langchain_core.prompt_values import PromptValue
            from langchain_core.messages import HumanMessage

            if isinstance(value, PromptValue):
                msgs = value.to_messages()
            elif isinstance(value, str):
                msgs = [HumanMessage(content=value)]
            else:
                from langchain_core.messages import convert_to_messages

                msgs = convert_to_messages(value)
            return [SystemMessage(content=instruction), *msgs]

        return RunnableLambda(add_instruction) | self | _parser(schema)


__all__ = [
    "ChatTransformers",
    "VlagentChatOpenAI",
    "backend_of",
    "build_llama",
    "build_transformers",
    "engine_chat_model",
    "engine_config",
    "openai_chat_model",
    "resolve_backend",
    "structured_llm",
]


# ----------------------------------------------------------------------------------------
# the role
# ----------------------------------------------------------------------------------------
FETCH_HINT = "run `vlagent models fetch offline` or set VLAGENT_LLM_GGUF"


def _llm_model(s: Settings) -> str:
    backend = backend_of(s)
    if backend == "none":
        return "-"
    if backend == "openai":
        return s.serve_llm_name or s.llm_model
    if backend == "llama-cpp":
        return s.resolved_gguf.name
    return s.llm_model


def _llm_probe(s: Settings) -> Found:
    backend = backend_of(s)
    if backend == "none":
        return Found(reason="llm: disabled (VLAGENT_LLM_BACKEND=none)")
    if backend == "openai":
        return openai_server(
            "llm", s.llm_base_url,
            "llm_backend=openai needs VLAGENT_LLM_BASE_URL (e.g. http://127.0.0.1:8000/v1, see `vlagent serve llm`)",
        )  # fmt: skip
    if backend == "llama-cpp":
        gguf = s.resolved_gguf
        if not gguf.is_file():
            return Found(reason=f"llm: GGUF model file {gguf} not found: {FETCH_HINT}")
        if not importable("xllamacpp"):
            return Found(reason=f"llm: the llama.cpp engine is not installed: {LLAMA_INSTALL_HINT}")
        return Found(f"local file {gguf}")
    return locate_hf("llm", s.llm_model, "VLAGENT_LLM_MODEL", s)


def _llm_build(s: Settings, local_only: bool) -> Any:
    backend = backend_of(s)
    if backend == "openai":
        return openai_chat_model(s)
    if backend == "llama-cpp":
        return build_llama(s)
    place = placement(s, "generator", architecture(s.llm_model, local_only))
    return build_transformers(s.llm_model, place, local_files_only=local_only)


def _selfcheck(settings: Settings) -> str:
    reply = build_chat_model(settings.model_copy(update={"llm_max_tokens": 4})).invoke("Reply with OK.")
    return f"replied {str(reply.content).strip()[:20]!r}"


ROLE = RoleSpec(
    role="llm",
    error=ModelLoadError,
    setting="VLAGENT_LLM_MODEL",
    backend=backend_of,
    fields={
        "openai": ("llm_base_url", "llm_model", "serve_llm_name", "llm_api_key", "request_timeout",
                   "max_retries", "llm_temperature", "llm_max_tokens", "llm_structured_method"),
        "llama-cpp": ("resolved_gguf", "llm_n_ctx", "llm_n_threads", "llm_chat_format", "llm_parallel"),
        "transformers": ("llm_model", "device", "model_dtype", "attn_implementation"),
    },  # fmt: skip
    model=_llm_model,
    probe=_llm_probe,
    build=_llm_build,
    hub_repo=lambda s: hub_repo_of(s.llm_model) if backend_of(s) == "transformers" else None,
    server=lambda s: s.llm_base_url if backend_of(s) == "openai" else None,
    selfcheck=_selfcheck,
)


def load_llama(settings: Settings) -> LlamaEngine:
    """The GGUF's engine, started once per process for the settings it depends on."""
    return loading.load(ROLE, settings.model_copy(update={"llm_backend": "llama-cpp"}))  # type: ignore[no-any-return]


def load_transformers(model_id: str, device: str, settings: Settings | None = None) -> tuple[Any, Any, str]:
    """(model, tokenizer, device), loaded once per process (the ``llm`` role on transformers);
    the dtype and attention choices come from ``settings`` (default: automatic)."""
    update = {"llm_backend": "transformers", "llm_model": model_id, "device": device}
    view = settings.model_copy(update=update) if settings is not None else Settings.model_construct(**update)
    return loading.load(ROLE, view)  # type: ignore[no-any-return]


def build_chat_model(settings: Settings) -> BaseChatModel:
    """The chat model the agent talks to, from settings (the backends: this module's docstring)."""
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
