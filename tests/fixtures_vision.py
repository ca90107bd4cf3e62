"""Vision-tool fixtures: tiny BLIP and Qwen2-VL built here, rendered clothing labels.

Fixtures (the contract other areas may build on)
------------------------------------------------
``tiny_blip_dir`` (session) -> ``Path`` of a randomly initialised ``BlipForConditionalGeneration``
    (1 text + 1 vision layer, hidden 32, 32x32 images) with a ``BertTokenizer`` whose vocab
    is padded to 30524 entries (BLIP's ``generate`` needs that) and a ``BlipImageProcessor``,
    saved with ``save_pretrained``: ``Settings(caption_model=str(tiny_blip_dir))``.
    Output: ``[unusedNNN]`` gibberish.

``tiny_qwen2vl_dir`` (session) -> ``Path`` of a randomly initialised
    ``Qwen2VLForConditionalGeneration`` (2 text layers hidden 32, 1 vision block) with a
    byte-level ``Qwen2Tokenizer`` (256 byte tokens + Qwen2-VL's special tokens), a ChatML
    chat template with ``{"type": "image"}`` parts and a ``Qwen2VLImageProcessor`` capped
    at 64 merged patches: ``Settings(vqa_backend="transformers", vqa_model=str(...))``.

``label_images`` (session) -> ``dict[str, Path]``: clothing-label PNGs with known text
    (``LABEL_TEXTS``), rendered with the WenQuanYi font when it is installed, else the copies
    committed under ``tests/assets/``.

``label_catalogue(folder, label_images, labels, photos)``: a catalogue folder of copies of the
    named label images and sample-suite photos.

``vision_ctx`` (function) -> a factory ``(**settings_overrides) -> ToolContext`` with its own
    home and on-disk cache under ``tmp_path``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from vlagent.cache import DiskCache
from vlagent.settings import Settings
from vlagent.data.resolver import ImageResolver
from vlagent.models.context import ToolContext

ASSETS = Path(__file__).parent / "assets"
CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")

#: file name → the lines printed on it (the committed PNGs are the first two)
LABEL_TEXTS: dict[str, list[str]] = {
    "label_zh.png": ["纯棉 100%", "尺码 XL", "MADE IN CHINA"],
    "label_en.png": ["100% COTTON", "MACHINE WASH COLD", "SIZE M"],
    "label_mixed.png": ["成分 聚酯纤维 65% 棉 35%", "洗涤温度 30°C", "PRICE 199"],
    "label_dark.png": ["品牌 HAPPY KIDS", "适用年龄 3-6岁"],
}
COMMITTED = ("label_zh.png", "label_en.png")
SAMPLE_IMAGES = Path(str(resources.files("vlagent.evals").joinpath("suites/sample/images")))


def render_label(lines: list[str], path: Path, *, dark: bool = False, font_size: int = 38) -> Path:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(CJK_FONT), font_size)
    width = max(int(font.getlength(t)) for t in lines) + 80
    height = len(lines) * (font_size + 24) + 50
    bg, fg = ((35, 40, 60), (235, 235, 225)) if dark else ((250, 248, 240), (25, 25, 25))
    img = Image.new("RGB", (width, height), bg)
    draw = ImageDraw.Draw(img)
    draw.rectangle([8, 8, width - 9, height - 9], outline=fg, width=2)
    y = 28
    for text in lines:
        draw.text((40, y), text, fill=fg, font=font)
        y += font_size + 24
    img.save(path)
    return path


@pytest.fixture(scope="session")
def label_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not CJK_FONT.is_file():
        return {name: ASSETS / name for name in COMMITTED}
    out = tmp_path_factory.mktemp("labels")
    return {
        name: render_label(lines, out / name, dark=name == "label_dark.png") for name, lines in LABEL_TEXTS.items()
    }


def label_catalogue(folder: Path, label_images: dict[str, Path], labels: Sequence[str], photos: Sequence[str]) -> Path:
    """``folder`` (created) with copies of the label images ``labels`` and the sample-suite photos ``photos``."""
    folder.mkdir()
    for name in labels:
        shutil.copy(label_images[name], folder / name)
    for name in photos:
        shutil.copy(SAMPLE_IMAGES / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def tiny_blip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    out = tmp_path_factory.mktemp("tiny-blip")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "a", "photography", "of", "red", "dress"]
    vocab_size = 30524  # BLIP's generate indexes special ids up there
    vocab = words + [f"[unused{i}]" for i in range(vocab_size - len(words))]
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True, bos_token="[DEC]")
    processor = BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer
    )
    torch.manual_seed(0)
    config = BlipConfig(
        text_config={
            "vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 2, "max_position_embeddings": 128, "bos_token_id": words.index("[DEC]"),
            "pad_token_id": 0, "sep_token_id": 3, "eos_token_id": 3,
        },
        vision_config={
            "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
            "image_size": 32, "patch_size": 8,
        },
        projection_dim=32,
    )  # fmt: skip
    BlipForConditionalGeneration(config).save_pretrained(out)
    processor.save_pretrained(out)
    return out


QWEN2VL_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_qwen2vl(
    out: Path,
    *,
    hidden_size: int = 32,
    num_attention_heads: int = 2,
    num_key_value_heads: int = 1,
    mrope_section: tuple[int, int, int] = (2, 3, 3),
    max_pixels: int = 28 * 28 * 64,
    max_position_embeddings: int = 2048,
) -> Path:
    """A tiny random ``Qwen2VLForConditionalGeneration`` + processor saved in ``out``.

    The defaults are ``tiny_qwen2vl_dir``'s (text head_dim 16); vLLM's CPU attention needs
    head_dim 64 (``hidden_size=128, num_attention_heads=2, mrope_section=(8, 12, 12)``: the
    sections add up to head_dim / 2). ``max_pixels``: the image processor's cap (64 merged
    patches by default: at most 64 image tokens an image)."""
    import torch
    from transformers import (
        Qwen2Tokenizer,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    out.mkdir(parents=True, exist_ok=True)
    byte_vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    specials = [
        "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
        "<|image_pad|>", "<|video_pad|>",
    ]  # fmt: skip
    tokenizer = Qwen2Tokenizer(
        vocab=byte_vocab, merges=[], unk_token=None, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    ids = {s: tokenizer.convert_tokens_to_ids(s) for s in specials}
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=28 * 28 * 4, max_pixels=max_pixels),
        video_processor=Qwen2VLVideoProcessor(),
        tokenizer=tokenizer,
        chat_template=QWEN2VL_CHAT_TEMPLATE,
    )
    torch.manual_seed(0)
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": hidden_size, "intermediate_size": 2 * hidden_size,
            "num_hidden_layers": 2, "num_attention_heads": num_attention_heads,
            "num_key_value_heads": num_key_value_heads, "max_position_embeddings": max_position_embeddings,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": list(mrope_section)},
            "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 1, "embed_dim": 32, "hidden_size": hidden_size, "num_heads": 2, "mlp_ratio": 2, "patch_size": 14,
            "spatial_merge_size": 2, "temporal_patch_size": 2,
        },
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )  # fmt: skip
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.save_pretrained(out)
    processor.save_pretrained(out)
    assert json.loads((out / "config.json").read_text())["model_type"] == "qwen2_vl"
    return out


@pytest.fixture(scope="session")
def tiny_qwen2vl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen2vl(tmp_path_factory.mktemp("tiny-qwen2vl"))


@pytest.fixture()
def vision_ctx(tmp_path: Path) -> Iterator[Callable[..., ToolContext]]:
    made: list[DiskCache] = []

    def make(**overrides: Any) -> ToolContext:
        home = tmp_path / f"home{len(made)}"
        settings = Settings(home=home, device="cpu", **overrides)
        cache = DiskCache(home / "cache" / "tools.sqlite")
        made.append(cache)
        return ToolContext(settings=settings, resolver=ImageResolver(roots=[Path("/")]), cache=cache)  # tool tests read images anywhere

    yield make
    for cache in made:
        cache.close()
