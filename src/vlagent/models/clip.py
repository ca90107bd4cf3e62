"""CLIP encoders behind one small interface.

``encode_images`` / ``encode_texts`` return L2-normalised float32 numpy arrays, computed in
batches under ``torch.inference_mode`` on the configured device, in the dtype of
:mod:`vlagent.models.placement` (float32 on CPU; float16 on a GPU: transformers models are
loaded in it, open_clip models run under autocast). For indexing, the image side splits in two:
``pixel_transform()`` (decode → pixels on the CPU; a picklable callable that DataLoader worker
processes run) and ``encode_pixels(batch)`` (the model on the device). Two families:

* open_clip: any open_clip model name + pretrained tag (``ViT-B-32`` + ``laion2b_s34b_b79k``),
  ``hf-hub:org/name`` ids, ``local-dir:/path`` folders, or a model name + a local checkpoint
  file given as the pretrained tag;
* transformers: ``CLIPModel`` / ``ChineseCLIPModel`` / ``AltCLIPModel`` from a hub id or a
  local directory (``OFA-Sys/chinese-clip-vit-base-patch16`` is the default: Chinese titles).

The ``clip`` role is declared here too (:data:`ROLE`: where the weights are, how they load, its
self-check): :func:`encoder_from_settings` is the encoder of the settings, loaded once per process,
and :func:`probe` the one answer to "is CLIP here, and if not why". torch, transformers and
open_clip import inside the functions that need them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vlagent.errors import ModelLoadError, VlagentError, one_line
from vlagent.models import loading
from vlagent.models.extras import missing_line
from vlagent.models.hub import cached, endpoint, hub_offline, is_repo_id, known_hub_problem, looks_like_path
from vlagent.models.loading import Found, RoleSpec, hub_repo_of, needs_extra, sample_image
from vlagent.models.placement import Placement, load_pretrained, param_dtype, resolve_attention, resolve_dtype
from vlagent.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image


log = logging.getLogger(__name__)

HF_CLIP_TYPES = {"clip", "chinese_clip", "altclip"}
#: the text context each family was trained with: Chinese-CLIP 52 tokens (its config allows 512
#: positions and its tokenizer says 512), OpenAI CLIP 77; others: their tokenizer's and positions' limit
TRAINED_TEXT_CONTEXT = {"chinese_clip": 52, "clip": 77}

#: what each backend imports (the vision extra); auto asks open_clip's registry before choosing
CLIP_MODULES: dict[str, tuple[str, ...]] = {
    "auto": ("torch", "transformers", "open_clip"),
    "open_clip": ("torch", "open_clip"),
    "transformers": ("torch", "transformers"),
}


def _l2(x: "torch.Tensor") -> np.ndarray:
    x = x.float()
    x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return x.cpu().numpy().astype(np.float32, copy=False)


def _features(out: Any) -> "torch.Tensor":
    """transformers 5.x returns an output object (embedding in pooler_output), 4.x a tensor."""
    if hasattr(out, "pooler_output") and not hasattr(out, "shape"):
        return out.pooler_output
    return out


class _LoadProblem(VlagentError):
    """Why a model could not be loaded; :func:`load_clip_encoder` adds the name and the hint."""


class ClipEncoder:
    """Shared batching; subclasses turn images into pixels and encode one batch of pixels / texts."""

    #: identity of the weights, recorded in the index (backend:name[:pretrained])
    model_id: str
    dim: int
    #: worker processes that decode images for ``vlagent index`` (None: the indexer decides by device)
    decode_processes: int | None = None

    def __init__(self, device: str, batch_size: int = 32, place: Placement | None = None) -> None:
        self.device = device
        self.batch_size = batch_size
        self.place = place or Placement(device, "float32")

    def pixel_transform(self) -> Callable[["Image.Image"], "torch.Tensor"]:
        """One RGB image → its pixel tensor (C, H, W) on the CPU: picklable, so that worker
        processes run it (the model's own preprocessing)."""
        raise NotImplementedError

    def _pixels(self, images: Sequence["Image.Image"]) -> "torch.Tensor":
        import torch

        transform = self.pixel_transform()
        return torch.stack([transform(im) for im in images])

    def _pixel_batch(self, pixels: "torch.Tensor") -> "torch.Tensor":
        raise NotImplementedError

    def _image_batch(self, images: Sequence["Image.Image"]) -> "torch.Tensor":
        return self._pixel_batch(self._pixels(images))

    def _text_batch(self, texts: Sequence[str]) -> "torch.Tensor":
        raise NotImplementedError

    def _precision(self) -> Any:
        """The context the model runs in (autocast for a model kept in float32 but run in half)."""
        return nullcontext()

    def _batched(self, items: Sequence[Any], fn: Callable[[Sequence[Any]], "torch.Tensor"]) -> np.ndarray:
        import torch

        if len(items) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = []
        with torch.inference_mode(), self._precision():
            for start in range(0, len(items), self.batch_size):
                parts.append(_l2(fn(items[start : start + self.batch_size])))
        return np.concatenate(parts, axis=0)

    def encode_images(self, images: Sequence["Image.Image"]) -> np.ndarray:
        return self._batched(list(images), self._image_batch)

    def encode_pixels(self, pixels: "torch.Tensor") -> np.ndarray:
        """Embeddings of a batch of ``pixel_transform`` outputs (stacked; pinned memory is
        copied to the GPU without blocking)."""
        import torch

        if pixels.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        with torch.inference_mode(), self._precision():
            return _l2(self._pixel_batch(pixels))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self._batched(list(texts), self._text_batch)


class HFPixels:
    """A transformers image processor as a one-image transform (picklable, for worker processes)."""

    def __init__(self, image_processor: Any) -> None:
        self.image_processor = image_processor

    def __call__(self, image: "Image.Image") -> "torch.Tensor":
        return self.image_processor(images=[image], return_tensors="pt")["pixel_values"][0]


class OpenClipEncoder(ClipEncoder):
    def __init__(
        self, name: str, pretrained: str | None, device: str, batch_size: int = 32, place: Placement | None = None
    ) -> None:
        import open_clip

        super().__init__(device, batch_size, place)
        if name.startswith("local-dir:"):
            # open_clip would warn and go on with random weights: refuse instead
            folder = Path(name.removeprefix("local-dir:")).expanduser()
            if folder.is_dir() and not any(
                p.suffix in {".safetensors", ".bin", ".pth", ".pt"} for p in folder.iterdir()
            ):
                raise _LoadProblem(f"no weights file (*.safetensors, *.bin, *.pth) in {folder}")
        elif pretrained is None and not name.startswith("hf-hub:"):
            # never run a silently random model: take the registry's first tag for the name
            tags = open_clip.list_pretrained_tags_by_model(name)
            if not tags:
                raise _LoadProblem(
                    f"no pretrained weights for {name!r} in open_clip's registry "
                    "(set VLAGENT_CLIP_PRETRAINED to a tag or a local checkpoint file)"
                )
            pretrained = tags[0]
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(
            name, pretrained=pretrained, device=device
        )
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(name)
        self.model_id = f"open_clip:{name}" + (f":{pretrained}" if pretrained else "")
        self.dim = int(self._text_batch(["x"]).shape[-1])

    def _precision(self) -> Any:
        """open_clip models stay in float32 and run under autocast in a half dtype."""
        import torch

        if not self.place.half:
            return nullcontext()
        return torch.autocast(device_type=self.device.split(":")[0], dtype=self.place.torch_dtype)

    def pixel_transform(self) -> Callable[["Image.Image"], "torch.Tensor"]:
        return self.preprocess  # type: ignore[no-any-return]

    def _pixel_batch(self, pixels: "torch.Tensor") -> "torch.Tensor":
        return self.model.encode_image(pixels.to(self.device, non_blocking=True))

    def _text_batch(self, texts: Sequence[str]) -> "torch.Tensor":
        import torch

        with torch.inference_mode(), self._precision():
            return self.model.encode_text(self.tokenizer(list(texts)).to(self.device))


def _hf_clip_class(model_type: str) -> Any:
    import transformers

    return getattr(transformers, {"clip": "CLIPModel", "chinese_clip": "ChineseCLIPModel", "altclip": "AltCLIPModel"}[model_type])


class HFClipEncoder(ClipEncoder):
    def __init__(
        self, name: str, device: str, batch_size: int = 32, local_files_only: bool = False,
        dtype: str = "auto", attn: str = "auto",
    ) -> None:  # fmt: skip
        from transformers import AutoConfig, AutoProcessor

        config = AutoConfig.from_pretrained(name, local_files_only=local_files_only)
        if config.model_type not in HF_CLIP_TYPES:
            raise _LoadProblem(
                f"model type {config.model_type!r} is not a CLIP model "
                f"(expected one of {sorted(HF_CLIP_TYPES)})"
            )
        cls = _hf_clip_class(config.model_type)
        dtype = resolve_dtype(dtype, device, "encoder")
        super().__init__(device, batch_size, Placement(device, dtype, resolve_attention(attn, cls, device, dtype)))
        self.model = load_pretrained(cls, name, self.place, local_files_only)
        self.processor = AutoProcessor.from_pretrained(name, local_files_only=local_files_only)
        self.model_id = f"transformers:{name}"
        self.context_length = self._text_context(config)
        self.dim = int(getattr(config, "projection_dim", 0)) or int(self._text_batch(["x"]).shape[-1])

    def _text_context(self, config: Any) -> int:
        """Where a text is cut: the tokenizer's limit, the text tower's positions and the context
        the family was trained with (:data:`TRAINED_TEXT_CONTEXT`), whichever is least."""
        tok_max = int(getattr(self.processor.tokenizer, "model_max_length", 0) or 0)
        positions = int(getattr(getattr(config, "text_config", None), "max_position_embeddings", 0) or 0)
        limits = [n for n in (tok_max, positions, TRAINED_TEXT_CONTEXT.get(config.model_type, 0)) if 0 < n < 100_000]
        return min(limits, default=77)

    def pixel_transform(self) -> Callable[["Image.Image"], "torch.Tensor"]:
        return HFPixels(self.processor.image_processor)

    def _pixels(self, images: Sequence["Image.Image"]) -> "torch.Tensor":
        return self.processor(images=list(images), return_tensors="pt")["pixel_values"]

    def _pixel_batch(self, pixels: "torch.Tensor") -> "torch.Tensor":
        pixels = pixels.to(self.device, dtype=param_dtype(self.model), non_blocking=True)
        return _features(self.model.get_image_features(pixel_values=pixels))

    def tokenize(self, texts: Sequence[str]) -> Any:
        """The text tower's inputs, truncated to its context (search and fine-tuning share this)."""
        return self.processor.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.context_length, return_tensors="pt"
        ).to(self.device)

    def _text_batch(self, texts: Sequence[str]) -> "torch.Tensor":
        import torch

        inputs = self.tokenize(texts)
        with torch.inference_mode():
            return _features(self.model.get_text_features(**inputs))


def _is_open_clip_name(name: str) -> bool:
    import open_clip

    return name in open_clip.list_models()


def resolve_backend(name: str, pretrained: str | None, backend: str = "auto") -> str:
    """Which family loads ``name``: ``open_clip`` or ``transformers``."""
    if backend != "auto":
        return backend
    if name.startswith(("hf-hub:", "local-dir:")) or pretrained:  # pretrained is open_clip's word
        return "open_clip"
    path = Path(name).expanduser()
    if path.is_dir():
        if (path / "open_clip_config.json").is_file():
            return "open_clip"
        return "transformers"
    if _is_open_clip_name(name):
        return "open_clip"
    return "transformers"


def _looks_like_path(name: str) -> bool:
    """A local path rather than a hub id (``org/name``) or an open_clip architecture name."""
    if name.startswith(("hf-hub:", "local-dir:")):
        return name.startswith("local-dir:")
    return (
        name.startswith(("/", ".", "~"))
        or "\\" in name
        or name.count("/") > 1
        or Path(name).expanduser().exists()
    )


def _load_hint(name: str, backend: str) -> str:
    """``looked in WHERE; FIX`` (callers split on the first ``"; "``)."""
    if _looks_like_path(name):
        path = Path(name.removeprefix("local-dir:")).expanduser()
        state = "" if path.exists() else " (it does not exist)"
        where = f"the local path {path}{state}"
        fix = (
            "set VLAGENT_CLIP_MODEL to a folder holding a transformers CLIP/Chinese-CLIP model "
            "(config.json, weights, processor files), local-dir:/path/to/open_clip_folder, "
            "or a hub id"
        )
    elif backend == "open_clip":
        where = "open_clip's registry and cache (~/.cache/huggingface, ~/.cache/clip)"
        fix = (
            "set VLAGENT_CLIP_MODEL to the architecture name and VLAGENT_CLIP_PRETRAINED to a "
            "local checkpoint file, or VLAGENT_CLIP_MODEL=local-dir:/path/to/open_clip_folder"
        )
    else:
        where = f"the Hugging Face hub and its local cache (hub id {name!r})"
        fix = (
            f"download it where the hub is reachable (`hf download {name} --local-dir DIR`) "
            "and set VLAGENT_CLIP_MODEL=DIR"
        )
    return f"looked in {where}; {fix}"


def load_clip_encoder(
    name: str,
    pretrained: str | None = None,
    backend: str = "auto",
    device: str = "cpu",
    batch_size: int = 32,
    local_files_only: bool = False,
    dtype: str = "auto",
    attn: str = "auto",
    decode_processes: int | None = None,
) -> ClipEncoder:
    """Load a CLIP encoder (uncached); any failure becomes one :class:`ModelLoadError` line.

    ``local_files_only``: transformers models are read from the local HF cache only (the model
    loader sets it when the hub is offline or unreachable). ``dtype`` / ``attn``: see
    :mod:`vlagent.models.placement` (``auto``: float32 on CPU, float16 on CUDA).
    ``decode_processes``: kept for the indexer (``Settings.clip_decode_processes``). Cached
    loading from settings: :func:`encoder_from_settings`."""
    missing = missing_line(f"clip: {name}", *CLIP_MODULES.get(backend, CLIP_MODULES["auto"]))
    if missing:
        raise ModelLoadError(missing)
    try:
        family = resolve_backend(name, pretrained, backend)
    except Exception as exc:  # open_clip import problems
        raise ModelLoadError(f"cannot load CLIP model {name!r}: {one_line(exc)}") from exc
    try:
        if _looks_like_path(name) and not Path(name.removeprefix("local-dir:")).expanduser().exists():
            raise _LoadProblem("no such file or directory")
        encoder: ClipEncoder
        if family == "open_clip":
            folder = Path(name).expanduser()
            target = f"local-dir:{folder}" if folder.is_dir() else name  # a folder named by path
            place = Placement(device, resolve_dtype(dtype, device, "encoder"))
            encoder = OpenClipEncoder(target, pretrained, device, batch_size, place)
        else:
            local = Path(name).expanduser()
            encoder = HFClipEncoder(str(local) if local.exists() else name, device, batch_size, local_files_only, dtype, attn)
        encoder.decode_processes = decode_processes
        return encoder
    except ModelLoadError:
        raise
    except Exception as exc:
        reason = one_line(exc)  # a _LoadProblem is a VlagentError: its text without the type
        raise ModelLoadError(
            f"cannot load CLIP model {name!r} ({family}): {reason}; "
            f"{_load_hint(name, family)}"
        ) from exc


# ---------------------------------------------------------------- the role
def _clip_backend(s: Settings) -> str:
    return "none" if s.clip_backend == "none" or s.clip_model.lower() == "none" else s.clip_backend


def _clip_probe(s: Settings) -> Found:
    name, pretrained = s.clip_model, s.clip_pretrained
    backend = _clip_backend(s)
    if backend == "none":
        return Found(reason="clip: disabled (VLAGENT_CLIP_BACKEND=none or VLAGENT_CLIP_MODEL=none)")
    missing = needs_extra(f"clip: {name}", *CLIP_MODULES.get(backend, CLIP_MODULES["auto"]))
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
    return load_clip_encoder(
        s.clip_model, s.clip_pretrained, s.clip_backend, s.resolved_device(), s.clip_batch_size,
        local_files_only=local_only, dtype=s.model_dtype, attn=s.attn_implementation,
        decode_processes=s.clip_decode_processes,
    )  # fmt: skip


def _selfcheck(settings: Settings) -> str:
    encoder = encoder_from_settings(settings)
    image, text = encoder.encode_images([sample_image()]), encoder.encode_texts(["a red dress"])
    return f"embedded an image and a text ({image.shape[-1]}-d, {text.shape[-1]}-d)"


ROLE = RoleSpec(
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
    hub_repo=lambda s: hub_repo_of(s.clip_model.removeprefix("hf-hub:")),
    cache_files=("config.json", "open_clip_config.json"),
    selfcheck=_selfcheck,
)


def probe(settings: Settings) -> str | None:
    """Is CLIP here? None when the configured model can be used, else why (one line). Loads nothing."""
    return loading.status(ROLE, settings).reason


def encoder_from_settings(settings: Settings) -> ClipEncoder:
    """The CLIP encoder of ``settings``, loaded once per process (the ``clip`` role)."""
    return loading.load(ROLE, settings)  # type: ignore[no-any-return]
