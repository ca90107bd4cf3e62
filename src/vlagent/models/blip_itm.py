"""BLIP image-text matching: ``BlipForImageTextRetrieval``'s ITM head, the probability that a
text describes an image (optional; ``Settings.match_blip_model`` names the model, none by default).

The ITM head was trained to tell matching (image, caption) pairs from hard negatives, so its
softmax probability is a usable match score as it is (unlike CLIP's cosine, which
:mod:`vlagent.products.matching` calibrates against the catalogue).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlagent.errors import ModelLoadError, one_line
from vlagent.models.extras import missing_line
from vlagent.models.hub import hub_offline
from vlagent.models.placement import Placement, load_pretrained, param_dtype, placement

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from vlagent.settings import Settings


def blip_itm_probe(settings: "Settings") -> str | None:
    """Why no BLIP matcher can run here (None: it can); loads nothing."""
    name = settings.match_blip_model
    if not name:
        return "match: no BLIP matcher configured (VLAGENT_MATCH_BLIP_MODEL)"
    missing = missing_line(f"match: the BLIP matcher {name}", "torch", "transformers")
    if missing:
        return missing
    path = Path(name).expanduser()
    looks_local = name.startswith(("/", ".", "~")) or path.exists()
    if looks_local and not (path / "config.json").is_file():
        return f"match: no BLIP model at {path} (config.json missing)"
    if not looks_local:
        if hub_offline(settings):
            return f"match: BLIP model {name!r} is a hub id and the hub is offline (give a local folder)"
    return None


class BlipMatcher:
    """``probability(image, text)``: P(text matches image) from the ITM head (English text:
    BLIP's BERT was trained on English captions; :mod:`vlagent.products.matching` sends it no other)."""

    def __init__(self, name: str, place: Placement | None = None, local_files_only: bool = False) -> None:
        from transformers import BlipForImageTextRetrieval, BlipProcessor

        place = place or Placement("cpu", "float32")
        self.model_id = f"blip-itm:{name}"
        self.device = place.device
        self.processor = BlipProcessor.from_pretrained(name, local_files_only=local_files_only)
        self.model = load_pretrained(BlipForImageTextRetrieval, name, place, local_files_only)
        self.dtype = param_dtype(self.model)

    def probability(self, image: "Image.Image", text: str) -> float:
        import torch

        inputs = self.processor(images=image.convert("RGB"), text=text, return_tensors="pt", truncation=True).to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        with torch.inference_mode():
            out = self.model(**inputs, use_itm_head=True)
        logits = out.itm_score if hasattr(out, "itm_score") else out[0]
        return float(torch.softmax(logits.float(), dim=-1)[0, 1])


@functools.lru_cache(maxsize=2)
def _load(name: str, place: Placement, local_files_only: bool) -> BlipMatcher:
    return BlipMatcher(name, place, local_files_only)


def blip_matcher(settings: "Settings") -> BlipMatcher:
    """The configured matcher, loaded once per (model, device, dtype) on the resolved device
    (``device="auto"`` is the GPU when there is one); ModelLoadError with one line."""
    name = str(settings.match_blip_model or "")
    try:
        from transformers import BlipForImageTextRetrieval

        local = Path(name).expanduser()
        place = placement(settings, "encoder", BlipForImageTextRetrieval)
        return _load(str(local) if local.exists() else name, place, hub_offline(settings))
    except Exception as exc:  # noqa: BLE001 - any load failure is one line
        raise ModelLoadError(f"cannot load BLIP matcher {name!r}: {one_line(exc)}") from exc


def itm_function(settings: "Settings") -> Any:
    """``(image, text) -> probability`` for :func:`vlagent.products.matching.match_image_text`."""
    return blip_matcher(settings).probability
