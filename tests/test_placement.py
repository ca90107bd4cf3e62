"""Where and how the transformers models run (vlagent.models.placement): the device ``auto``
resolves, float32 on CPU whatever the checkpoint was saved in, half precision and the
attention kernel on a GPU, and the half-precision code paths run (on CPU here)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from vlagent.models import loader, loading, placement
from vlagent.models.clip import load_clip_encoder
from vlagent.settings import Settings


# --- the decisions ---------------------------------------------------------------------------
class Sdpa:
    _supports_sdpa = True
    _supports_flash_attn = True


class Eager:  # BLIP: neither
    _supports_sdpa = False
    _supports_flash_attn = False


def test_auto_dtype_is_float32_off_cuda_and_half_on_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(placement, "cpu_has_native_bf16", lambda: False)  # most CPUs
    for device in ("cpu", "mps"):
        assert placement.resolve_dtype("auto", device, "encoder") == "float32"
        assert placement.resolve_dtype("auto", device, "generator") == "float32"
    monkeypatch.setattr(placement, "cpu_has_native_bf16", lambda: True)  # AMX / AVX512-BF16
    assert placement.resolve_dtype("auto", "cpu", "generator") == "bfloat16"  # the published dtype, fast there
    assert placement.resolve_dtype("auto", "cpu", "encoder") == "float32"  # CLIP, BLIP: as before
    assert placement.resolve_dtype("auto", "mps", "generator") == "float32"
    monkeypatch.setattr(placement, "_bf16_supported", lambda device: True)
    assert placement.resolve_dtype("auto", "cuda", "encoder") == "float16"  # CLIP, BLIP
    assert placement.resolve_dtype("auto", "cuda:1", "generator") == "bfloat16"  # Qwen2-VL, the LLM
    monkeypatch.setattr(placement, "_bf16_supported", lambda device: False)  # T4, V100
    assert placement.resolve_dtype("auto", "cuda", "generator") == "float16"
    assert placement.resolve_dtype("bfloat16", "cpu", "encoder") == "bfloat16"  # asked for: given
    with pytest.raises(ValueError, match="float8"):
        placement.resolve_dtype("float8", "cpu", "encoder")


def test_attention_flash_where_installed_else_sdpa(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(placement, "flash_attn_installed", lambda: True)
    assert placement.resolve_attention("auto", Sdpa, "cuda", "float16") == "flash_attention_2"
    assert placement.resolve_attention("auto", Sdpa, "cuda", "float32") == "sdpa"  # flash needs half
    assert placement.resolve_attention("auto", Sdpa, "cpu", "bfloat16") == "sdpa"
    assert placement.resolve_attention("auto", Eager, "cuda", "float16") is None  # transformers' own choice
    assert placement.resolve_attention("auto", None, "cuda", "float16") is None
    assert placement.resolve_attention("eager", Sdpa, "cuda", "float16") == "eager"  # asked for
    monkeypatch.setattr(placement, "flash_attn_installed", lambda: False)
    assert placement.resolve_attention("auto", Sdpa, "cuda", "float16") == "sdpa"


def test_settings_placement_resolves_auto_device(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    monkeypatch.setattr(placement, "cpu_has_native_bf16", lambda: False)
    assert s.device == "auto" and s.model_dtype == "auto"
    assert placement.placement(s, "encoder", Sdpa) == placement.Placement("cpu", "float32", "sdpa")
    monkeypatch.setattr(Settings, "resolved_device", lambda self: "cuda")
    monkeypatch.setattr(placement, "_bf16_supported", lambda device: True)
    monkeypatch.setattr(placement, "flash_attn_installed", lambda: False)
    assert placement.placement(s, "generator", Sdpa) == placement.Placement("cuda", "bfloat16", "sdpa")
    assert placement.placement(s, "encoder", Eager).load_kwargs() == {"dtype": torch.float16}


# --- finding 4: float32 on CPU whatever the checkpoint holds -----------------------------------
def _bf16_copy(src: Path, dst: Path, cls: Any) -> Path:
    """``src`` saved again with its weights in bfloat16 (as Qwen2-VL and Qwen2.5 are published)."""
    shutil.copytree(src, dst)
    cls.from_pretrained(src).to(torch.bfloat16).save_pretrained(dst)
    return dst


def _dtype_of(model: Any) -> torch.dtype:
    return next(p.dtype for p in model.parameters() if p.is_floating_point())


def test_bf16_checkpoints_load_in_float32_on_cpu(
    tiny_qwen2vl_dir: Path, tiny_causal_lm_dir: Path, tiny_blip_dir: Path, tiny_clip, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """transformers 5 loads a checkpoint in its saved dtype by default (``dtype="auto"``): the
    bf16 Qwen2-VL and LLM ran in bf16 on every CPU (emulated, slow, without native bf16 units);
    the tiny test models are saved in float32 and never showed it."""
    monkeypatch.setattr(placement, "cpu_has_native_bf16", lambda: False)
    from transformers import (
        BlipForConditionalGeneration,
        ChineseCLIPModel,
        Qwen2ForCausalLM,
        Qwen2VLForConditionalGeneration,
    )

    vlm = _bf16_copy(tiny_qwen2vl_dir, tmp_path / "vlm", Qwen2VLForConditionalGeneration)
    lm = _bf16_copy(tiny_causal_lm_dir, tmp_path / "lm", Qwen2ForCausalLM)
    blip = _bf16_copy(tiny_blip_dir, tmp_path / "blip", BlipForConditionalGeneration)
    clip = _bf16_copy(Path(tiny_clip["chinese_clip"][0]), tmp_path / "clip", ChineseCLIPModel)
    s = Settings(
        home=tmp_path / "home", vqa_backend="transformers", vqa_model=str(vlm), llm_backend="transformers",
        llm_model=str(lm), caption_backend="transformers", caption_model=str(blip), clip_model=str(clip),
    )  # fmt: skip
    assert s.device == "auto"
    try:
        assert _dtype_of(loader.load("vqa", s).model) == torch.float32
        model, _tokenizer, device = loader.load("llm", s)
        assert (_dtype_of(model), device) == (torch.float32, "cpu")
        assert _dtype_of(loader.load("caption", s).model) == torch.float32
        assert _dtype_of(loader.load("clip", s).model) == torch.float32
        # and the VLM still answers in float32
        assert isinstance(loader.load("vqa", s).answer([Image.new("RGB", (64, 64), (200, 30, 30))], "颜色？"), str)
        # a CPU with native bf16 keeps the generators' published bf16
        monkeypatch.setattr(placement, "cpu_has_native_bf16", lambda: True)
        amx = s.model_copy(update={"vqa_max_new_tokens": 2})  # another key: loaded again
        assert _dtype_of(loader.load("vqa", amx).model) == torch.bfloat16
        assert _dtype_of(loader.load("clip", amx).model) == torch.float32
    finally:
        for role in ("vqa", "llm", "caption", "clip"):
            loading.clear(role)


# --- the half-precision paths a GPU takes, run on CPU ------------------------------------------
@pytest.fixture(scope="module")
def pictures() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)) for _ in range(3)]


@pytest.mark.parametrize("family", ["chinese_clip", "open_clip"])
def test_half_precision_clip_matches_float32(tiny_clip, family: str, pictures: list[Image.Image]) -> None:
    """transformers CLIPs load their weights in the half dtype (inputs cast to it); open_clip
    models run under autocast. Same embeddings as float32, to half precision."""
    model, pretrained = tiny_clip[family]
    full = load_clip_encoder(model, pretrained, device="cpu", dtype="float32")
    half = load_clip_encoder(model, pretrained, device="cpu", dtype="bfloat16")
    if family == "chinese_clip":
        assert _dtype_of(half.model) == torch.bfloat16  # type: ignore[attr-defined]
    assert half.place.dtype == "bfloat16"
    texts = ["红色连衣裙", "blue shirt"]
    for a, b in [(full.encode_images(pictures), half.encode_images(pictures)), (full.encode_texts(texts), half.encode_texts(texts))]:
        assert a.dtype == b.dtype == np.float32
        assert np.all(np.sum(a * b, axis=1) > 0.99)  # cosine between the float32 and bf16 vectors
    # the indexer's split path (pixels made apart, then encoded) gives encode_images' vectors
    transform = half.pixel_transform()
    pixels = torch.stack([transform(im) for im in pictures])
    assert np.allclose(half.encode_pixels(pixels), half.encode_images(pictures), atol=1e-6)
