"""The LLM behind classify and answer: one LangChain chat model, chosen by settings.

``build_chat_model(settings)`` returns a ``BaseChatModel``; ``structured_llm(llm, Schema)``
returns a Runnable that gives a ``Schema`` instance (or raises). Backends:

- ``openai``: any OpenAI-compatible server (vLLM, llama.cpp's server, OpenAI itself) through
  ``langchain_openai.ChatOpenAI`` with its own timeout and retries (exponential backoff).
  Connection failures and timeouts become ``BackendUnavailableError`` naming the URL.
- ``llama-cpp``: llama.cpp in-process on a GGUF file (``ChatLlamaCppLocal`` below). Structured
  output is a JSON-schema grammar, so the reply always parses. (langchain_community's
  ``ChatLlamaCpp`` only offers structured output through tool calling with the
  ``chatml-function-calling`` format and loads a new ``Llama`` per instance; this class loads
  each GGUF once per process and uses ``response_format``.)
- ``transformers``: a local folder or hub id with a chat template (``ChatTransformers``).
  Structured output is prompted JSON, parsed and validated (no grammar).
- ``auto``: ``openai`` when ``llm_base_url`` is set, else ``llama-cpp`` when the GGUF file
  exists and llama_cpp is importable, else ``transformers`` on ``llm_model``.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, AsyncIterator, Iterator, Literal, Sequence

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, SystemMessage
from langchain_core.messages.utils import convert_to_openai_messages
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, ConfigDict, PrivateAttr

from vlagent.errors import BackendUnavailableError, ModelLoadError, VlagentError, one_line
from vlagent.openai_errors import Server, backend_unavailable, server_errors
from vlagent.settings import Settings

log = logging.getLogger(__name__)

Backend = Literal["openai", "llama-cpp", "transformers"]
StructuredMethod = Literal["auto", "json_schema", "function_calling", "json_mode"]

FETCH_HINT = "run `vlagent models fetch offline` or set VLAGENT_LLM_GGUF"


# ----------------------------------------------------------------------------------------
# choosing the backend
# ----------------------------------------------------------------------------------------
def _llama_cpp_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def resolve_backend(settings: Settings) -> Backend:
    """The backend ``build_chat_model`` will use (``auto`` resolved; ``none`` raises)."""
    backend = settings.llm_backend
    if backend == "none":
        raise VlagentError(
            "the LLM is disabled (llm_backend=none): set VLAGENT_LLM_BACKEND to openai, "
            "llama-cpp or transformers"
        )
    if backend != "auto":
        return backend
    if settings.llm_base_url:
        return "openai"
    if settings.resolved_gguf.is_file() and _llama_cpp_importable():
        return "llama-cpp"
    return "transformers"


def build_chat_model(settings: Settings) -> BaseChatModel:
    """The chat model the agent talks to, from settings (see the module docstring)."""
    backend = resolve_backend(settings)
    if backend == "openai":
        return openai_chat_model(settings)
    if backend == "llama-cpp":
        path = settings.resolved_gguf
        if not path.is_file():
            raise ModelLoadError(f"GGUF model file {path} not found: {FETCH_HINT}")
        return ChatLlamaCppLocal(
            model_path=str(path),
            n_ctx=settings.llm_n_ctx,
            n_threads=settings.llm_n_threads,
            chat_format=settings.llm_chat_format,
            temperature=settings.llm_temperature,
            max_tokens=settings.llm_max_tokens,
        )
    return ChatTransformers(
        model_id=settings.llm_model,
        device=settings.device,
        temperature=settings.llm_temperature,
        max_tokens=settings.llm_max_tokens,
    )


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

    - in-process llama.cpp: a JSON-schema grammar (always schema-valid JSON);
    - OpenAI-compatible servers: ``structured_method`` of the model ("auto" = named tool call,
      which vLLM enforces with guided decoding and llama.cpp's server with a grammar, and which
      OpenAI supports; "json_schema" for servers that take ``response_format=json_schema``);
    - transformers: the schema in the prompt, JSON parsed and validated.
    Parse/validation failures raise ``langchain_core.exceptions.OutputParserException``;
    server failures raise ``BackendUnavailableError``.
    """
    if isinstance(llm, (ChatLlamaCppLocal, ChatTransformers)):
        return llm.with_structured_output(schema)
    if isinstance(llm, ChatOpenAI):
        method = getattr(llm, "structured_method", "auto")
        if method == "auto":
            method = "function_calling"
        return llm.with_structured_output(schema, method=method)
    return llm.with_structured_output(schema)


# ----------------------------------------------------------------------------------------
# OpenAI-compatible servers
# ----------------------------------------------------------------------------------------
class VlagentChatOpenAI(ChatOpenAI):
    """``ChatOpenAI`` whose connection failures name the server, plus a structured-output method."""

    structured_method: StructuredMethod = "auto"

    def _unavailable(self, exc: BaseException) -> BackendUnavailableError:
        timeout = self.request_timeout if isinstance(self.request_timeout, (int, float)) else None
        server = Server(
            kind="LLM", url=str(self.openai_api_base), model=self.model_name, timeout=timeout,
            retries=self.max_retries or 0, hint="start it with `vlagent serve llm` or fix VLAGENT_LLM_BASE_URL",
        )  # fmt: skip
        return backend_unavailable(exc, server)

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        try:
            return super()._generate(*args, **kwargs)
        except server_errors() as exc:
            raise self._unavailable(exc) from exc

    async def _agenerate(self, *args: Any, **kwargs: Any) -> ChatResult:
        try:
            return await super()._agenerate(*args, **kwargs)
        except server_errors() as exc:
            raise self._unavailable(exc) from exc

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        try:
            yield from super()._stream(*args, **kwargs)
        except server_errors() as exc:
            raise self._unavailable(exc) from exc

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        try:
            async for chunk in super()._astream(*args, **kwargs):
                yield chunk
        except server_errors() as exc:
            raise self._unavailable(exc) from exc


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
# llama.cpp in-process
# ----------------------------------------------------------------------------------------
class _LoadedLlama:
    def __init__(self, llama: Any) -> None:
        self.llama = llama
        self.lock = threading.Lock()  # a Llama context is not thread-safe


PROMPT_CACHE_BYTES = 1 << 30


def _prompt_cache(capacity: int) -> Any:
    """llama.cpp's RAM prompt cache, bounded by what its entries really hold.

    ``LlamaRAMCache`` counts only the KV bytes of an entry, but each entry also copies the
    logits buffer (n_batch x n_vocab floats: ~300 MB for Qwen2.5's 152k vocabulary), so the
    stock cache grows far past its capacity (10 GB seen). This one counts both.
    """
    from llama_cpp import LlamaRAMCache

    class BoundedRAMCache(LlamaRAMCache):
        @property
        def cache_size(self) -> int:
            return sum(s.llama_state_size + s.scores.nbytes + s.input_ids.nbytes for s in self.cache_state.values())

    return BoundedRAMCache(capacity_bytes=capacity)


def build_llama(path: str, n_ctx: int, n_threads: int | None, chat_format: str | None) -> _LoadedLlama:
    """Load a GGUF with llama.cpp (uncached: :func:`load_llama` goes through the model loader)."""
    if not Path(path).is_file():
        raise ModelLoadError(f"GGUF model file {path} not found: {FETCH_HINT}")
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise ModelLoadError(
            "llama-cpp-python is not installed: pip install 'vlagent[llama]' (compiles ~10 min)"
        ) from exc
    threads = n_threads or max(1, (os.cpu_count() or 2))
    try:
        llama = Llama(
            model_path=path, n_ctx=n_ctx, n_threads=threads, chat_format=chat_format, verbose=False
        )
    except Exception as exc:  # llama.cpp raises ValueError with little detail
        raise ModelLoadError(f"llama.cpp could not load {path}: {one_line(exc)}") from exc
    # Keep the KV state of recent prompts: the classifier's and the templates' system prompts
    # are shared prefixes, so only each question's own tokens are evaluated again.
    llama.set_cache(_prompt_cache(PROMPT_CACHE_BYTES))
    atexit.register(llama.close)  # free it before the interpreter tears llama_cpp down
    return _LoadedLlama(llama)


def load_llama(path: str, n_ctx: int, n_threads: int | None, chat_format: str | None) -> _LoadedLlama:
    """A GGUF loaded once per process (the model loader's ``llm`` role, keyed by path and options)."""
    from vlagent.models import loader

    view = Settings.model_construct(
        llm_backend="llama-cpp", llm_gguf=Path(path), llm_n_ctx=n_ctx, llm_n_threads=n_threads,
        llm_chat_format=chat_format,
    )  # fmt: skip
    return loader.load("llm", view)  # type: ignore[no-any-return]


class ChatLlamaCppLocal(BaseChatModel):
    """llama.cpp in-process (llama-cpp-python), with ``response_format`` grammar support."""

    model_path: str
    n_ctx: int = 4096
    n_threads: int | None = None
    chat_format: str | None = None
    temperature: float = 0.0
    max_tokens: int = 256

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @property
    def _llm_type(self) -> str:
        return "llama-cpp-local"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "n_ctx": self.n_ctx, "chat_format": self.chat_format}

    def _loaded(self) -> _LoadedLlama:
        return load_llama(self.model_path, self.n_ctx, self.n_threads, self.chat_format)

    def _check_fits(self, llama: Any, chat: list[dict[str, Any]]) -> None:
        """Fail fast (llama.cpp itself fails slowly and obscurely) when the prompt cannot fit."""
        n = sum(len(llama.tokenize(str(m["content"]).encode("utf-8"), add_bos=False)) + 5 for m in chat)
        if n >= self.n_ctx:
            raise VlagentError(
                f"the prompt has about {n} tokens and does not fit the LLM context of {self.n_ctx} "
                "tokens; raise VLAGENT_LLM_N_CTX or shorten the input"
            )

    def _params(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {
            "temperature": kwargs.get("temperature", self.temperature),
            "max_tokens": kwargs.get("max_tokens", self.max_tokens),
        }
        if stop:
            params["stop"] = stop
        if kwargs.get("response_format") is not None:
            params["response_format"] = kwargs["response_format"]
        return params

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        loaded = self._loaded()
        chat = _text_messages(messages)
        with loaded.lock:
            self._check_fits(loaded.llama, chat)
            try:
                out = loaded.llama.create_chat_completion(messages=chat, **self._params(stop, kwargs))
            except ValueError as exc:  # llama.cpp's way of saying the prompt is too long
                raise VlagentError(
                    f"llama.cpp could not answer ({one_line(exc)}): the prompt probably exceeds the context of "
                    f"{self.n_ctx} tokens; raise VLAGENT_LLM_N_CTX or shorten the input"
                ) from exc
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        message = AIMessage(
            content=choice["message"].get("content") or "",
            usage_metadata={
                "input_tokens": usage.get("prompt_tokens", 0),
                "output_tokens": usage.get("completion_tokens", 0),
                "total_tokens": usage.get("total_tokens", 0),
            },
            response_metadata={"finish_reason": choice.get("finish_reason"), "model_name": Path(self.model_path).name},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        loaded = self._loaded()
        chat = _text_messages(messages)
        with loaded.lock:
            self._check_fits(loaded.llama, chat)
            for part in loaded.llama.create_chat_completion(messages=chat, stream=True, **self._params(stop, kwargs)):
                delta = part["choices"][0].get("delta", {}).get("content")
                if delta:
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
                    if run_manager:
                        run_manager.on_llm_new_token(delta, chunk=chunk)
                    yield chunk

    def with_structured_output(  # type: ignore[override]
        self, schema: type[BaseModel] | dict[str, Any], *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[Any, Any]:
        """JSON constrained by a grammar built from the schema, then validated."""
        if include_raw:
            raise NotImplementedError("include_raw is not supported by the llama-cpp backend")
        fmt = {"type": "json_object", "schema": _schema_json(schema)}
        return self.bind(response_format=fmt) | _parser(schema)


# ----------------------------------------------------------------------------------------
# transformers in-process
# ----------------------------------------------------------------------------------------
def build_transformers(model_id: str, device: str, local_files_only: bool = False) -> tuple[Any, Any, str]:
    """(model, tokenizer, device) for a local folder or hub id (uncached: see :func:`load_transformers`)."""
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - transformers is a dependency
        raise ModelLoadError("transformers is not installed") from exc
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_id, local_files_only=local_files_only)
        model = AutoModelForCausalLM.from_pretrained(model_id, dtype="auto", local_files_only=local_files_only)
    except Exception as exc:
        raise ModelLoadError(
            f"could not load the LLM {model_id!r} with transformers ({one_line(exc)}); set "
            "VLAGENT_LLM_MODEL to a local folder or a hub id, or choose another VLAGENT_LLM_BACKEND"
        ) from exc
    model.to(device).eval()
    if tokenizer.chat_template is None:
        raise ModelLoadError(f"the tokenizer of {model_id!r} has no chat template")
    return model, tokenizer, device


def load_transformers(model_id: str, device: str) -> tuple[Any, Any, str]:
    """(model, tokenizer, device), loaded once per process (the model loader's ``llm`` role)."""
    from vlagent.models import loader

    view = Settings.model_construct(llm_backend="transformers", llm_model=model_id, device=device)
    return loader.load("llm", view)  # type: ignore[no-any-return]


class ChatTransformers(BaseChatModel):
    """A causal LM with a chat template, run by transformers in this process."""

    model_id: str
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

        model, tokenizer, device = load_transformers(self.model_id, self.device)
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
    "ChatLlamaCppLocal",
    "ChatTransformers",
    "VlagentChatOpenAI",
    "build_chat_model",
    "build_llama",
    "build_transformers",
    "load_llama",
    "load_transformers",
    "openai_chat_model",
    "resolve_backend",
    "structured_llm",
]
