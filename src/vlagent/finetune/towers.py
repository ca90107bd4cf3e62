"""The trainable view of a loaded :class:`~vlagent.models.clip.ClipEncoder`.

Fine-tuning trains the encoder's own torch model in place and feeds it through the encoder's
own preprocessing and tokenizer, so a title is truncated the same way at training and at
search time (transformers: ``HFClipEncoder.tokenize``; open_clip: the tokenizer the encoder
holds). Each parameter belongs to a group — ``image`` / ``text`` tower, ``projection``,
``scale`` — and, inside a tower, to a block (``.layers.N.`` / ``.layer.N.`` / ``.resblocks.N.``).

The best weights are written where ``vlagent index`` loads them by path:

* transformers (Chinese-CLIP, CLIP, AltCLIP): a model folder → ``VLAGENT_CLIP_MODEL=DIR``;
* open_clip from a folder (``local-dir:``) or ``hf-hub:``: an open_clip folder
  (``open_clip_config.json`` + ``open_clip_model.safetensors``) → ``VLAGENT_CLIP_MODEL=DIR``;
* open_clip by registry name: a checkpoint file → ``VLAGENT_CLIP_MODEL=NAME`` +
  ``VLAGENT_CLIP_PRETRAINED=FILE``.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from vlagent.errors import ModelLoadError
from vlagent.models.clip import ClipEncoder, HFClipEncoder, OpenClipEncoder, _features
from vlagent.models.placement import param_dtype

Group = Literal["image", "text", "projection", "scale"]
_BLOCK = re.compile(r"\.(?:layers?|resblocks|blocks)\.(\d+)\.")
#: parameters that sit after a tower's blocks (they train with "the last N blocks")
_POST = re.compile(r"post_layernorm|ln_post|ln_final|final_layer_norm|pooler|attn_pool")


def block_of(name: str) -> int | None:
    match = _BLOCK.search(name)
    return int(match.group(1)) if match else None


def is_post_block(name: str) -> bool:
    return bool(_POST.search(name))


class Towers:
    """Family-independent access to the model behind an encoder (see the module docstring)."""

    def __init__(self, encoder: ClipEncoder, source_name: str, source_pretrained: str | None = None):
        import torch

        self.encoder = encoder
        self.model: Any = encoder.model  # type: ignore[attr-defined]
        if param_dtype(self.model) != torch.float32:  # loaded in half for a GPU: train float32 weights
            self.model.float()  # under autocast (FinetuneConfig.precision); the encoder follows the weights
        self.source_name = source_name
        self.source_pretrained = source_pretrained

    @property
    def device(self) -> str:
        return self.encoder.device

    # --- inputs (the encoder's own preprocessing and tokenisation) ---
    def pixels(self, images: Sequence[Image.Image]) -> Any:
        raise NotImplementedError

    def tokens(self, texts: Sequence[str]) -> Any:
        raise NotImplementedError

    # --- features with gradients ---
    def image_features(self, pixels: Any) -> Any:
        raise NotImplementedError

    def text_features(self, tokens: Any) -> Any:
        raise NotImplementedError

    @property
    def logit_scale(self) -> Any:
        return self.model.logit_scale

    def group_of(self, name: str) -> Group:
        raise NotImplementedError

    # --- truncation report ---
    def context_length(self) -> int | None:
        raise NotImplementedError

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Untruncated token counts, special tokens included."""
        raise NotImplementedError

    # --- where the best weights go ---
    def export(self, folder: Path, final: Path) -> dict[str, str]:
        """Write the model into ``folder`` (later renamed to ``final``); return the settings
        (env names) that load it from ``final``."""
        raise NotImplementedError


class HFTowers(Towers):
    def pixels(self, images: Sequence[Image.Image]) -> Any:
        return self.encoder.processor(images=list(images), return_tensors="pt")["pixel_values"]  # type: ignore[attr-defined]

    def tokens(self, texts: Sequence[str]) -> Any:
        return self.encoder.tokenize(texts)  # type: ignore[attr-defined]

    def image_features(self, pixels: Any) -> Any:
        return _features(self.model.get_image_features(pixel_values=pixels.to(self.device)))

    def text_features(self, tokens: Any) -> Any:
        return _features(self.model.get_text_features(**tokens.to(self.device)))

    def group_of(self, name: str) -> Group:
        if name.startswith(("logit_scale", "logit_bias")):
            return "scale"
        if name.startswith(("visual_projection", "text_projection")):
            return "projection"
        if name.startswith("vision_model."):
            return "image"
        return "text"

    def context_length(self) -> int | None:
        """Where the encoder's own tokenisation cuts a very long text."""
        return int(self.tokens(["一" * 2048])["input_ids"].shape[1])

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        tok = self.encoder.processor.tokenizer  # type: ignore[attr-defined]
        out: list[int] = []
        for start in range(0, len(texts), 1024):
            ids = tok(list(texts[start : start + 1024]), truncation=False, verbose=False)["input_ids"]
            out.extend(len(x) for x in ids)
        return out

    def export(self, folder: Path, final: Path) -> dict[str, str]:
        self.model.save_pretrained(folder)
        self.encoder.processor.save_pretrained(folder)  # type: ignore[attr-defined]
        return {"VLAGENT_CLIP_MODEL": str(final)}


class OpenClipTowers(Towers):
    def pixels(self, images: Sequence[Image.Image]) -> Any:
        import torch

        return torch.stack([self.encoder.preprocess(im) for im in images])  # type: ignore[attr-defined]

    def tokens(self, texts: Sequence[str]) -> Any:
        return self.encoder.tokenizer(list(texts))  # type: ignore[attr-defined]

    def image_features(self, pixels: Any) -> Any:
        return self.model.encode_image(pixels.to(self.device))

    def text_features(self, tokens: Any) -> Any:
        return self.model.encode_text(tokens.to(self.device))

    def group_of(self, name: str) -> Group:
        if name.startswith(("logit_scale", "logit_bias")):
            return "scale"
        if name in {"visual.proj", "text_projection", "text.proj"} or name.startswith(
            ("text_projection.", "visual.head.", "text.proj.")
        ):
            return "projection"
        if name.startswith("visual."):
            return "image"
        return "text"

    def context_length(self) -> int | None:
        return getattr(self.encoder.tokenizer, "context_length", None)  # type: ignore[attr-defined]

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        tok = self.encoder.tokenizer  # type: ignore[attr-defined]
        hf = getattr(tok, "tokenizer", None)
        if hf is not None:  # open_clip's HFTokenizer wraps a transformers tokenizer
            return [len(x) for x in hf(list(texts), truncation=False, verbose=False)["input_ids"]]
        return [len(tok.encode(t)) + 2 for t in texts]  # SimpleTokenizer: + start/end tokens

    def _model_cfg(self) -> dict[str, Any] | None:
        name = self.source_name
        folder = Path(name.removeprefix("local-dir:")).expanduser()
        if folder.is_dir() and (folder / "open_clip_config.json").is_file():
            return json.loads((folder / "open_clip_config.json").read_text("utf-8"))
        if name.startswith("hf-hub:"):
            from open_clip.factory import _get_hf_config

            return _get_hf_config(name.removeprefix("hf-hub:"))
        return None

    def export(self, folder: Path, final: Path) -> dict[str, str]:
        import torch

        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        config = self._model_cfg()
        if config is not None:  # an open_clip folder, loaded by path
            from safetensors.torch import save_file

            (folder / "open_clip_config.json").write_text(json.dumps(config, ensure_ascii=False), "utf-8")
            save_file(state, str(folder / "open_clip_model.safetensors"))
            return {"VLAGENT_CLIP_MODEL": f"local-dir:{final}"}
        torch.save(state, folder / "open_clip_model.pt")
        return {"VLAGENT_CLIP_MODEL": self.source_name, "VLAGENT_CLIP_PRETRAINED": str(final / "open_clip_model.pt")}


def towers_for(encoder: ClipEncoder, source_name: str, source_pretrained: str | None = None) -> Towers:
    if isinstance(encoder, HFClipEncoder):
        return HFTowers(encoder, source_name, source_pretrained)
    if isinstance(encoder, OpenClipEncoder):
        return OpenClipTowers(encoder, source_name, source_pretrained)
    raise ModelLoadError(f"cannot fine-tune a {type(encoder).__name__}: only open_clip and transformers CLIP models")


def replace_dir(tmp: Path, final: Path) -> None:
    """Put a finished folder in place of ``final`` (the old one is removed after the new one is complete)."""
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)
