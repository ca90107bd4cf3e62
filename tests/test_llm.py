"""The LLM backends: a chat call and structured output on real engines (small real weights)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import httpx
import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel

from vlagent.errors import BackendUnavailableError, ModelLoadError, VlagentError
from vlagent.models.llm import (
    ChatTransformers,
    VlagentChatOpenAI,
    resolve_backend,
    structured_llm,
)
from vlagent.models.llm import build_chat_model, load_llama
from vlagent.serving.process import free_port
from vlagent.settings import Settings


class Route(BaseModel):
    kind: Literal["describe", "retrieve", "vqa", "ocr", "chitchat"]
    language: Literal["zh", "en"]
    confident: bool


PROMPT = [
    SystemMessage(content="Classify the user's question. Reply in JSON."),
    HumanMessage(content="Describe this picture please."),
]


# --- choosing the backend -----------------------------------------------------------------
def test_auto_prefers_server_then_gguf_then_transformers(tmp_path: Path, smollm_gguf: Path) -> None:
    assert resolve_backend(Settings(llm_base_url="http://127.0.0.1:9/v1", home=tmp_path)) == "openai"
    assert resolve_backend(Settings(llm_gguf=smollm_gguf, home=tmp_path)) == "llama-cpp"
    assert resolve_backend(Settings(llm_gguf=tmp_path / "absent.gguf", home=tmp_path)) == "transformers"


def test_none_backend_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(VlagentError, match="disabled"):
        build_chat_model(Settings(llm_backend="none", home=tmp_path))


def test_openai_backend_needs_a_url(tmp_path: Path) -> None:
    with pytest.raises(VlagentError, match="VLAGENT_LLM_BASE_URL"):
        build_chat_model(Settings(llm_backend="openai", home=tmp_path))


def test_missing_gguf_names_path_and_fetch_command(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "nope.gguf"
    with pytest.raises(ModelLoadError) as info:
        build_chat_model(Settings(llm_backend="llama-cpp", llm_gguf=missing, home=tmp_path))
    assert str(missing) in str(info.value)
    assert "vlagent models fetch offline" in str(info.value)


def test_openai_model_carries_timeout_and_retries(tmp_path: Path) -> None:
    llm = build_chat_model(
        Settings(llm_backend="openai", llm_base_url="http://h:1/v1", llm_model="m", request_timeout=7,
                 max_retries=3, llm_max_tokens=33, home=tmp_path)
    )  # fmt: skip
    assert isinstance(llm, VlagentChatOpenAI)
    assert (llm.request_timeout, llm.max_retries, llm.max_tokens, llm.model_name) == (7, 3, 33, "m")


# --- openai → the real llama.cpp server ---------------------------------------------------
def test_openai_backend_chats_with_real_server(llama_server_settings: Settings) -> None:
    llm = build_chat_model(llama_server_settings.model_copy(update={"llm_max_tokens": 16}))
    reply = llm.invoke("What is the capital of France? Answer in one word.")
    assert isinstance(reply.content, str) and reply.content.strip()
    assert reply.usage_metadata and reply.usage_metadata["output_tokens"] > 0


def test_openai_structured_output_on_real_server(llama_server_settings: Settings) -> None:
    llm = build_chat_model(llama_server_settings.model_copy(update={"llm_max_tokens": 128}))
    result = structured_llm(llm, Route).invoke(PROMPT)
    assert isinstance(result, Route)


def test_dead_url_raises_backend_unavailable_naming_it(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    llm = build_chat_model(
        Settings(llm_backend="openai", llm_base_url=url, request_timeout=3, max_retries=1, home=tmp_path)
    )
    start = time.monotonic()
    with pytest.raises(BackendUnavailableError) as info:
        llm.invoke("hello")
    assert url in str(info.value)
    assert time.monotonic() - start < 30  # refused connections do not wait for the timeout
    with pytest.raises(BackendUnavailableError, match="127.0.0.1"):
        structured_llm(llm, Route).invoke(PROMPT)


# --- llama.cpp in-process (xllamacpp: llama.cpp's server embedded) -------------------------
def test_llama_cpp_in_process_chats_and_streams(smollm_settings: Settings) -> None:
    llm = build_chat_model(smollm_settings.model_copy(update={"llm_max_tokens": 16}))
    # the same OpenAI client as for a server, pointed at the engine on loopback behind a key
    assert isinstance(llm, VlagentChatOpenAI)
    engine = load_llama(smollm_settings)
    assert str(llm.openai_api_base) == engine.base_url and engine.base_url.startswith("http://127.0.0.1:")
    assert engine.api_key and httpx.get(engine.base_url + "/models", timeout=10).status_code == 401
    reply = llm.invoke("Say hello.")
    assert isinstance(reply.content, str) and reply.content.strip()
    streamed = "".join(str(chunk.content) for chunk in llm.stream("Say hello."))
    assert streamed.strip()
    # one engine per GGUF and options per process; the token limit is per request
    assert load_llama(smollm_settings.model_copy(update={"llm_max_tokens": 99})) is engine


def test_llama_cpp_in_process_keeps_python_signal_handlers(smollm_settings: Settings) -> None:
    """llama.cpp's server sets its own SIGINT handler when it starts; Ctrl-C must stay Python's."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever earlier tests left
    try:
        load_llama(smollm_settings.model_copy(update={"llm_n_ctx": 1536}))  # a fresh engine
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)


def test_llama_cpp_in_process_answers_concurrent_requests(smollm_settings: Settings) -> None:
    """Threads share one engine; each gets its own answer (the engine's slots, no Python lock)."""
    from concurrent.futures import ThreadPoolExecutor

    llm = build_chat_model(smollm_settings.model_copy(update={"llm_max_tokens": 8, "llm_parallel": 4}))
    questions = [f"Repeat this number: {n}" for n in range(8)]
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda q: llm.invoke(q), questions))
    assert all(isinstance(r.content, str) and r.usage_metadata for r in replies)
    assert len({id(r) for r in replies}) == 8


def test_llama_cpp_structured_output_is_schema_valid(smollm_settings: Settings) -> None:
    llm = build_chat_model(smollm_settings.model_copy(update={"llm_max_tokens": 128}))
    runnable = structured_llm(llm, Route)
    for question in ["Describe this picture please.", "这款衬衫的面料是什么？"]:
        result = runnable.invoke([HumanMessage(content=f"Classify this question: {question}")])
        assert isinstance(result, Route)


# --- transformers in-process ---------------------------------------------------------------
def test_transformers_backend_generates_from_tiny_local_model(tiny_causal_lm_dir: Path, tmp_path: Path) -> None:
    llm = build_chat_model(
        Settings(llm_backend="transformers", llm_model=str(tiny_causal_lm_dir), device="cpu",
                 llm_max_tokens=8, home=tmp_path)
    )  # fmt: skip
    assert isinstance(llm, ChatTransformers)
    reply = llm.invoke([SystemMessage(content="You are a helpful assistant."), HumanMessage(content="请描述图片")])
    assert isinstance(reply.content, str)
    assert reply.usage_metadata and 0 < reply.usage_metadata["output_tokens"] <= 8


def test_transformers_structured_output_rejects_gibberish(tiny_causal_lm_dir: Path, tmp_path: Path) -> None:
    from langchain_core.exceptions import OutputParserException

    llm = build_chat_model(
        Settings(llm_backend="transformers", llm_model=str(tiny_causal_lm_dir), device="cpu",
                 llm_max_tokens=8, home=tmp_path)
    )  # fmt: skip
    with pytest.raises(OutputParserException):  # a random model cannot write the schema
        structured_llm(llm, Route).invoke("Describe this picture please.")


def test_transformers_unknown_model_is_a_model_load_error(tmp_path: Path) -> None:
    llm = build_chat_model(
        Settings(llm_backend="transformers", llm_model=str(tmp_path / "no-such-model"), home=tmp_path)
    )
    with pytest.raises(ModelLoadError, match="no-such-model"):
        llm.invoke("hi")


def test_llama_cpp_prompt_longer_than_context_is_a_clear_error(smollm_settings: Settings) -> None:
    llm = build_chat_model(smollm_settings.model_copy(update={"llm_n_ctx": 256}))
    with pytest.raises(VlagentError, match="VLAGENT_LLM_N_CTX"):
        llm.invoke("word " * 2000)
